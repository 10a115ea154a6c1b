"""Shared pieces of the flowcell tests: manifests, uploads, run confs, what the lab received."""

from __future__ import annotations

import json
from typing import Any

from local_aws import workflows as local_workflows

from .conftest import ROLE_ARN, SAMPLES

__all__ = [
    "FLOWCELL",
    "SAMPLES",
    "STAGES",
    "conf",
    "dag_runs",
    "flowcell_report",
    "inbox",
    "lab_flowcell",
    "outputs_json",
    "pipeline_manifest",
    "reference_manifest",
    "sample_runs",
    "stage_runs",
    "upload",
]


def reference_manifest(lab: dict[str, Any], samples: list[str] = SAMPLES) -> dict[str, Any]:
    """The reference-format manifest of ``samples`` in the session's lab (see the ``lab`` fixture)."""
    bucket = lab["bucket"]
    return local_workflows.reference_manifest(
        [(s, f"s3://{bucket}/fastq/{s}.fastq.gz") for s in samples],
        sample_workflow=lab["workflow"],
        sample_output=f"s3://{bucket}/outputs/",
        qc_config=f"s3://{bucket}/qc/config.json",
        qc_workflow=lab["qc_workflow"],
        qc_output=f"s3://{bucket}/qc-outputs/",
    )


def upload(s3: Any, lab: dict[str, Any], manifest: Any, name: str = "FC-0001.json") -> str:
    body = manifest if isinstance(manifest, str) else json.dumps(manifest)
    s3.put_object(Bucket=lab["bucket"], Key=f"manifests/{name}", Body=body.encode())
    return f"s3://{lab['bucket']}/manifests/{name}"


def conf(lab: dict[str, Any], manifest_uri: str, **extra: Any) -> dict[str, Any]:
    return {"manifest_uri": manifest_uri, "role_arn": ROLE_ARN, "sns_topic_arn": lab["topic"], **extra}


def inbox(lab: dict[str, Any]) -> list[str]:
    messages = lab["sqs"].receive_message(QueueUrl=lab["inbox"], MaxNumberOfMessages=10).get("Messages", [])
    return [m["Body"] for m in messages]


def flowcell_report(
    s3: Any, lab: dict[str, Any], flowcell_id: str = "FC-0001", outputs: str = "outputs/"
) -> dict[str, Any]:
    """The report.json of ``flowcell_id`` in the lab's bucket, under ``outputs`` (the manifest's output prefix)."""
    listed = s3.list_objects_v2(Bucket=lab["bucket"], Prefix=f"{outputs}_reports/{flowcell_id}/")["Contents"]
    key = next(o["Key"] for o in listed if o["Key"].endswith("report.json"))
    return dict(json.loads(s3.get_object(Bucket=lab["bucket"], Key=key)["Body"].read()))


def sample_runs(omics: Any) -> list[dict[str, Any]]:
    return [r for r in omics.list_runs()["items"] if not r["name"].endswith("-qc")]


def dag_runs(dag_id: str, run_id_prefix: str) -> dict[str, Any]:
    """The DAG runs (by run id) whose id starts with ``run_id_prefix``, from the metadata DB."""
    from airflow.models import DagRun
    from airflow.utils.session import create_session
    from sqlalchemy import select

    with create_session() as session:
        found = session.scalars(
            select(DagRun).where(DagRun.dag_id == dag_id, DagRun.run_id.startswith(run_id_prefix))
        ).all()
        return {run.run_id: {"conf": run.conf, "state": run.state, "note": run.note} for run in found}


def lab_flowcell(omics: Any, s3: Any, flowcell_id: str, samples: list[str]) -> str:
    """A new bucket with FASTQs, a germline and a cohort-QC workflow, and a reference manifest; its URI."""
    import uuid

    bucket = f"lab-{uuid.uuid4().hex[:10]}"
    s3.create_bucket(Bucket=bucket)
    for sample in samples:
        s3.put_object(Bucket=bucket, Key=f"fastq/{sample}.fq.gz", Body=b"@r\nACGT\n+\nFFFF\n")
    s3.put_object(Bucket=bucket, Key="qc.json", Body=b"{}")
    workflows = {
        name: omics.create_workflow(
            name=name, definitionUri=f"s3://defs/{name}.zip", requestId=str(uuid.uuid4()), parameterTemplate=template
        )["id"]
        for name, template in (
            ("germline", {"sample_id": {"description": "id"}, "fastq": {"description": "reads"}}),
            ("cohort-qc", {"qc_config": {"description": "c"}, "samples": {"description": "s"}}),
        )
    }
    manifest = local_workflows.reference_manifest(
        [(s, f"s3://{bucket}/fastq/{s}.fq.gz") for s in samples],
        sample_workflow=workflows["germline"],
        sample_output=f"s3://{bucket}/outputs/",
        qc_config=f"s3://{bucket}/qc.json",
        qc_workflow=workflows["cohort-qc"],
        qc_output=f"s3://{bucket}/qc/",
    )
    s3.put_object(Bucket=bucket, Key=f"manifests/{flowcell_id}.json", Body=json.dumps(manifest).encode())
    return f"s3://{bucket}/manifests/{flowcell_id}.json"


# -- pipelines (healthomics_pipeline) ---------------------------------------------------------

FLOWCELL = "FC-PIPE"
STAGES = ("align", "call", "annotate")


def pipeline_manifest(lab: dict[str, Any], workflows: dict[str, str], samples: list[str] = SAMPLES) -> dict[str, Any]:
    bucket = lab["bucket"]
    return {
        "flowcell_id": FLOWCELL,
        "run_defaults": {"output_uri": f"s3://{bucket}/outputs/{FLOWCELL}"},
        "stages": [
            {
                "name": "align",
                "workflow": {"id": workflows["align"]},
                "parameters": {"fastq": "{fastq}", "sample_id": "{sample_id}"},
                "outputs": ["align.bam"],
            },
            {
                "name": "call",
                "workflow": {"id": workflows["call"]},
                "parameters": {"bam": "{stages.align.outputs.align.bam}", "sample_id": "{sample_id}"},
            },
            {
                "name": "annotate",
                "workflow": {"id": workflows["annotate"]},
                "parameters": {"vcf": "{stages.call.outputs.call.vcf}", "aligned": "{stages.align.run_output_uri}"},
                "run": {"tags": {"team": "annotation"}},
            },
        ],
        "samples": [{"sample_id": s, "parameters": {"fastq": f"s3://{bucket}/fastq/{s}.fastq.gz"}} for s in samples],
        "qc": {
            "workflow_id": lab["qc_workflow"],
            "output_uri": f"s3://{bucket}/qc-outputs/",
            "parameters": {"qc_config": f"s3://{bucket}/qc/config.json"},
        },
    }


def stage_runs(omics: Any) -> dict[tuple[str, str], dict[str, Any]]:
    """Every stage run in the emulator by (sample, stage), with GetRun's detail."""
    runs: dict[tuple[str, str], dict[str, Any]] = {}
    for item in omics.list_runs()["items"]:
        run = omics.get_run(id=item["id"])
        if "stage" in run.get("tags", {}):
            key = (run["tags"]["sample"], run["tags"]["stage"])
            assert key not in runs, f"two runs of {key}"
            runs[key] = run
    return runs


def outputs_json(s3: Any, run: dict[str, Any]) -> dict[str, Any]:
    bucket, prefix = run["runOutputUri"][5:].split("/", 1)
    return dict(json.loads(s3.get_object(Bucket=bucket, Key=f"{prefix}/logs/outputs.json")["Body"].read()))
