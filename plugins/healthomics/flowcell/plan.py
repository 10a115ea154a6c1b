"""From a validated manifest to what gets submitted: run requests, batches and idempotency keys."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from healthomics.manifest.model import FlowcellManifest, ManifestError, Problem, RunDefaults, Sample, Stage
from healthomics.manifest.pipeline import StageResult, TemplateError, render
from healthomics.utils.idempotency import TAG_ATTEMPT, TAG_DAG_ID, TAG_DAG_RUN_ID, TAG_KEY, TAG_TASK_ID, request_id
from healthomics.utils.service_model import omics_model, request_problems, shape_problems
from healthomics.utils.text import shown

BATCH = "batch"
PER_SAMPLE = "per_sample"
SUBMISSION_MODES = (BATCH, PER_SAMPLE)
# Tags every sample run carries (on top of the manifest's and the healthomics:* provenance tags).
TAG_FLOWCELL = "flowcell"
TAG_SAMPLE = "sample"
TAG_STEP = "step"
TAG_STAGE = "stage"  # a pipeline's stage name
# The run options of the QC run taken from the manifest's run defaults.
QC_RUN_OPTIONS = ("storageType", "logLevel", "retentionMode")
# Stands in for the tags the submitters add to a run (provenance, attempt), at their longest,
# so a request is checked with as many tags as it will carry.
_SUBMITTER_TAGS = {TAG_DAG_ID: "d" * 256, TAG_DAG_RUN_ID: "r" * 256, TAG_TASK_ID: "t" * 256, TAG_KEY: "k" * 32}
_SUBMITTER_TAGS[TAG_ATTEMPT] = "100"


def _scope(dag_id: str, manifest: FlowcellManifest, rerun_key: str | None) -> str:
    scope = f"{dag_id}/{manifest.flowcell_id}/{manifest.sha256[:16]}"
    return f"{scope}/rerun-{rerun_key}" if rerun_key else scope


def sample_key(dag_id: str, manifest: FlowcellManifest, sample_id: str, rerun_key: str | None = None) -> str:
    """Idempotency key of one sample's run: same DAG, flowcell, manifest content and sample.

    Every DAG run of one manifest shares its runs; a ``rerun_key`` (a backfill's) makes new ones.
    """
    return f"{_scope(dag_id, manifest, rerun_key)}/{sample_id}"


def select_samples(
    manifest: FlowcellManifest, only: list[str] | None, reuse: dict[str, Any] | None
) -> FlowcellManifest:
    """The manifest cut down to ``only`` (when given); every id named must be one of its samples,
    and every run to reuse a run id (for a pipeline: a run id per stage name, see :func:`split_reuse`)."""
    known = {s.sample_id for s in manifest.samples}
    problems = [
        Problem(location="params", field=field, message=f"no sample {sample_id!r} in the manifest")
        for field, ids in (("samples", only or []), ("reuse_runs", list(reuse or {})))
        for sample_id in ids
        if sample_id not in known
    ]
    stages = [stage.name for stage in manifest.stages]
    for sample_id, runs in (reuse or {}).items():
        if isinstance(runs, dict) and stages:
            for stage, run_id in runs.items():
                if stage not in stages:
                    message = f"{sample_id!r}: no stage {stage!r} (stages: {', '.join(stages)})"
                    problems.append(Problem(location="params", field="reuse_runs", message=message))
                elif not isinstance(run_id, str) or not run_id:
                    message = f"{sample_id!r}: run id of stage {stage!r} must be a string"
                    problems.append(Problem(location="params", field="reuse_runs", message=message))
        elif not isinstance(runs, str) or not runs:
            expected = "a string, or a run id per stage" if stages else "a string"
            message = f"run id for {sample_id!r} must be {expected}"
            problems.append(Problem(location="params", field="reuse_runs", message=message))
    if only is not None and not only:
        problems.append(Problem(location="params", field="samples", message="an empty sample list selects nothing"))
    if problems:
        raise ManifestError(problems, manifest.source_uri)
    if only is None:
        return manifest
    chosen = set(only)
    return manifest.model_copy(update={"samples": [s for s in manifest.samples if s.sample_id in chosen]})


def run_name(flowcell_id: str, sample_id: str, given: str | None = None, stage: str | None = None) -> str:
    """A run's name: the sample's own, or ``<flowcell>-<sample>``; a pipeline's stage name after it."""
    name = given or f"{flowcell_id}-{sample_id}"
    return (f"{name}-{stage}" if stage else name)[:128]


def batch_name(flowcell_id: str, part: str) -> str:
    """A run batch's name: ``<flowcell>-<part>`` (the workflow of a first-stage batch, the stage of a
    micro batch), as ListBatch finds it again."""
    return f"{flowcell_id}-{part}"[:64]


def split_reuse(
    manifest: FlowcellManifest, reuse: dict[str, Any] | None
) -> tuple[dict[str, str], dict[str, dict[str, str]]]:
    """``reuse_runs`` (sample -> run id, or for a pipeline sample -> {stage: run id}) as the run each
    sample's first run reuses, and the runs later stages reuse (sample -> {stage: run id})."""
    first = manifest.stages[0].name if manifest.stages else None
    first_runs: dict[str, str] = {}
    later: dict[str, dict[str, str]] = {}
    for sample_id, runs in (reuse or {}).items():
        if not isinstance(runs, dict):
            first_runs[sample_id] = str(runs)
            continue
        if first in runs:
            first_runs[sample_id] = str(runs[first])
        if others := {stage: str(run_id) for stage, run_id in runs.items() if stage != first}:
            later[sample_id] = others
    return first_runs, later


def run_request(manifest: FlowcellManifest, sample: Sample) -> dict[str, Any]:
    """The StartRun request for one sample (with stages: its first stage's; no requestId, the submitter
    derives it)."""
    defaults = manifest.first_run_defaults()
    stage = manifest.stages[0].name if manifest.stages else None
    request: dict[str, Any] = {
        **defaults.run_fields(),
        "workflowId": sample.workflow_id,
        "outputUri": sample.output_uri,
        "name": run_name(manifest.flowcell_id, sample.sample_id, sample.name, stage),
        "parameters": sample.parameters,
        "tags": {
            **defaults.tags,
            **sample.tags,
            TAG_FLOWCELL: manifest.flowcell_id,
            TAG_SAMPLE: sample.sample_id,
            **({TAG_STAGE: stage} if stage else {}),
        },
    }
    if sample.priority is not None:
        request["priority"] = sample.priority
    return request


def stage_key(sample_key: str, stage: str) -> str:
    """Idempotency key of a sample's run of a pipeline stage after the first (the first has the sample's)."""
    return f"{sample_key}/stage-{stage}"


def pipeline_inputs(
    dag_id: str,
    manifest: FlowcellManifest,
    rerun_key: str | None = None,
    reuse: dict[str, dict[str, str]] | None = None,
    started_here: set[str] | None = None,
) -> tuple[dict[str, Any], dict[str, dict[str, Any]]]:
    """What the stage tasks after the first read: the pipeline (stages, run defaults; small) and,
    per sample, its template fields, tags, priority, run name, idempotency key, the stage runs
    it reuses (``reuse``: sample -> {stage: run id}, a backfill's) and whether this DAG run
    started its first stage (``started_here``: then no earlier DAG run ran its later stages)."""
    pipeline = {
        "flowcell_id": manifest.flowcell_id,
        "sample_count": len(manifest.samples),
        "defaults": manifest.defaults.model_dump(mode="json"),
        "stages": [stage.model_dump(mode="json") for stage in manifest.stages],
    }
    samples = {
        s.sample_id: {
            "fields": s.fields,
            "tags": s.tags,
            "priority": s.priority,
            "name": s.name,
            "idempotency_key": sample_key(dag_id, manifest, s.sample_id, rerun_key),
            "reuse": (reuse or {}).get(s.sample_id, {}),
            "first_stage_started_here": s.sample_id in (started_here or set()),
        }
        for s in manifest.samples
    }
    return pipeline, samples


def stage_run_name(pipeline: Mapping[str, Any], number: int, sample_id: str, sample: Mapping[str, Any]) -> str:
    """The run name of a sample's ``number``-th stage (1-based)."""
    stage = pipeline["stages"][number - 1]["name"]
    return run_name(str(pipeline["flowcell_id"]), sample_id, sample.get("name"), stage)


def stage_request(
    pipeline: Mapping[str, Any], number: int, sample_id: str, sample: Mapping[str, Any], done: Mapping[str, StageResult]
) -> dict[str, Any]:
    """The StartRun request of a sample's ``number``-th stage (1-based), its templates filled from the
    sample's fields and the stage runs in ``done``; raises TemplateError if a value is not there."""
    stage = Stage(**pipeline["stages"][number - 1])
    defaults = stage.run_defaults(RunDefaults(**pipeline["defaults"]))
    flowcell_id = str(pipeline["flowcell_id"])
    request: dict[str, Any] = {
        **defaults.run_fields(),
        "workflowId": stage.workflow_id,
        "outputUri": stage.output_uri,
        "name": stage_run_name(pipeline, number, sample_id, sample),
        "parameters": render(stage.parameters, sample.get("fields", {}), done),
        "tags": {
            **defaults.tags,
            **sample.get("tags", {}),
            TAG_FLOWCELL: flowcell_id,
            TAG_SAMPLE: sample_id,
            TAG_STAGE: stage.name,
        },
    }
    if sample.get("priority") is not None:
        request["priority"] = sample["priority"]
    return request


def batch_groups(
    dag_id: str, manifest: FlowcellManifest, exclude: set[str] | None = None, rerun_key: str | None = None
) -> list[dict[str, Any]]:
    """One StartRunBatch per workflow: kwargs for HealthOmicsStartRunBatchOperator.

    :param exclude: samples not to submit (they reuse an existing run).
    :param rerun_key: see :func:`sample_key`.
    """
    by_workflow: dict[str, list[Sample]] = {}
    for sample in manifest.samples:
        if sample.sample_id not in (exclude or set()):
            by_workflow.setdefault(sample.workflow_id, []).append(sample)
    groups = []
    defaults = manifest.first_run_defaults()
    for workflow_id, samples in sorted(by_workflow.items()):
        default_run_setting = {
            **defaults.run_fields(),
            "workflowId": workflow_id,
            "runTags": {**defaults.tags, TAG_FLOWCELL: manifest.flowcell_id},
        }
        run_settings = []
        for sample in samples:
            request = run_request(manifest, sample)
            setting: dict[str, Any] = {
                "runSettingId": sample.sample_id,
                "name": request["name"],
                "outputUri": sample.output_uri,
                "parameters": sample.parameters,
                "runTags": {
                    **sample.tags,
                    **{k: request["tags"][k] for k in (TAG_SAMPLE, TAG_STAGE) if k in request["tags"]},
                },
            }
            if sample.priority is not None:
                setting["priority"] = sample.priority
            run_settings.append(setting)
        groups.append(
            {
                "default_run_setting": default_run_setting,
                "run_settings": run_settings,
                "batch_name": batch_name(manifest.flowcell_id, workflow_id),
                # Batches above 100 runs take their settings from a file in S3: next to the outputs.
                "settings_uri_prefix": f"{samples[0].output_uri.rstrip('/')}/.healthomics/batch-settings",
                "idempotency_key": f"{_scope(dag_id, manifest, rerun_key)}/workflow-{workflow_id}",
            }
        )
    return groups


def sample_entries(
    dag_id: str,
    manifest: FlowcellManifest,
    submitted: list[dict[str, Any]] | None,
    reuse: dict[str, str] | None = None,
    rerun_key: str | None = None,
) -> list[dict[str, Any]]:
    """What each per-sample task needs: its run request, key, and the run to follow if there is one
    (``batch_run`` a batch started, or an ``existing_run`` to reuse)."""
    runs: dict[str, dict[str, Any]] = {}
    failures: dict[str, dict[str, Any]] = {}
    for result in submitted or []:
        for sample_id, run in result.get("runs", {}).items():
            runs[sample_id] = {**run, "batchId": result["batchId"]}
        failures.update(result.get("failed", {}))
    entries = []
    for sample in manifest.samples:
        entry: dict[str, Any] = {
            "sample_id": sample.sample_id,
            "flowcell_id": manifest.flowcell_id,
            "idempotency_key": sample_key(dag_id, manifest, sample.sample_id, rerun_key),
            "request": run_request(manifest, sample),
        }
        if reuse and sample.sample_id in reuse:
            entry["existing_run"] = {"id": reuse[sample.sample_id]}
        elif sample.sample_id in runs:
            entry["batch_run"] = runs[sample.sample_id]
        elif sample.sample_id in failures:
            entry["submission_failure"] = failures[sample.sample_id]
        entries.append(entry)
    return entries


# What a sample task follows first; an entry with one of these needs its request only to start
# another run (after a failed run, on a clear), which is rare.
RUN_TO_FOLLOW = ("batch_run", "existing_run", "submission_failure")
START_FIELDS = ("request", "idempotency_key")


def slim_entries(entries: list[dict[str, Any]]) -> tuple[list[dict[str, Any]], dict[str, dict[str, Any]]]:
    """Split sample entries into what every sample task reads and what only a new run needs.

    Airflow gives each mapped task its item of an unmapped task's list by pulling the whole
    list: every sample task reads every entry. Full entries (~0.8 kB: the StartRun request)
    made that 7.7 MB per task at 10,000 samples, quadratic in all. A sample that follows a
    run keeps ``sample_id`` and the run's ``id`` (GetRun names its batch); its ``request`` and
    ``idempotency_key`` go to the second value, ``{sample_id: {...}}``, read by the task only
    when it must start a run. Samples with nothing to follow (per-sample submission) keep them.
    """
    slim: list[dict[str, Any]] = []
    start_requests: dict[str, dict[str, Any]] = {}
    for entry in entries:
        follows = next((key for key in RUN_TO_FOLLOW if key in entry), None)
        if follows is None:
            slim.append(entry)
            continue
        start_requests[entry["sample_id"]] = {key: entry[key] for key in START_FIELDS}
        run = entry[follows]
        if follows != "submission_failure":
            run = {"id": run["id"]}
        slim.append({"sample_id": entry["sample_id"], follows: run})
    return slim, start_requests


def qc_samples_uri(manifest: FlowcellManifest, digest: str) -> str:
    """Where the QC gate lists the completed samples for the QC run (content-addressed by ``digest``)."""
    assert manifest.qc is not None
    return f"{manifest.qc.output_uri.rstrip('/')}/qc-inputs/{manifest.flowcell_id}/{digest}.json"


def qc_run(dag_id: str, manifest: FlowcellManifest, samples_uri: str, digest: str) -> dict[str, Any]:
    """HealthOmicsStartRunOperator kwargs of the flowcell's QC run over the samples listed at ``samples_uri``."""
    assert manifest.qc is not None
    run_fields = manifest.defaults.run_fields()
    return {
        "workflow_id": manifest.qc.workflow_id,
        "role_arn": manifest.defaults.role_arn,
        "output_uri": manifest.qc.output_uri,
        "name": f"{manifest.flowcell_id}-qc"[:128],
        "parameters": {**manifest.qc.parameters, manifest.qc.samples_parameter: samples_uri},
        "tags": {**manifest.defaults.tags, TAG_FLOWCELL: manifest.flowcell_id, TAG_STEP: "qc"},
        "run_options": {k: v for k, v in run_fields.items() if k in QC_RUN_OPTIONS},
        "idempotency_key": f"{dag_id}/{manifest.flowcell_id}/{manifest.sha256[:16]}/qc/{digest}",
    }


class _AnyOutput(dict[str, Any]):
    """Stands in for an outputs.json not written yet: it has every key, each a file of the run."""

    def __init__(self, run_output_uri: str) -> None:
        super().__init__()
        self.run_output_uri = run_output_uri

    def __contains__(self, key: object) -> bool:
        return True

    def __missing__(self, key: str) -> str:
        return f"{self.run_output_uri}out/{key}"


def _stand_in_results(manifest: FlowcellManifest) -> dict[str, StageResult]:
    """What every stage's run will offer later stages, with stand-in values (for checking requests)."""
    results = {}
    for stage in manifest.stages:
        run_output_uri = f"{stage.output_uri.rstrip('/')}/1000000/"
        results[stage.name] = StageResult("1000000", run_output_uri, _AnyOutput(run_output_uri))
    return results


def _start_run(request: dict[str, Any], key: str) -> dict[str, Any]:
    """A StartRun request as the submitter sends it: with its requestId and every tag it adds."""
    return {**request, "tags": {**request.get("tags", {}), **_SUBMITTER_TAGS}, "requestId": request_id(key, request)}


def submission_problems(
    dag_id: str,
    manifest: FlowcellManifest,
    batches: list[dict[str, Any]],
    rerun_key: str | None = None,
) -> list[Problem]:
    """What the service would refuse in any request this flowcell sends, before one is sent.

    Every sample's StartRun (a clear or a per-sample submission sends it), every run batch's
    StartRunBatch and each of its run settings, and the QC run's StartRun, checked against the
    service's model (:mod:`healthomics.utils.service_model`). One bad run setting refuses a
    whole batch; a problem shared by many samples is listed once, with how many it hits.
    """
    found: dict[tuple[str, str], list[str]] = {}

    def add(scope: str, label: str, messages: list[str]) -> None:
        for message in messages:
            found.setdefault((scope, message), []).append(label)

    pipeline, stage_inputs = pipeline_inputs(dag_id, manifest, rerun_key) if manifest.stages else ({}, {})
    earlier = _stand_in_results(manifest)
    for sample in manifest.samples:
        request = run_request(manifest, sample)
        key = sample_key(dag_id, manifest, sample.sample_id, rerun_key)
        add("sample", sample.sample_id, request_problems("StartRun", _start_run(request, key)))
        # A later stage's request, with stand-ins for what earlier runs will write: a bad run
        # setting there is found now, not after the first stage has been paid for.
        for number, stage in enumerate(manifest.stages[1:], start=2):
            try:
                later = stage_request(pipeline, number, sample.sample_id, stage_inputs[sample.sample_id], earlier)
            except TemplateError:
                continue  # a template the pipeline checks found wrong is already reported
            messages = request_problems("StartRun", _start_run(later, stage_key(key, stage.name)))
            add("sample", sample.sample_id, [f"stage {stage.name}: {m}" for m in messages])
    setting_shape = omics_model().shape_for("InlineSetting")
    for batch in batches:
        default = batch["default_run_setting"]
        batch_request = {
            "batchName": batch["batch_name"],
            "requestId": request_id(batch["idempotency_key"], {}),
            "defaultRunSetting": default,
            "batchRunSettings": {"inlineSettings": batch["run_settings"][:1]},
            "tags": dict(_SUBMITTER_TAGS),
        }
        add("batch", batch["batch_name"], request_problems("StartRunBatch", batch_request))
        for setting in batch["run_settings"]:
            messages = shape_problems(setting_shape, setting, "")
            merged_tags = {**default.get("runTags", {}), **setting.get("runTags", {})}
            if len(merged_tags) > 50:
                messages.append(f"runTags: {len(merged_tags)} tags with the batch's; a run takes at most 50")
            add("sample", setting["runSettingId"], messages)
    if manifest.qc is not None:
        digest = "0" * 16  # (the gate's digest of the completed samples: 16 hex digits)
        qc = qc_run(dag_id, manifest, qc_samples_uri(manifest, digest), digest)
        request = {
            **qc["run_options"],
            "workflowId": qc["workflow_id"],
            "roleArn": qc["role_arn"],
            "outputUri": qc["output_uri"],
            "name": qc["name"],
            "parameters": qc["parameters"],
            "tags": qc["tags"],
        }
        add("qc", "qc", request_problems("StartRun", _start_run(request, qc["idempotency_key"])))
    problems = []
    for (scope, message), labels in found.items():
        if scope == "qc":
            location = "qc"
        elif len(labels) == 1:
            location = f"{scope} {shown(labels[0])}"
        else:
            first = ", ".join(shown(label, 40) for label in labels[:3])
            location = f"{len(labels)} {scope}s ({first}{', ...' if len(labels) > 3 else ''})"
        problems.append(Problem(location=location, message=f"the service would refuse this: {message}"))
    return problems
