"""``python -m healthomics_demo.up`` (``make up``): the Airflow UI on this machine, with the local stack.

Starts moto and the HealthOmics emulator with the demo flowcell of ``make demo`` (twelve samples,
NA12885 made to fail), then a local Airflow (api-server, scheduler, dag-processor, triggerer)
with a login, the deployment's Variables and ``healthomics_flowcell`` unpaused. Prints the URL,
the login and what to type into the Trigger form; Ctrl-C stops everything.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import secrets
import shutil
import signal
import socket
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from typing import Any, NoReturn

from healthomics_demo.__main__ import REPO, prepare
from local_airflow.deployment import LocalAirflow
from local_aws.stack import LocalAWS

DAG_ID = "healthomics_flowcell"
USERNAME = "admin"
# The Variables of healthomics.settings the flowcell tasks read (VAR_ROLE_ARN, VAR_SNS_TOPIC); named here
# rather than imported, so this process does not load Airflow. The browser test fails if they
# drift: its form gives neither a role nor a topic.
VAR_ROLE_ARN = "healthomics_run_role_arn"
VAR_SNS_TOPIC = "healthomics_sns_topic_arn"
# The demo's QC policy: QC runs on the 11 samples that complete (the default, 1, needs all 12).
QC_POLICY = "0.9"


@dataclass
class LocalUI:
    """A running local Airflow with the demo flowcell in the local stack, and how to log in."""

    stack: LocalAWS
    airflow: LocalAirflow
    conf: dict[str, Any]
    username: str
    password: str

    @property
    def url(self) -> str:
        return self.airflow.url

    @property
    def manifest_uri(self) -> str:
        return str(self.conf["manifest_uri"])

    @property
    def form(self) -> dict[str, str]:
        """What a person types into the Trigger form (field title -> text) to run the demo flowcell."""
        return {"Manifest in S3": self.manifest_uri, "QC policy": QC_POLICY}


@contextlib.contextmanager
def local_ui(workdir: Path, password: str, port: int = 0, time_scale: float = 3600) -> Iterator[LocalUI]:
    """Start the stack, the demo flowcell's data and a local Airflow with a login; stop them after.

    :param workdir: logs and Airflow's SQLite database (``stack/``, ``airflow/``).
    :param password: the password of the one user, ``admin``.
    :param port: the UI's port (0: a free one).
    :param time_scale: emulated seconds per real second (3600: a run hour passes in a second).
    """
    # ExitStack rather than nested ``with``: a start interrupted half-way (Ctrl-C while Airflow
    # migrates its database) still stops whatever had started.
    with contextlib.ExitStack() as running:
        stack = LocalAWS(workdir=workdir / "stack", time_scale=time_scale)
        running.callback(stack.stop)
        stack.start()
        setup = prepare(stack)
        airflow = LocalAirflow(
            workdir=workdir / "airflow",
            dags_folder=REPO / "dags",
            env={**stack.env(), "AIRFLOW__HEALTHOMICS__POLL_SECONDS": "2"},
            users={USERNAME: password},
            port=port,
        )
        running.callback(airflow.stop)
        airflow.start()
        conf = setup["conf"]
        # The deployment's settings, as an operator would set them in Admin > Variables: the form
        # then needs only the manifest.
        airflow.set_variable(VAR_ROLE_ARN, conf["role_arn"], "IAM role HealthOmics runs assume (local stack)")
        airflow.set_variable(VAR_SNS_TOPIC, conf["sns_topic_arn"], "SNS topic for flowcell reports (local stack)")
        airflow.unpause(DAG_ID)
        yield LocalUI(stack=stack, airflow=airflow, conf=conf, username=USERNAME, password=password)


def port_or_free(port: int) -> int:
    """``port`` if nothing listens on it, else a free one (a busy port would answer for another server)."""
    if port == 0:
        return 0
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            print(f"port {port} is in use; taking a free one")
            return 0
    return port


def _interrupt(signum: int, frame: FrameType | None) -> NoReturn:
    # Ctrl-C or SIGTERM: stop everything once; a second signal must not cut the shutdown short.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    os.write(sys.stdout.fileno(), b"\nstopping Airflow and the local stack ...\n")  # print() is not reentrant
    raise KeyboardInterrupt


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m healthomics_demo.up", description=__doc__)
    parser.add_argument("--workdir", type=Path, default=REPO / ".local" / "up")
    parser.add_argument("--port", type=int, default=8080, help="the UI's port (0: a free one; default 8080)")
    parser.add_argument("--password", default=None, help=f"the password of {USERNAME} (default: a new one each start)")
    args = parser.parse_args(argv)
    signal.signal(signal.SIGINT, _interrupt)
    signal.signal(signal.SIGTERM, _interrupt)
    password = args.password or secrets.token_urlsafe(9)
    # Each start is a fresh stack (moto and the emulator keep nothing), so Airflow starts fresh too:
    # an old run would point at runs the emulator no longer has.
    for part in ("stack", "airflow"):
        shutil.rmtree(args.workdir / part, ignore_errors=True)
    started = time.monotonic()
    print("starting the local stack and Airflow (api-server, scheduler, dag-processor, triggerer) ...", flush=True)
    try:
        with local_ui(args.workdir, password, port_or_free(args.port)) as ui:
            dag_url = f"{ui.url}/dags/{DAG_ID}"
            fields = "\n".join(f"       {title + ':':<16} {text}" for title, text in ui.form.items())
            print(
                f"\nready in {time.monotonic() - started:.0f}s\n\n"
                f"  Airflow UI   {ui.url}\n"
                f"  log in as    {ui.username} / {ui.password}\n\n"
                f"  Run the demo flowcell (12 samples; NA12885 is made to fail):\n"
                f"    1. open {dag_url}\n"
                f"    2. Trigger, then type into the form:\n{fields}\n"
                f"       (QC policy is optional: 0.9 lets QC run on the 11 samples that complete;\n"
                f"        the run role and the SNS topic come from Admin > Variables)\n"
                f"    3. Trigger: the run's sample tasks are listed by sample id under 'sample'\n\n"
                f"  logs: {args.workdir}\n"
                f"  Ctrl-C stops Airflow and the local stack.\n",
                flush=True,
            )
            while True:
                time.sleep(3600)
    except KeyboardInterrupt:
        pass
    print("stopped", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
