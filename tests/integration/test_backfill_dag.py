"""healthomics_backfill (dag.test) against the emulator and moto: per flowcell, only what is missing runs."""

from __future__ import annotations

import json
import uuid
from typing import Any

from airflow.utils.state import DagRunState, TaskInstanceState

from omics_emulator import EmulatorAdmin

from .airflow_dags import run_dag
from .conftest import ROLE_ARN, SAMPLES
from .flowcells import FLOWCELL, dag_runs, outputs_json, pipeline_manifest, reference_manifest

FLOWCELL_DAG = "healthomics_flowcell"
PIPELINE_DAG = "healthomics_pipeline"


def runs_of(omics: Any, flowcell: str) -> list[dict[str, Any]]:
    return [
        r for r in omics.list_runs()["items"] if r["name"].startswith(f"{flowcell}-") and r["name"] != f"{flowcell}-qc"
    ]


def test_a_backfill_of_three_flowcells_runs_only_the_missing_samples(
    project_dags: Any, lab: dict[str, Any], realtime: EmulatorAdmin, omics: Any, s3: Any
) -> None:
    tag = uuid.uuid4().hex[:6].upper()
    done, failed, never = f"FCDONE{tag}", f"FCFAIL{tag}", f"FCNEW{tag}"
    prefix = f"s3://{lab['bucket']}/manifests/"
    for flowcell in (done, failed, never):
        s3.put_object(
            Bucket=lab["bucket"], Key=f"manifests/{flowcell}.json", Body=json.dumps(reference_manifest(lab)).encode()
        )
    flowcell_conf = {"role_arn": ROLE_ARN, "sns_topic_arn": lab["topic"]}
    # The past: one flowcell ran cleanly, one lost a sample, one never ran.
    assert (
        run_dag(project_dags(FLOWCELL_DAG), run_conf={**flowcell_conf, "manifest_uri": f"{prefix}{done}.json"})[
            "dag_run"
        ]
        == DagRunState.SUCCESS
    )
    realtime.add_fault(action="fail", match={"name": f"{failed}-NA12891$"}, failureReason="SPOT_INSTANCE_INTERRUPTED")
    run_dag(project_dags(FLOWCELL_DAG), run_conf={**flowcell_conf, "manifest_uri": f"{prefix}{failed}.json"})
    realtime.clear_faults()
    before = {f: {r["id"] for r in runs_of(omics, f)} for f in (done, failed, never)}
    assert [len(before[f]) for f in (done, failed, never)] == [4, 4, 0]

    backfill_conf = {"flowcell_ids": [done, failed, never], "manifest_prefix": prefix, "flowcell_conf": flowcell_conf}

    # The dry run shows each flowcell's plan and triggers nothing.
    dry = run_dag(project_dags("healthomics_backfill"), run_conf=backfill_conf)
    assert dry["dag_run"] == DagRunState.SUCCESS
    assert dry["trigger_flowcell"].state == TaskInstanceState.SKIPPED
    plans = {p["flowcell_id"]: p for p in dry["plan_flowcell"].xcom_pull(task_ids="plan_flowcell")}
    actions = {f: {s["sample_id"]: s["action"] for s in plans[f]["samples"]} for f in plans}
    assert actions[done] == dict.fromkeys(SAMPLES, "reuse")
    assert actions[failed] == {**dict.fromkeys(SAMPLES, "reuse"), "NA12891": "run"}
    assert actions[never] == dict.fromkeys(SAMPLES, "run")
    assert plans[done]["trigger"] is None
    assert not [run_id for run_id in dag_runs(FLOWCELL_DAG, "backfill__") if tag in run_id]

    # The backfill itself: flowcell runs for the two with work, none for the clean one.
    real = run_dag(project_dags("healthomics_backfill"), run_conf={**backfill_conf, "dry_run": False})
    assert real["dag_run"] == DagRunState.SUCCESS
    triggered = {run_id: run for run_id, run in dag_runs(FLOWCELL_DAG, "backfill__").items() if tag in run_id}
    assert sorted(run_id.split("__")[1] for run_id in triggered) == sorted([failed, never])
    for run in triggered.values():  # the scheduler would run them; here dag.test does
        states = run_dag(project_dags(FLOWCELL_DAG), run_conf=run["conf"])
        assert states["dag_run"] == DagRunState.SUCCESS, run["conf"]

    after = {f: {r["id"] for r in runs_of(omics, f)} for f in (done, failed, never)}
    assert after[done] == before[done]
    new_failed = after[failed] - before[failed]
    assert [omics.get_run(id=r)["name"] for r in new_failed] == [f"{failed}-NA12891"]
    assert len(after[never]) == 4
    # The refreshed flowcell's QC saw all four samples: three reused runs and the new one.
    qc = max((r for r in omics.list_runs()["items"] if r["name"] == f"{failed}-qc"), key=lambda r: r["creationTime"])
    bucket, key = omics.get_run(id=qc["id"])["parameters"]["samples"][5:].split("/", 1)
    listed = json.loads(s3.get_object(Bucket=bucket, Key=key)["Body"].read())["samples"]
    lost = {r for r in before[failed] if omics.get_run(id=r)["status"] == "FAILED"}
    assert sorted(s["run_id"] for s in listed) == sorted((before[failed] - lost) | new_failed)


def test_a_backfill_names_flowcells_it_cannot_find_and_triggers_nothing(
    project_dags: Any, lab: dict[str, Any], omics: Any, s3: Any
) -> None:
    s3.put_object(
        Bucket=lab["bucket"], Key="manifests/FC-KNOWN.json", Body=json.dumps(reference_manifest(lab)).encode()
    )
    states = run_dag(
        project_dags("healthomics_backfill"),
        run_conf={
            "flowcell_ids": ["FC-KNOWN", "FC-GONE"],
            "manifest_prefix": f"s3://{lab['bucket']}/manifests/",
            "dry_run": False,
        },
    )
    assert states["dag_run"] == DagRunState.FAILED
    assert states["select_flowcells"].state == TaskInstanceState.FAILED
    assert not any("FC-KNOWN" in r for r in dag_runs(FLOWCELL_DAG, "backfill__"))
    assert omics.list_runs()["items"] == []


def test_a_pipeline_backfill_runs_each_sample_from_its_first_stage_without_a_completed_run(
    project_dags: Any,
    lab: dict[str, Any],
    stage_workflows: dict[str, str],
    realtime: EmulatorAdmin,
    omics: Any,
    s3: Any,
) -> None:
    """One sample failed in its second stage: the backfill reuses its alignment and the other
    samples' every stage, and runs that sample's call and annotate again only."""
    s3.put_object(
        Bucket=lab["bucket"],
        Key=f"manifests/{FLOWCELL}.json",
        Body=json.dumps(pipeline_manifest(lab, stage_workflows)).encode(),
    )
    prefix = f"s3://{lab['bucket']}/manifests/"
    flowcell_conf = {"role_arn": ROLE_ARN, "sns_topic_arn": lab["topic"]}
    realtime.add_fault(action="fail", match={"name": f"{FLOWCELL}-NA12891-call$"}, failureReason="SERVICE_ERROR")
    first = run_dag(project_dags(PIPELINE_DAG), run_conf={**flowcell_conf, "manifest_uri": f"{prefix}{FLOWCELL}.json"})
    assert first["dag_run"] == DagRunState.FAILED
    realtime.clear_faults()
    before = {r["id"] for r in omics.list_runs()["items"]}

    backfill_conf = {"flowcell_ids": [FLOWCELL], "manifest_prefix": prefix, "flowcell_conf": flowcell_conf}
    real = run_dag(project_dags("healthomics_backfill"), run_conf={**backfill_conf, "dry_run": False})
    assert real["dag_run"] == DagRunState.SUCCESS
    [plan] = list(real["plan_flowcell"].xcom_pull(task_ids="plan_flowcell"))
    decisions = {s["sample_id"]: s for s in plan["samples"]}
    assert {s: d["action"] for s, d in decisions.items()} == {**dict.fromkeys(SAMPLES, "reuse"), "NA12891": "run"}
    assert decisions["NA12891"]["reason"].startswith("from stage call (runs again: latest run FAILED)")
    assert set(decisions["NA12891"]["stage_runs"]) == {"align"}
    [triggered] = [run for r, run in dag_runs(PIPELINE_DAG, "backfill__").items() if FLOWCELL in r]
    states = run_dag(project_dags(PIPELINE_DAG), run_conf=triggered["conf"])
    assert states["dag_run"] == DagRunState.SUCCESS, triggered["conf"]

    new = [omics.get_run(id=r["id"]) for r in omics.list_runs()["items"] if r["id"] not in before]
    assert sorted(r["name"] for r in new) == sorted(
        [f"{FLOWCELL}-NA12891-call", f"{FLOWCELL}-NA12891-annotate", f"{FLOWCELL}-qc"]
    )
    [call] = [r for r in new if r["name"].endswith("-call")]
    [align] = [omics.get_run(id=r["id"]) for r in omics.list_runs(name=f"{FLOWCELL}-NA12891-align")["items"]]
    assert call["parameters"]["bam"] == outputs_json(s3, align)["align.bam"]  # fed by the reused alignment
