"""LocalAWS: moto and the HealthOmics emulator as processes, with clients and the environment for Airflow."""

from __future__ import annotations

import json
import os
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import boto3
from botocore.config import Config

from local_aws.processes import ServerProcess, free_port

# Credentials moto accepts; never real ones. Exported so no real AWS profile is used.
LOCAL_CREDENTIALS = {"aws_access_key_id": "testing", "aws_secret_access_key": "testing"}


DEFAULT_REGION = "us-east-1"


AIRFLOW_CONN_ID = "aws_default"


@dataclass
class LocalAWS:
    """Start moto and the HealthOmics emulator; hand out clients and Airflow settings.

    :param workdir: where logs (and, for ``up``, the state file) go.
    :param time_scale: emulated seconds per real second for the emulator.
    :param emulator_config: extra emulator settings (see ``omics_emulator.config``).
    :param events_queue: SQS queue the emulator sends "Run Status Change" events to
        (created in moto); None disables events.
    :param python: the interpreter the servers run under; ``LOCAL_AWS_PYTHON`` or this process's.
        ``make compat`` runs its tests in a virtualenv of a deployment's pins (no moto there)
        and points this at the development virtualenv's.
    """

    workdir: Path
    time_scale: float = 3600.0
    emulator_config: dict[str, Any] = field(default_factory=dict)
    events_queue: str | None = "healthomics-run-events"
    region: str = DEFAULT_REGION
    detach: bool = False
    python: str = field(default_factory=lambda: os.environ.get("LOCAL_AWS_PYTHON", sys.executable))
    moto: ServerProcess | None = None
    emulator: ServerProcess | None = None

    # -- lifecycle --------------------------------------------------------

    def start(self) -> LocalAWS:
        self.workdir.mkdir(parents=True, exist_ok=True)
        env = {**os.environ, **self._aws_env()}
        moto_port = self.moto.port if self.moto else free_port()
        self.moto = ServerProcess(
            name="moto",
            command=[self.python, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(moto_port)],
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
                self.python,
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
