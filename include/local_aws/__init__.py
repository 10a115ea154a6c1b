"""The local AWS stack: moto (S3, SQS, SNS, STS) and the HealthOmics emulator.

Both run as separate processes on 127.0.0.1, reached through real HTTP by real boto3
clients. The same class backs ``make stack-up``/``make demo`` and the pytest fixtures,
so there is one way to start, probe and stop the stack::

    with LocalAWS(workdir) as stack:
        s3 = stack.client("s3")
        omics = stack.client("omics")
        env = stack.env()  # AWS_* and AIRFLOW_CONN_AWS_DEFAULT for Airflow processes
"""

from __future__ import annotations

import contextlib
import ctypes
import json
import os
import signal
import socket
import subprocess
import sys
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import boto3
from botocore.config import Config

from devkit.waiting import wait_until

# Credentials moto accepts; never real ones. Exported so no real AWS profile is used.
LOCAL_CREDENTIALS = {"aws_access_key_id": "testing", "aws_secret_access_key": "testing"}
DEFAULT_REGION = "us-east-1"
AIRFLOW_CONN_ID = "aws_default"


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


@dataclass
class LocalAWS:
    """Start moto and the HealthOmics emulator; hand out clients and Airflow settings.

    :param workdir: where logs (and, for ``up``, the state file) go.
    :param time_scale: emulated seconds per real second for the emulator.
    :param emulator_config: extra emulator settings (see ``omics_emulator.config``).
    :param events_queue: SQS queue the emulator sends "Run Status Change" events to
        (created in moto); None disables events.
    """

    workdir: Path
    time_scale: float = 3600.0
    emulator_config: dict[str, Any] = field(default_factory=dict)
    events_queue: str | None = "healthomics-run-events"
    region: str = DEFAULT_REGION
    detach: bool = False
    moto: ServerProcess | None = None
    emulator: ServerProcess | None = None

    # -- lifecycle --------------------------------------------------------

    def start(self) -> LocalAWS:
        self.workdir.mkdir(parents=True, exist_ok=True)
        env = {**os.environ, **self._aws_env()}
        moto_port = self.moto.port if self.moto else free_port()
        self.moto = ServerProcess(
            name="moto",
            command=[sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(moto_port)],
            port=moto_port,
            log_path=self.workdir / "moto.log",
            ready_path="/moto-api/data.json",
        )
        self.moto.start(env, self.detach)
        config = {"time_scale": self.time_scale, "region": self.region, **self.emulator_config}
        config["s3_endpoint_url"] = self.moto.url
        if self.events_queue:
            queue_url = self.client("sqs").create_queue(QueueName=self.events_queue)["QueueUrl"]
            config.setdefault("events_queue_url", queue_url)
        config_path = self.workdir / "emulator-config.json"
        config_path.write_text(json.dumps(config, indent=2))
        emulator_port = self.emulator.port if self.emulator else free_port()
        self.emulator = ServerProcess(
            name="omics-emulator",
            command=[
                sys.executable,
                "-m",
                "omics_emulator",
                "--port",
                str(emulator_port),
                "--config",
                str(config_path),
            ],
            port=emulator_port,
            log_path=self.workdir / "omics-emulator.log",
            ready_path="/_emulator/health",
        )
        try:
            self.emulator.start(env, self.detach)
        except Exception:
            self.moto.stop()
            raise
        return self

    def stop(self) -> None:
        for server in (self.emulator, self.moto):
            if server is not None:
                server.stop()

    def __enter__(self) -> LocalAWS:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- what callers need ------------------------------------------------------

    @property
    def moto_url(self) -> str:
        assert self.moto is not None, "stack not started"
        return self.moto.url

    @property
    def omics_url(self) -> str:
        assert self.emulator is not None, "stack not started"
        return self.emulator.url

    def _aws_env(self) -> dict[str, str]:
        return {
            "AWS_ACCESS_KEY_ID": LOCAL_CREDENTIALS["aws_access_key_id"],
            "AWS_SECRET_ACCESS_KEY": LOCAL_CREDENTIALS["aws_secret_access_key"],
            "AWS_DEFAULT_REGION": self.region,
            # Never pick up a developer's real profile or instance credentials.
            "AWS_CONFIG_FILE": os.devnull,
            "AWS_SHARED_CREDENTIALS_FILE": os.devnull,
            "AWS_EC2_METADATA_DISABLED": "true",
        }

    def client(self, service: str, **config: Any) -> Any:
        """A real boto3 client for ``service`` against the local stack."""
        endpoint = self.omics_url if service == "omics" else self.moto_url
        return boto3.client(
            service,  # type: ignore[call-overload]
            endpoint_url=endpoint,
            region_name=self.region,
            config=Config(inject_host_prefix=False, **config),
            **LOCAL_CREDENTIALS,
        )

    def s3_events_to_queue(self, bucket: str, prefix: str, queue_name: str) -> str:
        """A queue receiving ``bucket``'s ObjectCreated events under ``prefix`` (bucket created if needed); its URL."""
        s3, sqs = self.client("s3"), self.client("sqs")
        if bucket not in {b["Name"] for b in s3.list_buckets().get("Buckets", [])}:
            s3.create_bucket(Bucket=bucket)
        queue_url = str(sqs.create_queue(QueueName=queue_name)["QueueUrl"])
        queue_arn = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
        s3.put_bucket_notification_configuration(
            Bucket=bucket,
            NotificationConfiguration={
                "QueueConfigurations": [
                    {
                        "QueueArn": queue_arn,
                        "Events": ["s3:ObjectCreated:*"],
                        "Filter": {"Key": {"FilterRules": [{"Name": "prefix", "Value": prefix}]}},
                    }
                ]
            },
        )
        return queue_url

    def connection_extra(self) -> dict[str, Any]:
        """Extra of an Airflow AWS connection: omics to the emulator, the rest to moto."""
        return {
            "region_name": self.region,
            "endpoint_url": self.moto_url,
            "service_config": {"omics": {"endpoint_url": self.omics_url}},
            "config_kwargs": {"inject_host_prefix": False},
        }

    def env(self) -> dict[str, str]:
        """Environment for Airflow processes and scripts that use this stack."""
        connection = {
            "conn_type": "aws",
            "login": LOCAL_CREDENTIALS["aws_access_key_id"],
            "password": LOCAL_CREDENTIALS["aws_secret_access_key"],
            "extra": self.connection_extra(),
        }
        return {
            **self._aws_env(),
            f"AIRFLOW_CONN_{AIRFLOW_CONN_ID.upper()}": json.dumps(connection),
            "LOCAL_AWS_MOTO_URL": self.moto_url,
            "LOCAL_AWS_OMICS_URL": self.omics_url,
        }

    def state(self) -> dict[str, Any]:
        assert self.moto is not None and self.emulator is not None
        assert self.moto.process is not None and self.emulator.process is not None
        return {
            "region": self.region,
            "moto": {"url": self.moto_url, "pid": self.moto.process.pid, "log": str(self.moto.log_path)},
            "omics": {"url": self.omics_url, "pid": self.emulator.process.pid, "log": str(self.emulator.log_path)},
            "env": self.env(),
        }


def create_active_workflow(omics: Any, timeout: float = 120.0, **request: Any) -> dict[str, Any]:
    """``CreateWorkflow`` (``request`` as boto3 takes it), then wait until the workflow is ACTIVE.

    Workflows are CREATING for a while after the call, and runs of a workflow that is not
    ACTIVE are refused. Returns the CreateWorkflow response (``id``, ``arn``, ...).
    """
    created = dict(omics.create_workflow(**request))
    wait_until(
        lambda: omics.get_workflow(id=created["id"])["status"] == "ACTIVE",
        timeout=timeout,
        interval=0.2,
        what=f"workflow {request.get('name')} ({created['id']}) never became ACTIVE",
    )
    return created


def germline_and_qc_workflows(omics: Any, bucket: str, request_prefix: str) -> tuple[str, str]:
    """A per-sample germline workflow and a cohort QC workflow, ACTIVE; their ids.

    Their parameters are those of the reference manifest format (``sample_id``, ``fastq``;
    ``qc_config``, ``samples``). The emulator gives ``cohort-qc`` runs their own profile by name.
    """
    templates = {
        "germline-wgs": {"sample_id": {"description": "id"}, "fastq": {"description": "reads"}},
        "cohort-qc": {"qc_config": {"description": "config"}, "samples": {"description": "samples"}},
    }
    germline, cohort_qc = (
        create_active_workflow(
            omics,
            name=name,
            definitionUri=f"s3://{bucket}/workflows/{name}.zip",
            parameterTemplate=template,
            requestId=f"{request_prefix}-{name}",
        )["id"]
        for name, template in templates.items()
    )
    return str(germline), str(cohort_qc)


def reference_manifest(
    fastqs: list[tuple[str, str]],
    sample_workflow: str,
    sample_output: str,
    qc_config: str,
    qc_workflow: str,
    qc_output: str,
) -> dict[str, Any]:
    """A manifest in the reference format (``flowcellSamples`` + ``qcWorkflow``).

    :param fastqs: (sample id, its FASTQ's S3 URI) in manifest order; a repeated id is kept, so
        invalid manifests can be built too.
    :param sample_workflow: the per-sample workflow's id or ARN.
    :param sample_output: where the sample runs write.
    :param qc_config: the QC workflow's configuration file (S3 URI).
    :param qc_workflow: the QC workflow's id or ARN.
    :param qc_output: where the QC run writes.
    """
    return {
        "flowcellSamples": [
            {
                "sampleId": sample,
                "fastqFileRef": fastq,
                "ahoSampleWorkflowId": sample_workflow,
                "OutputS3path": sample_output,
            }
            for sample, fastq in fastqs
        ],
        "qcWorkflow": {"qcWorkflowFileRef": qc_config, "ahoQcWorkflowId": qc_workflow, "OutputS3path": qc_output},
    }
