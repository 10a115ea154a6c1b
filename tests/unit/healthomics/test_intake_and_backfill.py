"""Pure parts of the manifest intake and the backfill: event parsing, run ids, per-sample decisions."""

from __future__ import annotations

import json
from typing import Any

import pytest

from healthomics.flowcell.plan import batch_groups, sample_entries, sample_key, select_samples, slim_entries
from healthomics.intake.manifests import (
    ManifestObject,
    flowcell_dag_id,
    flowcell_run_id,
    is_manifest,
    objects_in_notification,
    unique,
)
from healthomics.manifest import ManifestError, ManifestOptions, declared_flowcell_id, parse_manifest
from healthomics.reruns.plan import ALL, FAILED, LEAVE, MISSING, REUSE, RUN, decide, flowcell_conf, same_request

ROLE = "arn:aws:iam::123456789012:role/run"


def s3_record(key: str, etag: str = "abc", event: str = "ObjectCreated:Put") -> dict[str, Any]:
    return {
        "eventName": event,
        "eventTime": "2026-11-25T10:00:00Z",
        "s3": {"bucket": {"name": "lab"}, "object": {"key": key, "eTag": etag}},
    }


def test_s3_notifications_in_every_wrapping_name_the_created_objects() -> None:
    direct = {"Records": [s3_record("in/FC+1%281%29.json"), s3_record("in/old.json", event="ObjectRemoved:Delete")]}
    assert objects_in_notification(json.dumps(direct)) == [
        ManifestObject("lab", "in/FC 1(1).json", "abc", None, "2026-11-25T10:00:00Z")
    ]
    via_sns = {"Type": "Notification", "Message": json.dumps(direct)}
    assert objects_in_notification(via_sns) == objects_in_notification(direct)
    eventbridge = {
        "source": "aws.s3",
        "detail-type": "Object Created",
        "time": "2026-11-25T10:00:00Z",
        "detail": {"bucket": {"name": "lab"}, "object": {"key": "in/FC 2.csv", "etag": "e2", "version-id": "v1"}},
    }
    assert objects_in_notification(eventbridge) == [
        ManifestObject("lab", "in/FC 2.csv", "e2", "v1", "2026-11-25T10:00:00Z")
    ]
    assert objects_in_notification({"Service": "Amazon S3", "Event": "s3:TestEvent"}) == []
    for junk in ("not json", "[1]", {"hello": 1}):
        with pytest.raises(ValueError, match=r"Expecting value|not a JSON object|neither an S3"):
            objects_in_notification(junk)


def test_only_manifests_under_the_prefix_count_and_duplicates_collapse() -> None:
    prefix = "s3://lab/in/"
    assert is_manifest(ManifestObject("lab", "in/a.json", "e"), prefix)
    assert is_manifest(ManifestObject("lab", "in/deep/b.CSV", "e"), prefix)
    assert not is_manifest(ManifestObject("lab", "in/readme.txt", "e"), prefix)
    assert not is_manifest(ManifestObject("lab", "out/a.json", "e"), prefix)
    assert not is_manifest(ManifestObject("other", "in/a.json", "e"), prefix)
    same = ManifestObject("lab", "in/a.json", "e")
    assert unique([same, same, ManifestObject("lab", "in/a.json", "f")]) == [
        same,
        ManifestObject("lab", "in/a.json", "f"),
    ]


def test_run_ids_are_stable_valid_and_differ_by_version() -> None:
    assert flowcell_run_id("HX7Y2DSX3", "9b2cf535f27731c974343645a3985328") == (
        "manifest__HX7Y2DSX3__9b2cf535f27731c974343645a3985328"
    )
    odd = flowcell_run_id("run 42/lane#1", "abc-3")
    assert odd == "manifest__run-42-lane-1__abc-3"
    long = flowcell_run_id("F" * 300, "e")
    assert len(long) < 250 and long != flowcell_run_id("F" * 299 + "G", "e")
    assert flowcell_run_id("FC", "e1") != flowcell_run_id("FC", "e2")


def test_the_declared_flowcell_id_follows_the_parser() -> None:
    assert declared_flowcell_id(b'{"flowcell_id": "HXYZ", "samples": []}', "s3://lab/in/m.json") == "HXYZ"
    assert declared_flowcell_id(b'{"flowcellSamples": []}', "s3://lab/in/FC9.json") == "FC9"
    assert declared_flowcell_id(b"{broken", "s3://lab/in/FC8.json") == "FC8"
    assert declared_flowcell_id(b"sample,fastq_1\n", "s3://lab/in/FC7.csv") == "FC7"


def test_a_manifest_with_stages_goes_to_the_pipeline_dag_and_anything_else_to_the_flowcell_dag() -> None:
    assert flowcell_dag_id(b'{"flowcell_id": "FC1", "stages": [{"name": "align"}], "samples": []}') == (
        "healthomics_pipeline"
    )
    for other in (
        b'{"flowcell_id": "FC1", "workflow": {"id": "1"}}',
        b'{"stages": []}',
        b"{broken",
        b"sample,fastq_1\n",
    ):
        assert flowcell_dag_id(other) == "healthomics_flowcell", other


def run(run_id: str, status: str, created: str) -> dict[str, Any]:
    return {"id": run_id, "status": status, "creationTime": created}


@pytest.mark.parametrize(
    ("runs", "mode", "action", "run_id"),
    [
        ([], MISSING, RUN, None),
        ([], FAILED, LEAVE, None),
        ([], ALL, RUN, None),
        ([run("1", "COMPLETED", "2026-01-01")], MISSING, REUSE, "1"),
        ([run("1", "COMPLETED", "2026-01-01")], FAILED, REUSE, "1"),
        ([run("1", "COMPLETED", "2026-01-01")], ALL, RUN, "1"),
        ([run("1", "FAILED", "2026-01-01")], MISSING, RUN, "1"),
        ([run("1", "CANCELLED", "2026-01-01")], FAILED, RUN, "1"),
        # A completed run counts even when a later attempt failed.
        ([run("1", "COMPLETED", "2026-01-01"), run("2", "FAILED", "2026-01-02")], MISSING, REUSE, "1"),
        # A live run is never duplicated, not even when everything is rerun.
        ([run("1", "FAILED", "2026-01-01"), run("2", "RUNNING", "2026-01-02")], ALL, REUSE, "2"),
        ([run("1", "STOPPING", "2026-01-01")], MISSING, RUN, "1"),
    ],
)
def test_what_a_backfill_does_with_one_sample(
    runs: list[dict[str, Any]], mode: str, action: str, run_id: str | None
) -> None:
    decision = decide("S1", runs, mode)
    assert (decision.action, decision.run_id) == (action, run_id)
    assert decision.reason


def test_a_flowcell_with_nothing_to_run_is_not_triggered_and_left_out_samples_are_cut() -> None:
    reuse_only = [decide("S1", [run("1", "COMPLETED", "x")], MISSING)]
    assert flowcell_conf("s3://lab/m.json", reuse_only, "k") is None
    decisions = [
        decide("S1", [run("1", "COMPLETED", "x")], FAILED),
        decide("S2", [run("2", "FAILED", "x")], FAILED),
        decide("S3", [], FAILED),
    ]
    assert flowcell_conf("s3://lab/m.json", decisions, "k", {"role_arn": ROLE}) == {
        "role_arn": ROLE,
        "manifest_uri": "s3://lab/m.json",
        "rerun_key": "k",
        "reuse_runs": {"S1": "1"},
        "samples": ["S1", "S2"],
    }
    with pytest.raises(ValueError, match="unknown rerun mode"):
        decide("S1", [], "some")


def manifest() -> Any:
    document = {
        "flowcellSamples": [
            {
                "sampleId": s,
                "fastqFileRef": f"s3://lab/{s}.fq",
                "ahoSampleWorkflowId": "1234567",
                "OutputS3path": "s3://lab/out/",
            }
            for s in ("S1", "S2", "S3")
        ]
    }
    return parse_manifest(document, ManifestOptions(role_arn=ROLE), "s3://lab/in/FC1.json")


def test_reused_samples_are_not_submitted_and_a_rerun_key_makes_new_requests() -> None:
    fc = manifest()
    [group] = batch_groups("dag", fc, exclude={"S1"}, rerun_key="b1")
    assert [s["runSettingId"] for s in group["run_settings"]] == ["S2", "S3"]
    # A flowcell of more than 100 samples needs a settings file; it goes next to the outputs.
    assert group["settings_uri_prefix"] == "s3://lab/out/.healthomics/batch-settings"
    assert group["idempotency_key"] != batch_groups("dag", fc)[0]["idempotency_key"]
    assert sample_key("dag", fc, "S2", "b1") != sample_key("dag", fc, "S2")
    entries = {e["sample_id"]: e for e in sample_entries("dag", fc, [], reuse={"S1": "777"}, rerun_key="b1")}
    assert entries["S1"]["existing_run"] == {"id": "777"}
    assert entries["S2"]["idempotency_key"] == sample_key("dag", fc, "S2", "b1")


def test_sample_tasks_read_slim_entries_and_find_requests_only_to_start_a_run() -> None:
    fc = manifest()
    submitted = [
        {
            "batchId": "42",
            "runs": {"S1": {"id": "1001", "arn": "arn:aws:omics:us-east-1:123456789012:run/1001", "uuid": "u"}},
            "failed": {"S2": {"reason": "ValidationException", "message": "bad parameter"}},
        }
    ]
    full = sample_entries("dag", fc, submitted)
    slim, start_requests = slim_entries(full)
    by_sample = {e["sample_id"]: e for e in slim}
    # A sample with a run to follow keeps the run's id (GetRun names its batch), nothing else...
    assert by_sample["S1"] == {"sample_id": "S1", "batch_run": {"id": "1001"}}
    assert by_sample["S2"] == {
        "sample_id": "S2",
        "submission_failure": {"reason": "ValidationException", "message": "bad parameter"},
    }
    # ...and its request and key wait in the second value for a task that must start a run.
    assert start_requests == {
        s: {"request": e["request"], "idempotency_key": e["idempotency_key"]}
        for s, e in ((e["sample_id"], e) for e in full)
        if s in ("S1", "S2")
    }
    # A sample with nothing to follow (one run per sample) starts its run itself: all inline.
    assert by_sample["S3"] == full[2]
    # Every sample task reads all the entries: a batch sample's costs tens of bytes, not its request.
    assert len(json.dumps(by_sample["S1"])) < 50 < 200 < len(json.dumps(full[0]))


def test_a_sample_subset_must_name_samples_of_the_manifest() -> None:
    fc = manifest()
    assert [s.sample_id for s in select_samples(fc, ["S3", "S1"], None).samples] == ["S1", "S3"]
    assert select_samples(fc, None, None) is fc
    with pytest.raises(ManifestError) as raised:
        select_samples(fc, ["S1", "S9"], {"S8": "1", "S1": ""})
    assert [str(p) for p in raised.value.problems] == [
        "params, samples: no sample 'S9' in the manifest",
        "params, reuse_runs: no sample 'S8' in the manifest",
        "params, reuse_runs: run id for 'S1' must be a string",
    ]
    with pytest.raises(ManifestError, match="selects nothing"):
        select_samples(fc, [], None)


class _Run:
    def __init__(self, run_type: str) -> None:
        from airflow.sdk.api.datamodels._generated import DagRunType

        self.run_type = DagRunType(run_type)  # what the task context holds (str() is "DagRunType.X")


def sweep_context(run_type: str = "scheduled", **values: Any) -> dict[str, Any]:
    return {"dag_run": _Run(run_type), "params": {"lookback_hours": 24}, **values}


def test_the_sweep_window_starts_at_the_last_success_or_looks_back_and_a_backfill_takes_its_interval() -> None:
    import datetime as dt

    from airflow.providers.common.compat.sdk import AirflowSkipException

    from healthomics.intake.tasks import SWEEP_OVERLAP, landed_in_window, sweep_window

    last = dt.datetime(2026, 11, 25, 9, tzinfo=dt.UTC)
    assert sweep_window(sweep_context(prev_data_interval_end_success=last)) == (last - SWEEP_OVERLAP, None)
    since, until = sweep_window(sweep_context(prev_data_interval_end_success=None))
    assert until is None and dt.timedelta(hours=23.9) < dt.datetime.now(dt.UTC) - since < dt.timedelta(hours=24.1)
    start, end = dt.datetime(2026, 3, 1, tzinfo=dt.UTC), dt.datetime(2026, 3, 2, tzinfo=dt.UTC)
    backfill = sweep_context("backfill", data_interval_start=start, data_interval_end=end)
    assert sweep_window(backfill) == (start - SWEEP_OVERLAP, end)

    inside = {"Key": "in/FC1.json", "LastModified": dt.datetime(2026, 3, 1, 12, tzinfo=dt.UTC)}
    later = {"Key": "in/FC2.json", "LastModified": dt.datetime(2026, 3, 5, tzinfo=dt.UTC)}
    not_a_manifest = {"Key": "in/notes.txt", "LastModified": dt.datetime(2026, 3, 1, 12, tzinfo=dt.UTC)}
    assert landed_in_window([later, inside], **backfill)
    with pytest.raises(AirflowSkipException, match="No manifest landed between"):
        landed_in_window([later, not_a_manifest], **backfill)
    # An open window waits for the next poke instead, until the next sweep is due.
    now = dt.datetime.now(dt.UTC)
    fresh = sweep_context(prev_data_interval_end_success=last, data_interval_end=now)
    assert not landed_in_window([not_a_manifest], **fresh)
    stale = sweep_context(prev_data_interval_end_success=last, data_interval_end=now - dt.timedelta(hours=1))
    with pytest.raises(AirflowSkipException, match="the next sweep takes over"):
        landed_in_window([not_a_manifest], **stale)


def test_a_run_counts_for_a_sample_only_with_the_same_workflow_version_and_parameters() -> None:
    request = {"workflowId": "1234567", "workflowVersionName": "v2", "parameters": {"ref": "s3://refs/hg38.fa"}}
    run_now = {"workflowId": "1234567", "workflowVersionName": "v2", "parameters": {"ref": "s3://refs/hg38.fa"}}
    assert same_request(run_now, request)
    assert not same_request({**run_now, "workflowVersionName": "v1"}, request)
    assert not same_request({**run_now, "parameters": {"ref": "s3://refs/hg19.fa"}}, request)
    assert not same_request({**run_now, "workflowId": "7654321"}, request)
    assert same_request({"workflowId": "1234567"}, {"workflowId": "1234567", "parameters": {}})
