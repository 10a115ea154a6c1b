"""One benchmark flowcell in the local stack: N samples' FASTQs, two workflows, a topic, a manifest."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from local_aws.stack import LocalAWS
from local_aws.workflows import create_active_workflow, germline_and_qc_workflows, reference_manifest

ROLE_ARN = "arn:aws:iam::123456789012:role/healthomics-bench-run"
BUCKET = "healthomics-bench"


@dataclass(frozen=True)
class Flowcell:
    flowcell_id: str
    samples: list[str]
    manifest_uri: str
    topic_arn: str

    def conf(self) -> dict[str, Any]:
        """The DAG run conf both DAGs accept."""
        return {"manifest_uri": self.manifest_uri, "role_arn": ROLE_ARN, "sns_topic_arn": self.topic_arn}


def put_inputs(s3: Any, flowcell_id: str, samples: int) -> list[str]:
    """The bench bucket with one FASTQ per sample and the QC thresholds; the sample ids."""
    sample_ids = [f"S{n:05d}" for n in range(1, samples + 1)]
    s3.create_bucket(Bucket=BUCKET)
    for sample in sample_ids:
        s3.put_object(Bucket=BUCKET, Key=f"fastq/{flowcell_id}/{sample}.fastq.gz", Body=b"@r\nACGT\n+\nFFFF\n")
    s3.put_object(Bucket=BUCKET, Key="qc/cohort-qc.json", Body=b"{}")
    return sample_ids


def build_flowcell(stack: LocalAWS, samples: int) -> Flowcell:
    """Inputs, an ACTIVE germline and cohort-QC workflow, an SNS topic and a reference manifest."""
    s3, omics, sns = (stack.client(name) for name in ("s3", "omics", "sns"))
    flowcell_id = f"FC-BENCH-{samples:05d}"
    sample_ids = put_inputs(s3, flowcell_id, samples)
    germline, cohort_qc = germline_and_qc_workflows(omics, BUCKET, "bench")
    manifest = reference_manifest(
        [(sample, f"s3://{BUCKET}/fastq/{flowcell_id}/{sample}.fastq.gz") for sample in sample_ids],
        sample_workflow=germline,
        sample_output=f"s3://{BUCKET}/outputs/{flowcell_id}/",
        qc_config=f"s3://{BUCKET}/qc/cohort-qc.json",
        qc_workflow=cohort_qc,
        qc_output=f"s3://{BUCKET}/qc/{flowcell_id}/",
    )
    key = f"manifests/{flowcell_id}.json"
    s3.put_object(Bucket=BUCKET, Key=key, Body=json.dumps(manifest).encode())
    topic = str(sns.create_topic(Name="healthomics-bench")["TopicArn"])
    return Flowcell(flowcell_id, sample_ids, f"s3://{BUCKET}/{key}", topic)


# -- a pipeline per sample (healthomics_pipeline, and the same stages run flowcell-wide one after another) --

# Each stage's workflow: its parameters, and what it writes to outputs.json (``<workflow>.<output>``).
STAGES: dict[str, dict[str, Any]] = {
    "align": {"parameters": {"sample_id": "{sample_id}", "fastq": "{fastq}"}, "output": "bam"},
    "call": {"parameters": {"sample_id": "{sample_id}", "bam": "{stages.align.outputs.align.bam}"}, "output": "vcf"},
    "annotate": {"parameters": {"sample_id": "{sample_id}", "vcf": "{stages.call.outputs.call.vcf}"}, "output": "tsv"},
}


@dataclass(frozen=True)
class Pipeline(Flowcell):
    workflows: dict[str, str]  # stage -> workflow id
    qc_workflow: str


def pipeline_workflows(omics: Any) -> tuple[dict[str, str], str]:
    """One ACTIVE workflow per stage (named after it) and the cohort QC workflow."""
    ids = {}
    for name, stage in STAGES.items():
        template = {parameter: {"description": parameter} for parameter in stage["parameters"]}
        ids[name] = str(
            create_active_workflow(
                omics,
                name=name,
                definitionUri=f"s3://{BUCKET}/workflows/{name}.zip",
                parameterTemplate=template,
                requestId=f"bench-{name}",
            )["id"]
        )
    qc = create_active_workflow(
        omics,
        name="cohort-qc",
        definitionUri=f"s3://{BUCKET}/workflows/cohort-qc.zip",
        parameterTemplate={"qc_config": {"description": "config"}, "samples": {"description": "samples"}},
        requestId="bench-cohort-qc",
    )
    return ids, str(qc["id"])


def build_pipeline(stack: LocalAWS, samples: int) -> Pipeline:
    """N samples' FASTQs, the stage workflows, a topic, and the three-stage pipeline manifest."""
    s3, omics, sns = (stack.client(name) for name in ("s3", "omics", "sns"))
    flowcell_id = f"FC-PIPE-{samples:05d}"
    sample_ids = put_inputs(s3, flowcell_id, samples)
    workflows, qc_workflow = pipeline_workflows(omics)
    manifest = {
        "flowcell_id": flowcell_id,
        "run_defaults": {"output_uri": f"s3://{BUCKET}/outputs/{flowcell_id}/"},
        "stages": [
            {"name": name, "workflow": {"id": workflows[name]}, "parameters": stage["parameters"]}
            for name, stage in STAGES.items()
        ],
        "samples": [
            {"sample_id": s, "parameters": {"fastq": f"s3://{BUCKET}/fastq/{flowcell_id}/{s}.fastq.gz"}}
            for s in sample_ids
        ],
        "qc": {
            "workflow_id": qc_workflow,
            "output_uri": f"s3://{BUCKET}/qc/{flowcell_id}/",
            "parameters": {"qc_config": f"s3://{BUCKET}/qc/cohort-qc.json"},
        },
    }
    key = f"manifests/{flowcell_id}.json"
    s3.put_object(Bucket=BUCKET, Key=key, Body=json.dumps(manifest).encode())
    topic = str(sns.create_topic(Name="healthomics-bench")["TopicArn"])
    return Pipeline(flowcell_id, sample_ids, f"s3://{BUCKET}/{key}", topic, workflows, qc_workflow)


def stage_manifest(stack: LocalAWS, pipeline: Pipeline, stage: str, earlier: dict[str, dict[str, Any]]) -> str:
    """The one-workflow manifest that runs ``stage`` for every sample across the flowcell (what a lab
    without per-sample chaining does: each stage after the whole flowcell finished the one before),
    its inputs read from the earlier stage runs' outputs.json (``earlier``: sample -> that run)."""
    s3 = stack.client("s3")
    names = list(STAGES)
    index = names.index(stage)
    samples = []
    for sample in pipeline.samples:
        parameters: dict[str, Any] = {"sample_id": sample}
        if index == 0:
            parameters["fastq"] = f"s3://{BUCKET}/fastq/{pipeline.flowcell_id}/{sample}.fastq.gz"
        else:
            previous = names[index - 1]
            run = earlier[sample]
            bucket, prefix = run["runOutputUri"].removeprefix("s3://").split("/", 1)
            outputs = json.loads(
                s3.get_object(Bucket=bucket, Key=f"{prefix.rstrip('/')}/logs/outputs.json")["Body"].read()
            )
            parameters[STAGES[previous]["output"]] = outputs[f"{previous}.{STAGES[previous]['output']}"]
        samples.append({"sample_id": sample, "parameters": parameters})
    manifest: dict[str, Any] = {
        "flowcell_id": f"{pipeline.flowcell_id}-{stage}",
        "workflow": {"id": pipeline.workflows[stage]},
        "run_defaults": {"output_uri": f"s3://{BUCKET}/outputs/{pipeline.flowcell_id}/"},
        "samples": samples,
    }
    if index == len(names) - 1:
        manifest["qc"] = {
            "workflow_id": pipeline.qc_workflow,
            "output_uri": f"s3://{BUCKET}/qc/{pipeline.flowcell_id}/",
            "parameters": {"qc_config": f"s3://{BUCKET}/qc/cohort-qc.json"},
        }
    key = f"manifests/{pipeline.flowcell_id}-{stage}.json"
    s3.put_object(Bucket=BUCKET, Key=key, Body=json.dumps(manifest).encode())
    return f"s3://{BUCKET}/{key}"
