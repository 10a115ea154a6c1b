"""The healthomics_flowcell DAG end to end (dag.test) against the emulator and moto."""

from __future__ import annotations

import json
from typing import Any

import pytest
from airflow.utils.state import DagRunState, TaskInstanceState

from omics_emulator import EmulatorAdmin

from .airflow_dags import run_dag
from .flowcells import SAMPLES, conf, flowcell_report, inbox, reference_manifest, sample_runs, upload


def test_all_samples_complete_then_qc_then_a_success_notification(
    flowcell_dag: Any, lab: dict[str, Any], omics: Any, s3: Any
) -> None:
    uri = upload(s3, lab, reference_manifest(lab))
    states = run_dag(flowcell_dag, run_conf=conf(lab, uri))
    assert states["dag_run"] == DagRunState.SUCCESS, {k: getattr(v, "state", v) for k, v in states.items()}
    runs = sample_runs(omics)
    assert sorted(r["name"] for r in runs) == sorted(f"FC-0001-{s}" for s in SAMPLES)
    assert all(r["status"] == "COMPLETED" and r.get("batchId") for r in runs)
    [qc] = [r for r in omics.list_runs()["items"] if r["name"] == "FC-0001-qc"]
    qc_run = omics.get_run(id=qc["id"])
    assert qc_run["status"] == "COMPLETED"
    qc_inputs = qc_run["parameters"]["samples"]
    bucket, key = qc_inputs[5:].split("/", 1)
    listed = json.loads(s3.get_object(Bucket=bucket, Key=key)["Body"].read())["samples"]
    assert sorted(s["sample_id"] for s in listed) == sorted(SAMPLES)
    assert all(s["output_uri"].startswith(f"s3://{lab['bucket']}/outputs/") for s in listed)

    [message] = inbox(lab)
    assert message.startswith("Flowcell FC-0001: SUCCESS")
    assert "4 COMPLETED" in message and "QC: COMPLETED" in message
    report = flowcell_report(s3, lab)
    assert report["status"] == "SUCCESS" and report["qc"]["status"] == "COMPLETED"
    assert {s["sample_id"] for s in report["samples"]} == set(SAMPLES)
    assert report["samples"][0]["links"]["console"].startswith("https://console.aws.amazon.com/omics/home?")


def test_a_failed_sample_gates_qc_and_the_notification_names_it(
    flowcell_dag: Any, lab: dict[str, Any], realtime: EmulatorAdmin, omics: Any, s3: Any
) -> None:
    realtime.add_fault(
        action="fail",
        match={"name": "NA12891$"},
        failureReason="OUT_OF_MEMORY_ERROR",
        statusMessage="Task HaplotypeCaller ran out of memory",
    )
    uri = upload(s3, lab, reference_manifest(lab))
    states = run_dag(flowcell_dag, run_conf=conf(lab, uri))
    assert states["dag_run"] == DagRunState.FAILED
    assert states["qc_gate"].state == TaskInstanceState.FAILED
    assert states["qc"].state == TaskInstanceState.UPSTREAM_FAILED
    assert states["notify"].state == TaskInstanceState.SUCCESS
    assert not [r for r in omics.list_runs()["items"] if r["name"].endswith("-qc")]
    [message] = inbox(lab)
    assert message.startswith("Flowcell FC-0001: FAILED")
    assert "NA12891" in message and "OUT_OF_MEMORY_ERROR: Task HaplotypeCaller ran out of memory" in message
    assert "QC: POLICY_FAILED" in message and "3/4 samples COMPLETED (75%)" in message


def test_a_lower_qc_policy_runs_qc_on_the_completed_samples(
    flowcell_dag: Any, lab: dict[str, Any], realtime: EmulatorAdmin, omics: Any, s3: Any
) -> None:
    realtime.add_fault(action="fail", match={"name": "NA12891$"}, failureReason="OUT_OF_MEMORY_ERROR")
    uri = upload(s3, lab, reference_manifest(lab))
    states = run_dag(flowcell_dag, run_conf=conf(lab, uri, qc_min_completed_fraction=0.75))
    assert states["qc"].state == TaskInstanceState.SUCCESS
    assert states["dag_run"] == DagRunState.FAILED  # a sample still failed: the flowcell is not clean
    [qc] = [r for r in omics.list_runs()["items"] if r["name"].endswith("-qc")]
    samples_uri = omics.get_run(id=qc["id"])["parameters"]["samples"]
    bucket, key = samples_uri[5:].split("/", 1)
    listed = json.loads(s3.get_object(Bucket=bucket, Key=key)["Body"].read())["samples"]
    assert sorted(s["sample_id"] for s in listed) == ["NA12878", "NA12892", "NA12893"]


def test_a_bad_manifest_fails_validation_with_every_error_and_starts_nothing(
    flowcell_dag: Any,
    lab: dict[str, Any],
    realtime: EmulatorAdmin,
    omics: Any,
    s3: Any,
    capsys: pytest.CaptureFixture[str],
) -> None:
    manifest = reference_manifest(lab, ["S1", "S1", "S3"])
    manifest["flowcellSamples"][2]["fastqFileRef"] = "ftp://elsewhere/S3.fq"
    del manifest["flowcellSamples"][1]["OutputS3path"]
    uri = upload(s3, lab, manifest, "FC-BAD.json")
    states = run_dag(flowcell_dag, run_conf=conf(lab, uri))
    assert states["load_manifest"].state == TaskInstanceState.FAILED
    assert states["load_manifest"].try_number == 1  # invalid input is not retried
    problems = states["load_manifest"].xcom_pull(task_ids="load_manifest", key="problems")
    assert problems == [
        "flowcellSamples[1], OutputS3path: required field is missing or empty",
        "flowcellSamples[2], fastqFileRef: not an s3:// URI: 'ftp://elsewhere/S3.fq'",
        "flowcellSamples[1], sample_id: duplicate sample id 'S1' (first at flowcellSamples[0])",
    ]
    assert states["dag_run"] == DagRunState.FAILED
    [message] = inbox(lab)  # the people who wait for the flowcell hear why nothing ran
    assert message.startswith("Flowcell FC-BAD: INVALID_MANIFEST - nothing was submitted")
    assert "duplicate sample id 'S1'" in message
    assert omics.list_runs()["items"] == [] and omics.list_batch()["items"] == []
    assert realtime.calls("StartRun") == realtime.calls("StartRunBatch") == 0


def test_parameters_the_workflow_does_not_take_are_refused_before_submitting(
    flowcell_dag: Any, lab: dict[str, Any], realtime: EmulatorAdmin, s3: Any
) -> None:
    uri = upload(s3, lab, reference_manifest(lab, ["NA12878"]), "FC-P.json")
    states = run_dag(flowcell_dag, run_conf=conf(lab, uri, parameter_map={"sample": "{sample_id}", "fastq": "{fastq}"}))
    problems = states["load_manifest"].xcom_pull(task_ids="load_manifest", key="problems")
    assert problems == [
        f"sample NA12878, parameters: workflow {lab['workflow']} requires sample_id, which is missing",
        f"sample NA12878, parameters: workflow {lab['workflow']} takes no parameter sample",
    ]
    assert realtime.calls("StartRunBatch") == 0


@pytest.mark.parametrize("samples", [[], ["S1"]], ids=["empty", "missing-input"])
def test_empty_manifests_and_missing_inputs_are_refused(
    flowcell_dag: Any,
    lab: dict[str, Any],
    omics: Any,
    s3: Any,
    samples: list[str],
    capsys: pytest.CaptureFixture[str],
) -> None:
    uri = upload(s3, lab, reference_manifest(lab, samples), "FC-X.json")
    states = run_dag(flowcell_dag, run_conf=conf(lab, uri))
    assert states["load_manifest"].state == TaskInstanceState.FAILED
    out = capsys.readouterr().out
    expected = "the manifest lists no samples" if not samples else "input does not exist: s3://"
    assert expected in out
    assert omics.list_runs()["items"] == []


def test_running_the_flowcell_again_starts_no_duplicate_runs(
    flowcell_dag: Any, lab: dict[str, Any], realtime: EmulatorAdmin, omics: Any, s3: Any
) -> None:
    uri = upload(s3, lab, reference_manifest(lab))
    first = run_dag(flowcell_dag, run_conf=conf(lab, uri))
    runs_before = {r["id"] for r in omics.list_runs()["items"]}
    second = run_dag(flowcell_dag, run_conf=conf(lab, uri))
    assert first["dag_run"] == second["dag_run"] == DagRunState.SUCCESS
    assert {r["id"] for r in omics.list_runs()["items"]} == runs_before
    assert len(omics.list_batch()["items"]) == 1


def test_one_run_per_sample_mode(flowcell_dag: Any, lab: dict[str, Any], omics: Any, s3: Any) -> None:
    uri = upload(s3, lab, reference_manifest(lab))
    states = run_dag(flowcell_dag, run_conf=conf(lab, uri, submission_mode="per_sample"))
    assert states["dag_run"] == DagRunState.SUCCESS
    assert omics.list_batch()["items"] == []
    runs = sample_runs(omics)
    assert len(runs) == 4 and all("batchId" not in r for r in runs)


def test_dry_run_submits_nothing(
    flowcell_dag: Any, lab: dict[str, Any], realtime: EmulatorAdmin, omics: Any, s3: Any
) -> None:
    uri = upload(s3, lab, reference_manifest(lab))
    states = run_dag(flowcell_dag, run_conf=conf(lab, uri, dry_run=True))
    assert states["dag_run"] == DagRunState.SUCCESS
    assert omics.list_runs()["items"] == []
    assert realtime.calls("StartRunBatch") == 0
    [message] = inbox(lab)
    assert message.startswith("Flowcell FC-0001: DRY_RUN")


def test_a_one_sample_samplesheet_without_qc(flowcell_dag: Any, lab: dict[str, Any], omics: Any, s3: Any) -> None:
    sheet = f"sample,fastq_1\nNA12878,s3://{lab['bucket']}/fastq/NA12878.fastq.gz\n"
    uri = upload(s3, lab, sheet, "FC-CSV.csv")
    states = run_dag(
        flowcell_dag,
        run_conf=conf(
            lab,
            uri,
            workflow_id=lab["workflow"],
            output_uri=f"s3://{lab['bucket']}/outputs/",
            parameter_map={"sample_id": "{sample_id}", "fastq": "{fastq_1}"},
            submission_mode="per_sample",
        ),
    )
    assert states["dag_run"] == DagRunState.SUCCESS
    assert states["qc_gate"].state == TaskInstanceState.SKIPPED  # the samplesheet names no QC workflow
    [run] = sample_runs(omics)
    described = omics.get_run(id=run["id"])
    assert described["name"] == "FC-CSV-NA12878"
    assert described["parameters"] == {"sample_id": "NA12878", "fastq": f"s3://{lab['bucket']}/fastq/NA12878.fastq.gz"}
    [message] = inbox(lab)
    assert message.startswith("Flowcell FC-CSV: SUCCESS") and "QC: NOT_CONFIGURED" in message
