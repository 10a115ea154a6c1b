"""The local AWS stack for every test that needs servers: moto (S3, SQS, SNS, STS) and the
HealthOmics emulator, started once per test session on free ports and always stopped (the
children also die with the pytest process).

Each test starts from an empty emulator with the session's settings: frozen emulated time
(tests move it explicitly, so state transitions are deterministic) and no API quotas unless the
test sets them. Loaded for the whole suite by tests/conftest.py (``pytest_plugins``).
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from local_aws.stack import LocalAWS
from omics_emulator import EmulatorAdmin
from omics_emulator.model import OPERATIONS

ROLE_ARN = "arn:aws:iam::123456789012:role/healthomics-run"
UNLIMITED = {operation: None for operation in OPERATIONS}


@pytest.fixture(scope="session")
def local_aws(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalAWS]:
    stack = LocalAWS(
        workdir=tmp_path_factory.mktemp("local-aws"),
        time_scale=0,
        emulator_config={"quotas": UNLIMITED, "seed": 7},
        events_queue=None,  # tests that want events get a queue of their own (drain_events)
    )
    with stack:
        yield stack


@pytest.fixture
def emulator(local_aws: LocalAWS) -> Iterator[EmulatorAdmin]:
    admin = EmulatorAdmin(local_aws.omics_url)
    admin.reset(config=True)
    yield admin
    # Every test must leave the service answering without a single 5xx.
    counters = admin.counters()["operations"]
    server_errors = {op: c["statuses"] for op, c in counters.items() if any(s.startswith("5") for s in c["statuses"])}
    injected = any(f["action"] == "error" for f in admin.faults())
    assert injected or not server_errors, f"the emulator answered 5xx: {server_errors}"


@pytest.fixture
def omics(local_aws: LocalAWS, emulator: EmulatorAdmin) -> Any:
    """An omics client that does not retry, so every answer of the service is visible."""
    return local_aws.client("omics", retries={"total_max_attempts": 1})


@pytest.fixture
def s3(local_aws: LocalAWS) -> Any:
    return local_aws.client("s3")


@pytest.fixture
def bucket(s3: Any) -> str:
    name = f"test-{uuid.uuid4().hex[:12]}"
    s3.create_bucket(Bucket=name)
    return name


@pytest.fixture
def workflow(omics: Any, emulator: EmulatorAdmin) -> dict[str, Any]:
    """An ACTIVE private workflow with a two-parameter template."""
    created = omics.create_workflow(
        name="germline",
        engine="WDL",
        definitionUri="s3://workflow-definitions/germline.zip",
        parameterTemplate={
            "sample_id": {"description": "Sample id", "optional": False},
            "fastq": {"description": "Reads", "optional": True},
            "reference": {"description": "Reference", "optional": True},
            "version": {"description": "Pipeline version", "optional": True},
        },
        requestId=str(uuid.uuid4()),
    )
    emulator.advance(60)
    return dict(created)


@pytest.fixture
def start_run(omics: Any, workflow: dict[str, Any], bucket: str) -> Any:
    """StartRun with valid defaults; keyword arguments override them."""

    def start(**overrides: Any) -> dict[str, Any]:
        request: dict[str, Any] = {
            "workflowId": workflow["id"],
            "roleArn": ROLE_ARN,
            "outputUri": f"s3://{bucket}/runs",
            "name": "NA12878",
            "parameters": {"sample_id": "NA12878"},
            "requestId": str(uuid.uuid4()),
        }
        request.update(overrides)
        return dict(omics.start_run(**request))

    return start


@pytest.fixture
def drain_events(local_aws: LocalAWS, emulator: EmulatorAdmin) -> Any:
    """Send the emulator's events to a fresh SQS queue; the returned function reads and empties it."""
    sqs = local_aws.client("sqs")
    queue_url = sqs.create_queue(QueueName=f"events-{uuid.uuid4().hex[:12]}")["QueueUrl"]
    emulator.configure(events_queue_url=queue_url)

    def drain() -> list[dict[str, Any]]:
        emulator.settle()
        events = []
        while messages := sqs.receive_message(QueueUrl=queue_url, MaxNumberOfMessages=10).get("Messages", []):
            for message in messages:
                events.append(json.loads(message["Body"]))
            sqs.delete_message_batch(
                QueueUrl=queue_url,
                Entries=[{"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(messages)],
            )
        return events

    return drain


@pytest.fixture
def realtime(emulator: EmulatorAdmin) -> EmulatorAdmin:
    """Emulated time that runs by itself: a four-hour run takes about half a second."""
    emulator.configure(time_scale=10_000, profiles={"default": {"jitter": 0.0}})
    return emulator
