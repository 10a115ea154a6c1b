"""A pipeline's runs as the flowcell submits them: each stage's request and idempotency key, every
stage's request checked before the first is paid for, and each sample's outcome over its stages."""

from __future__ import annotations

from typing import Any

import pytest

from healthomics.flowcell.load import stage_problem
from healthomics.flowcell.outcomes import SampleOutcome, pipeline_outcomes
from healthomics.flowcell.plan import (
    batch_groups,
    pipeline_inputs,
    run_request,
    sample_key,
    select_samples,
    split_reuse,
    stage_key,
    stage_request,
    submission_problems,
)
from healthomics.flowcell.report import build_report, render_text
from healthomics.manifest import ManifestError, ManifestOptions, parse_manifest
from healthomics.manifest.pipeline import StageResult
from healthomics.reruns.plan import LEAVE, REUSE, RUN, SampleDecision, flowcell_conf, pipeline_decision

from .test_pipeline_manifest import pipeline

ALIGN = StageResult(
    "1000001", "s3://lab-output/FC9/1000001/", {"aligned_bam": "s3://lab-output/FC9/1000001/out/S1.bam"}
)


def test_the_first_stage_runs_with_its_own_settings_and_a_batch_carries_them() -> None:
    manifest = parse_manifest(pipeline(), ManifestOptions())
    request = run_request(manifest, manifest.samples[0])
    assert request["workflowId"] == "9500764" and request["workflowType"] == "READY2RUN"
    assert request["name"] == "FC9-S1-align"
    assert request["tags"] == {"project": "cohort-b", "flowcell": "FC9", "sample": "S1", "stage": "align"}
    [batch] = batch_groups("healthomics_pipeline", manifest)
    assert batch["default_run_setting"]["workflowType"] == "READY2RUN"
    assert batch["run_settings"][0]["runTags"] == {"sample": "S1", "stage": "align"}


def test_a_later_stage_request_is_rendered_with_its_settings_over_the_defaults() -> None:
    manifest = parse_manifest(pipeline(), ManifestOptions())
    shared, per_sample = pipeline_inputs("healthomics_pipeline", manifest)
    key = sample_key("healthomics_pipeline", manifest, "S1")
    assert per_sample["S1"]["idempotency_key"] == key
    request = stage_request(shared, 2, "S1", per_sample["S1"], {"align": ALIGN})
    assert request == {
        "roleArn": "arn:aws:iam::123456789012:role/healthomics-run",
        "workflowType": "PRIVATE",
        "workflowVersionName": "1.4",
        "storageType": "DYNAMIC",
        "workflowId": "2000001",
        "outputUri": "s3://lab-output/FC9",
        "name": "FC9-S1-call",
        "parameters": {
            "bam": "s3://lab-output/FC9/1000001/out/S1.bam",
            "reference": "s3://lab-ref/hg38.fa",
            "prefix": "s3://lab-output/FC9/1000001/calls/S1",
        },
        "tags": {"project": "cohort-b", "stage": "call", "flowcell": "FC9", "sample": "S1"},
    }
    assert stage_key(key, "call") == f"{key}/stage-call"


def test_a_later_stage_the_service_would_refuse_is_found_before_anything_runs() -> None:
    doc = pipeline()
    # 40 tags of its own: with the manifest's, the sample's and the submitter's, over the 50 a run takes.
    doc["stages"][1]["run"]["tags"] = {f"t{i}": "v" for i in range(40)}
    for sample in doc["samples"]:
        sample["tags"] = {"lane": "1", "library": "L1", "batch": "B1"}
    manifest = parse_manifest(doc, ManifestOptions())
    problems = [str(p) for p in submission_problems("healthomics_pipeline", manifest, [])]
    assert [p for p in problems if "stage call" in p] == [
        "2 samples ('S1', 'S2'): the service would refuse this: stage call: tags: 52 tags; a run takes at most 50"
    ]
    # The valid pipeline has nothing to refuse.
    assert submission_problems("healthomics_pipeline", parse_manifest(pipeline(), ManifestOptions()), []) == []


def test_a_dag_runs_a_pipeline_only_if_it_has_a_task_for_every_stage() -> None:
    manifest = parse_manifest(pipeline(), ManifestOptions())
    assert "run it with healthomics_pipeline" in str(stage_problem(manifest, None))
    assert "4 stages (align -> call -> annotate -> fastq_qc); this deployment runs at most 3" in str(
        stage_problem(manifest, 3)
    )
    assert stage_problem(manifest, 4) is None
    one_workflow = manifest.model_copy(update={"stages": []})
    assert stage_problem(one_workflow, None) is None and stage_problem(one_workflow, 4) is None


def outcome(sample: str, status: str, run: str | None = None, **fields: Any) -> SampleOutcome:
    return SampleOutcome(sample, status, run_id=run, **fields)


def test_a_sample_stops_at_its_first_stage_that_did_not_complete() -> None:
    names: list[str | None] = ["align", "call", "annotate"]
    per_stage = [
        [outcome("S1", "COMPLETED", "1", start_time="2026-01-01T00:00:00+00:00"), outcome("S2", "COMPLETED", "4")],
        [outcome("S1", "FAILED", "2", failure_reason="OUT_OF_MEMORY_ERROR"), outcome("S2", "COMPLETED", "5")],
        [
            outcome("S1", "NOT_RUN", message="sample task upstream_failed"),
            outcome("S2", "COMPLETED", "6", stop_time="2026-01-01T03:00:00+00:00"),
        ],
    ]
    failed, done = pipeline_outcomes(names, per_stage)
    assert (failed.status, failed.stage, failed.run_id, failed.failure_reason) == (
        "FAILED",
        "call",
        "2",
        "OUT_OF_MEMORY_ERROR",
    )
    assert [(s.stage, s.status) for s in failed.stages] == [
        ("align", "COMPLETED"),
        ("call", "FAILED"),
        ("annotate", "NOT_RUN"),
    ]
    assert failed.stages[2].message == "stage call did not complete"
    assert (done.status, done.stage, done.run_id) == ("COMPLETED", "annotate", "6")
    assert done.start_time == per_stage[0][1].start_time  # the sample's time runs from its first stage

    report = build_report(
        plan={"flowcell_id": "FC9", "manifest": {"source_format": "native", "sha256": "0" * 64}, "mode": "batch"},
        dag_id="healthomics_pipeline",
        dag_run_id="manual__1",
        outcomes=[failed, done],
        qc={"status": "NOT_CONFIGURED"},
        region="us-east-1",
        partition="aws",
    )
    assert report["stage_counts"] == {
        "align": {"COMPLETED": 2},
        "call": {"COMPLETED": 1, "FAILED": 1},
        "annotate": {"COMPLETED": 1, "NOT_RUN": 1},
    }
    assert report["samples"][0]["stages"][1]["links"]["console"].endswith("/runs/2")
    text = render_text(report)
    assert "stage call: OUT_OF_MEMORY_ERROR" in text
    assert "  call: 1 COMPLETED, 1 FAILED" in text
    assert "align COMPLETED run 1 | call FAILED run 2 | annotate NOT_RUN" in text


def test_a_pipeline_sample_reuses_its_completed_stages_and_runs_from_the_first_that_is_not() -> None:
    reuse = SampleDecision("S1", REUSE, "already COMPLETED", "1001", "COMPLETED")
    failed = SampleDecision("S1", RUN, "latest run FAILED", "1002", "FAILED")
    live = SampleDecision("S1", REUSE, "a run is still going", "1003", "RUNNING")
    done = SampleDecision("S1", REUSE, "already COMPLETED", "1004", "COMPLETED")
    every = pipeline_decision("S1", [("align", reuse), ("call", done)])
    assert (every.action, every.stage_runs) == (REUSE, {"align": "1001", "call": "1004"})
    again = pipeline_decision("S1", [("align", reuse), ("call", failed)])
    assert (again.action, again.reason, again.stage_runs) == (
        RUN,
        "from stage call (runs again: latest run FAILED)",
        {"align": "1001"},
    )
    following = pipeline_decision("S1", [("align", reuse), ("call", live)])
    assert (following.action, following.stage_runs) == (RUN, {"align": "1001", "call": "1003"})
    left = pipeline_decision("S1", [("align", SampleDecision("S1", LEAVE, "never run"))])
    assert left.action == LEAVE
    two = SampleDecision("S2", REUSE, "every stage COMPLETED", "2002", "COMPLETED", {"align": "2001", "call": "2002"})
    conf = flowcell_conf("s3://lab/m.json", [again, two, SampleDecision("S3", RUN, "never run")], "backfill-1")
    assert conf is not None
    assert conf["reuse_runs"] == {"S1": {"align": "1001"}, "S2": {"align": "2001", "call": "2002"}}


def test_reused_stage_runs_are_checked_and_split_into_the_first_stage_and_the_later_ones() -> None:
    manifest = parse_manifest(pipeline(), ManifestOptions())
    reuse = {"S1": {"align": "1001", "call": "1002"}, "S2": "2001"}
    assert split_reuse(manifest, reuse) == ({"S1": "1001", "S2": "2001"}, {"S1": {"call": "1002"}})
    _, later = split_reuse(manifest, reuse)
    _, inputs = pipeline_inputs("healthomics_pipeline", manifest, reuse=later)
    assert inputs["S1"]["reuse"] == {"call": "1002"} and inputs["S2"]["reuse"] == {}
    with pytest.raises(ManifestError) as err:
        select_samples(manifest, None, {"S1": {"align": "1001", "varcall": "1"}, "S2": {"call": 7}})
    assert [str(p) for p in err.value.problems] == [
        "params, reuse_runs: 'S1': no stage 'varcall' (stages: align, call, annotate, fastq_qc)",
        "params, reuse_runs: 'S2': run id of stage 'call' must be a string",
    ]
