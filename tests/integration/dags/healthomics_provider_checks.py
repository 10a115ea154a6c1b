"""Test DAGs for the real-triggerer tests: one run waited on in the triggerer or on a worker, one batch."""

from __future__ import annotations

import datetime as dt

from airflow.sdk import DAG, Param

from healthomics.operators.batch import HealthOmicsStartRunBatchOperator
from healthomics.operators.run import HealthOmicsStartRunOperator

ROLE_ARN = "arn:aws:iam::123456789012:role/healthomics-test"
PARAMS = {
    "workflow_id": Param("", type="string"),
    "sample": Param("S1", type="string"),
    "output_uri": Param("", type="string"),
}

for dag_id, deferrable in (("healthomics_provider_checks", True), ("healthomics_provider_checks_on_worker", False)):
    with DAG(dag_id, schedule=None, start_date=dt.datetime(2026, 1, 1, tzinfo=dt.UTC), catchup=False, params=PARAMS):
        HealthOmicsStartRunOperator(
            task_id="run_sample",
            workflow_id="{{ params.workflow_id }}",
            role_arn=ROLE_ARN,
            output_uri="{{ params.output_uri }}",
            name="{{ params.sample }}",
            parameters={"sample_id": "{{ params.sample }}"},
            deferrable=deferrable,
            poll_interval=1,
            end_from_trigger=True,
        )

with DAG(
    "healthomics_provider_checks_batch",
    schedule=None,
    start_date=dt.datetime(2026, 1, 1, tzinfo=dt.UTC),
    catchup=False,
    params=PARAMS,
):
    HealthOmicsStartRunBatchOperator(
        task_id="submit",
        default_run_setting={
            "workflowId": "{{ params.workflow_id }}",
            "roleArn": ROLE_ARN,
            "outputUri": "{{ params.output_uri }}",
        },
        run_settings=[
            {"runSettingId": f"S{i}", "name": f"S{i}", "parameters": {"sample_id": f"S{i}"}} for i in range(5)
        ],
        deferrable=True,
        poll_interval=1,
    )
