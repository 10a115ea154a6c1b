"""Deliver a flowcell report: JSON and text to S3, and the text through SNS."""

from __future__ import annotations

import json
import logging
from typing import Any

from airflow.providers.amazon.aws.hooks.s3 import S3Hook
from airflow.providers.amazon.aws.hooks.sns import SnsHook

from healthomics.flowcell.report import render_text
from healthomics.utils.idempotency import fingerprint
from healthomics.utils.text import one_line

log = logging.getLogger(__name__)
SNS_SUBJECT_MAX = 100
# SNS takes 256 KiB a message, attributes and subject included; the full report is in S3.
SNS_MESSAGE_MAX_BYTES = 256 * 1024 - 4096


def _fits(text: str) -> bool:
    return len(text.encode()) <= SNS_MESSAGE_MAX_BYTES


def sns_text(report: dict[str, Any], text: str | None = None) -> str:
    """The report's text as SNS can carry it (it refuses a larger message on every try).

    The whole text if it fits; else the samples that did not complete (the ones someone must
    look at) with the COMPLETED ones counted; else as many lines as fit. Whatever is left out
    is said, with where the full report is.

    :param text: the report's whole text, if it is already rendered.
    """
    text = text if text is not None else render_text(report)
    if _fits(text):
        return text
    not_completed = [s for s in report["samples"] if s["status"] != "COMPLETED"]
    omitted = len(report["samples"]) - len(not_completed)
    text = render_text({**report, "samples": not_completed})
    note = f"({omitted} COMPLETED samples are not listed here; the full report lists every sample.)\n"
    if _fits(text + note):
        return text + note
    lines, kept, size = text.splitlines(keepends=True), [], 0
    budget = SNS_MESSAGE_MAX_BYTES - 1024
    for line in lines:
        size += len(line.encode())
        if size > budget:
            break
        kept.append(line)
    tail = f"\n... {len(lines) - len(kept)} more lines are in the full report: {report.get('report_uri') or 'in S3'}\n"
    return "".join(kept) + tail


def publish_report(
    report: dict[str, Any],
    *,
    report_uri: str,
    sns_topic_arn: str | None,
    aws_conn_id: str | None,
    region_name: str | None = None,
) -> dict[str, Any]:
    """Write ``report.json`` and ``report.txt`` under ``report_uri``; publish the text to SNS once.

    Returns where things went. The S3 write comes first: it is the record of truth; an SNS
    failure is raised after it (so the task fails and can be retried without losing the report).
    A published notification leaves ``notification-<digest>.json`` beside the report (the digest
    of what the report says), so a retried task does not send the same notification twice (SNS
    topics do not deduplicate), while a report that changed (a sample cleared and run again)
    is published.
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
    if not sns_topic_arn:
        return delivered
    said = fingerprint({k: v for k, v in report.items() if k not in ("generated_at", "report_uri")})[:16]
    bucket, marker = S3Hook.parse_s3_url(f"{base}/notification-{said}.json")
    if s3.check_for_key(marker, bucket_name=bucket):
        sent = json.loads(s3.read_key(marker, bucket_name=bucket))
        log.info("The report of flowcell %s was already published (%s)", report["flowcell_id"], sent)
        return {**delivered, "sns_message_id": sent.get("sns_message_id"), "already_published": True}
    # A subject is printable ASCII on one line (SNS refuses anything else).
    subject = one_line(f"[{report['status']}] flowcell {report['flowcell_id']}", SNS_SUBJECT_MAX)
    message_id = SnsHook(aws_conn_id=aws_conn_id, region_name=region_name).publish_to_target(
        target_arn=sns_topic_arn,
        message=sns_text(report),
        subject=subject,
        message_attributes={"flowcell": one_line(report["flowcell_id"], 128), "status": report["status"]},
    )
    delivered["sns_message_id"] = message_id
    s3.load_string(json.dumps({"sns_message_id": message_id, "topic": sns_topic_arn}), key=marker, bucket_name=bucket)
    log.info("Published the report of flowcell %s to %s", report["flowcell_id"], sns_topic_arn)
    return delivered
