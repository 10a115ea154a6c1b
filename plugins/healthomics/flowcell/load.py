"""The flowcell DAG's first tasks: read and validate the manifest, plan the submission, and hand
one entry per sample to the mapped sample tasks."""

from __future__ import annotations

import json
import logging
from typing import Any

from airflow.providers.amazon.aws.hooks.s3 import S3Hook
from airflow.providers.common.compat.sdk import AirflowFailException
from airflow.sdk import Variable
from botocore.exceptions import ClientError

from healthomics.flowcell.checks import check_inputs, check_workflows
from healthomics.flowcell.plan import (
    BATCH,
    PER_SAMPLE,
    batch_groups,
    pipeline_inputs,
    sample_entries,
    select_samples,
    slim_entries,
    split_reuse,
    submission_problems,
)
from healthomics.flowcell.task_ids import PIPELINE_XCOM, PROBLEMS_XCOM, START_REQUESTS_XCOM, stage_inputs_xcom
from healthomics.hooks.omics import HealthOmicsHook
from healthomics.manifest import FlowcellManifest, ManifestError, ManifestOptions, parse_manifest
from healthomics.manifest.model import MAX_MANIFEST_BYTES, Problem
from healthomics.settings import AWS_CONN_ID, PIPELINE_DAG_ID, VAR_ROLE_ARN, VAR_SNS_TOPIC, allowed_output_prefixes
from healthomics.utils.idempotency import TAG_DAG_RUN_ID, provenance_tags
from healthomics.utils.s3 import InvalidS3UriError, parse_s3_uri
from healthomics.utils.text import cut

log = logging.getLogger(__name__)
# Problems of an invalid manifest the report carries (each at most 500 characters).
MAX_REPORTED_PROBLEMS = 1000


def read_manifest(params: dict[str, Any], aws_conn_id: str | None) -> tuple[bytes | str | dict[str, Any], str | None]:
    """The manifest a run names (``manifest_uri`` or inline ``manifest``) and where it came from."""
    if params.get("manifest_uri"):
        uri = params["manifest_uri"]
        try:
            location = parse_s3_uri(uri, need_key=True)
        except InvalidS3UriError as err:
            raise AirflowFailException(f"manifest_uri: {err}") from err
        request: dict[str, Any] = {"Bucket": location.bucket, "Key": location.key}
        if params.get("manifest_etag"):
            request["IfMatch"] = f'"{params["manifest_etag"]}"'
        s3: Any = S3Hook(aws_conn_id=aws_conn_id).get_conn()
        try:
            response = s3.get_object(**request)
        except ClientError as err:
            code = err.response.get("Error", {}).get("Code", "")
            if code in ("PreconditionFailed", "412"):
                raise AirflowFailException(
                    f"Manifest {uri} was replaced since this run was started for ETag {params['manifest_etag']}; "
                    "the new version has a run of its own"
                ) from err
            if code in ("NoSuchKey", "404", "NoSuchBucket", "AccessDenied", "403"):
                raise AirflowFailException(f"Cannot read manifest {uri}: {err}") from err
            raise  # throttling, 5xx: the task's retries
        size = int(response.get("ContentLength") or 0)
        if size > MAX_MANIFEST_BYTES:
            response["Body"].close()
            raise AirflowFailException(
                f"Manifest {cut(uri, 300)} is {size:,} bytes; at most {MAX_MANIFEST_BYTES:,} are read"
            )
        body: bytes = response["Body"].read()
        return body, uri
    if params.get("manifest") is not None:
        return params["manifest"], None
    raise AirflowFailException("Give a manifest: the manifest_uri parameter (s3://...) or an inline manifest")


def manifest_options(params: dict[str, Any]) -> ManifestOptions:
    """What a run's params (and the deployment's Variables) add to the manifest."""
    return ManifestOptions(
        flowcell_id=params.get("flowcell_id"),
        workflow_id=params.get("workflow_id"),
        role_arn=params.get("role_arn") or Variable.get(VAR_ROLE_ARN, default=None),
        output_uri=params.get("output_uri"),
        parameter_map=params.get("parameter_map"),
        qc_min_completed_fraction=params.get("qc_min_completed_fraction"),
        sns_topic_arn=params.get("sns_topic_arn"),
        report_uri=params.get("report_uri"),
        allowed_output_prefixes=allowed_output_prefixes(),
        run_defaults={"workflow_version_name": params["workflow_version_name"]}
        if params.get("workflow_version_name")
        else {},
    )


def stage_problem(manifest: FlowcellManifest, stage_slots: int | None) -> Problem | None:
    """Why this DAG cannot run the manifest's pipeline, if it cannot: it has ``stage_slots`` stage
    tasks per sample (None: one task per sample, no stages)."""
    if not manifest.stages or (stage_slots is not None and len(manifest.stages) <= stage_slots):
        return None
    chain = " -> ".join(stage.name for stage in manifest.stages)
    if stage_slots is None:
        message = (
            f"a pipeline of stages ({chain}): this DAG runs one workflow per sample; run it with {PIPELINE_DAG_ID}"
        )
    else:
        message = (
            f"{len(manifest.stages)} stages ({chain}); this deployment runs at most {stage_slots} per sample "
            "([healthomics] pipeline_stages)"
        )
    return Problem(location="manifest", field="stages", message=message)


def load_manifest(stage_slots: int | None = None, **context: Any) -> dict[str, Any]:
    """Read and validate the whole manifest (and its workflows and inputs); return the plan.

    :param stage_slots: the stage tasks per sample of a pipeline DAG; None for one task per sample.
    """
    params = context["params"]
    aws_conn_id = AWS_CONN_ID
    try:
        raw, source = read_manifest(params, aws_conn_id)
    except AirflowFailException as err:  # unreadable for good: the report says why
        context["ti"].xcom_push(key=PROBLEMS_XCOM, value=[cut(str(err))])
        raise
    options = manifest_options(params)
    dag_id = context["ti"].dag_id
    reuse_runs = dict(params.get("reuse_runs") or {})
    rerun_key = params.get("rerun_key")
    mode = params.get("submission_mode", BATCH)
    try:
        manifest = select_samples(parse_manifest(raw, options, source), params.get("samples"), reuse_runs)
        reuse, reuse_later = split_reuse(manifest, reuse_runs)
        if mode == BATCH and manifest.first_run_defaults().workflow_type == "READY2RUN":
            log.warning("Ready2Run workflows cannot run in a batch: submitting one run per sample")
            mode = PER_SAMPLE
        batches = batch_groups(dag_id, manifest, exclude=set(reuse), rerun_key=rerun_key) if mode == BATCH else []
        # What the service would refuse is found here, before a paid run starts, not by the service.
        problems = submission_problems(dag_id, manifest, batches, rerun_key)
        refused = stage_problem(manifest, stage_slots)  # running only some stages would drop the others
        problems += [refused] if refused else []
        if problems:
            raise ManifestError(problems, source)
        problems = check_workflows(manifest, HealthOmicsHook(aws_conn_id=aws_conn_id))
        if params.get("check_inputs", True):
            problems += check_inputs(manifest, S3Hook(aws_conn_id=aws_conn_id))
        if problems:
            raise ManifestError(problems, source)
    except ManifestError as err:
        # Invalid input is final: no retry, nothing submitted. The problems stay for the report.
        context["ti"].xcom_push(key=PROBLEMS_XCOM, value=listed_problems(err))
        raise AirflowFailException(str(err)) from err
    if not manifest.notification.sns_topic_arn:
        manifest.notification.sns_topic_arn = Variable.get(VAR_SNS_TOPIC, default=None)
    plan = {
        "flowcell_id": manifest.flowcell_id,
        "mode": mode,
        "dry_run": bool(params.get("dry_run")),
        "manifest": manifest.model_dump(mode="json"),
        "batches": batches,
        "sample_ids": [s.sample_id for s in manifest.samples],
        "reuse_runs": reuse,
        "reuse_stage_runs": reuse_later,
        "rerun_key": rerun_key,
        "stage_slots": stage_slots,
    }
    log.info(
        "Flowcell %s: %d samples, %s submission%s, workflows %s%s",
        manifest.flowcell_id,
        len(manifest.samples),
        mode,
        f" in {len(batches)} batch(es)" if batches else "",
        ", ".join(manifest.workflows()),
        " (DRY RUN: nothing will be submitted)" if plan["dry_run"] else "",
    )
    for sample in manifest.samples:
        if sample.sample_id in reuse:
            log.info("  %s -> reuses run %s", sample.sample_id, reuse[sample.sample_id])
            continue
        log.info(
            "  %s -> workflow %s, outputs %s, parameters %s",
            sample.sample_id,
            sample.workflow_id,
            sample.output_uri,
            cut(json.dumps(sample.parameters), 1000),
        )
    return plan


def listed_problems(err: ManifestError) -> list[str]:
    """The problems kept for the report (XCom): each one short, at most MAX_REPORTED_PROBLEMS of them."""
    listed = [str(p) for p in err.problems[:MAX_REPORTED_PROBLEMS]]
    if len(err.problems) > MAX_REPORTED_PROBLEMS:
        listed.append(f"... and {len(err.problems) - MAX_REPORTED_PROBLEMS} more (the load_manifest log lists them)")
    return listed


def proceed(plan: dict[str, Any]) -> bool:
    """False on a dry run: everything that would submit is skipped."""
    return not plan["dry_run"]


def batches_of(plan: dict[str, Any]) -> list[dict[str, Any]]:
    """The run batches to submit (empty for one run per sample, or a dry run)."""
    return [] if plan["dry_run"] else list(plan["batches"])


def entries_for_samples(plan: dict[str, Any], submitted: Any, **context: Any) -> list[dict[str, Any]]:
    """One entry per sample for the mapped sample tasks (joined with the batch results).

    Returned slim (see :func:`~healthomics.flowcell.plan.slim_entries`); the requests of samples
    that follow a run go to XCom ``start_requests``, read only by a task that starts another run.
    """
    manifest = FlowcellManifest(**plan["manifest"])
    results = [r for r in (submitted or []) if r]
    entries = sample_entries(
        context["ti"].dag_id, manifest, results, reuse=plan.get("reuse_runs"), rerun_key=plan.get("rerun_key")
    )
    slim, start_requests = slim_entries(entries)
    context["ti"].xcom_push(key=START_REQUESTS_XCOM, value=start_requests)
    if manifest.stages:
        # Every stage task of a sample reads its entry: the stage names name the tasks in the UI.
        names = [stage.name for stage in manifest.stages]
        slim = [{**entry, "stages": names} for entry in slim]
        this_dag_run = provenance_tags(context)[TAG_DAG_RUN_ID]
        started_here = {s for r in results if r.get("dagRunId") == this_dag_run for s in r.get("runs", {})}
        pipeline, stage_inputs = pipeline_inputs(
            context["ti"].dag_id, manifest, plan.get("rerun_key"), plan.get("reuse_stage_runs"), started_here
        )
        context["ti"].xcom_push(key=PIPELINE_XCOM, value=pipeline)
        parts: dict[str, dict[str, Any]] = {}
        for map_index, entry in enumerate(slim):
            sample_id = entry["sample_id"]
            parts.setdefault(stage_inputs_xcom(map_index), {})[sample_id] = stage_inputs[sample_id]
        for key, part in parts.items():
            context["ti"].xcom_push(key=key, value=part)
    return slim
