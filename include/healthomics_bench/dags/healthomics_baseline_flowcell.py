"""The benchmark's baseline flowcell DAG: per-sample StartRun, per-run GetRun polling.

manifest -> one mapped task per sample (StartRun, then a GetRun-polling trigger that resumes
the task on a worker) -> QC run after every sample (same pattern) -> SNS notification.
The task ids match ``healthomics_flowcell`` so one measurement reads both.
"""

from __future__ import annotations

import datetime as dt
import json
import os
from typing import Any

from airflow.providers.amazon.aws.hooks.s3 import S3Hook
from airflow.providers.amazon.aws.hooks.sns import SnsHook
from airflow.sdk import DAG, task

from healthomics_bench.baseline import BaselineStartRunOperator

POLL_SECONDS = float(os.environ.get("AIRFLOW__HEALTHOMICS__POLL_SECONDS", "60"))
AWS_CONN_ID = "aws_default"


def sample_entries(params: dict[str, Any]) -> list[dict[str, Any]]:
    """The reference manifest's samples as StartRun requests."""
    bucket, key = S3Hook.parse_s3_url(params["manifest_uri"])
    manifest = json.loads(S3Hook(aws_conn_id=AWS_CONN_ID).read_key(key, bucket))
    flowcell = key.rsplit("/", 1)[-1].removesuffix(".json")
    return [
        {
            "workflowId": sample["ahoSampleWorkflowId"],
            "roleArn": params["role_arn"],
            "outputUri": sample["OutputS3path"],
            "name": f"{flowcell}-{sample['sampleId']}",
            "parameters": {"sample_id": sample["sampleId"], "fastq": sample["fastqFileRef"]},
        }
        for sample in manifest["flowcellSamples"]
    ]


def qc_request(params: dict[str, Any]) -> dict[str, Any]:
    bucket, key = S3Hook.parse_s3_url(params["manifest_uri"])
    manifest = json.loads(S3Hook(aws_conn_id=AWS_CONN_ID).read_key(key, bucket))
    qc = manifest["qcWorkflow"]
    return {
        "workflowId": qc["ahoQcWorkflowId"],
        "roleArn": params["role_arn"],
        "outputUri": qc["OutputS3path"],
        "name": key.rsplit("/", 1)[-1].removesuffix(".json") + "-qc",
        "parameters": {"qc_config": qc["qcWorkflowFileRef"], "samples": "all"},
    }


def notify(params: dict[str, Any]) -> None:
    SnsHook(aws_conn_id=AWS_CONN_ID).publish_to_target(params["sns_topic_arn"], "flowcell finished")


with DAG(
    dag_id="healthomics_baseline_flowcell",
    schedule=None,
    start_date=dt.datetime(2026, 1, 1, tzinfo=dt.UTC),
    catchup=False,
    tags=["benchmark"],
    doc_md=__doc__,
) as dag:
    retry = {"retries": 2, "retry_delay": dt.timedelta(seconds=POLL_SECONDS)}
    entries = task(sample_entries, task_id="sample_entries")()
    samples = BaselineStartRunOperator.partial(
        task_id="sample",
        aws_conn_id=AWS_CONN_ID,
        poll_interval=POLL_SECONDS,
        map_index_template="{{ task.request['name'] }}",
        **retry,
    ).expand(request=entries)
    qc = BaselineStartRunOperator(
        task_id="qc", aws_conn_id=AWS_CONN_ID, poll_interval=POLL_SECONDS, request=task(qc_request)(), **retry
    )
    samples >> qc >> task(notify, task_id="notify", **retry)()
