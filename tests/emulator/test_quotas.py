"""Quotas, injected faults and the call counters that benchmarks and provider tests read."""

from __future__ import annotations

import time
from typing import Any

import pytest
from botocore.exceptions import ClientError

from local_aws.stack import LocalAWS
from omics_emulator import EmulatorAdmin


def test_start_run_quota_answers_429_in_the_wire_format(omics: Any, emulator: EmulatorAdmin, start_run: Any) -> None:
    emulator.configure(quotas={"StartRun": 0.1})
    start_run()
    with pytest.raises(ClientError) as err:
        start_run()
    response = err.value.response
    assert response["Error"] == {"Code": "ThrottlingException", "Message": "Rate exceeded"}
    assert response["ResponseMetadata"]["HTTPStatusCode"] == 429
    assert response["ResponseMetadata"]["RequestId"]
    assert isinstance(err.value, omics.exceptions.ThrottlingException)
    start_run_counters = emulator.counters()["operations"]["StartRun"]
    assert start_run_counters["calls"] == 2
    assert start_run_counters["throttled"] == 1
    assert start_run_counters["statuses"] == {"201": 1, "429": 1}


def test_start_run_batch_draws_on_the_start_run_quota(
    omics: Any, emulator: EmulatorAdmin, start_run: Any, workflow: dict[str, Any]
) -> None:
    emulator.configure(quotas={"StartRun": 0.1})
    start_run()
    with pytest.raises(ClientError) as err:
        omics.start_run_batch(
            requestId="b",
            defaultRunSetting={"workflowId": workflow["id"], "roleArn": "arn:aws:iam::123456789012:role/r"},
            batchRunSettings={"inlineSettings": [{"runSettingId": "S1", "outputUri": "s3://b/o"}]},
        )
    assert err.value.response["Error"]["Code"] == "ThrottlingException"


def test_read_quota_refills_over_real_time(omics: Any, emulator: EmulatorAdmin, start_run: Any) -> None:
    run = start_run()
    emulator.configure(quotas={"GetRun": 10})
    outcomes = []
    for _ in range(30):
        try:
            omics.get_run(id=run["id"])
            outcomes.append("ok")
        except ClientError as err:
            outcomes.append(err.response["Error"]["Code"])
    assert outcomes[:5] == ["ok"] * 5  # a full bucket holds ten calls
    assert "ThrottlingException" in outcomes
    time.sleep(0.5)  # five tokens come back
    omics.get_run(id=run["id"])


def test_botocore_retries_ride_out_a_throttling_storm(
    local_aws: LocalAWS, emulator: EmulatorAdmin, start_run: Any
) -> None:
    run = start_run()
    emulator.add_fault(action="error", operations=["GetRun"], code="ThrottlingException", times=3)
    patient = local_aws.client("omics", retries={"mode": "standard", "total_max_attempts": 5})
    assert patient.get_run(id=run["id"])["status"] == "PENDING"
    counters = emulator.counters()["operations"]["GetRun"]
    assert counters["statuses"] == {"429": 3, "200": 1}
    assert emulator.faults()[0]["applied"] == 3


def test_injected_server_errors_are_retryable_5xx(
    local_aws: LocalAWS, omics: Any, emulator: EmulatorAdmin, start_run: Any
) -> None:
    run = start_run()
    emulator.add_fault(action="error", operations=["GetRun"], code="InternalServerException", times=1)
    with pytest.raises(ClientError) as err:
        omics.get_run(id=run["id"])
    assert err.value.response["ResponseMetadata"]["HTTPStatusCode"] == 500
    emulator.add_fault(action="error", operations=["ListRuns"], code="ServiceUnavailableException", times=2)
    patient = local_aws.client("omics", retries={"mode": "standard", "total_max_attempts": 4})
    assert len(patient.list_runs()["items"]) == 1


def test_error_rate_is_a_fraction_of_calls(omics: Any, emulator: EmulatorAdmin) -> None:
    emulator.add_fault(action="error", operations=["ListRuns"], code="ThrottlingException", rate=0.3)
    failures = 0
    for _ in range(200):
        try:
            omics.list_runs()
        except ClientError:
            failures += 1
    assert 30 <= failures <= 90  # seeded, so stable; loose enough for any seed


def test_counters_reset_and_cover_every_operation(omics: Any, emulator: EmulatorAdmin, start_run: Any) -> None:
    start_run()
    omics.list_runs()
    assert emulator.calls("ListRuns") == 1
    emulator.reset_counters()
    assert emulator.counters() == {"operations": {}, "totalCalls": 0, "totalThrottled": 0}
