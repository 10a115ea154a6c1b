"""The local AWS stack: moto answers for S3/SQS/SNS/STS, and one Airflow connection reaches both servers."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any
from urllib.parse import unquote_plus

import pytest

from local_aws.stack import LocalAWS
from omics_emulator import EmulatorAdmin


def test_moto_serves_s3_sqs_sns_and_sts(local_aws: LocalAWS) -> None:
    s3, sqs, sns, sts = (local_aws.client(name) for name in ("s3", "sqs", "sns", "sts"))
    bucket = f"stack-{uuid.uuid4().hex[:8]}"
    s3.create_bucket(Bucket=bucket)
    s3.put_object(Bucket=bucket, Key="manifests/FC1.json", Body=b"{}")
    assert s3.head_object(Bucket=bucket, Key="manifests/FC1.json")["ContentLength"] == 2

    queue_url = sqs.create_queue(QueueName=f"q-{uuid.uuid4().hex[:8]}")["QueueUrl"]
    topic_arn = sns.create_topic(Name=f"t-{uuid.uuid4().hex[:8]}")["TopicArn"]
    queue_arn = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    sns.subscribe(TopicArn=topic_arn, Protocol="sqs", Endpoint=queue_arn, Attributes={"RawMessageDelivery": "true"})
    sns.publish(TopicArn=topic_arn, Message="flowcell FC1 done")
    messages = sqs.receive_message(QueueUrl=queue_url, WaitTimeSeconds=1)["Messages"]
    assert messages[0]["Body"] == "flowcell FC1 done"

    assert sts.get_caller_identity()["Account"] == "123456789012"


def test_s3_event_notifications_reach_sqs(local_aws: LocalAWS) -> None:
    s3, sqs = local_aws.client("s3"), local_aws.client("sqs")
    bucket = f"landing-{uuid.uuid4().hex[:8]}"
    queue_url = local_aws.s3_events_to_queue(bucket, "manifests/", f"manifests-{uuid.uuid4().hex[:8]}")
    s3.put_object(Bucket=bucket, Key="manifests/FC1.json", Body=b"{}")
    s3.put_object(Bucket=bucket, Key="other/ignored.json", Body=b"{}")
    bodies = []
    while messages := sqs.receive_message(QueueUrl=queue_url, MaxNumberOfMessages=10).get("Messages", []):
        for message in messages:
            bodies.append(json.loads(message["Body"]))
            sqs.delete_message(QueueUrl=queue_url, ReceiptHandle=message["ReceiptHandle"])
    keys = [r["s3"]["object"]["key"] for body in bodies for r in body.get("Records", [])]
    # Like real S3: one s3:TestEvent first, then records with URL-encoded keys.
    assert bodies[0].get("Event") == "s3:TestEvent"
    assert keys == ["manifests%2FFC1.json"]
    assert [unquote_plus(key) for key in keys] == ["manifests/FC1.json"]


def test_one_airflow_connection_routes_omics_to_the_emulator(
    local_aws: LocalAWS, emulator: EmulatorAdmin, monkeypatch: pytest.MonkeyPatch
) -> None:
    for key, value in local_aws.env().items():
        monkeypatch.setenv(key, value)
    from airflow.providers.amazon.aws.hooks.base_aws import AwsBaseHook
    from airflow.providers.amazon.aws.hooks.s3 import S3Hook

    omics: Any = AwsBaseHook(aws_conn_id="aws_default", client_type="omics").conn
    assert omics.meta.endpoint_url == local_aws.omics_url
    assert omics.meta.config.inject_host_prefix is False
    assert omics.list_runs()["items"] == []
    assert emulator.calls("ListRuns") == 1

    s3_hook = S3Hook(aws_conn_id="aws_default")
    assert s3_hook.get_conn().meta.endpoint_url == local_aws.moto_url
    bucket = f"hook-{uuid.uuid4().hex[:8]}"
    s3_hook.create_bucket(bucket_name=bucket)
    assert s3_hook.check_for_bucket(bucket)


def test_stack_command_line_up_status_down(tmp_path: Path) -> None:
    state_dir = tmp_path / "stack"

    def local_aws_cli(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "local_aws", *args, "--state-dir", str(state_dir)],
            capture_output=True,
            text=True,
            timeout=120,
            env={**os.environ},
        )

    up = local_aws_cli("up")
    try:
        assert up.returncode == 0, up.stdout + up.stderr
        state = json.loads((state_dir / "stack.json").read_text())
        assert "AIRFLOW_CONN_AWS_DEFAULT" in (state_dir / "stack.env").read_text()
        status = local_aws_cli("status")
        assert status.returncode == 0 and status.stdout.count(" up ") == 2, status.stdout
        assert EmulatorAdmin(state["omics"]["url"]).health()["status"] == "ok"
    finally:
        down = local_aws_cli("down")
    assert down.returncode == 0, down.stderr
    assert local_aws_cli("status").returncode == 1
