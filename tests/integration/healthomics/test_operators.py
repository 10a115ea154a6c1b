"""The operators and sensor in real Airflow task runs (dag.test) against the emulator and moto."""

from __future__ import annotations

from typing import Any

import pytest
from airflow.utils.state import DagRunState

from healthomics.operators.run import HealthOmicsStartRunOperator
from omics_emulator import EmulatorAdmin

from ..airflow_dags import new_dag, run_dag
from ..conftest import ROLE_ARN

POLL = 0.2


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
        HealthOmicsStartRunOperator(
            task_id="start",
            workflow_id=workflow["id"],
            role_arn=ROLE_ARN,
            output_uri=f"s3://{bucket}/runs",
            parameters={"sample_id": "NA12878"},
            tags={"flowcell": "FC1", "sample": "NA12878"},
            deferrable=deferrable,
            poll_interval=POLL,
        )
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
