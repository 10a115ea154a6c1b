"""The Params form of the flowcell DAGs (healthomics_flowcell, healthomics_pipeline): the trigger form, --conf, REST."""

from __future__ import annotations

from airflow.sdk import Param

from healthomics.flowcell.plan import BATCH, SUBMISSION_MODES
from healthomics.settings import VAR_ROLE_ARN, VAR_SNS_TOPIC

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
        '{"NA12878": "1234567"}; for a pipeline, a run id per stage, e.g. {"NA12878": {"align": "1234567"}} '
        "(the backfill DAG fills this in).",
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
