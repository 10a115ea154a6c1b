"""Test DAG: one HealthOmics run, waited on in the triggerer (used by the real-triggerer tests)."""

from __future__ import annotations

import datetime as dt

from airflow.sdk import DAG, Param

from healthomics.operators.run import HealthOmicsStartRunOperator

with DAG(
    "healthomics_provider_checks",
    schedule=None,
    start_date=dt.datetime(2026, 1, 1, tzinfo=dt.UTC),
    catchup=False,
    params={
        "workflow_id": Param("", type="string"),
        "sample": Param("S1", type="string"),
        "output_uri": Param("", type="string"),
        "end_from_trigger": Param(True, type="boolean"),
    },
):
    HealthOmicsStartRunOperator(
        task_id="run_sample",
        workflow_id="{{ params.workflow_id }}",
        role_arn="arn:aws:iam::123456789012:role/healthomics-test",
        output_uri="{{ params.output_uri }}",
        name="{{ params.sample }}",
        parameters={"sample_id": "{{ params.sample }}"},
        deferrable=True,
        poll_interval=1,
        end_from_trigger=True,
    )
