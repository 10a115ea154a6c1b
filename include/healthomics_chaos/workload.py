"""What the chaos run does: one large flowcell, a stream of manifests landing in S3, run events flowing.

Everything lives in the local stack: FASTQs and outputs in ``chaos-lab``, manifests landing
under ``s3://chaos-landing/manifests/`` (S3 event notifications to an SQS queue), run status
events from the emulator to a second queue, the event archive in ``chaos-events``, and an SNS
topic whose messages an SQS queue keeps, so every notification can be counted.
"""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote_plus

from local_aws.stack import LocalAWS
from local_aws.workflows import germline_and_qc_workflows, reference_manifest

ROLE_ARN = "arn:aws:iam::123456789012:role/healthomics-chaos-run"
LAB = "chaos-lab"
LANDING = "chaos-landing"
ARCHIVE = "chaos-events"
MANIFEST_PREFIX = "manifests/"
MANIFEST_QUEUE = "chaos-manifests"
EVENTS_QUEUE = "chaos-run-events"
NOTIFICATIONS_QUEUE = "chaos-notifications"
TOPIC = "chaos-flowcells"


@dataclass
class Landed:
    """One manifest version that landed in S3."""

    flowcell_id: str
    samples: list[str]
    key: str
    etag: str
    duplicated: bool = False

    @property
    def run_id(self) -> str:
        return f"manifest__{self.flowcell_id}__{self.etag}"


@dataclass
class Workload:
    """The resources of one chaos run, made in the local stack by :meth:`prepare`."""

    stack: LocalAWS
    samples: int
    manifests: int
    samples_per_manifest: int = 3
    sample_workflow: str = ""
    qc_workflow: str = ""
    topic_arn: str = ""
    queues: dict[str, str] = field(default_factory=dict)
    landed: list[Landed] = field(default_factory=list)

    @property
    def big_flowcell(self) -> str:
        return f"FC-CHAOS-{self.samples:04d}"

    def prepare(self) -> None:
        s3, sns, sqs, omics = (self.stack.client(name) for name in ("s3", "sns", "sqs", "omics"))
        for bucket in (LAB, ARCHIVE):
            s3.create_bucket(Bucket=bucket)
        s3.put_object(Bucket=LAB, Key="qc/cohort-qc.json", Body=b"{}")
        self.sample_workflow, self.qc_workflow = germline_and_qc_workflows(omics, LAB, "chaos")
        self.queues["manifests"] = self.stack.s3_events_to_queue(LANDING, MANIFEST_PREFIX, MANIFEST_QUEUE)
        self.queues["events"] = str(sqs.create_queue(QueueName=EVENTS_QUEUE)["QueueUrl"])
        self.queues["notifications"] = str(sqs.create_queue(QueueName=NOTIFICATIONS_QUEUE)["QueueUrl"])
        self.topic_arn = str(sns.create_topic(Name=TOPIC)["TopicArn"])
        notifications_arn = sqs.get_queue_attributes(
            QueueUrl=self.queues["notifications"], AttributeNames=["QueueArn"]
        )["Attributes"]["QueueArn"]
        sns.subscribe(TopicArn=self.topic_arn, Protocol="sqs", Endpoint=notifications_arn)

    def manifest(self, flowcell_id: str, samples: list[str]) -> dict[str, Any]:
        s3 = self.stack.client("s3")
        for sample in samples:
            s3.put_object(Bucket=LAB, Key=f"fastq/{flowcell_id}/{sample}.fastq.gz", Body=b"@r\nACGT\n+\nFFFF\n")
        return reference_manifest(
            [(sample, f"s3://{LAB}/fastq/{flowcell_id}/{sample}.fastq.gz") for sample in samples],
            sample_workflow=self.sample_workflow,
            sample_output=f"s3://{LAB}/outputs/{flowcell_id}/",
            qc_config=f"s3://{LAB}/qc/cohort-qc.json",
            qc_workflow=self.qc_workflow,
            qc_output=f"s3://{LAB}/qc/{flowcell_id}/",
        )

    def big_flowcell_conf(self) -> dict[str, Any]:
        """The conf of the large flowcell's run, triggered as a person would (REST API)."""
        samples = [f"S{n:04d}" for n in range(1, self.samples + 1)]
        key = f"direct/{self.big_flowcell}.json"
        self.stack.client("s3").put_object(
            Bucket=LAB, Key=key, Body=json.dumps(self.manifest(self.big_flowcell, samples)).encode()
        )
        return {"manifest_uri": f"s3://{LAB}/{key}", "sns_topic_arn": self.topic_arn}

    def expected_samples(self) -> dict[str, list[str]]:
        """Flowcell id -> its samples, for every flowcell started so far."""
        flowcells = {self.big_flowcell: [f"S{n:04d}" for n in range(1, self.samples + 1)]}
        flowcells.update({landed.flowcell_id: landed.samples for landed in self.landed})
        return flowcells

    def land(self, index: int, duplicate: bool) -> Landed:
        """Upload manifest ``index`` under the watched prefix (and, if asked, announce it twice)."""
        flowcell_id = f"FC-LAND-{index:03d}"
        samples = [f"L{index:03d}S{n}" for n in range(1, self.samples_per_manifest + 1)]
        key = f"{MANIFEST_PREFIX}{flowcell_id}.json"
        body = json.dumps(self.manifest(flowcell_id, samples)).encode()
        etag = str(self.stack.client("s3").put_object(Bucket=LANDING, Key=key, Body=body)["ETag"]).strip('"')
        landed = Landed(flowcell_id, samples, key, etag, duplicated=duplicate)
        if duplicate:  # S3 delivers event notifications at least once: send this one again
            self.stack.client("sqs").send_message(
                QueueUrl=self.queues["manifests"],
                MessageBody=json.dumps(s3_notification(LANDING, key, etag, len(body))),
            )
        self.landed.append(landed)
        return landed


def s3_notification(bucket: str, key: str, etag: str, size: int) -> dict[str, Any]:
    """An S3 "ObjectCreated:Put" event notification, as S3 sends it to SQS."""
    return {
        "Records": [
            {
                "eventVersion": "2.1",
                "eventSource": "aws:s3",
                "awsRegion": "us-east-1",
                "eventTime": dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
                "eventName": "ObjectCreated:Put",
                "s3": {
                    "bucket": {"name": bucket, "arn": f"arn:aws:s3:::{bucket}"},
                    "object": {"key": quote_plus(key), "size": size, "eTag": etag},
                },
            }
        ]
    }
