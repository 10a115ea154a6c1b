"""Checks of a parsed manifest that need AWS: do the workflows exist, do the inputs exist."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any

from botocore.exceptions import ClientError

from healthomics.hooks.omics import error_code
from healthomics.manifest.model import FlowcellManifest, Problem, WorkflowType
from healthomics.utils.s3 import parse_s3_uri

if TYPE_CHECKING:
    from airflow.providers.amazon.aws.hooks.s3 import S3Hook

    from healthomics.hooks.omics import HealthOmicsHook


def check_workflows(manifest: FlowcellManifest, omics: HealthOmicsHook) -> list[Problem]:
    """Every workflow the manifest names must exist and be ACTIVE, and take the parameters it is given
    (the samples', or each stage's: a stage's parameter names are the same for every sample)."""
    problems: list[Problem] = []
    templates: dict[tuple[str, WorkflowType], dict[str, Any] | None] = {}

    def template_of(where: str, workflow_id: str, workflow_type: WorkflowType) -> dict[str, Any] | None:
        """GetWorkflow once per workflow; its parameter template (None if unknown or unusable)."""
        if (workflow_id, workflow_type) in templates:
            return templates[workflow_id, workflow_type]
        templates[workflow_id, workflow_type] = None
        try:
            workflow = omics.conn.get_workflow(id=workflow_id, type=workflow_type)
        except ClientError as err:
            if error_code(err) != "ResourceNotFoundException":
                raise
            message = f"unknown workflow {workflow_id} ({workflow_type})"
            problems.append(Problem(location=where, field="workflow_id", message=message))
            return None
        if workflow["status"] != "ACTIVE":
            message = f"workflow {workflow_id} is {workflow['status']}, not ACTIVE"
            problems.append(Problem(location=where, field="workflow_id", message=message))
        found = workflow.get("parameterTemplate")
        templates[workflow_id, workflow_type] = dict(found) if found is not None else None
        return templates[workflow_id, workflow_type]

    # GetWorkflow answers for the workflow's default version: a run of a named version is checked
    # for the workflow's existence only, not against another version's parameters.
    if manifest.stages:
        for stage in manifest.stages:
            where = f"stage {stage.name}"
            template = template_of(where, stage.workflow_id, stage.workflow_type)
            if template is not None and not stage.workflow_version_name:
                problems += _parameter_problems(where, stage.workflow_id, template, set(stage.parameters))
    else:
        for workflow_id in sorted({s.workflow_id for s in manifest.samples}):
            template_of("workflow", workflow_id, manifest.defaults.workflow_type)
        for sample in manifest.samples:
            template = templates.get((sample.workflow_id, manifest.defaults.workflow_type))
            if template is not None and not manifest.defaults.workflow_version_name:
                given = set(sample.parameters)
                problems += _parameter_problems(f"sample {sample.sample_id}", sample.workflow_id, template, given)
    if manifest.qc:
        template_of("qc", manifest.qc.workflow_id, "PRIVATE")
    return problems


def _parameter_problems(location: str, workflow_id: str, template: dict[str, Any], given: set[str]) -> list[Problem]:
    """What StartRun would refuse: a required parameter missing, or one the workflow does not declare."""
    required = {name for name, spec in template.items() if not spec.get("optional", False)}
    missing = [f"workflow {workflow_id} requires {name}, which is missing" for name in sorted(required - given)]
    unknown = [f"workflow {workflow_id} takes no parameter {name}" for name in sorted(given - set(template))]
    return [Problem(location=location, field="parameters", message=m) for m in missing + unknown]


def check_inputs(manifest: FlowcellManifest, s3: S3Hook, max_workers: int = 8) -> list[Problem]:
    """Every s3:// input must exist (an object, or a prefix with objects under it)."""

    def exists(uri: str) -> bool:
        location = parse_s3_uri(uri)
        bucket, key = location.bucket, location.key
        if key and s3.check_for_key(key, bucket_name=bucket):
            return True
        prefix = key if not key or key.endswith("/") else key + "/"
        return bool(s3.check_for_prefix(prefix=prefix, delimiter="/", bucket_name=bucket))

    uris = sorted({uri for sample in manifest.samples for uri in sample.inputs})
    with ThreadPoolExecutor(max_workers=max_workers) as pool:
        found = dict(zip(uris, pool.map(exists, uris), strict=True))
    return [
        Problem(location=f"sample {sample.sample_id}", field="inputs", message=f"input does not exist: {uri}")
        for sample in manifest.samples
        for uri in sample.inputs
        if not found[uri]
    ]
