"""Server processes of the local stack: a free port, start and wait until it answers, stop the whole group."""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal
import socket
import subprocess
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from devkit.waiting import wait_until


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _die_with_parent() -> None:
    """Linux: SIGTERM the child when the process that started it dies (no orphaned servers)."""
    with contextlib.suppress(OSError, AttributeError):
        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        pr_set_pdeathsig = 1
        libc.prctl(pr_set_pdeathsig, signal.SIGTERM)


def wait_until_ready(url: str, timeout: float, process: subprocess.Popen[bytes] | None = None) -> None:
    """Poll ``url`` until it answers HTTP at all (any status), or fail with the log."""
    last_error: list[Exception] = []

    def answers() -> bool:
        if process is not None and process.poll() is not None:
            raise RuntimeError(f"{url}: server exited with code {process.returncode} before it was ready")
        try:
            with urllib.request.urlopen(url, timeout=2):
                return True
        except urllib.error.HTTPError:
            return True  # it answered
        except OSError as err:
            last_error[:] = [err]
            return False

    wait_until(answers, timeout=timeout, interval=0.1, what=lambda: f"{url} not ready ({last_error[:1]})")


@dataclass
class ServerProcess:
    name: str
    command: list[str]
    port: int
    log_path: Path
    ready_path: str = "/"
    process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, env: dict[str, str], detach: bool, timeout: float = 60.0) -> None:
        log = self.log_path.open("ab")
        self.process = subprocess.Popen(
            self.command,
            stdout=log,
            stderr=subprocess.STDOUT,
            env=env,
            start_new_session=True,  # own process group: stop() takes its children too
            preexec_fn=None if detach else _die_with_parent,
        )
        log.close()
        try:
            wait_until_ready(self.url + self.ready_path, timeout, self.process)
        except Exception as err:
            self.stop()
            tail = self.log_path.read_text(errors="replace")[-2000:]
            raise RuntimeError(f"{self.name} did not start: {err}\n--- {self.log_path} ---\n{tail}") from err

    def stop(self, timeout: float = 10.0) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        stop_process_group(self.process.pid, timeout)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.process.wait(timeout)


def stop_process_group(pid: int, timeout: float = 10.0) -> None:
    """SIGTERM the group, then SIGKILL what is left after ``timeout``."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, signal.SIGTERM)

    def gone() -> bool:
        try:
            os.killpg(pid, 0)
        except (ProcessLookupError, PermissionError):
            return True
        # Reap it if it is our child, so the group really disappears.
        with contextlib.suppress(ChildProcessError):
            os.waitpid(pid, os.WNOHANG)
        return False

    try:
        wait_until(gone, timeout=timeout, interval=0.05, what=f"process group {pid} still alive")
    except TimeoutError:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(pid, signal.SIGKILL)
