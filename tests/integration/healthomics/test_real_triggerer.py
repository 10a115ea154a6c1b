"""Deferred waits in a real Airflow (api-server, scheduler, dag-processor, triggerer processes).

What dag.test() cannot show: the trigger ends the task itself, a user's "mark failed" on the
deferred task cancels the run, and a triggerer restart cancels nothing.
"""

from __future__ import annotations

from typing import Any

import pytest

from devkit.waiting import wait_until
from local_airflow.deployment import LocalAirflow
from omics_emulator import EmulatorAdmin

# A real Airflow: api-server, scheduler, dag-processor and triggerer as processes.
pytestmark = pytest.mark.cluster

DAG_ID = "healthomics_provider_checks"
ON_WORKER = "healthomics_provider_checks_on_worker"
BATCH = "healthomics_provider_checks_batch"


@pytest.fixture(scope="module")
def airflow(airflow_cluster: LocalAirflow) -> LocalAirflow:
    for dag_id in (DAG_ID, ON_WORKER, BATCH):
        airflow_cluster.unpause(dag_id)
    return airflow_cluster


@pytest.fixture
def cluster_emulator(emulator: EmulatorAdmin) -> EmulatorAdmin:
    # One emulated hour per real second: the default run takes about 70 s of emulated... hours.
    emulator.configure(time_scale=3600, profiles={"default": {"jitter": 0.0}})
    return emulator


def trigger(airflow: LocalAirflow, workflow: dict[str, Any], bucket: str, sample: str, dag_id: str = DAG_ID) -> str:
    return airflow.trigger(
        dag_id, conf={"workflow_id": workflow["id"], "sample": sample, "output_uri": f"s3://{bucket}/runs"}
    )


def wait_for_status(omics: Any, run_id: str, status: str, timeout: float = 60.0) -> None:
    wait_until(
        lambda: omics.get_run(id=run_id)["status"] == status,
        timeout=timeout,
        what=f"run {run_id} never became {status}",
    )


def wait_until_the_trigger_polls(emulator: EmulatorAdmin, timeout: float = 60.0) -> None:
    """The task is DEFERRED as soon as the trigger row exists; wait until the triggerer runs it.

    (A task killed before any triggerer has started its trigger gets no on_kill: nothing is
    running to be told.)
    """
    emulator.reset_counters()
    wait_until(
        # A run outside a batch is polled through the shared ListRuns of its window, or GetRun.
        lambda: emulator.calls("ListRuns") + emulator.calls("GetRun") > 0,
        timeout=timeout,
        interval=0.2,
        what="the triggerer never started the trigger",
    )


def runs_named(omics: Any, name: str) -> list[dict[str, Any]]:
    return [r for r in omics.list_runs(name=name)["items"] if r["name"] == name]


def test_trigger_ends_the_task_without_a_worker(
    airflow: LocalAirflow, cluster_emulator: EmulatorAdmin, omics: Any, workflow: dict[str, Any], bucket: str
) -> None:
    run_id = trigger(airflow, workflow, bucket, "quick-1")
    assert airflow.wait_for_dag_run(DAG_ID, run_id)["state"] == "success"
    result = airflow.xcom(DAG_ID, run_id, "run_sample")
    assert result["status"] == "COMPLETED"
    log = airflow.task_log(DAG_ID, run_id, "run_sample")
    assert "Pausing task as DEFERRED" in log
    assert "Resuming" not in log  # the worker never picked the task up again
    # The plugin registers the links, so the UI can render them for this task.
    links = airflow.api("GET", f"dags/{DAG_ID}/dagRuns/{run_id}/taskInstances/run_sample/links")["extra_links"]
    assert links["HealthOmics Run"].endswith(f"/omics/home?region=us-east-1#/runs/{result['id']}")
    assert "log-events/run%2F" + result["id"] in links["HealthOmics Run Logs"]
    assert links["HealthOmics Run Output"].startswith(f"https://s3.console.aws.amazon.com/s3/buckets/{bucket}?")


def test_marking_the_deferred_task_failed_cancels_the_run(
    airflow: LocalAirflow, cluster_emulator: EmulatorAdmin, omics: Any, workflow: dict[str, Any], bucket: str
) -> None:
    cluster_emulator.add_fault(action="hang", match={"name": "^hang-1$"})
    run_id = trigger(airflow, workflow, bucket, "hang-1")
    airflow.wait_for_task_state(DAG_ID, run_id, "run_sample", {"deferred"})
    [run] = runs_named(omics, "hang-1")
    wait_until_the_trigger_polls(cluster_emulator)
    airflow.set_task_state(DAG_ID, run_id, "run_sample", "failed")
    wait_for_status(omics, run["id"], "CANCELLED")
    assert cluster_emulator.calls("CancelRun") == 1


def test_marking_a_task_failed_while_it_waits_on_a_worker_cancels_the_run(
    airflow: LocalAirflow, cluster_emulator: EmulatorAdmin, omics: Any, workflow: dict[str, Any], bucket: str
) -> None:
    cluster_emulator.add_fault(action="hang", match={"name": "^hang-2$"})
    run_id = trigger(airflow, workflow, bucket, "hang-2", dag_id=ON_WORKER)
    airflow.wait_for_task_state(ON_WORKER, run_id, "run_sample", {"running"})
    wait_until_the_trigger_polls(cluster_emulator)  # the worker's own GetRun polling has begun
    [run] = runs_named(omics, "hang-2")
    airflow.set_task_state(ON_WORKER, run_id, "run_sample", "failed")
    wait_for_status(omics, run["id"], "CANCELLED")


def test_marking_the_batch_submission_failed_cancels_the_batch(
    airflow: LocalAirflow, cluster_emulator: EmulatorAdmin, omics: Any, workflow: dict[str, Any], bucket: str
) -> None:
    # One run released every 2 emulated hours: submission lasts about 10 real seconds.
    cluster_emulator.configure(batch_submission_tps=1 / 7200)
    run_id = trigger(airflow, workflow, bucket, "unused", dag_id=BATCH)
    airflow.wait_for_task_state(BATCH, run_id, "submit", {"deferred"})
    # The trigger is polling GetBatch.
    wait_until(lambda: cluster_emulator.calls("GetBatch") >= 3, timeout=60, interval=0.2, what="no GetBatch polls")
    [batch] = omics.list_batch()["items"]
    airflow.set_task_state(BATCH, run_id, "submit", "failed")
    wait_until(
        lambda: omics.get_batch(batchId=batch["id"])["status"] == "CANCELLED",
        timeout=60,
        what="the batch was not cancelled",
    )
    assert omics.get_batch(batchId=batch["id"])["submissionSummary"]["successfulStartSubmissionCount"] < 5


def test_a_triggerer_restart_cancels_nothing_and_the_wait_resumes(
    airflow: LocalAirflow, cluster_emulator: EmulatorAdmin, omics: Any, workflow: dict[str, Any], bucket: str
) -> None:
    # About 20 real seconds of RUNNING: long enough to restart the triggerer in the middle.
    cluster_emulator.configure(profiles={"germline": {"running_seconds": 20 * 3600, "jitter": 0.0}})
    run_id = trigger(airflow, workflow, bucket, "slow-1")
    airflow.wait_for_task_state(DAG_ID, run_id, "run_sample", {"deferred"})
    wait_until_the_trigger_polls(cluster_emulator)
    airflow.stop_component("triggerer")  # SIGTERM: a graceful shutdown, as in a rolling deploy
    [run] = runs_named(omics, "slow-1")
    assert omics.get_run(id=run["id"])["status"] in ("PENDING", "STARTING", "RUNNING")
    airflow.start_component("triggerer")
    assert airflow.wait_for_dag_run(DAG_ID, run_id)["state"] == "success"
    assert cluster_emulator.calls("CancelRun") == 0
    assert [r["status"] for r in runs_named(omics, "slow-1")] == ["COMPLETED"]
