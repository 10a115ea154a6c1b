"""One benchmark flowcell in the local stack: N samples' FASTQs, two workflows, a topic, a manifest."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from local_aws.stack import LocalAWS
from local_aws.workflows import germline_and_qc_workflows, reference_manifest

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


def build_flowcell(stack: LocalAWS, samples: int) -> Flowcell:
    """Inputs, an ACTIVE germline and cohort-QC workflow, an SNS topic and a reference manifest."""
    s3, omics, sns = (stack.client(name) for name in ("s3", "omics", "sns"))
    flowcell_id = f"FC-BENCH-{samples:05d}"
    sample_ids = [f"S{n:05d}" for n in range(1, samples + 1)]
    s3.create_bucket(Bucket=BUCKET)
    for sample in sample_ids:
        s3.put_object(Bucket=BUCKET, Key=f"fastq/{flowcell_id}/{sample}.fastq.gz", Body=b"@r\nACGT\n+\nFFFF\n")
    s3.put_object(Bucket=BUCKET, Key="qc/cohort-qc.json", Body=b"{}")
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
