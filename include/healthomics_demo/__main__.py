"""``python -m healthomics_demo`` (``make demo``): one flowcell, end to end, on this machine.

Starts moto and the HealthOmics emulator, puts twelve samples' FASTQs, two stage workflows
(``align`` -> ``call``), a QC workflow and an SNS topic in place, uploads a pipeline manifest
(sample NA12885 is made to fail in its second stage through the emulator's fault injection),
runs the ``healthomics_pipeline`` DAG with ``airflow dags test``, then prints the report the
DAG wrote to S3 (each sample's stages) and the notification it published.

``prepare`` sets up the one-workflow flowcell of ``make up`` (the Step Functions reference
format, NA12885 failing), on the same lab.
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
DAG_ID = "healthomics_pipeline"


def _lab(stack: LocalAWS) -> dict[str, Any]:
    """The bucket with every sample's FASTQ and the QC thresholds, and a topic with a reader."""
    s3, sns, sqs = (stack.client(name) for name in ("s3", "sns", "sqs"))
    s3.create_bucket(Bucket=BUCKET)
    for sample in SAMPLES:
        s3.put_object(Bucket=BUCKET, Key=f"fastq/{FLOWCELL}/{sample}.fastq.gz", Body=b"@r1\nACGT\n+\nFFFF\n")
    s3.put_object(Bucket=BUCKET, Key="qc/cohort-qc.json", Body=json.dumps({"min_mean_coverage": 30}).encode())
    topic = sns.create_topic(Name="healthomics-flowcells")["TopicArn"]
    inbox = sqs.create_queue(QueueName="flowcell-notifications")["QueueUrl"]
    inbox_arn = sqs.get_queue_attributes(QueueUrl=inbox, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    sns.subscribe(TopicArn=topic, Protocol="sqs", Endpoint=inbox_arn, Attributes={"RawMessageDelivery": "true"})
    return {"topic": topic, "inbox": inbox}


def _workflows(omics: Any, templates: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {
        name: create_active_workflow(
            omics,
            name=name,
            engine="WDL",
            definitionUri=f"s3://{BUCKET}/workflows/{name}.zip",
            parameterTemplate=template,
            requestId=f"demo-{name}-v1",
        )
        for name, template in templates.items()
    }


def _upload(stack: LocalAWS, manifest: dict[str, Any]) -> str:
    key = f"manifests/{FLOWCELL}.json"
    stack.client("s3").put_object(Bucket=BUCKET, Key=key, Body=json.dumps(manifest, indent=2).encode())
    return f"s3://{BUCKET}/{key}"


def _conf(lab: dict[str, Any], manifest_uri: str) -> dict[str, Any]:
    return {
        "conf": {
            "manifest_uri": manifest_uri,
            "role_arn": ROLE_ARN,
            "sns_topic_arn": lab["topic"],
            # A failed sample would gate QC; the demo lets QC run on the 11 others.
            "qc_min_completed_fraction": 0.9,
        },
        "inbox": lab["inbox"],
    }


def prepare(stack: LocalAWS) -> dict[str, Any]:
    """The one-workflow flowcell (reference format, NA12885 failing); returns the DAG run conf."""
    lab = _lab(stack)
    workflows = _workflows(
        stack.client("omics"),
        {
            "germline-wgs": {"sample_id": {"description": "Sample id"}, "fastq": {"description": "Reads"}},
            "cohort-qc": {"qc_config": {"description": "QC thresholds"}, "samples": {"description": "Samples"}},
        },
    )
    EmulatorAdmin(stack.omics_url).add_fault(
        action="fail",
        match={"name": f"{FAILING_SAMPLE}$"},
        failureReason="OUT_OF_MEMORY_ERROR",
        statusMessage="Task HaplotypeCaller exited with out of memory (demo fault)",
    )
    manifest = reference_manifest(
        [(sample, f"s3://{BUCKET}/fastq/{FLOWCELL}/{sample}.fastq.gz") for sample in SAMPLES],
        sample_workflow=workflows["germline-wgs"]["arn"],
        sample_output=f"s3://{BUCKET}/outputs/{FLOWCELL}/",
        qc_config=f"s3://{BUCKET}/qc/cohort-qc.json",
        qc_workflow=workflows["cohort-qc"]["id"],
        qc_output=f"s3://{BUCKET}/qc/{FLOWCELL}/",
    )
    uri = _upload(stack, manifest)
    print(f"manifest: {uri} ({len(SAMPLES)} samples, reference format; {FAILING_SAMPLE} will fail)")
    return _conf(lab, uri)


def prepare_pipeline(stack: LocalAWS) -> dict[str, Any]:
    """The two-stage flowcell (align -> call, then QC; NA12885 failing in call); returns the DAG run conf."""
    lab = _lab(stack)
    workflows = _workflows(
        stack.client("omics"),
        {
            "align": {"sample_id": {"description": "Sample id"}, "fastq": {"description": "Reads"}},
            "call": {"sample_id": {"description": "Sample id"}, "bam": {"description": "Aligned reads"}},
            "cohort-qc": {"qc_config": {"description": "QC thresholds"}, "samples": {"description": "Samples"}},
        },
    )
    emulator = EmulatorAdmin(stack.omics_url)
    # What each workflow writes to logs/outputs.json (as <workflow>.<output>, like WDL).
    emulator.configure(
        profiles={
            "align": {"outputs": {"bam": "out/{runName}.bam"}},
            "call": {"outputs": {"vcf": "out/{runName}.vcf.gz"}},
        }
    )
    emulator.add_fault(
        action="fail",
        match={"name": f"{FAILING_SAMPLE}-call$"},
        failureReason="OUT_OF_MEMORY_ERROR",
        statusMessage="Task HaplotypeCaller exited with out of memory (demo fault)",
    )
    manifest = {
        "flowcell_id": FLOWCELL,
        "run_defaults": {"output_uri": f"s3://{BUCKET}/outputs/{FLOWCELL}/"},
        "stages": [
            {
                "name": "align",
                "workflow": {"id": workflows["align"]["id"]},
                "parameters": {"sample_id": "{sample_id}", "fastq": "{fastq}"},
                "outputs": ["align.bam"],
            },
            {
                "name": "call",
                "workflow": {"id": workflows["call"]["id"]},
                "parameters": {"sample_id": "{sample_id}", "bam": "{stages.align.outputs.align.bam}"},
            },
        ],
        "samples": [
            {"sample_id": sample, "parameters": {"fastq": f"s3://{BUCKET}/fastq/{FLOWCELL}/{sample}.fastq.gz"}}
            for sample in SAMPLES
        ],
        "qc": {
            "workflow_id": workflows["cohort-qc"]["id"],
            "output_uri": f"s3://{BUCKET}/qc/{FLOWCELL}/",
            "parameters": {"qc_config": f"s3://{BUCKET}/qc/cohort-qc.json"},
        },
    }
    uri = _upload(stack, manifest)
    print(f"manifest: {uri} ({len(SAMPLES)} samples, align -> call; {FAILING_SAMPLE} will fail in call)")
    return _conf(lab, uri)


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
    print(f"running: airflow dags test {DAG_ID} --conf '...'   (log: {log_path})")
    with log_path.open("w") as log:
        return subprocess.run(
            [*airflow, "dags", "test", DAG_ID, "--conf", json.dumps(conf)],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        ).returncode


def show_results(stack: LocalAWS, inbox: str, workdir: Path) -> str:
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
    # The local stack goes away with the demo: keep the picture and the page to open afterwards.
    for name in ("timeline.png", "report.html"):
        key = reports[-1].removesuffix("report.txt") + name
        try:
            body = s3.get_object(Bucket=BUCKET, Key=key)["Body"].read()
        except s3.exceptions.NoSuchKey:
            print(f"{name}: not written (see the DAG log)")
            continue
        (workdir / name).write_bytes(body)
        print(f"{name}: s3://{BUCKET}/{key}, copied to {workdir / name}")
    return str(text.splitlines()[0])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m healthomics_demo", description=__doc__)
    parser.add_argument("--workdir", type=Path, default=REPO / ".local" / "demo")
    args = parser.parse_args(argv)
    started = time.monotonic()
    args.workdir.mkdir(parents=True, exist_ok=True)
    with LocalAWS(workdir=args.workdir / "stack", time_scale=3600) as stack:
        print(f"local stack: moto {stack.moto_url}, HealthOmics emulator {stack.omics_url}")
        setup = prepare_pipeline(stack)
        code = run_dag(airflow_env(stack, args.workdir / "airflow"), setup["conf"], args.workdir / "dag-test.log")
        headline = show_results(stack, setup["inbox"], args.workdir)
    print(
        f"\ndone in {time.monotonic() - started:.0f}s; DAG run exit code {code} "
        f"({'failed, as expected: one sample failed' if code else 'succeeded'})"
    )
    # The demo succeeds when the pipeline behaved as designed: the report exists and calls the
    # flowcell FAILED because of the one injected failure in a second stage (QC still ran on the
    # other 11).
    return 0 if headline.startswith(f"Flowcell {FLOWCELL}: FAILED") else 1


if __name__ == "__main__":
    sys.exit(main())
