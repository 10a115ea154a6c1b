"""Deliver a flowcell report: JSON and text to S3, and the text through SNS."""

from __future__ import annotations

import json
import logging
from typing import Any

from airflow.providers.amazon.aws.hooks.s3 import S3Hook
from airflow.providers.amazon.aws.hooks.sns import SnsHook

from healthomics.flowcell.report import render_text

log = logging.getLogger(__name__)
SNS_SUBJECT_MAX = 100


def publish_report(
    report: dict[str, Any],
    *,
    report_uri: str,
    sns_topic_arn: str | None,
    aws_conn_id: str | None,
    region_name: str | None = None,
) -> dict[str, Any]:
    """Write ``report.json`` and ``report.txt`` under ``report_uri``; publish the text to SNS.

    Returns where things went. The S3 write comes first: it is the record of truth; an SNS
    failure is raised after it (so the task fails and can be retried without losing the report).
    """
    s3 = S3Hook(aws_conn_id=aws_conn_id, region_name=region_name)
    base = report_uri.rstrip("/")
    report = {**report, "report_uri": f"{base}/report.json"}
    text = render_text(report)
    bucket, key = S3Hook.parse_s3_url(f"{base}/report.json")
    s3.load_string(json.dumps(report, indent=2), key=key, bucket_name=bucket, replace=True)
    bucket, key = S3Hook.parse_s3_url(f"{base}/report.txt")
    s3.load_string(text, key=key, bucket_name=bucket, replace=True)
    delivered: dict[str, Any] = {"report_json": f"{base}/report.json", "report_text": f"{base}/report.txt"}
    if sns_topic_arn:
        subject = f"[{report['status']}] flowcell {report['flowcell_id']}"[:SNS_SUBJECT_MAX]
        message_id = SnsHook(aws_conn_id=aws_conn_id, region_name=region_name).publish_to_target(
            target_arn=sns_topic_arn,
            message=text,
            subject=subject,
            message_attributes={"flowcell": report["flowcell_id"], "status": report["status"]},
        )
        delivered["sns_message_id"] = message_id
        log.info("Published the report of flowcell %s to %s", report["flowcell_id"], sns_topic_arn)
    return delivered
