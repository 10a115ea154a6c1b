"""The healthomics_pipeline DAG end to end (dag.test): three workflows chained per sample, on the
emulator and moto, with the stage runs' own times and parameters checked in the emulator."""

from __future__ import annotations

import json
from typing import Any

import pytest
from airflow.utils.state import DagRunState, TaskInstanceState

from omics_emulator import EmulatorAdmin

from .airflow_dags import run_dag
from .conftest import SAMPLES
from .flowcells import (
    FLOWCELL,
    STAGES,
    conf,
    flowcell_report,
    inbox,
    outputs_json,
    pipeline_manifest,
    stage_runs,
    upload,
)


def test_each_sample_moves_through_its_stages_on_its_own_then_qc(
    pipeline_dag: Any,
    lab: dict[str, Any],
    stage_workflows: dict[str, str],
    realtime: EmulatorAdmin,
    omics: Any,
    s3: Any,
) -> None:
    uri = upload(s3, lab, pipeline_manifest(lab, stage_workflows), name=f"{FLOWCELL}.json")
    states = run_dag(pipeline_dag, run_conf=conf(lab, uri))
    assert states["dag_run"] == DagRunState.SUCCESS, {k: getattr(v, "state", v) for k, v in states.items()}

    runs = stage_runs(omics)
    assert set(runs) == {(s, stage) for s in SAMPLES for stage in STAGES}
    assert all(run["status"] == "COMPLETED" for run in runs.values())
    # The first stage ran as one batch; the later ones one StartRun per sample, named by stage.
    assert all(runs[(s, "align")].get("batchId") for s in SAMPLES)
    assert not any(runs[(s, stage)].get("batchId") for s in SAMPLES for stage in ("call", "annotate"))
    assert runs[("NA12891", "call")]["name"] == f"{FLOWCELL}-NA12891-call"
    assert runs[("NA12891", "annotate")]["tags"]["team"] == "annotation"

    # Later stages' parameters carry the earlier stages' outputs.
    for sample in SAMPLES:
        align, call, annotate = (runs[(sample, stage)] for stage in STAGES)
        assert call["parameters"] == {"bam": outputs_json(s3, align)["align.bam"], "sample_id": sample}
        assert annotate["parameters"] == {"vcf": outputs_json(s3, call)["call.vcf"], "aligned": align["runOutputUri"]}
        assert call["creationTime"] >= align["stopTime"] and annotate["creationTime"] >= call["stopTime"]

    # QC after every sample's last stage, over the final stage's outputs and every stage by name.
    [qc] = [omics.get_run(id=r["id"]) for r in omics.list_runs(name=f"{FLOWCELL}-qc")["items"]]
    assert qc["creationTime"] >= max(runs[(s, "annotate")]["stopTime"] for s in SAMPLES)
    bucket, key = qc["parameters"]["samples"][5:].split("/", 1)
    listed = {s["sample_id"]: s for s in json.loads(s3.get_object(Bucket=bucket, Key=key)["Body"].read())["samples"]}
    assert set(listed) == set(SAMPLES)
    for sample, entry in listed.items():
        assert entry["run_id"] == runs[(sample, "annotate")]["id"]
        assert {name: stage["run_id"] for name, stage in entry["stages"].items()} == {
            stage: runs[(sample, stage)]["id"] for stage in STAGES
        }

    # The group's fourth stage task has no stage to run: skipped without a run.
    assert states["sample.stage_4"].state == TaskInstanceState.SKIPPED
    [message] = inbox(lab)
    assert message.startswith(f"Flowcell {FLOWCELL}: SUCCESS")
    assert "align: 4 COMPLETED" in message and "annotate: 4 COMPLETED" in message

    # The same DAG run's conf again: every stage run is found again, nothing new is paid for.
    before = {r["id"] for r in omics.list_runs()["items"]}
    again = run_dag(pipeline_dag, run_conf=conf(lab, uri))
    assert again["dag_run"] == DagRunState.SUCCESS
    assert {r["id"] for r in omics.list_runs()["items"]} == before


def test_a_failed_stage_stops_only_its_sample(
    pipeline_dag: Any,
    lab: dict[str, Any],
    stage_workflows: dict[str, str],
    realtime: EmulatorAdmin,
    omics: Any,
    s3: Any,
) -> None:
    realtime.add_fault(
        action="fail",
        match={"name": "NA12891-call$"},
        failureReason="OUT_OF_MEMORY_ERROR",
        statusMessage="Task HaplotypeCaller ran out of memory",
    )
    uri = upload(s3, lab, pipeline_manifest(lab, stage_workflows), name=f"{FLOWCELL}.json")
    states = run_dag(pipeline_dag, run_conf=conf(lab, uri, qc_min_completed_fraction=0.75))
    assert states["dag_run"] == DagRunState.FAILED

    runs = stage_runs(omics)
    assert runs[("NA12891", "call")]["status"] == "FAILED"
    assert ("NA12891", "annotate") not in runs  # never started
    assert all(runs[(s, "annotate")]["status"] == "COMPLETED" for s in SAMPLES if s != "NA12891")
    # QC ran on the three samples that completed every stage.
    [qc] = [omics.get_run(id=r["id"]) for r in omics.list_runs(name=f"{FLOWCELL}-qc")["items"]]
    bucket, key = qc["parameters"]["samples"][5:].split("/", 1)
    listed = json.loads(s3.get_object(Bucket=bucket, Key=key)["Body"].read())["samples"]
    assert sorted(s["sample_id"] for s in listed) == sorted(s for s in SAMPLES if s != "NA12891")

    [message] = inbox(lab)
    assert message.startswith(f"Flowcell {FLOWCELL}: FAILED")
    assert "stage call: OUT_OF_MEMORY_ERROR: Task HaplotypeCaller ran out of memory" in message
    assert "call: 3 COMPLETED, 1 FAILED" in message and "annotate: 3 COMPLETED, 1 NOT_RUN" in message
    report = flowcell_report(s3, lab, FLOWCELL, outputs=f"outputs/{FLOWCELL}/")
    [failed] = [s for s in report["samples"] if s["sample_id"] == "NA12891"]
    assert (failed["status"], failed["stage"]) == ("FAILED", "call")
    assert [(s["stage"], s["status"]) for s in failed["stages"]] == [
        ("align", "COMPLETED"),
        ("call", "FAILED"),
        ("annotate", "NOT_RUN"),
    ]
    assert failed["stages"][2]["message"] == "stage call did not complete"
    assert failed["stages"][1]["duration_seconds"] > 0  # what the failed run took
    assert failed["stages"][1]["links"]["console"].startswith("https://console.aws.amazon.com/omics/home?")

    # A new DAG run of the same manifest pays for nothing: what COMPLETED is reused, and the failed
    # stage is followed again (as a failed first stage is), not run again; clearing it does that.
    before = {r["id"] for r in omics.list_runs()["items"]}
    again = run_dag(pipeline_dag, run_conf=conf(lab, uri, qc_min_completed_fraction=0.75))
    assert again["dag_run"] == DagRunState.FAILED
    assert {r["id"] for r in omics.list_runs()["items"]} == before


def test_a_throttled_stage_start_goes_in_a_micro_batch_and_starts_once(
    pipeline_dag: Any,
    lab: dict[str, Any],
    stage_workflows: dict[str, str],
    realtime: EmulatorAdmin,
    omics: Any,
    s3: Any,
) -> None:
    """The first five StartRuns (later stages') are throttled: each of those runs is submitted
    in a micro batch from the triggerer instead, once. Nothing fails, no StartRun is repeated,
    and no stage is paid for twice."""
    realtime.reset_counters()
    realtime.add_fault(action="error", operations=["StartRun"], code="ThrottlingException", times=5)
    uri = upload(s3, lab, pipeline_manifest(lab, stage_workflows), name=f"{FLOWCELL}.json")
    states = run_dag(pipeline_dag, run_conf=conf(lab, uri))
    assert states["dag_run"] == DagRunState.SUCCESS

    operations = realtime.counters()["operations"]
    assert operations["StartRun"]["throttled"] == 5
    runs = stage_runs(omics)  # (one run per sample and stage, or it raises)
    assert set(runs) == {(s, stage) for s in SAMPLES for stage in STAGES}
    assert all(run["status"] == "COMPLETED" for run in runs.values())
    later = {key: run for key, run in runs.items() if key[1] != STAGES[0]}
    in_micro_batches = {key for key, run in later.items() if run.get("batchId")}
    assert len(in_micro_batches) == 5
    # Each of them started once, in a batch named after the flowcell and its stage, with the tags
    # that find it again (the attempt's key) like a run StartRun started.
    for sample, stage in in_micro_batches:
        run = runs[(sample, stage)]
        assert omics.get_batch(batchId=run["batchId"])["name"] == f"{FLOWCELL}-{stage}"
        assert run["tags"]["healthomics:attempt"] == "1" and run["tags"]["sample"] == sample
        assert run["name"] == f"{FLOWCELL}-{sample}-{stage}"
    assert operations["StartRun"]["calls"] == len(later) - 5 + 5 + 1  # the others, the throttled, QC


def test_a_large_flowcells_later_stages_go_straight_to_micro_batches(
    pipeline_dag: Any,
    lab: dict[str, Any],
    stage_workflows: dict[str, str],
    realtime: EmulatorAdmin,
    omics: Any,
    s3: Any,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """At [healthomics] micro_batch_min_samples samples, every later stage's run goes in a micro
    batch without a StartRun first: the only StartRun is QC's."""
    monkeypatch.setenv("AIRFLOW__HEALTHOMICS__MICRO_BATCH_MIN_SAMPLES", str(len(SAMPLES)))
    realtime.reset_counters()
    uri = upload(s3, lab, pipeline_manifest(lab, stage_workflows), name=f"{FLOWCELL}.json")
    assert run_dag(pipeline_dag, run_conf=conf(lab, uri))["dag_run"] == DagRunState.SUCCESS

    runs = stage_runs(omics)
    assert all(run["status"] == "COMPLETED" for run in runs.values())
    for (sample, stage), run in runs.items():
        if stage != STAGES[0]:
            assert omics.get_batch(batchId=run["batchId"])["name"] == f"{FLOWCELL}-{stage}"
            assert run["tags"]["healthomics:attempt"] == "1" and run["tags"]["sample"] == sample
    assert realtime.counters()["operations"]["StartRun"]["calls"] == 1  # QC


def test_an_invalid_pipeline_is_refused_with_every_problem_and_starts_nothing(
    pipeline_dag: Any,
    lab: dict[str, Any],
    stage_workflows: dict[str, str],
    omics: Any,
    s3: Any,
    capsys: pytest.CaptureFixture[str],
) -> None:
    manifest = pipeline_manifest(lab, stage_workflows)
    manifest["stages"][1]["parameters"]["bam"] = "{stages.align.outputs.align.cram}"  # align declares no cram
    manifest["stages"][2]["needs"] = ["annotate"]  # itself
    manifest["stages"][0]["parameters"]["lanes"] = "{lanes}"  # no sample has it (nor does align take it)
    uri = upload(s3, lab, manifest, name=f"{FLOWCELL}.json")
    states = run_dag(pipeline_dag, run_conf=conf(lab, uri))
    assert states["dag_run"] == DagRunState.FAILED
    assert states["load_manifest"].state == TaskInstanceState.FAILED
    out = capsys.readouterr().out
    assert "stage 'align' declares no output 'align.cram'" in out
    assert "stage 'annotate' cannot need itself" in out
    assert "unknown sample field {lanes}" in out
    assert omics.list_runs()["items"] == []
