"""``python -m healthomics_demo`` (``make demo``): one flowcell, end to end, on this machine.

Starts moto and the HealthOmics emulator, puts twelve samples' FASTQs, a sample workflow, a
QC workflow and an SNS topic in place, uploads a manifest in the Step Functions reference
format (sample NA12885 is made to fail through the emulator's fault injection), runs the
``healthomics_flowcell`` DAG with ``airflow dags test``, then prints the report the DAG
wrote to S3 and the notification it published.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from local_aws.stack import LocalAWS
from local_aws.workflows import create_active_workflow, reference_manifest
from omics_emulator import EmulatorAdmin

REPO = Path(__file__).resolve().parents[2]
BUCKET = "healthomics-demo"
FLOWCELL = "FC-DEMO-0001"
ROLE_ARN = "arn:aws:iam::123456789012:role/healthomics-demo-run"
SAMPLES = [f"NA128{n:02d}" for n in range(78, 90)]
FAILING_SAMPLE = "NA12885"


def prepare(stack: LocalAWS) -> dict[str, Any]:
    """Inputs, workflows, fault, topic; returns the DAG run conf."""
    s3, omics, sns, sqs = (stack.client(name) for name in ("s3", "omics", "sns", "sqs"))
    s3.create_bucket(Bucket=BUCKET)
    for sample in SAMPLES:
        s3.put_object(Bucket=BUCKET, Key=f"fastq/{FLOWCELL}/{sample}.fastq.gz", Body=b"@r1\nACGT\n+\nFFFF\n")
    s3.put_object(Bucket=BUCKET, Key="qc/cohort-qc.json", Body=json.dumps({"min_mean_coverage": 30}).encode())
    sample_wf, qc_wf = (
        create_active_workflow(
            omics,
            name=name,
            engine="WDL",
            definitionUri=f"s3://{BUCKET}/workflows/{name}.zip",
            parameterTemplate=template,
            requestId=f"demo-{name}-v1",
        )
        for name, template in (
            ("germline-wgs", {"sample_id": {"description": "Sample id"}, "fastq": {"description": "Reads"}}),
            ("cohort-qc", {"qc_config": {"description": "QC thresholds"}, "samples": {"description": "Samples"}}),
        )
    )
    EmulatorAdmin(stack.omics_url).add_fault(
        action="fail",
        match={"name": f"{FAILING_SAMPLE}$"},
        failureReason="OUT_OF_MEMORY_ERROR",
        statusMessage="Task HaplotypeCaller exited with out of memory (demo fault)",
    )
    topic = sns.create_topic(Name="healthomics-flowcells")["TopicArn"]
    inbox = sqs.create_queue(QueueName="flowcell-notifications")["QueueUrl"]
    inbox_arn = sqs.get_queue_attributes(QueueUrl=inbox, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    sns.subscribe(TopicArn=topic, Protocol="sqs", Endpoint=inbox_arn, Attributes={"RawMessageDelivery": "true"})
    manifest = reference_manifest(
        [(sample, f"s3://{BUCKET}/fastq/{FLOWCELL}/{sample}.fastq.gz") for sample in SAMPLES],
        sample_workflow=sample_wf["arn"],
        sample_output=f"s3://{BUCKET}/outputs/{FLOWCELL}/",
        qc_config=f"s3://{BUCKET}/qc/cohort-qc.json",
        qc_workflow=qc_wf["id"],
        qc_output=f"s3://{BUCKET}/qc/{FLOWCELL}/",
    )
    key = f"manifests/{FLOWCELL}.json"
    s3.put_object(Bucket=BUCKET, Key=key, Body=json.dumps(manifest, indent=2).encode())
    print(f"manifest: s3://{BUCKET}/{key} ({len(SAMPLES)} samples, reference format; {FAILING_SAMPLE} will fail)")
    return {
        "conf": {
            "manifest_uri": f"s3://{BUCKET}/{key}",
            "role_arn": ROLE_ARN,
            "sns_topic_arn": topic,
            # A failed sample would gate QC; the demo lets QC run on the 11 others.
            "qc_min_completed_fraction": 0.9,
        },
        "inbox": inbox,
    }


def airflow_env(stack: LocalAWS, home: Path) -> dict[str, str]:
    return {
        **os.environ,
        **stack.env(),
        "AIRFLOW_HOME": str(home),
        "AIRFLOW__CORE__DAGS_FOLDER": str(REPO / "dags"),
        "AIRFLOW__CORE__PLUGINS_FOLDER": str(REPO / "plugins"),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__HEALTHOMICS__POLL_SECONDS": "2",
    }


def run_dag(env: dict[str, str], conf: dict[str, Any], log_path: Path) -> int:
    airflow = [sys.executable, "-m", "airflow"]
    subprocess.run([*airflow, "db", "migrate"], env=env, check=True, capture_output=True)
    print(f"running: airflow dags test healthomics_flowcell --conf '...'   (log: {log_path})")
    with log_path.open("w") as log:
        return subprocess.run(
            [*airflow, "dags", "test", "healthomics_flowcell", "--conf", json.dumps(conf)],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        ).returncode


def show_results(stack: LocalAWS, inbox: str) -> str:
    s3, sqs = stack.client("s3"), stack.client("sqs")
    reports = [
        o["Key"]
        for o in s3.list_objects_v2(Bucket=BUCKET, Prefix=f"outputs/{FLOWCELL}/_reports/").get("Contents", [])
        if o["Key"].endswith("report.txt")
    ]
    if not reports:
        print("no report was written (see the DAG log)")
        return "MISSING"
    text = s3.get_object(Bucket=BUCKET, Key=reports[-1])["Body"].read().decode()
    print("\n" + "=" * 100 + "\n" + text + "=" * 100)
    messages = sqs.receive_message(QueueUrl=inbox, MaxNumberOfMessages=10, WaitTimeSeconds=2).get("Messages", [])
    print(
        f"SNS notification delivered: {len(messages)} message(s); subject line: "
        f"{messages[0]['Body'].splitlines()[0] if messages else '-'}"
    )
    print(f"report: s3://{BUCKET}/{reports[-1]} (and report.json beside it)")
    return str(text.splitlines()[0])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m healthomics_demo", description=__doc__)
    parser.add_argument("--workdir", type=Path, default=REPO / ".local" / "demo")
    args = parser.parse_args(argv)
    started = time.monotonic()
    args.workdir.mkdir(parents=True, exist_ok=True)
    with LocalAWS(workdir=args.workdir / "stack", time_scale=3600) as stack:
        print(f"local stack: moto {stack.moto_url}, HealthOmics emulator {stack.omics_url}")
        setup = prepare(stack)
        code = run_dag(airflow_env(stack, args.workdir / "airflow"), setup["conf"], args.workdir / "dag-test.log")
        headline = show_results(stack, setup["inbox"])
    print(
        f"\ndone in {time.monotonic() - started:.0f}s; DAG run exit code {code} "
        f"({'failed, as expected: one sample failed' if code else 'succeeded'})"
    )
    # The demo succeeds when the pipeline behaved as designed: the report exists and calls the
    # flowcell FAILED because of the one injected failure (QC still ran on the other 11).
    return 0 if headline.startswith(f"Flowcell {FLOWCELL}: FAILED") else 1


if __name__ == "__main__":
    sys.exit(main())
