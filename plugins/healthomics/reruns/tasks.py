"""The Python callables and Params of the ``healthomics_backfill`` DAG.

select the flowcells (ids, prefix, landing dates) -> plan each (one mapped task per flowcell:
which samples run again, which reuse a run; for a pipeline, from which stage) -> trigger
``healthomics_flowcell`` (``healthomics_pipeline`` for a pipeline) for the flowcells with work,
unless it is a dry run. Flowcell runs in flight are bounded by that
DAG's ``max_active_runs``; the rest wait queued.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import logging
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from airflow.providers.amazon.aws.hooks.s3 import S3Hook
from airflow.providers.common.compat.sdk import AirflowFailException
from airflow.sdk import Param, get_current_context

from healthomics.flowcell.load import manifest_options, read_manifest
from healthomics.flowcell.plan import (
    TAG_FLOWCELL,
    TAG_SAMPLE,
    TAG_STAGE,
    pipeline_inputs,
    run_request,
    stage_request,
)
from healthomics.hooks.omics import RUN_SUCCESS_STATES, HealthOmicsHook
from healthomics.intake.manifests import ManifestObject, list_manifests, read_version
from healthomics.intake.tasks import manifest_prefix
from healthomics.manifest import FlowcellManifest, ManifestError, Sample, declared_flowcell_id, parse_manifest
from healthomics.manifest.pipeline import StageResult, TemplateError
from healthomics.reruns.plan import (
    LEAVE,
    MISSING,
    RERUN_MODES,
    REUSE,
    RUN,
    SampleDecision,
    decide,
    flowcell_conf,
    pipeline_decision,
    same_request,
)
from healthomics.settings import (
    AWS_CONN_ID,
    FLOWCELL_DAG_ID,
    MANIFEST_PREFIX,
    PIPELINE_DAG_ID,
    allowed_output_prefixes,
)
from healthomics.utils.s3 import parse_s3_uri, read_run_outputs
from healthomics.utils.text import safe_id_part
from healthomics.utils.xcom import task_states

log = logging.getLogger(__name__)

PLAN_TASK = "plan_flowcell"
READ_THREADS = 8

PARAMS: dict[str, Param] = {
    "flowcell_ids": Param(
        [],
        type="array",
        items={"type": "string"},
        title="Flowcell ids",
        description="Re-run these flowcells (their newest manifest under the prefix).",
    ),
    "manifest_prefix": Param(
        None,
        type=["null", "string"],
        pattern=r"^s3://",
        title="Manifest prefix",
        description=f"s3://<bucket>/<prefix>/ holding the manifests. Default: the configuration option "
        f"[healthomics] {MANIFEST_PREFIX}. Given alone, it selects every flowcell under it.",
    ),
    "landed_from": Param(
        None,
        type=["null", "string"],
        format="date",
        title="Manifests landed from",
        description="First day (UTC) a selected manifest landed in S3.",
    ),
    "landed_to": Param(
        None,
        type=["null", "string"],
        format="date",
        title="Manifests landed to",
        description="Last day (UTC, inclusive) a selected manifest landed in S3.",
    ),
    "rerun": Param(
        MISSING,
        enum=list(RERUN_MODES),
        title="Run again",
        description="missing: samples without a COMPLETED run of this workflow version and these parameters. "
        "failed: samples whose "
        "latest run failed. all: every sample. Completed runs are reused otherwise; live runs always.",
    ),
    "workflow_version_name": Param(
        None,
        type=["null", "string"],
        title="Workflow version",
        description="Run (and compare against) this version of the sample workflows.",
    ),
    "flowcell_conf": Param(
        {},
        type="object",
        title="More flowcell settings",
        description='Passed to every healthomics_flowcell run, e.g. {"qc_min_completed_fraction": 0.9}.',
    ),
    "dry_run": Param(
        True,
        type="boolean",
        title="Dry run",
        description="Show per flowcell what would run; trigger nothing. Untick to run the backfill.",
    ),
}


def _day(value: str | None, *, end: bool = False) -> dt.datetime | None:
    if not value:
        return None
    day = dt.datetime.combine(dt.date.fromisoformat(value), dt.time(), tzinfo=dt.UTC)
    return day + dt.timedelta(days=1) if end else day


def select_flowcells(**context: Any) -> list[dict[str, Any]]:
    """The flowcells to backfill: newest manifest of each, by id, prefix and landing date."""
    params = context["params"]
    wanted = [str(f) for f in params.get("flowcell_ids") or []]
    since, until = _day(params.get("landed_from")), _day(params.get("landed_to"), end=True)
    if not (wanted or since or until or params.get("manifest_prefix")):
        raise AirflowFailException("Pick flowcells: flowcell_ids, landed_from/landed_to, or a manifest_prefix")
    prefix = manifest_prefix(params)
    s3 = S3Hook(aws_conn_id=AWS_CONN_ID).get_conn()
    objects = list_manifests(s3, prefix, since, until)

    def identify(obj: ManifestObject) -> tuple[str, ManifestObject]:
        body = read_version(s3, obj) or b""
        return declared_flowcell_id(body, obj.uri) or obj.key, obj

    with ThreadPoolExecutor(READ_THREADS) as pool:
        identified = list(pool.map(identify, objects))
    newest: dict[str, ManifestObject] = {}
    for flowcell_id, obj in identified:  # oldest first: the newest version wins
        if not wanted or flowcell_id in wanted:
            newest[flowcell_id] = obj
    missing = [f for f in wanted if f not in newest]
    if missing:
        raise AirflowFailException(
            f"No manifest under {prefix} for flowcell(s) {', '.join(missing)}"
            + (f" landed between {params.get('landed_from')} and {params.get('landed_to')}" if since or until else "")
        )
    if not newest:
        raise AirflowFailException(f"No manifest under {prefix} matches the selection")
    log.info("%d flowcell(s) selected: %s", len(newest), ", ".join(sorted(newest)))
    return [{"flowcell_id": f, **newest[f].as_dict(), "uri": newest[f].uri} for f in sorted(newest)]


def rerun_key(context: dict[str, Any]) -> str:
    """One key per backfill run: its retries find the same runs, the next backfill makes new ones."""
    return "backfill-" + hashlib.sha256(str(context["run_id"]).encode()).hexdigest()[:12]


class StageWalk:
    """A pipeline sample's stages, in order, against the runs they already have.

    A stage's request is rendered as its task would render it, from the earlier stages' runs
    being reused (their outputs.json), and matched against the stage's runs (by name and the
    flowcell/sample/stage tags) that did the same work: the same workflow, version and
    parameters. The first stage without a COMPLETED match is where the sample runs from.
    """

    def __init__(self, manifest: FlowcellManifest, hook: HealthOmicsHook, s3_client: Any) -> None:
        self.manifest = manifest
        self.hook = hook
        self.s3 = s3_client
        self.pipeline, self.inputs = pipeline_inputs(PIPELINE_DAG_ID, manifest)
        self.prefixes = [parse_s3_uri(p) for p in allowed_output_prefixes()]

    def decide(self, sample: Sample, mode: str) -> SampleDecision:
        stages: list[tuple[str, SampleDecision]] = []
        done: dict[str, StageResult] = {}
        for number, stage in enumerate(self.manifest.stages, start=1):
            if number == 1:
                request = run_request(self.manifest, sample)
            else:
                try:
                    request = stage_request(
                        self.pipeline, number, sample.sample_id, self.inputs[sample.sample_id], done
                    )
                except TemplateError as err:  # an earlier run's outputs.json lacks what this stage reads
                    stages.append((stage.name, SampleDecision(sample.sample_id, RUN, str(err))))
                    break
            tags = {TAG_FLOWCELL: self.manifest.flowcell_id, TAG_SAMPLE: sample.sample_id, TAG_STAGE: stage.name}
            mine = [r for r in self.hook.find_runs(request["name"], tags) if same_request(r, request)]
            # A sample is taken (rerun mode) by its first stage; once taken, what is not done runs.
            decision = decide(sample.sample_id, mine, mode if number == 1 else MISSING)
            stages.append((stage.name, decision))
            if decision.action != REUSE or decision.status not in RUN_SUCCESS_STATES:
                break
            if number == len(self.manifest.stages):
                break
            run = next(r for r in mine if r["id"] == decision.run_id)
            outputs = read_run_outputs(self.s3, run.get("runOutputUri"), self.prefixes)
            if outputs.error:  # its outputs cannot feed the next stage: that one runs again
                following = self.manifest.stages[number].name
                stages.append((following, SampleDecision(sample.sample_id, RUN, outputs.error)))
                break
            done[stage.name] = StageResult(str(run["id"]), str(run.get("runOutputUri") or ""), outputs.outputs or {})
        return pipeline_decision(sample.sample_id, stages)


def plan_flowcell(flowcell: dict[str, Any], **context: Any) -> dict[str, Any]:
    """Decide what happens to each sample of one flowcell; log it as a table; nothing is started here."""
    current: dict[str, Any] = get_current_context()  # type: ignore[assignment]
    current["flowcell_id"] = flowcell["flowcell_id"]  # names the mapped task in the UI
    params = context["params"]
    flowcell_params = {
        **(params.get("flowcell_conf") or {}),
        "manifest_uri": flowcell["uri"],
        "manifest_etag": flowcell["etag"],
        "workflow_version_name": params.get("workflow_version_name"),
    }
    raw, source = read_manifest(flowcell_params, AWS_CONN_ID)
    try:
        manifest = parse_manifest(raw, manifest_options(flowcell_params), source)
    except ManifestError as err:
        raise AirflowFailException(f"Flowcell {flowcell['flowcell_id']}: {err}") from err
    hook = HealthOmicsHook(aws_conn_id=AWS_CONN_ID)
    mode = params.get("rerun") or MISSING
    stage_walk = StageWalk(manifest, hook, S3Hook(aws_conn_id=AWS_CONN_ID).get_conn()) if manifest.stages else None

    def decide_sample(sample: Sample) -> SampleDecision:
        if stage_walk is not None:
            return stage_walk.decide(sample, mode)
        request = run_request(manifest, sample)
        runs = hook.find_runs(request["name"], {TAG_FLOWCELL: manifest.flowcell_id, TAG_SAMPLE: sample.sample_id})
        return decide(sample.sample_id, [r for r in runs if same_request(r, request)], mode)

    hook.conn  # noqa: B018 - made once, before the threads share it (boto3 clients are thread-safe)
    with ThreadPoolExecutor(READ_THREADS) as pool:  # each sample's look-ups wait on the network
        decisions = list(pool.map(decide_sample, manifest.samples))
    key = rerun_key(context)
    extra = {k: v for k, v in flowcell_params.items() if v is not None}
    conf = flowcell_conf(flowcell["uri"], decisions, key, extra)
    log.info(
        "Flowcell %s (%s): %d to run, %d reused, %d left out%s",
        manifest.flowcell_id,
        flowcell["uri"],
        sum(d.action == RUN for d in decisions),
        sum(d.action == REUSE for d in decisions),
        sum(d.action == LEAVE for d in decisions),
        "" if conf else " - nothing to do",
    )
    width = max(len(d.sample_id) for d in decisions)
    for d in decisions:
        log.info("  %-*s %-6s %-10s %-12s %s", width, d.sample_id, d.action, d.status or "-", d.run_id or "-", d.reason)
    return {
        "flowcell_id": manifest.flowcell_id,
        "manifest_uri": flowcell["uri"],
        "samples": [d.as_dict() for d in decisions],
        "trigger": None
        if conf is None
        else {
            "trigger_dag_id": PIPELINE_DAG_ID if manifest.stages else FLOWCELL_DAG_ID,
            "trigger_run_id": f"backfill__{safe_id_part(manifest.flowcell_id)}__{key}",
            "conf": conf,
            "note": f"Backfill {context['run_id']}: {sum(d.action == RUN for d in decisions)} sample(s) to run",
        },
    }


def runs_to_trigger(plans: Any, **context: Any) -> list[dict[str, Any]]:
    """The flowcell runs to trigger (none on a dry run), after a summary of every plan."""
    found = [p for p in (plans or []) if p]
    with_work = [p for p in found if p["trigger"]]
    log.info(
        "Backfill: %d flowcell(s) planned, %d with samples to run, %d sample run(s) in all",
        len(found),
        len(with_work),
        sum(sum(s["action"] == RUN for s in p["samples"]) for p in found),
    )
    for plan in found:
        counts = {a: sum(s["action"] == a for s in plan["samples"]) for a in (RUN, REUSE, LEAVE)}
        log.info("  %s: run %d, reuse %d, leave %d", plan["flowcell_id"], counts[RUN], counts[REUSE], counts[LEAVE])
    if context["params"].get("dry_run"):
        log.info("DRY RUN: nothing triggered. Trigger again with dry_run false to run it.")
        return []
    return [p["trigger"] for p in with_work]


def backfill_outcome(**context: Any) -> None:
    """Fail the backfill run if any flowcell could not be planned (its manifest, its runs)."""
    states = task_states(context, [PLAN_TASK])
    failed = sorted(k for k, v in states.items() if v in ("failed", "upstream_failed"))
    if failed:
        raise AirflowFailException(f"{len(failed)} flowcell(s) could not be planned: {', '.join(failed)}")
