"""The flowcell DAG's ``notify`` task: the report as JSON and text in S3, and its text through SNS."""

from __future__ import annotations

import json
import logging
from typing import Any

from airflow.providers.amazon.aws.hooks.s3 import S3Hook
from airflow.providers.amazon.aws.hooks.sns import SnsHook
from airflow.sdk import Asset, AssetAlias, Variable

from healthomics.cost.prices import PriceError
from healthomics.flowcell.costs import flowcell_prices, pre_run_estimate, price_table_of, run_cost_entry
from healthomics.flowcell.qc import plan_of, qc_outcome, sample_outcomes
from healthomics.flowcell.report import build_report, invalid_manifest_report, render_text
from healthomics.flowcell.task_ids import COSTS_TASK, LOAD_TASK, OUTPUTS_ASSET_ALIAS, PROBLEMS_XCOM
from healthomics.flowcell.timeline import render_html, render_png
from healthomics.hooks.omics import HealthOmicsHook
from healthomics.links.omics import s3_object_link
from healthomics.manifest import FlowcellManifest, declared_flowcell_id
from healthomics.manifest.parse import FLOWCELL_ID, SNS_TOPIC_ARN
from healthomics.settings import AWS_CONN_ID, VAR_SNS_TOPIC, allowed_output_prefixes
from healthomics.utils.idempotency import fingerprint
from healthomics.utils.s3 import InvalidS3UriError, parse_s3_uri, within_any
from healthomics.utils.text import cut, one_line, safe_id_part, shown
from healthomics.utils.xcom import xcom_document

log = logging.getLogger(__name__)
SNS_SUBJECT_MAX = 100
# SNS takes 256 KiB a message, attributes and subject included; the full report is in S3.
SNS_MESSAGE_MAX_BYTES = 256 * 1024 - 4096
REPORT_PAGE = "report.html"
TIMELINE_PICTURE = "timeline.png"


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
    timeline_png: bytes | None = None,
) -> dict[str, Any]:
    """Write ``report.json``, ``report.txt`` and ``report.html`` (with ``timeline.png`` when there is
    one) under ``report_uri``; publish the text to SNS once.

    Returns where things went. The S3 write comes first: it is the record of truth; an SNS
    failure is raised after it (so the task fails and can be retried without losing the report).
    A published notification leaves ``notification-<digest>.json`` beside the report (the digest
    of what the report says), so a retried task does not send the same notification twice (SNS
    topics do not deduplicate), while a report that changed (a sample cleared and run again)
    is published.
    """
    s3 = S3Hook(aws_conn_id=aws_conn_id, region_name=region_name)
    base = parse_s3_uri(report_uri, need_key=True)
    report_json, report_text = base.join("report.json"), base.join("report.txt")
    report = {**report, "report_uri": report_json.uri}
    text = render_text(report)
    s3.load_string(json.dumps(report, indent=2), key=report_json.key, bucket_name=base.bucket, replace=True)
    s3.load_string(text, key=report_text.key, bucket_name=base.bucket, replace=True)
    delivered: dict[str, Any] = {"report_json": report_json.uri, "report_text": report_text.uri}
    page = base.join(REPORT_PAGE)
    s3.load_string(render_html(report, text, timeline_png), key=page.key, bucket_name=base.bucket, replace=True)
    delivered["report_page"] = page.uri
    if timeline_png:
        picture = base.join(TIMELINE_PICTURE)
        s3.load_bytes(timeline_png, key=picture.key, bucket_name=base.bucket, replace=True)
        delivered["timeline"] = picture.uri
    if not sns_topic_arn:
        return delivered
    said = fingerprint({k: v for k, v in report.items() if k not in ("generated_at", "report_uri")})[:16]
    marker = base.join(f"notification-{said}.json")
    if s3.check_for_key(marker.key, bucket_name=base.bucket):
        sent = json.loads(s3.read_key(marker.key, bucket_name=base.bucket))
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
    s3.load_string(
        json.dumps({"sns_message_id": message_id, "topic": sns_topic_arn}), key=marker.key, bucket_name=base.bucket
    )
    log.info("Published the report of flowcell %s to %s", report["flowcell_id"], sns_topic_arn)
    return delivered


def _file_links(report_uri: str, timeline: bool, region: str, partition: str) -> dict[str, str]:
    """The S3 console pages of the report page and the timeline picture, for the notification."""
    base = parse_s3_uri(report_uri, need_key=True)
    links = {"page": s3_object_link(region, partition, base.join(REPORT_PAGE).uri)}
    if timeline:
        links["timeline"] = s3_object_link(region, partition, base.join(TIMELINE_PICTURE).uri)
    return links


def _qc_cost(hook: HealthOmicsHook, qc: dict[str, Any], costs: dict[str, Any]) -> dict[str, Any] | None:
    """The QC run's cost entry (it ended just before this task) at the prices the samples' runs
    were priced at; never raises for AWS errors."""
    if not qc.get("run_id"):
        return None
    prices = price_table_of(costs)
    if prices is None:  # a costs result from before the table was carried along
        try:
            prices = flowcell_prices(hook)
        except PriceError as err:
            return {"run_id": qc["run_id"], "error": str(err)}
    return {"run_id": qc["run_id"], **run_cost_entry(hook, qc["run_id"], prices)}


def _report_uri(plan: dict[str, Any], context: dict[str, Any]) -> str:
    manifest = plan["manifest"]
    configured = manifest["notification"].get("report_uri")
    base = configured or f"{manifest['samples'][0]['output_uri'].rstrip('/')}/_reports/{plan['flowcell_id']}"
    return _run_folder(base, context)


def _run_folder(base: str, context: dict[str, Any]) -> str:
    """The folder of this DAG run's report under ``base`` (its run id as one key segment)."""
    return parse_s3_uri(base).join(safe_id_part(context["ti"].run_id, 250)).uri


def notify(**context: Any) -> dict[str, Any]:
    """Always runs: write the report to S3 and publish it to SNS (also for an invalid manifest)."""
    hook = HealthOmicsHook(aws_conn_id=AWS_CONN_ID)  # for the Region and partition of the links
    plan = plan_of(context)
    if plan is None:
        return _notify_invalid_manifest(context)
    qc = qc_outcome(plan, context)
    costs = xcom_document(context["ti"].xcom_pull(task_ids=COSTS_TASK))
    report = build_report(
        plan=plan,
        dag_id=context["ti"].dag_id,
        dag_run_id=context["ti"].run_id,
        outcomes=sample_outcomes(plan, context),
        qc=qc,
        region=hook.conn_region_name,
        partition=hook.conn_partition,
        costs=dict(costs) if costs else None,
        qc_cost=_qc_cost(hook, qc, dict(costs)) if costs and "error" not in costs else None,
    )
    if plan["dry_run"]:  # what it would cost, from earlier runs of the same workflows
        report["estimate"] = pre_run_estimate(hook, FlowcellManifest(**plan["manifest"]))
    report_uri = _report_uri(plan, context)
    png = None if plan["dry_run"] else render_png(report)
    report["files"] = _file_links(report_uri, png is not None, hook.conn_region_name, hook.conn_partition)
    delivered = publish_report(
        report,
        report_uri=report_uri,
        sns_topic_arn=plan["manifest"]["notification"].get("sns_topic_arn"),
        aws_conn_id=AWS_CONN_ID,
        timeline_png=png,
    )
    log.info("Flowcell report:\n%s", render_text({**report, "report_uri": delivered["report_json"]}))
    if not plan["dry_run"]:
        emit_output_assets(context, plan, report["status"], delivered["report_json"])
    return {"status": report["status"], **delivered}


def emit_output_assets(context: dict[str, Any], plan: dict[str, Any], status: str, report_uri: str) -> None:
    """An asset event per output location of the flowcell, through the outputs asset alias: a DAG
    scheduled on the alias runs after every flowcell, and reads which one and how it went from
    the event's extra."""
    extra = {
        "flowcell_id": plan["flowcell_id"],
        "status": status,
        "report_uri": report_uri,
        "dag_id": context["ti"].dag_id,
        "dag_run_id": context["ti"].run_id,
    }
    # Airflow keeps an s3 asset URI without its trailing slash.
    outputs = sorted({str(s["output_uri"]).rstrip("/") for s in plan["manifest"]["samples"]})
    for uri in outputs:
        context["outlet_events"][AssetAlias(OUTPUTS_ASSET_ALIAS)].add(Asset(uri=uri), extra=extra)
    log.info("Asset events for %s through %s: %s", plan["flowcell_id"], OUTPUTS_ASSET_ALIAS, ", ".join(outputs))


def _invalid_report_base(params: dict[str, Any], problems: list[str]) -> str | None:
    """Where the report of a refused manifest goes: the ``report_uri`` param if it is a usable,
    allowed location, else next to the manifest (the lab's own landing place), else nowhere."""
    allowed = [parse_s3_uri(p) for p in allowed_output_prefixes()]
    requested = params.get("report_uri")
    if requested:
        try:
            location = parse_s3_uri(requested)
            if allowed and not within_any(location, allowed):
                raise InvalidS3UriError(f"{shown(requested)} is outside the allowed output prefixes")
            return location.uri
        except InvalidS3UriError as err:
            problems.append(f"params, report_uri: {err}; the report is written next to the manifest instead")
    try:
        manifest = parse_s3_uri(params.get("manifest_uri"), need_key=True)
    except InvalidS3UriError:
        return None
    return manifest.parent().join("_reports").uri


def _notify_invalid_manifest(context: dict[str, Any]) -> dict[str, Any]:
    params = context["params"]
    problems = list(
        context["ti"].xcom_pull(task_ids=LOAD_TASK, key=PROBLEMS_XCOM)
        or ["the manifest could not be read (see the load_manifest task log)"]
    )
    manifest_uri = params.get("manifest_uri")
    # The flowcell id may be what made the manifest invalid: only a valid one names the report.
    named = params.get("flowcell_id") or declared_flowcell_id(b"", manifest_uri) or ""
    flowcell_id = named if FLOWCELL_ID.fullmatch(named) else "unnamed-flowcell"
    base = _invalid_report_base(params, problems)
    report = invalid_manifest_report(
        flowcell_id=flowcell_id,
        manifest_uri=cut(manifest_uri, 1100) if manifest_uri else None,
        problems=problems,
        dag_id=context["ti"].dag_id,
        dag_run_id=context["ti"].run_id,
    )
    topic = params.get("sns_topic_arn") or Variable.get(VAR_SNS_TOPIC, default=None)
    if topic and not SNS_TOPIC_ARN.fullmatch(str(topic)):
        log.warning("Not an SNS topic ARN (%s); the report is not published", shown(topic))
        topic = None
    if base is None:
        log.info("Invalid manifest report (nowhere to write it):\n%s", render_text(report))
        return {"status": report["status"]}
    delivered = publish_report(
        report, report_uri=_run_folder(base, context), sns_topic_arn=topic, aws_conn_id=AWS_CONN_ID
    )
    return {"status": report["status"], **delivered}
