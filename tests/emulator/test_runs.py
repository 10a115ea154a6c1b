"""Contract tests of the emulator's runs, driven only through boto3 (botocore parses every answer)."""

from __future__ import annotations

import datetime as dt
import json
import uuid
from typing import Any

import pytest
from botocore.exceptions import ClientError

from omics_emulator import EmulatorAdmin
from tests.aws_stack import ROLE_ARN

# Default profile, in emulated seconds: PENDING 60, STARTING 300, RUNNING 3600, STOPPING 120.
NO_JITTER = {"default": {"jitter": 0.0}}


def error_code(err: pytest.ExceptionInfo[ClientError]) -> str:
    return str(err.value.response["Error"]["Code"])


def test_run_lifecycle_timestamps_and_outputs(
    omics: Any, s3: Any, emulator: EmulatorAdmin, start_run: Any, bucket: str
) -> None:
    emulator.configure(profiles=NO_JITTER)
    started = start_run(tags={"flowcell": "FC1", "sample": "NA12878"})
    assert started["status"] == "PENDING"
    assert started["arn"] == f"arn:aws:omics:us-east-1:123456789012:run/{started['id']}"
    assert started["runOutputUri"] == f"s3://{bucket}/runs/{started['id']}"
    uuid.UUID(started["uuid"])

    seen = []
    for seconds in (60, 300, 3600, 120):
        emulator.advance(seconds)
        seen.append(omics.get_run(id=started["id"])["status"])
    assert seen == ["STARTING", "RUNNING", "STOPPING", "COMPLETED"]

    run = omics.get_run(id=started["id"])
    assert run["tags"] == {"flowcell": "FC1", "sample": "NA12878"}
    assert run["parameters"] == {"sample_id": "NA12878"}
    assert run["storageType"] == "STATIC" and run["storageCapacity"] == 1200
    assert isinstance(run["creationTime"], dt.datetime)
    assert run["startTime"] - run["creationTime"] == dt.timedelta(seconds=360)
    assert run["stopTime"] - run["startTime"] == dt.timedelta(seconds=3720)
    assert run["logLocation"]["runLogStream"].endswith(f":log-group:/aws/omics/WorkflowLog:log-stream:run/{run['id']}")
    assert "failureReason" not in run

    # Outputs are in S3 when COMPLETED is visible, with a manifest naming them.
    manifest_key = f"runs/{run['id']}/logs/outputs.json"
    manifest = json.loads(s3.get_object(Bucket=bucket, Key=manifest_key)["Body"].read())
    assert manifest == {"germline.summary": f"s3://{bucket}/runs/{run['id']}/out/summary/NA12878.json"}
    summary = json.loads(s3.get_object(Bucket=bucket, Key=f"runs/{run['id']}/out/summary/NA12878.json")["Body"].read())
    assert summary["runUuid"] == run["uuid"]


def test_injected_failure_reports_reason_and_message(omics: Any, emulator: EmulatorAdmin, start_run: Any) -> None:
    emulator.configure(profiles=NO_JITTER)
    emulator.add_fault(
        action="fail",
        match={"name": "^NA12891$"},
        failureReason="OUT_OF_MEMORY_ERROR",
        statusMessage="Task bwa_mem ran out of memory",
    )
    failing = start_run(name="NA12891", parameters={"sample_id": "NA12891"})
    healthy = start_run(name="NA12892", parameters={"sample_id": "NA12892"})
    emulator.advance(60 + 300)
    emulator.advance(1800)  # injected failures strike halfway through RUNNING, then STOP
    assert omics.get_run(id=failing["id"])["status"] == "STOPPING"
    assert omics.get_run(id=healthy["id"])["status"] == "RUNNING"
    emulator.advance(120)
    failed = omics.get_run(id=failing["id"])
    assert failed["status"] == "FAILED"
    assert failed["failureReason"] == "OUT_OF_MEMORY_ERROR"
    assert failed["statusMessage"] == "Task bwa_mem ran out of memory"
    assert failed["stopTime"] - failed["startTime"] == dt.timedelta(seconds=1920)
    emulator.advance(3600)
    assert omics.get_run(id=healthy["id"])["status"] == "COMPLETED"


def test_fault_rule_limited_to_one_run(omics: Any, emulator: EmulatorAdmin, start_run: Any) -> None:
    emulator.add_fault(action="fail", match={"name": "NA12878"}, times=1)
    first = start_run()
    retry = start_run()  # same sample, new request: the rule is used up
    emulator.advance(24 * 3600)
    assert omics.get_run(id=first["id"])["status"] == "FAILED"
    assert omics.get_run(id=retry["id"])["status"] == "COMPLETED"
    assert emulator.faults()[0]["applied"] == 1


def test_a_slow_run_runs_factor_times_as_long(omics: Any, emulator: EmulatorAdmin, start_run: Any) -> None:
    emulator.add_fault(action="slow", match={"name": "NA12878$"}, factor=10)
    slow = start_run()
    normal = start_run(name="NA12891")
    emulator.advance(2 * 3600)  # pending, starting, about an hour running, stopping
    assert omics.get_run(id=normal["id"])["status"] == "COMPLETED"
    assert omics.get_run(id=slow["id"])["status"] == "RUNNING"
    emulator.advance(12 * 3600)
    finished = omics.get_run(id=slow["id"])
    assert finished["status"] == "COMPLETED"
    assert (finished["stopTime"] - finished["startTime"]).total_seconds() > 9 * 3600


def test_hanging_run_times_out_after_the_maximum_run_duration(
    omics: Any, emulator: EmulatorAdmin, start_run: Any
) -> None:
    emulator.add_fault(action="hang", match={"name": "NA12878"})
    run = start_run()
    emulator.advance(6 * 24 * 3600)
    assert omics.get_run(id=run["id"])["status"] == "RUNNING"
    emulator.advance(2 * 24 * 3600)
    hung = omics.get_run(id=run["id"])
    assert hung["status"] == "FAILED"
    assert hung["failureReason"] == "RUN_TIMED_OUT"
    assert hung["statusMessage"] == "Run timeout after 10080 minutes"


def test_missing_input_fails_with_input_uri_not_found(
    omics: Any, s3: Any, emulator: EmulatorAdmin, start_run: Any, bucket: str
) -> None:
    s3.put_object(Bucket=bucket, Key="fastq/NA12878_R1.fastq.gz", Body=b"@r1\nACGT\n+\nFFFF\n")
    present = start_run(parameters={"sample_id": "NA12878", "fastq": f"s3://{bucket}/fastq/NA12878_R1.fastq.gz"})
    folder = start_run(parameters={"sample_id": "NA12878", "fastq": f"s3://{bucket}/fastq/"})
    missing = start_run(parameters={"sample_id": "NA12878", "fastq": f"s3://{bucket}/fastq/NA12878_R9.fastq.gz"})
    emulator.advance(24 * 3600)
    assert omics.get_run(id=present["id"])["status"] == "COMPLETED"
    assert omics.get_run(id=folder["id"])["status"] == "COMPLETED"
    failed = omics.get_run(id=missing["id"])
    assert failed["status"] == "FAILED"
    assert failed["failureReason"] == "INPUT_URI_NOT_FOUND"
    assert f"s3://{bucket}/fastq/NA12878_R9.fastq.gz" in failed["statusMessage"]


def test_unwritable_output_fails_with_export_failed(omics: Any, emulator: EmulatorAdmin, start_run: Any) -> None:
    run = start_run(outputUri="s3://no-such-bucket-for-outputs/runs")
    emulator.advance(24 * 3600)
    failed = omics.get_run(id=run["id"])
    assert failed["status"] == "FAILED"
    assert failed["failureReason"] == "EXPORT_FAILED"
    assert "no-such-bucket-for-outputs" in failed["statusMessage"]


def test_same_request_id_returns_the_same_run(omics: Any, emulator: EmulatorAdmin, start_run: Any) -> None:
    first = start_run(requestId="flowcell-FC1-sample-NA12878-v1")
    again = start_run(requestId="flowcell-FC1-sample-NA12878-v1")
    assert (again["id"], again["uuid"]) == (first["id"], first["uuid"])
    assert len(omics.list_runs()["items"]) == 1

    with pytest.raises(ClientError) as err:
        start_run(requestId="flowcell-FC1-sample-NA12878-v1", name="something-else")
    assert error_code(err) == "ConflictException"

    emulator.configure(idempotency_mismatch="return_existing")
    assert start_run(requestId="flowcell-FC1-sample-NA12878-v1", name="something-else")["id"] == first["id"]
    assert len(omics.list_runs()["items"]) == 1


def test_cancel_goes_through_stopping_to_cancelled(omics: Any, emulator: EmulatorAdmin, start_run: Any) -> None:
    pending = start_run(name="A")
    emulator.advance(60 + 300 + 10)
    running = start_run(name="B")  # still PENDING
    omics.cancel_run(id=pending["id"])
    omics.cancel_run(id=pending["id"])  # repeating a cancel in flight is fine
    assert omics.get_run(id=pending["id"])["status"] == "STOPPING"
    omics.cancel_run(id=running["id"])
    emulator.advance(120)
    assert omics.get_run(id=pending["id"])["status"] == "CANCELLED"
    assert omics.get_run(id=running["id"])["status"] == "CANCELLED"
    emulator.advance(24 * 3600)  # nothing scheduled before the cancel fires later
    assert omics.get_run(id=pending["id"])["status"] == "CANCELLED"

    with pytest.raises(ClientError) as err:
        omics.cancel_run(id=pending["id"])
    assert error_code(err) == "ConflictException"


def test_delete_only_finished_runs_and_ids_disappear(omics: Any, emulator: EmulatorAdmin, start_run: Any) -> None:
    run = start_run()
    with pytest.raises(ClientError) as err:
        omics.delete_run(id=run["id"])
    assert error_code(err) == "ConflictException"
    emulator.advance(24 * 3600)
    omics.delete_run(id=run["id"])
    assert omics.get_run(id=run["id"])["status"] == "DELETED"
    emulator.advance(3600)
    with pytest.raises(ClientError) as err:
        omics.get_run(id=run["id"])
    assert error_code(err) == "ResourceNotFoundException"
    # The service reuses deleted run ids; the uuid is the durable identifier.
    reused = start_run(requestId=str(uuid.uuid4()))
    assert reused["id"] == run["id"] and reused["uuid"] != run["uuid"]


def test_list_runs_filters_and_pages(omics: Any, emulator: EmulatorAdmin, start_run: Any) -> None:
    ids = [start_run(name=f"S{i:03d}", parameters={"sample_id": f"S{i:03d}"})["id"] for i in range(25)]
    emulator.advance(60)
    paginator = omics.get_paginator("list_runs")
    pages = list(paginator.paginate(PaginationConfig={"PageSize": 10}))
    assert [len(p["items"]) for p in pages] == [10, 10, 5]
    listed = [item["id"] for page in pages for item in page["items"]]
    assert listed == list(reversed(ids))  # newest first
    assert omics.list_runs(name="S007")["items"][0]["id"] == ids[7]
    assert len(omics.list_runs(status="STARTING")["items"]) == 25
    assert omics.list_runs(status="COMPLETED")["items"] == []
    item = omics.list_runs(maxResults=1)["items"][0]
    assert set(item) >= {"arn", "id", "status", "workflowId", "name", "creationTime", "storageType"}


def test_account_concurrency_limit_queues_by_priority(omics: Any, emulator: EmulatorAdmin, start_run: Any) -> None:
    emulator.configure(max_active_runs=1, profiles=NO_JITTER)
    first = start_run(name="first")
    low = start_run(name="low", priority=1)
    high = start_run(name="high", priority=100)
    emulator.advance(60)
    statuses = {
        name: omics.get_run(id=run["id"])["status"] for name, run in (("first", first), ("low", low), ("high", high))
    }
    assert statuses == {"first": "STARTING", "low": "PENDING", "high": "PENDING"}
    emulator.advance(300 + 3600 + 120)
    assert omics.get_run(id=first["id"])["status"] == "COMPLETED"
    assert omics.get_run(id=high["id"])["status"] == "STARTING"
    assert omics.get_run(id=low["id"])["status"] == "PENDING"


def test_run_cache_hit_shortens_a_retry(omics: Any, emulator: EmulatorAdmin, start_run: Any) -> None:
    emulator.configure(profiles=NO_JITTER)
    emulator.add_fault(action="fail", match={"name": "NA12878"}, times=1)
    first = start_run(cacheId="4455667", cacheBehavior="CACHE_ON_FAILURE")
    emulator.advance(24 * 3600)
    assert omics.get_run(id=first["id"])["status"] == "FAILED"
    retry = start_run(cacheId="4455667")
    emulator.advance(60 + 300 + 360 + 120)  # RUNNING is a tenth of the uncached time
    done = omics.get_run(id=retry["id"])
    assert done["status"] == "COMPLETED"
    assert done["cacheBehavior"] == "CACHE_ON_FAILURE"


def test_retention_quota_refuses_new_runs(omics: Any, emulator: EmulatorAdmin, start_run: Any) -> None:
    emulator.configure(max_runs=2)
    start_run()
    start_run()
    with pytest.raises(ClientError) as err:
        start_run()
    assert error_code(err) == "ServiceQuotaExceededException"
    assert err.value.response["ResponseMetadata"]["HTTPStatusCode"] == 402


def test_rerun_of_an_existing_run(omics: Any, emulator: EmulatorAdmin, start_run: Any, bucket: str) -> None:
    original = start_run()
    rerun = omics.start_run(
        runId=original["id"], roleArn=ROLE_ARN, outputUri=f"s3://{bucket}/reruns", requestId=str(uuid.uuid4())
    )
    described = omics.get_run(id=rerun["id"])
    assert described["runId"] == original["id"]
    assert described["parameters"] == {"sample_id": "NA12878"}


def test_run_status_events_reach_sqs_in_order(
    omics: Any, emulator: EmulatorAdmin, start_run: Any, drain_events: Any
) -> None:
    run = start_run()
    emulator.advance(24 * 3600)
    events = drain_events()
    run_events = [e for e in events if e["detail-type"] == "Run Status Change" and e["detail"]["runId"] == run["id"]]
    statuses = [e["detail"]["status"] for e in run_events]
    assert statuses == ["PENDING", "STARTING", "RUNNING", "STOPPING", "COMPLETED"]
    event = run_events[-1]
    assert event["source"] == "aws.omics"
    assert event["resources"] == [run["arn"]]
    assert event["detail"]["arn"] == run["arn"]
    assert event["detail"]["omicsVersion"] == "1.0.0"
    assert event["detail"]["workflowName"] == "germline"
    assert event["detail"]["runOutputUri"] == run["runOutputUri"]
    assert event["time"].endswith("Z")
