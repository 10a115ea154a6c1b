"""Contract tests of run batches (StartRunBatch and friends), only through boto3."""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable
from typing import Any

import pytest
from botocore.exceptions import ClientError

from omics_emulator import EmulatorAdmin
from tests.aws_stack import ROLE_ARN

# Batch validation takes 30 emulated seconds: CREATING -> PENDING at +6 s, SUBMITTING at +30 s.
TO_PENDING = 6
TO_SUBMITTING = 30
A_DAY = 24 * 3600

StartBatch = Callable[..., dict[str, Any]]


def error_code(err: pytest.ExceptionInfo[ClientError]) -> str:
    return str(err.value.response["Error"]["Code"])


def inline(*sample_ids: str) -> list[dict[str, Any]]:
    return [{"runSettingId": s, "name": s, "parameters": {"sample_id": s}} for s in sample_ids]


@pytest.fixture
def start_batch(omics: Any, workflow: dict[str, Any], bucket: str) -> StartBatch:
    def start(settings: list[dict[str, Any]] | None = None, **overrides: Any) -> dict[str, Any]:
        request: dict[str, Any] = {
            "batchName": "FC1",
            "requestId": str(uuid.uuid4()),
            "defaultRunSetting": {
                "workflowId": workflow["id"],
                "roleArn": ROLE_ARN,
                "outputUri": f"s3://{bucket}/runs",
                "runTags": {"flowcell": "FC1"},
            },
            "batchRunSettings": {"inlineSettings": settings or inline("S1", "S2", "S3")},
        }
        request.update(overrides)
        return dict(omics.start_run_batch(**request))

    return start


def batch_runs(omics: Any, batch_id: str, **filters: Any) -> list[dict[str, Any]]:
    paginator = omics.get_paginator("list_runs_in_batch")
    return [run for page in paginator.paginate(batchId=batch_id, **filters) for run in page["runs"]]


def test_batch_lifecycle_to_processed(omics: Any, emulator: EmulatorAdmin, start_batch: StartBatch) -> None:
    batch = start_batch(tags={"owner": "lab"})
    assert batch["status"] == "CREATING"
    assert batch["arn"] == f"arn:aws:omics:us-east-1:123456789012:runBatch/{batch['id']}"
    assert batch["tags"] == {"owner": "lab"}
    emulator.advance(TO_PENDING)
    assert omics.get_batch(batchId=batch["id"])["status"] == "PENDING"
    emulator.advance(TO_SUBMITTING - TO_PENDING)
    # Quotas are unlimited in these tests, so every run is released at once.
    described = omics.get_batch(batchId=batch["id"])
    assert described["status"] == "INPROGRESS"
    assert described["totalRuns"] == 3
    assert described["submissionSummary"]["successfulStartSubmissionCount"] == 3
    assert described["runSummary"]["pendingRunCount"] == 3
    assert "submittedTime" in described and "processedTime" not in described

    runs = batch_runs(omics, batch["id"])
    assert [r["runSettingId"] for r in runs] == ["S1", "S2", "S3"]
    assert all(r["submissionStatus"] == "SUCCESS" and r["runId"] and r["runArn"] for r in runs)
    run = omics.get_run(id=runs[0]["runId"])
    assert run["batchId"] == batch["id"]
    assert run["uuid"] == runs[0]["runInternalUuid"]
    assert run["tags"] == {"flowcell": "FC1"}  # runTags, not the batch's own tags
    assert {r["id"] for r in omics.list_runs(batchId=batch["id"])["items"]} == {r["runId"] for r in runs}

    emulator.advance(A_DAY)
    done = omics.get_batch(batchId=batch["id"])
    assert done["status"] == "PROCESSED"
    assert done["runSummary"]["completedRunCount"] == 3
    assert done["processedTime"] >= done["submittedTime"] >= done["creationTime"]


def test_runs_are_released_gradually_at_the_start_run_rate(
    omics: Any, emulator: EmulatorAdmin, start_batch: StartBatch
) -> None:
    emulator.configure(quotas={"StartRun": 0.1})  # the published default: one run every 10 s
    batch = start_batch(inline("S1", "S2", "S3", "S4", "S5"))
    emulator.advance(TO_SUBMITTING + 25)
    described = omics.get_batch(batchId=batch["id"])
    assert described["status"] == "SUBMITTING"
    summary = described["submissionSummary"]
    assert (summary["successfulStartSubmissionCount"], summary["pendingStartSubmissionCount"]) == (3, 2)
    assert [r["runSettingId"] for r in batch_runs(omics, batch["id"])] == ["S1", "S2", "S3"]
    emulator.advance(20)
    assert omics.get_batch(batchId=batch["id"])["status"] == "INPROGRESS"


def test_batches_submitting_at_once_share_the_start_run_rate(
    omics: Any, emulator: EmulatorAdmin, start_batch: StartBatch
) -> None:
    emulator.configure(batch_submission_tps=0.1)  # runs released every 10 s; StartRunBatch itself unlimited
    first = start_batch(inline("A1", "A2", "A3"))
    second = start_batch(inline("B1", "B2", "B3"))
    emulator.advance(TO_SUBMITTING + 25)  # three release slots: A1, B1, A2 (in turn, not six runs)
    released = {b["id"]: [r["runSettingId"] for r in batch_runs(omics, b["id"])] for b in (first, second)}
    assert released == {first["id"]: ["A1", "A2"], second["id"]: ["B1"]}
    emulator.advance(30)
    assert {omics.get_batch(batchId=b["id"])["status"] for b in (first, second)} == {"INPROGRESS"}


def test_direct_start_run_is_throttled_while_a_batch_submits(
    omics: Any, emulator: EmulatorAdmin, start_batch: StartBatch, start_run: Any
) -> None:
    emulator.configure(batch_submission_tps=0.1)
    start_batch(inline("S1", "S2", "S3"))
    emulator.advance(TO_SUBMITTING)
    with pytest.raises(ClientError) as err:
        start_run()
    assert error_code(err) == "ThrottlingException"
    emulator.advance(30)
    assert start_run()["status"] == "PENDING"


def test_parameters_and_run_tags_merge_key_by_key(
    omics: Any, emulator: EmulatorAdmin, start_batch: StartBatch, workflow: dict[str, Any], bucket: str
) -> None:
    batch = start_batch(
        [
            {
                "runSettingId": "S1",
                "name": "S1-custom",
                "outputUri": f"s3://{bucket}/special",
                "priority": 7,
                "parameters": {"sample_id": "S1", "version": "v2"},
                "runTags": {"sample": "S1", "project": "override"},
            },
            {"runSettingId": "S2", "parameters": {"sample_id": "S2"}},
        ],
        defaultRunSetting={
            "workflowId": workflow["id"],
            "roleArn": ROLE_ARN,
            "outputUri": f"s3://{bucket}/runs",
            "name": "default-name",
            "priority": 1,
            "parameters": {"reference": "hg38", "version": "v1"},
            "runTags": {"flowcell": "FC1", "project": "default"},
        },
    )
    emulator.advance(TO_SUBMITTING)
    first, second = (omics.get_run(id=r["runId"]) for r in batch_runs(omics, batch["id"]))
    assert first["parameters"] == {"reference": "hg38", "version": "v2", "sample_id": "S1"}
    assert first["tags"] == {"flowcell": "FC1", "project": "override", "sample": "S1"}
    assert (first["name"], first["priority"]) == ("S1-custom", 7)
    assert first["outputUri"] == f"s3://{bucket}/special"
    assert second["parameters"] == {"reference": "hg38", "version": "v1", "sample_id": "S2"}
    assert second["tags"] == {"flowcell": "FC1", "project": "default"}
    assert (second["name"], second["priority"], second["outputUri"]) == ("default-name", 1, f"s3://{bucket}/runs")


def test_s3_uri_settings_with_1000_runs(
    omics: Any, s3: Any, emulator: EmulatorAdmin, start_batch: StartBatch, bucket: str
) -> None:
    # Outputs and events of 1,000 runs would only measure moto's speed here.
    emulator.configure(write_outputs=False, events_queue_url=None)
    samples = [f"SAMPLE{i:04d}" for i in range(1000)]
    s3.put_object(Bucket=bucket, Key="batches/FC1.json", Body=json.dumps(inline(*samples)).encode())
    batch = start_batch(batchRunSettings={"s3UriSettings": f"s3://{bucket}/batches/FC1.json"})
    emulator.advance(TO_SUBMITTING)
    described = omics.get_batch(batchId=batch["id"])
    assert described["totalRuns"] == 1000
    assert described["submissionSummary"]["successfulStartSubmissionCount"] == 1000

    pages = list(omics.get_paginator("list_runs_in_batch").paginate(batchId=batch["id"]))
    assert len(pages) == 10
    entries = [run for page in pages for run in page["runs"]]
    assert [e["runSettingId"] for e in entries] == samples
    assert len({e["runId"] for e in entries}) == 1000

    emulator.advance(A_DAY)
    done = omics.get_batch(batchId=batch["id"])
    assert done["status"] == "PROCESSED"
    assert done["runSummary"]["completedRunCount"] == 1000


def test_s3_uri_settings_must_be_readable_and_unchanged(
    omics: Any, s3: Any, emulator: EmulatorAdmin, start_batch: StartBatch, bucket: str
) -> None:
    with pytest.raises(ClientError) as err:
        start_batch(batchRunSettings={"s3UriSettings": f"s3://{bucket}/batches/missing.json"})
    assert error_code(err) == "ValidationException"

    s3.put_object(Bucket=bucket, Key="batches/FC1.json", Body=json.dumps(inline("S1")).encode())
    batch = start_batch(batchRunSettings={"s3UriSettings": f"s3://{bucket}/batches/FC1.json"})
    s3.put_object(Bucket=bucket, Key="batches/FC1.json", Body=json.dumps(inline("S1", "S2")).encode())
    emulator.advance(TO_SUBMITTING)
    failed = omics.get_batch(batchId=batch["id"])
    assert failed["status"] == "FAILED"
    assert "s3UriConfigs have changed since calling StartRunBatch" in failed["failureReason"]
    assert "failedTime" in failed
    assert batch_runs(omics, batch["id"]) == []


@pytest.mark.parametrize(
    ("settings", "reason"),
    [
        (inline("S1", "S2", "S1"), "Expected 3 unique runSettingIds but there were 2"),
        ([{"runSettingId": "S1", "roleArn": ROLE_ARN}], "fields that cannot be set per run: roleArn"),
        ([{"name": "no-id"}], "Member must not be null"),
        ({"runSettingId": "S1"}, "Invalid JSON format in run configurations"),
    ],
    ids=["duplicate-run-setting-id", "batch-level-field-per-run", "missing-run-setting-id", "not-an-array"],
)
def test_invalid_run_configurations_fail_the_batch_asynchronously(
    omics: Any,
    s3: Any,
    emulator: EmulatorAdmin,
    start_batch: StartBatch,
    bucket: str,
    settings: Any,
    reason: str,
) -> None:
    s3.put_object(Bucket=bucket, Key="batches/bad.json", Body=json.dumps(settings).encode())
    batch = start_batch(batchRunSettings={"s3UriSettings": f"s3://{bucket}/batches/bad.json"})
    assert batch["status"] == "CREATING"  # accepted synchronously
    emulator.advance(TO_SUBMITTING)
    failed = omics.get_batch(batchId=batch["id"])
    assert failed["status"] == "FAILED"
    assert reason in failed["failureReason"]
    assert omics.list_runs(batchId=batch["id"])["items"] == []


def test_duplicate_inline_run_setting_ids_fail_the_batch(
    omics: Any, emulator: EmulatorAdmin, start_batch: StartBatch
) -> None:
    batch = start_batch(inline("S1", "S1"))
    emulator.advance(TO_SUBMITTING)
    failed = omics.get_batch(batchId=batch["id"])
    assert (failed["status"], failed["failureReason"]) == ("FAILED", "Expected 2 unique runSettingIds but there were 1")


def test_per_run_submission_failures_are_listed_and_do_not_stop_the_batch(
    omics: Any, emulator: EmulatorAdmin, start_batch: StartBatch
) -> None:
    emulator.add_fault(
        action="fail_submission",
        match={"runSettingId": "^S2$"},
        code="ThrottlingException",
        message="Rate exceeded (retries exhausted)",
    )
    settings = [*inline("S1", "S2"), {"runSettingId": "S3", "parameters": {"sample_id": "S3", "colour": "blue"}}]
    batch = start_batch(settings)
    emulator.advance(TO_SUBMITTING)
    failed = batch_runs(omics, batch["id"], submissionStatus="FAILED")
    assert [(f["runSettingId"], f["submissionFailureReason"]) for f in failed] == [
        ("S2", "ThrottlingException"),
        ("S3", "ValidationException"),
    ]
    assert "runId" not in failed[0]
    assert "colour" in failed[1]["submissionFailureMessage"]
    summary = omics.get_batch(batchId=batch["id"])["submissionSummary"]
    assert (summary["successfulStartSubmissionCount"], summary["failedStartSubmissionCount"]) == (1, 2)
    emulator.advance(A_DAY)
    assert omics.get_batch(batchId=batch["id"])["status"] == "PROCESSED"


def test_same_request_id_returns_the_same_batch(omics: Any, emulator: EmulatorAdmin, start_batch: StartBatch) -> None:
    first = start_batch(requestId="FC1-batch-v1")
    again = start_batch(requestId="FC1-batch-v1")
    assert again["id"] == first["id"]
    emulator.advance(TO_SUBMITTING)
    assert len(omics.list_runs()["items"]) == 3
    with pytest.raises(ClientError) as err:
        start_batch(inline("S9"), requestId="FC1-batch-v1")
    assert error_code(err) == "ConflictException"


def test_ready2run_workflows_are_refused(omics: Any, emulator: EmulatorAdmin, start_batch: StartBatch) -> None:
    ready2run = omics.get_workflow(id="9500764", type="READY2RUN")
    assert ready2run["type"] == "READY2RUN"
    with pytest.raises(ClientError) as err:
        start_batch(
            defaultRunSetting={
                "workflowId": ready2run["id"],
                "workflowType": "READY2RUN",
                "roleArn": ROLE_ARN,
                "outputUri": "s3://x/y",
            }
        )
    assert error_code(err) == "ValidationException"


def _batch_in(status: str, omics: Any, emulator: EmulatorAdmin, start_batch: StartBatch) -> str:
    """Drive a new batch into ``status`` and return its id."""
    if status == "SUBMITTING":
        emulator.configure(batch_submission_tps=0.1)
    if status == "FAILED":
        batch_id = start_batch(inline("S1", "S1"))["id"]
        emulator.advance(TO_SUBMITTING)
        return batch_id
    batch_id = start_batch()["id"]
    steps: dict[str, list[Callable[[], Any]]] = {
        "CREATING": [],
        "PENDING": [lambda: emulator.advance(TO_PENDING)],
        "SUBMITTING": [lambda: emulator.advance(TO_SUBMITTING + 5)],
        "INPROGRESS": [lambda: emulator.advance(TO_SUBMITTING)],
        "PROCESSED": [lambda: emulator.advance(A_DAY)],
        "STOPPING": [lambda: emulator.advance(TO_SUBMITTING + 400), lambda: omics.cancel_run_batch(batchId=batch_id)],
        "CANCELLED": [lambda: emulator.advance(TO_PENDING), lambda: omics.cancel_run_batch(batchId=batch_id)],
        "RUNS_DELETING": [lambda: emulator.advance(A_DAY), lambda: omics.delete_run_batch(batchId=batch_id)],
        "RUNS_DELETED": [
            lambda: emulator.advance(A_DAY),
            lambda: omics.delete_run_batch(batchId=batch_id),
            lambda: emulator.advance(60),
        ],
    }
    for step in steps[status]:
        step()
    assert omics.get_batch(batchId=batch_id)["status"] == status
    return batch_id


@pytest.mark.parametrize("status", ["PENDING", "SUBMITTING", "INPROGRESS"])
def test_cancel_in_allowed_states(omics: Any, emulator: EmulatorAdmin, start_batch: StartBatch, status: str) -> None:
    batch_id = _batch_in(status, omics, emulator, start_batch)
    submitted = batch_runs(omics, batch_id)
    omics.cancel_run_batch(batchId=batch_id)
    assert omics.get_batch(batchId=batch_id)["status"] in ("STOPPING", "CANCELLED")
    emulator.advance(3600)
    cancelled = omics.get_batch(batchId=batch_id)
    assert cancelled["status"] == "CANCELLED"
    entries = batch_runs(omics, batch_id)
    assert [e["runSettingId"] for e in entries] == [e["runSettingId"] for e in submitted]
    assert all(e["submissionStatus"] == "CANCEL_SUCCESS" for e in entries)
    assert all(omics.get_run(id=e["runId"])["status"] == "CANCELLED" for e in entries)
    assert cancelled["submissionSummary"]["successfulCancelSubmissionCount"] == len(entries)
    assert cancelled["runSummary"]["cancelledRunCount"] == len(entries)
    emulator.advance(A_DAY)  # nothing left to submit after a cancel
    assert len(batch_runs(omics, batch_id)) == len(entries)


@pytest.mark.parametrize(
    "status", ["CREATING", "STOPPING", "CANCELLED", "PROCESSED", "FAILED", "RUNS_DELETING", "RUNS_DELETED"]
)
def test_cancel_in_other_states_is_a_conflict(
    omics: Any, emulator: EmulatorAdmin, start_batch: StartBatch, status: str
) -> None:
    batch_id = _batch_in(status, omics, emulator, start_batch)
    with pytest.raises(ClientError) as err:
        omics.cancel_run_batch(batchId=batch_id)
    assert error_code(err) == "ConflictException"
    assert err.value.response["ResponseMetadata"]["HTTPStatusCode"] == 409


def test_delete_run_batch_then_delete_batch(omics: Any, emulator: EmulatorAdmin, start_batch: StartBatch) -> None:
    batch_id = _batch_in("INPROGRESS", omics, emulator, start_batch)
    for call in (omics.delete_run_batch, omics.delete_batch):
        with pytest.raises(ClientError) as err:
            call(batchId=batch_id)
        assert error_code(err) == "ConflictException"
    emulator.advance(A_DAY)
    omics.delete_run_batch(batchId=batch_id)
    emulator.advance(60)
    deleted = omics.get_batch(batchId=batch_id)
    assert deleted["status"] == "RUNS_DELETED"
    assert deleted["submissionSummary"]["successfulDeleteSubmissionCount"] == 3
    entries = batch_runs(omics, batch_id)
    assert all(e["submissionStatus"] == "DELETE_SUCCESS" for e in entries)
    assert all(omics.get_run(id=e["runId"])["status"] == "DELETED" for e in entries)

    omics.delete_batch(batchId=batch_id)
    for call in (omics.get_batch, omics.list_runs_in_batch, omics.cancel_run_batch, omics.delete_run_batch):
        with pytest.raises(ClientError) as err:
            call(batchId=batch_id)
        assert error_code(err) == "ResourceNotFoundException"


def test_delete_batch_keeps_its_runs(omics: Any, emulator: EmulatorAdmin, start_batch: StartBatch) -> None:
    batch_id = _batch_in("PROCESSED", omics, emulator, start_batch)
    run_ids = [e["runId"] for e in batch_runs(omics, batch_id)]
    omics.delete_batch(batchId=batch_id)
    assert all(omics.get_run(id=run_id)["status"] == "COMPLETED" for run_id in run_ids)


def test_list_batch_and_one_filter_per_call(omics: Any, emulator: EmulatorAdmin, start_batch: StartBatch) -> None:
    first = start_batch(batchName="FC1")
    second = start_batch(batchName="FC2")
    emulator.advance(TO_SUBMITTING)
    items = omics.list_batch()["items"]
    assert [i["id"] for i in items] == [second["id"], first["id"]]
    assert set(items[0]) == {"id", "name", "status", "createdAt", "totalRuns", "workflowId"}
    assert [i["id"] for i in omics.list_batch(name="FC1")["items"]] == [first["id"]]
    assert len(omics.list_batch(status="INPROGRESS")["items"]) == 2
    with pytest.raises(ClientError) as err:
        omics.list_batch(name="FC1", status="INPROGRESS")
    assert error_code(err) == "ValidationException"
    with pytest.raises(ClientError) as err:
        omics.list_runs_in_batch(batchId=first["id"], runSettingId="S1", submissionStatus="SUCCESS")
    assert error_code(err) == "ValidationException"
    only = omics.list_runs_in_batch(batchId=first["id"], runSettingId="S2")["runs"]
    assert [r["runSettingId"] for r in only] == ["S2"]
    by_run = omics.list_runs_in_batch(batchId=first["id"], runId=only[0]["runId"])["runs"]
    assert by_run == only


def test_batch_status_events_carry_string_counts(
    omics: Any, emulator: EmulatorAdmin, start_batch: StartBatch, drain_events: Any
) -> None:
    batch = start_batch()
    emulator.advance(A_DAY)
    events = drain_events()
    batch_events = [e for e in events if e["detail-type"] == "RunBatch Status Change"]
    assert [e["detail"]["status"] for e in batch_events] == [
        "CREATING",
        "PENDING",
        "SUBMITTING",
        "INPROGRESS",
        "PROCESSED",
    ]
    processed = batch_events[-1]["detail"]
    assert processed["batchId"] == batch["id"]
    assert (processed["totalRuns"], processed["completedRunCount"]) == ("3", "3")
    assert processed["successfulStartSubmissionCount"] == "3"
