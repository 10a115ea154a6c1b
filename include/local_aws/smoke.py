"""``python -m local_aws.smoke``: prove the local stack answers, end to end, in seconds.

Starts moto and the HealthOmics emulator (published default quotas, one emulated hour
per real second), uploads a flowcell of twelve samples, submits them as one run batch
with one sample made to fail, waits for the batch to be PROCESSED, and prints what
happened to every sample, what landed in S3 and which events reached SQS.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from devkit.waiting import wait_until
from local_aws.stack import LocalAWS
from local_aws.workflows import create_active_workflow
from omics_emulator import EmulatorAdmin

BUCKET = "healthomics-demo"
ROLE_ARN = "arn:aws:iam::123456789012:role/healthomics-demo-run"
SAMPLES = [f"NA128{n:02d}" for n in range(78, 90)]
FAILING_SAMPLE = "NA12885"


def _wait(what: str, check: Any, timeout: float = 120.0) -> Any:
    return wait_until(check, timeout=timeout, interval=0.2, what=f"timed out waiting for {what}")


def run_smoke(stack: LocalAWS) -> int:
    s3, omics, sqs = stack.client("s3"), stack.client("omics"), stack.client("sqs")
    admin = EmulatorAdmin(stack.omics_url)
    s3.create_bucket(Bucket=BUCKET)
    for sample in SAMPLES:
        for read in (1, 2):
            s3.put_object(Bucket=BUCKET, Key=f"fastq/{sample}_R{read}.fastq.gz", Body=b"@r\nACGT\n+\nFFFF\n")

    workflow = create_active_workflow(
        omics,
        name="germline-demo",
        engine="WDL",
        definitionUri=f"s3://{BUCKET}/workflows/germline.zip",
        parameterTemplate={
            "sample_id": {"description": "Sample id", "optional": False},
            "fastq_1": {"description": "Read 1", "optional": False},
            "fastq_2": {"description": "Read 2", "optional": False},
        },
        requestId="smoke-germline-demo-v1",
    )
    admin.add_fault(
        action="fail",
        match={"name": f"^{FAILING_SAMPLE}$"},
        failureReason="OUT_OF_MEMORY_ERROR",
        statusMessage="Task HaplotypeCaller exited with out of memory (demo fault)",
    )
    batch = omics.start_run_batch(
        batchName="FC-DEMO-0001",
        requestId="smoke-FC-DEMO-0001-v1",
        defaultRunSetting={
            "workflowId": workflow["id"],
            "roleArn": ROLE_ARN,
            "outputUri": f"s3://{BUCKET}/outputs/FC-DEMO-0001",
            "storageType": "DYNAMIC",
            "runTags": {"flowcell": "FC-DEMO-0001"},
        },
        batchRunSettings={
            "inlineSettings": [
                {
                    "runSettingId": sample,
                    "name": sample,
                    "parameters": {
                        "sample_id": sample,
                        "fastq_1": f"s3://{BUCKET}/fastq/{sample}_R1.fastq.gz",
                        "fastq_2": f"s3://{BUCKET}/fastq/{sample}_R2.fastq.gz",
                    },
                    "runTags": {"sample": sample},
                }
                for sample in SAMPLES
            ]
        },
    )
    print(f"batch {batch['id']} submitted ({len(SAMPLES)} samples); waiting for PROCESSED ...")
    seen: list[str] = []

    def processed() -> bool:
        status = omics.get_batch(batchId=batch["id"])["status"]
        if not seen or seen[-1] != status:
            seen.append(status)
        return status in ("PROCESSED", "FAILED", "CANCELLED")

    _wait("batch PROCESSED", processed)
    print("batch statuses: " + " -> ".join(seen))

    pages = omics.get_paginator("list_runs_in_batch").paginate(batchId=batch["id"])
    entries = [entry for page in pages for entry in page["runs"]]
    print(f"\n{'sample':10} {'run id':9} {'status':10} {'hours':>5}  message")
    failures = 0
    for entry in entries:
        run = omics.get_run(id=entry["runId"])
        hours = (run["stopTime"] - run["startTime"]).total_seconds() / 3600 if "startTime" in run else 0.0
        message = run.get("failureReason", "") + (": " + run["statusMessage"] if "statusMessage" in run else "")
        failures += run["status"] != "COMPLETED"
        print(f"{entry['runSettingId']:10} {run['id']:9} {run['status']:10} {hours:5.1f}  {message}")

    admin.settle()
    keys = [o["Key"] for o in s3.list_objects_v2(Bucket=BUCKET, Prefix="outputs/").get("Contents", [])]
    queue_url = sqs.get_queue_url(QueueName="healthomics-run-events")["QueueUrl"]
    events = 0
    while messages := sqs.receive_message(QueueUrl=queue_url, MaxNumberOfMessages=10).get("Messages", []):
        events += len(messages)
        for message in messages:
            sqs.delete_message(QueueUrl=queue_url, ReceiptHandle=message["ReceiptHandle"])
    counters = admin.counters()
    print(f"\noutputs in s3://{BUCKET}/outputs/: {len(keys)} objects (e.g. {keys[0] if keys else '-'})")
    print(f"status-change events delivered to SQS: {events}")
    print(f"API calls served: {json.dumps({op: c['calls'] for op, c in counters['operations'].items()})}")

    expected_failures = 1
    if failures != expected_failures or len(entries) != len(SAMPLES):
        print(
            f"\nUNEXPECTED: {failures} of {len(entries)} runs failed (expected {expected_failures} of {len(SAMPLES)})"
        )
        return 1
    print(f"\nlocal stack OK: {len(SAMPLES) - failures} runs COMPLETED, {FAILING_SAMPLE} FAILED as injected")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m local_aws.smoke", description=__doc__)
    parser.add_argument("--workdir", type=Path, help="where server logs go (default: a temporary folder)")
    args = parser.parse_args(argv)
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="healthomics-smoke-"))
    started = time.monotonic()
    with LocalAWS(workdir=workdir, time_scale=3600) as stack:
        print(f"moto: {stack.moto_url}   HealthOmics emulator: {stack.omics_url}   logs: {workdir}")
        code = run_smoke(stack)
    print(f"done in {time.monotonic() - started:.1f}s")
    return code


if __name__ == "__main__":
    sys.exit(main())
