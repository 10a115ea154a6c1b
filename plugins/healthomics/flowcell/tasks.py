"""The Python callables and Params of the ``healthomics_flowcell`` DAG.

The DAG file wires these together; each is a plain function of the task context, so the
logic is tested here, not in the DAG file.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
from typing import Any

from airflow.providers.amazon.aws.hooks.s3 import S3Hook
from airflow.providers.common.compat.sdk import AirflowFailException, AirflowSkipException
from airflow.sdk import Param, Variable
from botocore.exceptions import ClientError

from healthomics.flowcell.outcomes import SampleOutcome, collect_outcomes, evaluate_policy
from healthomics.flowcell.plan import (
    BATCH,
    PER_SAMPLE,
    SUBMISSION_MODES,
    batch_groups,
    qc_run,
    qc_samples_uri,
    sample_entries,
    select_samples,
    slim_entries,
    submission_problems,
)
from healthomics.flowcell.report import build_report, invalid_manifest_report, render_text
from healthomics.hooks.omics import HealthOmicsHook
from healthomics.manifest import (
    FlowcellManifest,
    ManifestError,
    ManifestOptions,
    declared_flowcell_id,
    parse_manifest,
)
from healthomics.manifest.checks import check_inputs, check_workflows
from healthomics.manifest.model import MAX_MANIFEST_BYTES
from healthomics.manifest.parse import FLOWCELL_ID, SNS_TOPIC_ARN
from healthomics.notifications.report import publish_report
from healthomics.operators.sample import FAILURE_XCOM
from healthomics.utils.idempotency import fingerprint
from healthomics.utils.s3 import InvalidS3UriError, parse_s3_uri, within_any
from healthomics.utils.text import cut, shown

log = logging.getLogger(__name__)

# The Airflow AWS connection every task uses (its extra may route omics to a local endpoint).
AWS_CONN_ID = "aws_default"
# default_args of every DAG of the package. Each task is safe to run again (idempotent by
# construction), so a lost worker, a restarted component or S3 down for a minute costs a
# retry, not the DAG run; invalid input fails at once (AirflowFailException) all the same.
TASK_DEFAULTS: dict[str, Any] = {"retries": 2, "retry_delay": dt.timedelta(seconds=30)}
ENTRIES_TASK = "sample_entries"
START_REQUESTS_XCOM = "start_requests"
SAMPLE_TASK = "sample"
QC_GATE_TASK = "qc_gate"
QC_TASK = "qc"
POLICY_XCOM = "policy"
PROBLEMS_XCOM = "problems"
# Problems of an invalid manifest the report carries (each at most 500 characters).
MAX_REPORTED_PROBLEMS = 1000
LOAD_TASK = "load_manifest"

# Deployment settings (Airflow Variables), so nothing account-specific lives in code.
VAR_ROLE_ARN = "healthomics_run_role_arn"
VAR_SNS_TOPIC = "healthomics_sns_topic_arn"
VAR_ALLOWED_OUTPUTS = "healthomics_allowed_output_prefixes"
VAR_WAKE_QUEUE = "healthomics_run_wake_queue_url"  # optional: run events that end waits early
# Rendered per task: the wake queue if the deployment has one, else nothing (poll only).
WAKE_QUEUE_URL = "{{ var.value.get('" + VAR_WAKE_QUEUE + "', '') }}"

PARAMS: dict[str, Param] = {
    "manifest_uri": Param(
        None,
        type=["null", "string"],
        pattern=r"^s3://",
        title="Manifest in S3",
        description="s3:// URI of the flowcell manifest: reference JSON, native JSON or a CSV samplesheet.",
    ),
    "manifest_etag": Param(
        None,
        type=["null", "string"],
        title="Manifest version (ETag)",
        description="Read only this version of manifest_uri (set by the S3 intake and the backfill).",
    ),
    "manifest": Param(
        None,
        type=["null", "object", "string"],
        title="Inline manifest",
        description="Or paste the manifest itself (JSON object, or CSV text). Ignored if a URI is given.",
    ),
    "flowcell_id": Param(
        None,
        type=["null", "string"],
        title="Flowcell id",
        description="Default: from the manifest, or the manifest's file name.",
    ),
    "submission_mode": Param(
        BATCH,
        enum=list(SUBMISSION_MODES),
        title="Submission",
        description="batch: one StartRunBatch per workflow. per_sample: one StartRun per sample.",
    ),
    "workflow_id": Param(
        None,
        type=["null", "string"],
        title="Workflow id",
        description="Overrides the manifest's workflow (required for a samplesheet).",
    ),
    "role_arn": Param(
        None,
        type=["null", "string"],
        title="Run role ARN",
        description=f"Default: the manifest's, else the Airflow Variable {VAR_ROLE_ARN}.",
    ),
    "output_uri": Param(
        None,
        type=["null", "string"],
        title="Output location",
        description="s3:// prefix for run outputs (required for a samplesheet).",
    ),
    "parameter_map": Param(
        None,
        type=["null", "object"],
        title="Workflow parameters",
        description='How manifest fields become workflow parameters, e.g. {"reads": "{fastq_1}", '
        '"id": "{sample_id}"}. Default per format (see docs/flowcell.md).',
    ),
    "qc_min_completed_fraction": Param(
        None,
        type=["null", "number"],
        minimum=0,
        maximum=1,
        title="QC policy",
        description="Minimum fraction of COMPLETED samples for the QC run. Default: the manifest's, else 1 (all).",
    ),
    "sns_topic_arn": Param(
        None,
        type=["null", "string"],
        title="Notify (SNS topic ARN)",
        description=f"Default: the manifest's, else the Airflow Variable {VAR_SNS_TOPIC}.",
    ),
    "report_uri": Param(
        None,
        type=["null", "string"],
        title="Report location",
        description="s3:// prefix for report.json/report.txt. Default: next to the outputs.",
    ),
    "workflow_version_name": Param(
        None,
        type=["null", "string"],
        title="Workflow version",
        description="Run this version of the sample workflows (default: the manifest's, else the workflow's default).",
    ),
    "samples": Param(
        None,
        type=["null", "array"],
        items={"type": "string"},
        title="Only these samples",
        description="Run a subset of the manifest's samples (default: all).",
    ),
    "reuse_runs": Param(
        None,
        type=["null", "object"],
        title="Reuse runs",
        description="Sample id -> existing run id to take as that sample's run instead of submitting, e.g. "
        '{"NA12878": "1234567"} (the backfill DAG fills this in).',
    ),
    "rerun_key": Param(
        None,
        type=["null", "string"],
        title="Rerun key",
        description="Submissions under another key are new runs; the same key finds the same runs again "
        "(the backfill DAG sets it). Default: runs of this manifest are shared by every DAG run of it.",
    ),
    "check_inputs": Param(True, type="boolean", title="Check that every input exists before submitting"),
    "dry_run": Param(
        False, type="boolean", title="Dry run", description="Validate and show what would be submitted; submit nothing."
    ),
}


def _omics(context: dict[str, Any]) -> HealthOmicsHook:
    return HealthOmicsHook(aws_conn_id=AWS_CONN_ID)


def allowed_output_prefixes() -> list[str]:
    """The deployment's allowed output prefixes (Variable, a JSON list; empty: no restriction)."""
    return list(json.loads(Variable.get(VAR_ALLOWED_OUTPUTS, default="[]")))


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


def load_manifest(**context: Any) -> dict[str, Any]:
    """Read and validate the whole manifest (and its workflows and inputs); return the plan."""
    params = context["params"]
    aws_conn_id = AWS_CONN_ID
    try:
        raw, source = read_manifest(params, aws_conn_id)
    except AirflowFailException as err:  # unreadable for good: the report says why
        context["ti"].xcom_push(key=PROBLEMS_XCOM, value=[cut(str(err))])
        raise
    options = manifest_options(params)
    dag_id = context["ti"].dag_id
    reuse = dict(params.get("reuse_runs") or {})
    rerun_key = params.get("rerun_key")
    mode = params.get("submission_mode", BATCH)
    try:
        manifest = select_samples(parse_manifest(raw, options, source), params.get("samples"), params.get("reuse_runs"))
        if mode == BATCH and manifest.defaults.workflow_type == "READY2RUN":
            log.warning("Ready2Run workflows cannot run in a batch: submitting one run per sample")
            mode = PER_SAMPLE
        batches = batch_groups(dag_id, manifest, exclude=set(reuse), rerun_key=rerun_key) if mode == BATCH else []
        # What the service would refuse is found here, before a paid run starts, not by the service.
        problems = submission_problems(dag_id, manifest, batches, rerun_key)
        if problems:
            raise ManifestError(problems, source)
        problems = check_workflows(manifest, _omics(context))
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
        "rerun_key": rerun_key,
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
    return slim


# -- after the samples -----------------------------------------------------------------------


def is_last_try(context: dict[str, Any]) -> bool:
    """No retry follows this try of the task (Airflow retries while ``try_number <= max_tries``)."""
    ti = context["ti"]
    return int(ti.try_number) > int(getattr(ti, "max_tries", 0) or 0)


def task_states(context: dict[str, Any], task_ids: list[str]) -> dict[str, str | None]:
    ti = context["ti"]
    states = ti.get_task_states(dag_id=ti.dag_id, task_ids=task_ids, run_ids=[ti.run_id])
    return dict(states.get(ti.run_id, {}))


def xcom_document(value: Any) -> Any:
    """An XCom value as the task pushed it.

    XComs that a trigger writes when it ends a task (``TaskSuccessEvent(xcoms=...)``) come back
    from Airflow 3.3 JSON-encoded twice: a string holding the document.
    """
    if isinstance(value, str) and value[:1] in "{[":
        try:
            return json.loads(value)
        except ValueError:
            return value
    return value


def _pull_mapped(context: dict[str, Any], key: str) -> list[dict[str, Any]]:
    """Every value of ``key`` the mapped sample tasks left, in one pull (each carries its sample id).

    Without ``map_indexes`` Airflow returns what exists; a single value comes back bare.
    """
    pulled = context["ti"].xcom_pull(task_ids=SAMPLE_TASK, key=key)
    if pulled is None:
        return []
    values = [pulled] if isinstance(pulled, dict | str) else list(pulled)
    documents = [xcom_document(v) for v in values]
    return [d for d in documents if isinstance(d, dict) and d.get("sample_id")]


def sample_outcomes(plan: dict[str, Any], context: dict[str, Any]) -> list[SampleOutcome]:
    """Each sample's outcome, read from the mapped sample tasks' states and XComs."""
    sample_ids = plan["sample_ids"]
    if plan["dry_run"]:
        return [SampleOutcome(s, "NOT_RUN", message="dry run") for s in sample_ids]
    results = {r["sample_id"]: r for r in _pull_mapped(context, "return_value")}
    failures = {f["sample_id"]: f for f in _pull_mapped(context, FAILURE_XCOM)}
    states = task_states(context, [SAMPLE_TASK])
    return collect_outcomes(
        sample_ids,
        [results.get(s) for s in sample_ids],
        [failures.get(s) for s in sample_ids],
        [states.get(f"{SAMPLE_TASK}_{i}") for i in range(len(sample_ids))],
    )


def _plan(context: dict[str, Any]) -> dict[str, Any] | None:
    """The plan load_manifest returned; None if the manifest was invalid or unreadable."""
    plan = xcom_document(context["ti"].xcom_pull(task_ids=LOAD_TASK))
    return dict(plan) if plan else None


def qc_gate(**context: Any) -> dict[str, Any]:
    """Run only after every sample finished: apply the QC policy and prepare the QC run."""
    plan = _plan(context)
    if plan is None:
        raise AirflowSkipException("no valid manifest")
    if plan["dry_run"]:
        raise AirflowSkipException("dry run")
    manifest = FlowcellManifest(**plan["manifest"])
    if manifest.qc is None:
        raise AirflowSkipException("the manifest configures no QC workflow")
    outcomes = sample_outcomes(plan, context)
    decision = evaluate_policy(outcomes, manifest.qc.policy)
    context["ti"].xcom_push(key=POLICY_XCOM, value=decision.explanation)
    if not decision.passed:
        raise AirflowFailException(f"QC policy not met: {decision.explanation}")
    log.info("QC policy met: %s", decision.explanation)
    completed = [
        {"sample_id": o.sample_id, "run_id": o.run_id, "run_uuid": o.uuid, "output_uri": o.run_output_uri}
        for o in outcomes
        if o.completed
    ]
    # The list can be far larger than the 50 KB a run's parameters may hold: it goes to S3
    # (content-addressed, so a repeated gate writes the same object) and the run gets its URI.
    digest = fingerprint(completed)[:16]
    samples_uri = qc_samples_uri(manifest, digest)
    s3 = S3Hook(aws_conn_id=AWS_CONN_ID)
    bucket, key = S3Hook.parse_s3_url(samples_uri)
    if not s3.check_for_key(key, bucket_name=bucket):
        s3.load_string(
            json.dumps({"flowcell_id": manifest.flowcell_id, "samples": completed}), key=key, bucket_name=bucket
        )
    return qc_run(context["ti"].dag_id, manifest, samples_uri, digest)


def qc_outcome(plan: dict[str, Any], context: dict[str, Any]) -> dict[str, Any]:
    """What happened to QC: COMPLETED, FAILED, POLICY_FAILED, NOT_CONFIGURED, NOT_RUN or SKIPPED."""
    if plan["dry_run"]:
        return {"status": "SKIPPED", "message": "dry run"}
    if plan["manifest"].get("qc") is None:
        return {"status": "NOT_CONFIGURED"}
    ti = context["ti"]
    states = task_states(context, [QC_GATE_TASK, QC_TASK])
    policy = ti.xcom_pull(task_ids=QC_GATE_TASK, key=POLICY_XCOM)
    if states.get(QC_GATE_TASK) == "failed":
        return {"status": "POLICY_FAILED", "message": policy or "the QC gate failed"}
    run = xcom_document(ti.xcom_pull(task_ids=QC_TASK)) or {}
    status = states.get(QC_TASK)
    if status == "success":
        return {
            "status": "COMPLETED",
            "run_id": run.get("id"),
            "run_output_uri": run.get("runOutputUri"),
            "message": policy,
        }
    if status == "failed":
        detail = ": ".join(p for p in (run.get("failureReason"), run.get("message") or run.get("statusMessage")) if p)
        return {"status": "FAILED", "run_id": run.get("id"), "message": detail or "the QC run failed"}
    return {"status": "NOT_RUN", "message": f"QC task {status or 'not started'}"}


def _report_uri(plan: dict[str, Any], context: dict[str, Any]) -> str:
    manifest = plan["manifest"]
    configured = manifest["notification"].get("report_uri")
    base = configured or f"{manifest['samples'][0]['output_uri'].rstrip('/')}/_reports/{plan['flowcell_id']}"
    return f"{base.rstrip('/')}/{_safe_run_id(context)}"


def _safe_run_id(context: dict[str, Any]) -> str:
    """The DAG run id as one S3 key segment."""
    return "".join(c if c.isascii() and (c.isalnum() or c in "-_.:") else "_" for c in context["ti"].run_id)


def notify(**context: Any) -> dict[str, Any]:
    """Always runs: write the report to S3 and publish it to SNS (also for an invalid manifest)."""
    hook = _omics(context)
    plan = _plan(context)
    if plan is None:
        return _notify_invalid_manifest(context)
    report = build_report(
        plan=plan,
        dag_id=context["ti"].dag_id,
        dag_run_id=context["ti"].run_id,
        outcomes=sample_outcomes(plan, context),
        qc=qc_outcome(plan, context),
        region=hook.conn_region_name,
        partition=hook.conn_partition,
    )
    delivered = publish_report(
        report,
        report_uri=_report_uri(plan, context),
        sns_topic_arn=plan["manifest"]["notification"].get("sns_topic_arn"),
        aws_conn_id=AWS_CONN_ID,
    )
    log.info("Flowcell report:\n%s", render_text({**report, "report_uri": delivered["report_json"]}))
    return {"status": report["status"], **delivered}


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
        report, report_uri=f"{base.rstrip('/')}/{_safe_run_id(context)}", sns_topic_arn=topic, aws_conn_id=AWS_CONN_ID
    )
    return {"status": report["status"], **delivered}


def flowcell_outcome(**context: Any) -> str:
    """The DAG run's verdict: fail unless every sample COMPLETED and QC passed (or is not configured)."""
    plan = _plan(context)
    if plan is None:
        raise AirflowFailException("The manifest is invalid; nothing was submitted (see load_manifest)")
    if plan["dry_run"]:
        return "DRY_RUN"
    outcomes = sample_outcomes(plan, context)
    qc = qc_outcome(plan, context)
    failed = [o for o in outcomes if not o.completed]
    if failed or qc["status"] not in ("COMPLETED", "NOT_CONFIGURED"):
        summary = ", ".join(f"{o.sample_id} {o.status}" for o in failed[:20])
        raise AirflowFailException(
            f"Flowcell {plan['flowcell_id']}: {len(failed)} of {len(outcomes)} samples did not complete"
            + (f" ({summary})" if summary else "")
            + f"; QC {qc['status']}"
        )
    return "SUCCESS"
