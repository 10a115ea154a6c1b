"""The flowcell DAG in a real local Airflow: mapped sample tasks named by sample, and one-sample retries.

Clearing a failed sample task starts a new run for that sample only (StartRun with an
attempt-specific requestId); clearing a sample whose run COMPLETED starts nothing; the QC and
notification tasks, cleared with it, then reflect the new outcome.
"""

from __future__ import annotations

from typing import Any

import pytest

from devkit.waiting import wait_until
from local_airflow.deployment import LocalAirflow
from omics_emulator import EmulatorAdmin

from .conftest import ROLE_ARN
from .flowcells import flowcell_report, lab_flowcell
from .healthomics.helpers import expected_cost

# A real Airflow: api-server, scheduler, dag-processor and triggerer as processes.
pytestmark = pytest.mark.cluster

DAG_ID = "healthomics_flowcell"
SAMPLES = ["NA12878", "NA12891", "NA12892", "NA12893"]


@pytest.fixture(scope="module")
def airflow(airflow_cluster: LocalAirflow) -> LocalAirflow:
    airflow_cluster.unpause(DAG_ID)
    return airflow_cluster


@pytest.fixture
def flowcell(emulator: EmulatorAdmin, omics: Any, s3: Any) -> dict[str, Any]:
    emulator.configure(time_scale=3600, profiles={"default": {"jitter": 0.0}})
    uri = lab_flowcell(omics, s3, "FC-RETRY", SAMPLES)
    return {"conf": {"manifest_uri": uri, "role_arn": ROLE_ARN}}


def runs_of(omics: Any, sample: str) -> list[dict[str, Any]]:
    name = f"FC-RETRY-{sample}"
    runs = [omics.get_run(id=r["id"]) for r in omics.list_runs(name=name)["items"]]
    return sorted(runs, key=lambda r: r["creationTime"])


def test_clearing_a_failed_sample_reruns_only_that_sample(
    airflow: LocalAirflow, emulator: EmulatorAdmin, omics: Any, s3: Any, flowcell: dict[str, Any]
) -> None:
    emulator.add_fault(
        action="fail",
        match={"name": "NA12891$"},
        failureReason="SERVICE_ERROR",
        statusMessage="There was a transient error in the service.",
        times=1,
    )
    run_id = airflow.trigger(DAG_ID, conf=flowcell["conf"])
    assert airflow.wait_for_dag_run(DAG_ID, run_id)["state"] == "failed"

    samples = {
        ti["rendered_map_index"]: ti for ti in airflow.task_instances(DAG_ID, run_id) if ti["task_id"] == "sample"
    }
    assert set(samples) == set(SAMPLES)  # the UI shows each mapped task under its sample id
    assert samples["NA12891"]["state"] == "failed"
    states = {ti["task_id"]: ti["state"] for ti in airflow.task_instances(DAG_ID, run_id) if ti["map_index"] < 0}
    assert (states["qc_gate"], states["qc"], states["notify"]) == ("failed", "upstream_failed", "success")
    start_runs_before = emulator.calls("StartRun")

    # Clear the failed sample (and what follows it): a new run for NA12891 only.
    airflow.clear(DAG_ID, run_id, [["sample", samples["NA12891"]["map_index"]]])
    assert airflow.wait_for_dag_run(DAG_ID, run_id)["state"] == "success"
    first, second = runs_of(omics, "NA12891")
    assert (first["status"], second["status"]) == ("FAILED", "COMPLETED")
    assert first.get("batchId") and "batchId" not in second  # attempt 1 from the batch, attempt 2 by StartRun
    assert second["tags"]["healthomics:attempt"] == "2"
    assert all(len(runs_of(omics, s)) == 1 for s in SAMPLES if s != "NA12891")
    qc_runs = [r for r in omics.list_runs(name="FC-RETRY-qc")["items"]]
    assert len(qc_runs) == 1 and qc_runs[0]["status"] == "COMPLETED"
    assert emulator.calls("StartRun") == start_runs_before + 2  # the sample's new attempt, then QC
    # The report prices the failed first attempt with the second: the sample paid for both.
    bucket = flowcell["conf"]["manifest_uri"].removeprefix("s3://").split("/", 1)[0]
    report = flowcell_report(s3, {"bucket": bucket}, "FC-RETRY")
    [row] = [s for s in report["samples"] if s["sample_id"] == "NA12891"]
    paid = [expected_cost(omics, first["id"]), expected_cost(omics, second["id"])]
    assert row["cost_usd"] == pytest.approx(sum(paid))
    assert report["cost"]["failed_runs_usd"] == pytest.approx(paid[0]) and report["cost"]["complete"]

    # Clear a sample whose run COMPLETED: it reuses that run and starts nothing.
    before = emulator.calls("StartRun")
    airflow.clear(DAG_ID, run_id, [["sample", samples["NA12878"]["map_index"]]], include_downstream=False)
    airflow.wait_for_task_state(
        DAG_ID, run_id, "sample", {"success", "failed"}, map_index=samples["NA12878"]["map_index"]
    )
    assert airflow.wait_for_dag_run(DAG_ID, run_id)["state"] == "success"
    assert emulator.calls("StartRun") == before
    assert len(runs_of(omics, "NA12878")) == 1


def test_a_finished_flowcell_triggers_the_dag_scheduled_on_its_outputs(
    airflow: LocalAirflow, omics: Any, s3: Any, emulator: EmulatorAdmin
) -> None:
    emulator.configure(time_scale=3600, profiles={"default": {"jitter": 0.0}})
    downstream = "healthomics_after_flowcell"
    airflow.unpause(downstream)
    uri = lab_flowcell(omics, s3, "FC-ASSET", SAMPLES[:2])
    run_id = airflow.trigger(DAG_ID, conf={"manifest_uri": uri, "role_arn": ROLE_ARN})
    assert airflow.wait_for_dag_run(DAG_ID, run_id)["state"] == "success"

    # The asset event (through the alias) makes the scheduler start the downstream DAG; a run of it
    # may also carry the events of this cluster's earlier flowcells.
    def learned_of_this_flowcell() -> list[dict[str, Any]] | None:
        for after in airflow.dag_runs(downstream):
            if after["state"] == "success":
                learned = airflow.xcom(downstream, after["dag_run_id"], "finished_flowcells")
                mine = [x for x in learned if x["flowcell_id"] == "FC-ASSET"]
                if mine:
                    return mine
        return None

    mine = wait_until(learned_of_this_flowcell, timeout=240, interval=2, what="no downstream run with FC-ASSET")
    assert [(x["status"], x["dag_run_id"]) for x in mine] == [("SUCCESS", run_id)]  # one event, this run's
    assert mine[0]["uri"].startswith("s3://") and mine[0]["report_uri"].endswith("/report.json")
