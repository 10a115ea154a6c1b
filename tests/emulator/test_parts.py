"""Emulated clock, quota buckets, fault rules, settings and batch merge rules (no server)."""

from __future__ import annotations

import time

import pytest

from omics_emulator.clock import EmulatedClock
from omics_emulator.config import EmulatorConfig, RunProfile
from omics_emulator.faults import FaultInjector
from omics_emulator.quotas import DEFAULT_TPS, QuotaTable, TokenBucket
from omics_emulator.resources import merge_run_settings


def test_frozen_clock_moves_only_when_advanced() -> None:
    clock = EmulatedClock(time_scale=0, start=1_000.0)
    time.sleep(0.01)
    assert clock.now() == 1_000.0
    clock.advance(3600)
    assert clock.now() == 4_600.0
    assert clock.real_seconds_until(5_000.0) is None
    with pytest.raises(ValueError, match="forward"):
        clock.advance(-1)


def test_scaled_clock_runs_faster_and_can_be_rescaled() -> None:
    clock = EmulatedClock(time_scale=3600, start=0.0)
    time.sleep(0.05)
    assert 150 <= clock.now() <= 3600
    clock.set_time_scale(0)
    frozen = clock.now()
    time.sleep(0.02)
    assert clock.now() == frozen


def test_token_bucket_allows_a_burst_then_the_rate() -> None:
    bucket = TokenBucket(rate=10, burst=10)
    assert sum(bucket.try_acquire() for _ in range(15)) == 10
    time.sleep(0.25)
    assert 1 <= sum(bucket.try_acquire() for _ in range(10)) <= 4


def test_published_defaults_and_shared_buckets() -> None:
    table = QuotaTable()
    assert table.rate("StartRun") == 0.1
    assert table.rate("StartRunBatch") == 0.1
    assert table.rate("CancelRunBatch") == table.rate("CancelRun") == 10
    assert table.rate("TagResource") == 5
    assert table.try_acquire("StartRun") is True
    assert table.try_acquire("StartRunBatch") is False  # same bucket, one call per 10 s
    table.update({"StartRun": None})
    assert all(table.try_acquire("StartRun") for _ in range(100))
    assert set(DEFAULT_TPS) >= {"GetRun", "ListRuns", "ListRunsInBatch", "GetBatch"}


def test_fault_rules_match_and_run_out() -> None:
    faults = FaultInjector(seed=1)
    faults.add({"action": "fail", "match": {"name": "^S1$", "tags": {"flowcell": "FC"}}, "times": 1})
    assert faults.pick(("fail",), {"name": "S1", "tags": {}}) is None
    assert faults.pick(("fail",), {"name": "S10", "tags": {"flowcell": "FC1"}}) is None
    rule = faults.pick(("fail",), {"name": "S1", "tags": {"flowcell": "FC1"}})
    assert rule is not None and rule.applied == 1
    assert faults.pick(("fail",), {"name": "S1", "tags": {"flowcell": "FC1"}}) is None


def test_request_errors_by_operation() -> None:
    faults = FaultInjector()
    faults.add({"action": "error", "operations": ["GetRun"], "code": "InternalServerException", "times": 2})
    assert faults.request_error("ListRuns") is None
    errors = [faults.request_error("GetRun") for _ in range(3)]
    assert [e.status if e else None for e in errors] == [500, 500, None]


@pytest.mark.parametrize(
    "rule",
    [
        {"action": "explode"},
        {"action": "fail", "match": {"colour": "x"}},
        {"action": "fail", "phase": "STOPPING"},
        {"action": "error", "code": "ValidationException"},
        {"action": "error", "rate": 2},
        {"action": "fail", "match": {"name": "("}},
    ],
)
def test_bad_fault_rules_are_refused(rule: dict[str, object]) -> None:
    with pytest.raises(Exception):  # noqa: B017, PT011 - ValueError or re.error, both clear
        FaultInjector().add(rule)


def test_settings_update_merges_profiles_and_refuses_unknown_keys() -> None:
    config = EmulatorConfig()
    config.update({"profiles": {"germline": {"running_seconds": 100}}, "quotas": {"GetRun": 1}})
    assert config.profile_for("123", "germline").running_seconds == 100
    assert config.profile_for("123", "germline").starting_seconds == RunProfile().starting_seconds
    assert config.profile_for("999", "other") == RunProfile()
    assert config.quotas == {"GetRun": 1}
    with pytest.raises(ValueError, match="unknown settings"):
        config.update({"timescale": 1})
    with pytest.raises(ValueError, match="idempotency_mismatch"):
        config.update({"idempotency_mismatch": "ignore"})


def test_batch_merge_rules() -> None:
    default = {
        "workflowId": "1",
        "roleArn": "arn:aws:iam::1:role/r",
        "name": "default",
        "priority": 1,
        "parameters": {"reference": "hg38", "version": "v1"},
        "runTags": {"flowcell": "FC1"},
        "storageType": "DYNAMIC",
    }
    merged = merge_run_settings(default, {"runSettingId": "S1", "parameters": {"version": "v2"}, "priority": 9})
    assert merged["parameters"] == {"reference": "hg38", "version": "v2"}
    assert merged["runTags"] == {"flowcell": "FC1"}
    assert (merged["name"], merged["priority"], merged["storageType"]) == ("default", 9, "DYNAMIC")
    assert "runSettingId" not in merged
    assert default["parameters"] == {"reference": "hg38", "version": "v1"}  # not mutated
