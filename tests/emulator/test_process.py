"""The emulator as users start it: one command, a readiness endpoint, a clean shutdown."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

import boto3
from botocore.config import Config

from devkit.waiting import wait_until
from omics_emulator import EmulatorAdmin


def test_command_line_start_health_and_clean_shutdown(tmp_path: Path) -> None:
    port_file = tmp_path / "port"
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "omics_emulator",
            "--port",
            "0",
            "--port-file",
            str(port_file),
            "--time-scale",
            "60",
            "--quota",
            "StartRun=2",
            "--quota",
            "GetRun=0",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:

        def started() -> bool:
            assert process.poll() is None, process.stdout.read() if process.stdout else ""
            return port_file.exists() and bool(port_file.read_text())

        wait_until(started, timeout=30, interval=0.05, what="the emulator did not start")
        url = f"http://127.0.0.1:{port_file.read_text()}"
        admin = EmulatorAdmin(url)
        health = admin.health()
        assert health["status"] == "ok" and health["timeScale"] == 60
        config = admin.config()
        assert config["quotas"] == {"StartRun": 2.0, "GetRun": None}
        omics = boto3.client(
            "omics", endpoint_url=url, region_name="us-east-1", config=Config(inject_host_prefix=False)
        )
        assert omics.list_runs()["items"] == []
        before = admin.now()
        time.sleep(0.5)
        assert 20 <= admin.now() - before <= 60  # about 30 emulated seconds
    finally:
        process.send_signal(signal.SIGTERM)
        output, _ = process.communicate(timeout=30)
    assert process.returncode == 0, output
    assert "listening on http://127.0.0.1:" in output
