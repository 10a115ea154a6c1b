"""Checks of a parsed manifest that need AWS: do the workflows exist, do the inputs exist."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING

from botocore.exceptions import ClientError

from healthomics.hooks.omics import error_code
from healthomics.manifest.model import FlowcellManifest, Problem

if TYPE_CHECKING:
    from airflow.providers.amazon.aws.hooks.s3 import S3Hook

    from healthomics.hooks.omics import HealthOmicsHook


def check_workflows(manifest: FlowcellManifest, omics: HealthOmicsHook) -> list[Problem]:
    """Every workflow the manifest names must exist and be ACTIVE."""
    problems = []
    qc_workflow = manifest.qc.workflow_id if manifest.qc else None
    for workflow_id in manifest.workflows():
        where = "qc" if workflow_id == qc_workflow else "workflow"
        workflow_type = "PRIVATE" if where == "qc" else manifest.defaults.workflow_type
        try:
            workflow = omics.conn.get_workflow(id=workflow_id, type=workflow_type)
        except ClientError as err:
            if error_code(err) == "ResourceNotFoundException":
                problems.append(
                    Problem(
                        location=where, field="workflow_id", message=f"unknown workflow {workflow_id} ({workflow_type})"
                    )
                )
                continue
            raise
        if workflow["status"] != "ACTIVE":
            problems.append(
                Problem(
                    location=where,
                    field="workflow_id",
                    message=f"workflow {workflow_id} is {workflow['status']}, not ACTIVE",
                )
            )
    return problems


def check_inputs(manifest: FlowcellManifest, s3: S3Hook, max_workers: int = 8) -> list[Problem]:
    """Every s3:// input must exist (an object, or a prefix with objects under it)."""

    def exists(uri: str) -> bool:
        bucket, key = s3.parse_s3_url(uri)
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
