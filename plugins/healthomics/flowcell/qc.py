"""After the samples: each sample's outcome, the QC gate, what became of QC, and the DAG run's verdict."""

from __future__ import annotations

import json
import logging
from typing import Any

from airflow.providers.amazon.aws.hooks.s3 import S3Hook
from airflow.providers.common.compat.sdk import AirflowFailException, AirflowSkipException

from healthomics.exceptions import failure_detail
from healthomics.flowcell.outcomes import SampleOutcome, collect_outcomes, evaluate_policy, pipeline_outcomes
from healthomics.flowcell.plan import qc_run, qc_samples_uri
from healthomics.flowcell.task_ids import (
    FAILURE_XCOM,
    LOAD_TASK,
    POLICY_XCOM,
    QC_GATE_TASK,
    QC_TASK,
    SAMPLE_TASK,
    stage_task_id,
)
from healthomics.manifest import FlowcellManifest
from healthomics.settings import AWS_CONN_ID
from healthomics.utils.idempotency import fingerprint
from healthomics.utils.s3 import parse_s3_uri
from healthomics.utils.xcom import task_states, xcom_document

log = logging.getLogger(__name__)


def _pull_mapped(context: dict[str, Any], task_id: str, key: str) -> list[dict[str, Any]]:
    """Every value of ``key`` the mapped sample tasks ``task_id`` left, in one pull (each carries its
    sample id). Without ``map_indexes`` Airflow returns what exists; a single value comes back bare.
    """
    pulled = context["ti"].xcom_pull(task_ids=task_id, key=key)
    if pulled is None:
        return []
    values = [pulled] if isinstance(pulled, dict | str) else list(pulled)
    documents = [xcom_document(v) for v in values]
    return [d for d in documents if isinstance(d, dict) and d.get("sample_id")]


def sample_task_ids(plan: dict[str, Any]) -> list[str]:
    """The tasks a sample's runs are in: the one sample task, or (a pipeline DAG) one per stage."""
    if plan.get("stage_slots") is None:
        return [SAMPLE_TASK]
    return [stage_task_id(n) for n in range(1, max(1, len(plan["manifest"].get("stages") or [])) + 1)]


def task_outcomes(
    plan: dict[str, Any], context: dict[str, Any], task_id: str, states: dict[str, Any]
) -> list[SampleOutcome]:
    """Each sample's outcome in the mapped task ``task_id``, from its state and XComs."""
    sample_ids = plan["sample_ids"]
    results = {r["sample_id"]: r for r in _pull_mapped(context, task_id, "return_value")}
    failures = {f["sample_id"]: f for f in _pull_mapped(context, task_id, FAILURE_XCOM)}
    return collect_outcomes(
        sample_ids,
        [results.get(s) for s in sample_ids],
        [failures.get(s) for s in sample_ids],
        [states.get(f"{task_id}_{i}") for i in range(len(sample_ids))],
    )


def sample_outcomes(plan: dict[str, Any], context: dict[str, Any]) -> list[SampleOutcome]:
    """Each sample's outcome, read from the mapped sample tasks' states and XComs (over every stage
    of a pipeline: see :func:`~healthomics.flowcell.outcomes.pipeline_outcomes`)."""
    sample_ids = plan["sample_ids"]
    if plan["dry_run"]:
        return [SampleOutcome(s, "NOT_RUN", message="dry run") for s in sample_ids]
    task_ids = sample_task_ids(plan)
    states = task_states(context, task_ids)
    per_task = [task_outcomes(plan, context, task_id, states) for task_id in task_ids]
    if plan.get("stage_slots") is None:
        return per_task[0]
    names = [stage["name"] for stage in plan["manifest"].get("stages") or []] or [None]
    return pipeline_outcomes(names, per_task)


def plan_of(context: dict[str, Any]) -> dict[str, Any] | None:
    """The plan load_manifest returned; None if the manifest was invalid or unreadable."""
    plan = xcom_document(context["ti"].xcom_pull(task_ids=LOAD_TASK))
    return dict(plan) if plan else None


def qc_gate(**context: Any) -> dict[str, Any]:
    """Run only after every sample finished: apply the QC policy and prepare the QC run."""
    plan = plan_of(context)
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
        {
            "sample_id": o.sample_id,
            "run_id": o.run_id,
            "run_uuid": o.uuid,
            "output_uri": o.run_output_uri,
            # A pipeline's sample: its final stage above, every stage's run by name here.
            **(
                {"stages": {s.stage: {"run_id": s.run_id, "output_uri": s.run_output_uri} for s in o.stages}}
                if o.stages
                else {}
            ),
        }
        for o in outcomes
        if o.completed
    ]
    # The list can be far larger than the 50 KB a run's parameters may hold: it goes to S3
    # (content-addressed, so a repeated gate writes the same object) and the run gets its URI.
    digest = fingerprint(completed)[:16]
    samples_uri = qc_samples_uri(manifest, digest)
    s3 = S3Hook(aws_conn_id=AWS_CONN_ID)
    location = parse_s3_uri(samples_uri, need_key=True)
    bucket, key = location.bucket, location.key
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
            **_times(run),
        }
    if status == "failed":
        detail = failure_detail(run.get("failureReason"), run.get("message") or run.get("statusMessage"))
        return {"status": "FAILED", "run_id": run.get("id"), "message": detail or "the QC run failed", **_times(run)}
    return {"status": "NOT_RUN", "message": f"QC task {status or 'not started'}"}


def _times(run: dict[str, Any]) -> dict[str, Any]:
    """A run's submit, start and stop times (ISO), for the report's timeline."""
    names = {"creationTime": "creation_time", "startTime": "start_time", "stopTime": "stop_time"}
    return {name: run[key] for key, name in names.items() if run.get(key)}


def flowcell_outcome(**context: Any) -> str:
    """The DAG run's verdict: fail unless every sample COMPLETED and QC passed (or is not configured)."""
    plan = plan_of(context)
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
