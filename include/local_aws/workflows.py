"""What a flowcell needs in the emulator: ACTIVE workflows and a reference manifest."""

from __future__ import annotations

from typing import Any

from devkit.waiting import wait_until


def create_active_workflow(omics: Any, timeout: float = 120.0, **request: Any) -> dict[str, Any]:
    """``CreateWorkflow`` (``request`` as boto3 takes it), then wait until the workflow is ACTIVE.

    Workflows are CREATING for a while after the call, and runs of a workflow that is not
    ACTIVE are refused. Returns the CreateWorkflow response (``id``, ``arn``, ...).
    """
    created = dict(omics.create_workflow(**request))
    wait_until(
        lambda: omics.get_workflow(id=created["id"])["status"] == "ACTIVE",
        timeout=timeout,
        interval=0.2,
        what=f"workflow {request.get('name')} ({created['id']}) never became ACTIVE",
    )
    return created


def germline_and_qc_workflows(omics: Any, bucket: str, request_prefix: str) -> tuple[str, str]:
    """A per-sample germline workflow and a cohort QC workflow, ACTIVE; their ids.

    Their parameters are those of the reference manifest format (``sample_id``, ``fastq``;
    ``qc_config``, ``samples``). The emulator gives ``cohort-qc`` runs their own profile by name.
    """
    templates = {
        "germline-wgs": {"sample_id": {"description": "id"}, "fastq": {"description": "reads"}},
        "cohort-qc": {"qc_config": {"description": "config"}, "samples": {"description": "samples"}},
    }
    germline, cohort_qc = (
        create_active_workflow(
            omics,
            name=name,
            definitionUri=f"s3://{bucket}/workflows/{name}.zip",
            parameterTemplate=template,
            requestId=f"{request_prefix}-{name}",
        )["id"]
        for name, template in templates.items()
    )
    return str(germline), str(cohort_qc)


def reference_manifest(
    fastqs: list[tuple[str, str]],
    sample_workflow: str,
    sample_output: str,
    qc_config: str,
    qc_workflow: str,
    qc_output: str,
) -> dict[str, Any]:
    """A manifest in the reference format (``flowcellSamples`` + ``qcWorkflow``).

    :param fastqs: (sample id, its FASTQ's S3 URI) in manifest order; a repeated id is kept, so
        invalid manifests can be built too.
    :param sample_workflow: the per-sample workflow's id or ARN.
    :param sample_output: where the sample runs write.
    :param qc_config: the QC workflow's configuration file (S3 URI).
    :param qc_workflow: the QC workflow's id or ARN.
    :param qc_output: where the QC run writes.
    """
    return {
        "flowcellSamples": [
            {
                "sampleId": sample,
                "fastqFileRef": fastq,
                "ahoSampleWorkflowId": sample_workflow,
                "OutputS3path": sample_output,
            }
            for sample, fastq in fastqs
        ],
        "qcWorkflow": {"qcWorkflowFileRef": qc_config, "ahoQcWorkflowId": qc_workflow, "OutputS3path": qc_output},
    }
