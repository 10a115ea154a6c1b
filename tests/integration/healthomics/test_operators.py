"""The operators and sensor in real Airflow task runs (dag.test) against the emulator and moto."""

from __future__ import annotations

from typing import Any

import pytest
from airflow.utils.state import DagRunState, TaskInstanceState

from healthomics.operators.batch import HealthOmicsStartRunBatchOperator
from healthomics.operators.run import HealthOmicsStartRunOperator
from healthomics.sensors.run import HealthOmicsRunSensor
from omics_emulator import EmulatorAdmin

from ..airflow_dags import new_dag, run_dag
from ..conftest import ROLE_ARN
from .helpers import POLL, start_run_operator


@pytest.mark.parametrize("deferrable", [False, True], ids=["worker", "deferrable"])
def test_start_run_waits_and_returns_the_run(
    airflow_env: dict[str, str],
    realtime: EmulatorAdmin,
    omics: Any,
    workflow: dict[str, Any],
    bucket: str,
    deferrable: bool,
) -> None:
    with new_dag() as dag:
        start_run_operator(workflow, bucket, tags={"flowcell": "FC1", "sample": "NA12878"}, deferrable=deferrable)
    states = run_dag(dag)
    assert states["dag_run"] == DagRunState.SUCCESS
    result = states["start"].xcom_pull(task_ids="start")
    assert result["status"] == "COMPLETED"
    assert result["runOutputUri"] == f"s3://{bucket}/runs/{result['id']}"
    assert result["attempt"] == 1
    run = omics.get_run(id=result["id"])
    assert run["status"] == "COMPLETED"
    assert run["tags"]["flowcell"] == "FC1"
    assert run["tags"]["healthomics:dag_id"] == dag.dag_id
    assert run["tags"]["healthomics:task_id"] == "start"
    assert run["tags"]["healthomics:attempt"] == "1"
    assert len(omics.list_runs()["items"]) == 1


class CrashAfterSubmit(HealthOmicsStartRunOperator):
    """Dies right after StartRun returned, before anything is recorded: a worker lost mid-task."""

    def execute(self, context: Any) -> dict[str, Any]:
        if context["ti"].try_number == 1:
            submit = self.hook.start_run_idempotently

            def submit_then_die(*args: Any, **kwargs: Any) -> Any:
                submit(*args, **kwargs)
                raise RuntimeError("worker lost after submit")

            self.hook.start_run_idempotently = submit_then_die  # type: ignore[method-assign]
        return super().execute(context)


def test_a_retry_after_a_crash_gets_the_same_run_back(
    airflow_env: dict[str, str], realtime: EmulatorAdmin, omics: Any, workflow: dict[str, Any], bucket: str
) -> None:
    with new_dag(default_args={"retries": 1, "retry_delay": 0}) as dag:
        CrashAfterSubmit(
            task_id="start",
            workflow_id=workflow["id"],
            role_arn=ROLE_ARN,
            output_uri=f"s3://{bucket}/runs",
            name="NA12878",
            parameters={"sample_id": "NA12878"},
            poll_interval=POLL,
        )
    states = run_dag(dag)
    assert states["dag_run"] == DagRunState.SUCCESS
    assert states["start"].try_number == 2
    runs = omics.list_runs()["items"]
    assert len(runs) == 1, "the retry must not start a second, paid run"
    assert states["start"].xcom_pull(task_ids="start")["id"] == runs[0]["id"]
    assert realtime.counters()["operations"]["StartRun"]["calls"] == 2  # same requestId twice


def test_same_idempotency_key_in_another_dag_run_reuses_the_completed_run(
    airflow_env: dict[str, str], realtime: EmulatorAdmin, omics: Any, workflow: dict[str, Any], bucket: str
) -> None:
    with new_dag() as dag:
        start_run_operator(workflow, bucket, idempotency_key="FC1/manifest-sha/NA12878")
    first = run_dag(dag)["start"].xcom_pull(task_ids="start")
    second_states = run_dag(dag)  # a new DAG run: other dag_run_id tag, same work
    second = second_states["start"].xcom_pull(task_ids="start")
    assert second_states["dag_run"] == DagRunState.SUCCESS
    assert second["id"] == first["id"]
    assert len(omics.list_runs()["items"]) == 1


def test_failed_run_fails_the_task_and_a_retry_starts_a_new_attempt(
    airflow_env: dict[str, str],
    realtime: EmulatorAdmin,
    omics: Any,
    workflow: dict[str, Any],
    bucket: str,
    capsys: pytest.CaptureFixture[str],
) -> None:
    realtime.add_fault(
        action="fail",
        match={"name": "^NA12878$"},
        failureReason="OUT_OF_MEMORY_ERROR",
        statusMessage="Task bwa_mem ran out of memory",
        times=1,
    )
    with new_dag(default_args={"retries": 1, "retry_delay": 0}) as dag:
        start_run_operator(workflow, bucket, deferrable=True)
    states = run_dag(dag)
    assert states["dag_run"] == DagRunState.SUCCESS
    assert states["start"].try_number == 2
    assert "HealthOmics run" in capsys.readouterr().out  # the failure was logged with the service's words
    runs = sorted(omics.list_runs()["items"], key=lambda r: r["creationTime"])
    assert [r["status"] for r in runs] == ["FAILED", "COMPLETED"]
    failed = omics.get_run(id=runs[0]["id"])
    assert failed["failureReason"] == "OUT_OF_MEMORY_ERROR"
    assert omics.get_run(id=runs[1]["id"])["tags"]["healthomics:attempt"] == "2"
    assert states["start"].xcom_pull(task_ids="start")["attempt"] == 2


@pytest.mark.parametrize("outcome", ["FAILED", "CANCELLED", "DELETED", "COMPLETED"])
@pytest.mark.parametrize("deferrable", [False, True], ids=["poke", "deferrable"])
def test_sensor_outcome_for_each_terminal_state(
    airflow_env: dict[str, str],
    emulator: EmulatorAdmin,
    omics: Any,
    start_run: Any,
    outcome: str,
    deferrable: bool,
) -> None:
    if outcome == "FAILED":
        emulator.add_fault(action="fail", match={"name": "NA12878"}, failureReason="INPUT_URI_NOT_FOUND")
    run = start_run()
    if outcome == "CANCELLED":
        omics.cancel_run(id=run["id"])
    emulator.advance(24 * 3600)
    if outcome == "DELETED":
        omics.delete_run(id=run["id"])
    with new_dag() as dag:
        HealthOmicsRunSensor(task_id="wait", run_id=run["id"], poll_interval=POLL, deferrable=deferrable)
    states = run_dag(dag)
    expected = TaskInstanceState.SUCCESS if outcome == "COMPLETED" else TaskInstanceState.FAILED
    assert states["wait"].state == expected
    if outcome == "COMPLETED":
        assert states["wait"].xcom_pull(task_ids="wait")["status"] == "COMPLETED"


def batch_operator(workflow: dict[str, Any], bucket: str, samples: list[str], **kwargs: Any) -> Any:
    return HealthOmicsStartRunBatchOperator(
        task_id="submit",
        default_run_setting={
            "workflowId": workflow["id"],
            "roleArn": ROLE_ARN,
            "outputUri": f"s3://{bucket}/runs",
            "runTags": {"flowcell": "FC1"},
        },
        run_settings=[{"runSettingId": s, "name": s, "parameters": {"sample_id": s}} for s in samples],
        poll_interval=POLL,
        **kwargs,
    )


@pytest.mark.parametrize(("count", "deferrable"), [(3, False), (150, True)], ids=["inline", "s3-settings"])
def test_batch_submits_and_maps_samples_to_runs(
    airflow_env: dict[str, str],
    realtime: EmulatorAdmin,
    omics: Any,
    s3: Any,
    workflow: dict[str, Any],
    bucket: str,
    count: int,
    deferrable: bool,
) -> None:
    samples = [f"S{i:03d}" for i in range(count)]
    with new_dag() as dag:
        batch_operator(workflow, bucket, samples, deferrable=deferrable)
    states = run_dag(dag)
    assert states["dag_run"] == DagRunState.SUCCESS
    result = states["submit"].xcom_pull(task_ids="submit")
    assert sorted(result["runs"]) == samples
    assert result["failed"] == {}
    run = omics.get_run(id=result["runs"]["S001"]["id"])
    assert run["name"] == "S001" and run["batchId"] == result["batchId"]
    assert result["runs"]["S001"]["runOutputUri"] == run["runOutputUri"]
    batch = omics.get_batch(batchId=result["batchId"])
    assert batch["tags"]["healthomics:dag_id"] == dag.dag_id
    settings_files = s3.list_objects_v2(Bucket=bucket, Prefix="runs/.healthomics/batch-settings/").get("KeyCount", 0)
    assert settings_files == (1 if count > 100 else 0)


def test_batch_reports_samples_whose_submission_failed(
    airflow_env: dict[str, str],
    realtime: EmulatorAdmin,
    omics: Any,
    workflow: dict[str, Any],
    bucket: str,
) -> None:
    realtime.add_fault(
        action="fail_submission",
        match={"runSettingId": "^S2$"},
        code="ValidationException",
        message="Parameter fastq is not readable",
    )
    with new_dag() as dag:
        batch_operator(workflow, bucket, ["S1", "S2", "S3"], fail_on_submission_failure=True)
    states = run_dag(dag)
    assert states["submit"].state == TaskInstanceState.FAILED
    result = states["submit"].xcom_pull(task_ids="submit")
    assert sorted(result["runs"]) == ["S1", "S3"]
    assert result["failed"] == {"S2": {"reason": "ValidationException", "message": "Parameter fastq is not readable"}}


def test_batch_resubmit_in_the_same_dag_run_starts_nothing_new(
    airflow_env: dict[str, str],
    realtime: EmulatorAdmin,
    omics: Any,
    workflow: dict[str, Any],
    bucket: str,
) -> None:
    with new_dag() as dag:
        batch_operator(workflow, bucket, ["S1", "S2"], idempotency_key="FC1/sha")
    first = run_dag(dag)["submit"].xcom_pull(task_ids="submit")
    second = run_dag(dag)["submit"].xcom_pull(task_ids="submit")
    assert second["batchId"] == first["batchId"]
    assert second["runs"] == first["runs"]
    assert len(omics.list_batch()["items"]) == 1
    assert len(omics.list_runs()["items"]) == 2


@pytest.mark.parametrize("fail_on_submission_failure", [False, True], ids=["per-sample", "fail-the-task"])
def test_a_batch_the_service_refuses_is_not_retried_and_every_sample_carries_the_reason(
    airflow_env: dict[str, str],
    realtime: EmulatorAdmin,
    omics: Any,
    workflow: dict[str, Any],
    bucket: str,
    fail_on_submission_failure: bool,
) -> None:
    """A zero-width space in one runSettingId: the service refuses the whole batch (ValidationException)."""
    with new_dag() as dag:
        batch_operator(
            workflow, bucket, ["S1", "S\u200b2"], retries=2, fail_on_submission_failure=fail_on_submission_failure
        )
    states = run_dag(dag)
    submit = states["submit"]
    assert submit.try_number == 1  # refused as asked: trying again changes nothing
    assert submit.state == (TaskInstanceState.FAILED if fail_on_submission_failure else TaskInstanceState.SUCCESS)
    result = submit.xcom_pull(task_ids="submit")
    assert result["status"] == "REFUSED" and result["batchId"] is None and result["runs"] == {}
    assert set(result["failed"]) == {"S1", "S\u200b2"}
    reason = result["failed"]["S1"]
    assert reason["reason"] == "ValidationException"
    assert "runSettingId" in reason["message"] and "regular expression pattern" in reason["message"]
    assert realtime.calls("StartRunBatch") == 1
    assert omics.list_batch()["items"] == []
