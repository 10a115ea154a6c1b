"""healthomics_pipeline in a real local Airflow (scheduler, triggerer, api-server as processes).

What only real concurrency shows: a fast sample's second stage starts while a slow sample is
still in its first; clearing a failed stage re-runs that stage and the later ones for that
sample only; a second DAG run of the same manifest starts nothing.
"""

from __future__ import annotations

from typing import Any

import pytest

from local_airflow.deployment import LocalAirflow
from omics_emulator import EmulatorAdmin

from .conftest import SAMPLES
from .flowcells import FLOWCELL, conf, pipeline_manifest, stage_runs, upload

pytestmark = pytest.mark.cluster

DAG_ID = "healthomics_pipeline"
SLOW_SAMPLE = "NA12878"
FAILING_SAMPLE = "NA12891"


@pytest.fixture(scope="module")
def airflow(airflow_cluster: LocalAirflow) -> LocalAirflow:
    airflow_cluster.unpause(DAG_ID)
    return airflow_cluster


def stage_tasks(airflow: LocalAirflow, run_id: str) -> dict[tuple[str, str], dict[str, Any]]:
    """The stage task instances by (sample, task id), from the UI's rendered map index 'S · stage'."""
    found: dict[tuple[str, str], dict[str, Any]] = {}
    by_index: dict[int, str] = {}
    instances = [ti for ti in airflow.task_instances(DAG_ID, run_id) if ti["task_id"].startswith("sample.")]
    for ti in instances:
        label = ti.get("rendered_map_index") or ""
        if " · " in label:
            by_index[ti["map_index"]] = label.split(" · ")[0]
    for ti in instances:
        found[(by_index.get(ti["map_index"], str(ti["map_index"])), ti["task_id"])] = ti
    return found


def test_stages_overlap_across_samples_and_a_cleared_stage_reruns_only_itself_and_after(
    airflow: LocalAirflow,
    lab: dict[str, Any],
    stage_workflows: dict[str, str],
    emulator: EmulatorAdmin,
    omics: Any,
    s3: Any,
) -> None:
    # About a second per run, forty for the slow sample's alignment: a fast sample's align ends,
    # its trigger fires, its task resumes and its call task starts on a worker well within that,
    # even on a loaded CI machine (ten seconds were not always enough there).
    emulator.configure(time_scale=3600, profiles={"default": {"jitter": 0.0}})
    emulator.add_fault(action="slow", match={"name": f"{SLOW_SAMPLE}-align$"}, factor=40)
    emulator.add_fault(action="fail", match={"name": f"{FAILING_SAMPLE}-call$"}, failureReason="SERVICE_ERROR", times=1)
    uri = upload(s3, lab, pipeline_manifest(lab, stage_workflows), name=f"{FLOWCELL}.json")
    run_id = airflow.trigger(DAG_ID, conf=conf(lab, uri))
    state = airflow.wait_for_dag_run(DAG_ID, run_id)["state"]
    assert state == "failed", [
        (ti["task_id"], ti["rendered_map_index"], ti["state"], ti["try_number"])
        for ti in airflow.task_instances(DAG_ID, run_id)
    ]

    runs = stage_runs(omics)
    slow_align_end = runs[(SLOW_SAMPLE, "align")]["stopTime"]
    call_starts = {s: runs[(s, "call")]["creationTime"] for s in SAMPLES if s != SLOW_SAMPLE}
    assert any(start < slow_align_end for start in call_starts.values()), (slow_align_end, call_starts)
    assert runs[(FAILING_SAMPLE, "call")]["status"] == "FAILED" and (FAILING_SAMPLE, "annotate") not in runs

    tasks = stage_tasks(airflow, run_id)
    assert tasks[(FAILING_SAMPLE, "sample.stage_2")]["state"] == "failed"
    assert tasks[(FAILING_SAMPLE, "sample.stage_3")]["state"] == "upstream_failed"
    assert all(tasks[(s, "sample.stage_3")]["state"] == "success" for s in SAMPLES if s != FAILING_SAMPLE)
    assert {
        ti["state"] for (s, task_id), ti in tasks.items() if task_id == "sample.stage_4" and s != FAILING_SAMPLE
    } == {"skipped"}
    assert tasks[(SLOW_SAMPLE, "sample.stage_2")]["rendered_map_index"] == f"{SLOW_SAMPLE} · call"

    # Clear the failed stage: that sample's call again (attempt 2), then its annotate, then QC.
    start_runs_before = emulator.calls("StartRun")
    airflow.clear(DAG_ID, run_id, [["sample.stage_2", tasks[(FAILING_SAMPLE, "sample.stage_2")]["map_index"]]])
    assert airflow.wait_for_dag_run(DAG_ID, run_id)["state"] == "success"
    calls = sorted(
        (omics.get_run(id=r["id"]) for r in omics.list_runs(name=f"{FLOWCELL}-{FAILING_SAMPLE}-call")["items"]),
        key=lambda r: r["creationTime"],
    )
    assert [(r["status"], r["tags"].get("healthomics:attempt")) for r in calls] == [("FAILED", "1"), ("COMPLETED", "2")]
    assert emulator.calls("StartRun") == start_runs_before + 3  # call attempt 2, annotate, QC
    for sample in SAMPLES:
        assert len(omics.list_runs(name=f"{FLOWCELL}-{sample}-align")["items"]) == 1
        assert len(omics.list_runs(name=f"{FLOWCELL}-{sample}-annotate")["items"]) == 1

    # A second DAG run of the same manifest: every stage run and the QC run found again.
    before = {r["id"] for r in omics.list_runs()["items"]}
    again = airflow.trigger(DAG_ID, conf=conf(lab, uri))
    assert airflow.wait_for_dag_run(DAG_ID, again)["state"] == "success"
    assert {r["id"] for r in omics.list_runs()["items"]} == before
