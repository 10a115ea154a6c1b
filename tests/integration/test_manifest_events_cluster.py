"""Manifests landing in S3 start flowcell runs by themselves, in a real local Airflow.

S3 event notifications (moto) -> SQS -> the asset watcher in the triggerer -> the scheduler
runs healthomics_manifest_events -> one healthomics_flowcell run per manifest version. The
flowcell DAG is paused while runs are counted (they queue), and unpaused to watch an invalid
manifest fail.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest

from devkit.waiting import wait_until
from local_airflow.deployment import LocalAirflow

from .conftest import INTAKE_BUCKET, INTAKE_PREFIX

# A real Airflow: api-server, scheduler, dag-processor and triggerer as processes.
pytestmark = pytest.mark.cluster

FLOWCELL_DAG = "healthomics_flowcell"
EVENTS_DAG = "healthomics_manifest_events"


@pytest.fixture(scope="module")
def intake(airflow_cluster: LocalAirflow) -> Iterator[LocalAirflow]:
    airflow_cluster.pause(FLOWCELL_DAG)
    airflow_cluster.unpause(EVENTS_DAG)
    yield airflow_cluster
    discard_queued_flowcells(airflow_cluster)


def discard_queued_flowcells(airflow: LocalAirflow) -> None:
    for run in airflow.dag_runs(FLOWCELL_DAG):
        if run["state"] == "queued":
            airflow.delete_dag_run(FLOWCELL_DAG, run["dag_run_id"])


def land(s3: Any, flowcell: str, manifest: Any = None) -> str:
    """Write a manifest into the landing prefix; its ETag."""
    body = json.dumps(manifest or {"flowcellSamples": [], "note": uuid.uuid4().hex}).encode()
    return str(s3.put_object(Bucket=INTAKE_BUCKET, Key=f"{INTAKE_PREFIX}{flowcell}.json", Body=body)["ETag"]).strip('"')


def flowcell_runs(airflow: LocalAirflow, tag: str) -> dict[str, dict[str, Any]]:
    return {r["dag_run_id"]: r for r in airflow.dag_runs(FLOWCELL_DAG) if tag in r["dag_run_id"]}


def settle(airflow: LocalAirflow, sqs: Any, timeout: float = 240.0) -> None:
    """Until the queue is empty (messages are deleted only once handled) and no intake run is active."""
    queue = airflow.manifest_queue_url  # type: ignore[attr-defined]

    def pending() -> int:
        attributes = sqs.get_queue_attributes(
            QueueUrl=queue, AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"]
        )["Attributes"]
        return int(attributes["ApproximateNumberOfMessages"]) + int(attributes["ApproximateNumberOfMessagesNotVisible"])

    def active() -> list[dict[str, Any]]:
        return [r for r in airflow.dag_runs(EVENTS_DAG) if r["state"] in ("queued", "running")]

    def tasks_of(run_id: str) -> list[dict[str, Any]]:
        return list(airflow.task_instances(EVENTS_DAG, run_id))

    def stuck() -> str:
        tasks = {
            r["dag_run_id"]: sorted(
                {
                    (t["task_id"], t["map_index"], t["state"])
                    for t in airflow.task_instances(EVENTS_DAG, r["dag_run_id"])
                }
            )
            for r in active()
        }
        return f"intake did not settle: {pending()} message(s), active runs: {tasks}"

    wait_until(lambda: not pending() and not active(), timeout=timeout, interval=1, what=stuck)


def test_an_upload_starts_one_run_a_duplicate_event_none_and_a_new_version_another(
    intake: LocalAirflow, s3: Any, local_aws: Any
) -> None:
    sqs = local_aws.client("sqs")
    flowcell = f"FC{uuid.uuid4().hex[:8].upper()}"
    etag = land(s3, flowcell)
    settle(intake, sqs)
    runs = flowcell_runs(intake, flowcell)
    assert list(runs) == [f"manifest__{flowcell}__{etag}"]
    [run] = runs.values()
    assert run["conf"] == {
        "manifest_uri": f"s3://{INTAKE_BUCKET}/{INTAKE_PREFIX}{flowcell}.json",
        "manifest_etag": etag,
    }
    assert run["state"] == "queued"  # (the flowcell DAG is paused here)

    # The same event delivered twice more (S3 delivers at least once).
    record = {
        "eventVersion": "2.1",
        "eventSource": "aws:s3",
        "eventName": "ObjectCreated:Put",
        "eventTime": "2026-11-25T00:00:00.000Z",
        "s3": {
            "bucket": {"name": INTAKE_BUCKET},
            "object": {"key": f"{INTAKE_PREFIX}{flowcell}.json", "eTag": etag, "size": 1},
        },
    }
    for _ in range(2):
        sqs.send_message(QueueUrl=intake.manifest_queue_url, MessageBody=json.dumps({"Records": [record]}))  # type: ignore[attr-defined]
    sqs.send_message(QueueUrl=intake.manifest_queue_url, MessageBody="not an S3 event")  # type: ignore[attr-defined]
    settle(intake, sqs)
    assert list(flowcell_runs(intake, flowcell)) == [f"manifest__{flowcell}__{etag}"]

    # A changed manifest is a new version: a second run.
    new_etag = land(s3, flowcell, {"flowcellSamples": [], "note": "edited"})
    settle(intake, sqs)
    assert sorted(flowcell_runs(intake, flowcell)) == sorted(
        [f"manifest__{flowcell}__{etag}", f"manifest__{flowcell}__{new_etag}"]
    )


def test_fifty_manifests_at_once_each_get_their_run(intake: LocalAirflow, s3: Any, local_aws: Any) -> None:
    tag = uuid.uuid4().hex[:6].upper()
    flowcells = [f"FC{tag}N{i:02d}" for i in range(50)]
    with ThreadPoolExecutor(10) as pool:
        etags = dict(zip(flowcells, pool.map(lambda f: land(s3, f), flowcells), strict=True))
    # 50 trigger tasks at once on 2 cores: a task that meets a busy api-server is retried (30 s later).
    settle(intake, local_aws.client("sqs"), timeout=420)
    assert sorted(flowcell_runs(intake, tag)) == sorted(f"manifest__{f}__{etags[f]}" for f in flowcells)


def test_manifests_that_land_while_airflow_is_down_are_picked_up_when_it_is_back(
    intake: LocalAirflow, s3: Any, local_aws: Any
) -> None:
    tag = uuid.uuid4().hex[:6].upper()
    intake.stop_component("triggerer")
    intake.stop_component("scheduler")
    try:
        etags = {f"FC{tag}D{i}": land(s3, f"FC{tag}D{i}") for i in range(3)}
        time.sleep(3)
        assert not flowcell_runs(intake, tag)
    finally:
        intake.start_component("scheduler")
        intake.start_component("triggerer")
    settle(intake, local_aws.client("sqs"))
    assert sorted(flowcell_runs(intake, tag)) == sorted(f"manifest__{f}__{e}" for f, e in etags.items())


def test_an_invalid_manifest_fails_its_run_naming_the_object_and_submits_nothing(
    intake: LocalAirflow, s3: Any, omics: Any, local_aws: Any
) -> None:
    discard_queued_flowcells(intake)
    intake.unpause(FLOWCELL_DAG)
    try:
        flowcell = f"FC{uuid.uuid4().hex[:8].upper()}"
        manifest = {
            "flowcellSamples": [
                {"sampleId": "S1", "fastqFileRef": "ftp://elsewhere/S1.fq", "ahoSampleWorkflowId": "1234567"}
            ]
        }
        etag = land(s3, flowcell, manifest)
        settle(intake, local_aws.client("sqs"))
        run_id = f"manifest__{flowcell}__{etag}"
        finished = intake.wait_for_dag_run(FLOWCELL_DAG, run_id, timeout=180)
        assert finished["state"] == "failed"
        states = {t["task_id"]: t["state"] for t in intake.task_instances(FLOWCELL_DAG, run_id)}
        assert states["load_manifest"] == "failed" and states["notify"] == "success"
        log = intake.task_log(FLOWCELL_DAG, run_id, "load_manifest")
        assert f"s3://{INTAKE_BUCKET}/{INTAKE_PREFIX}{flowcell}.json" in log
        assert "not an s3:// URI: 'ftp://elsewhere/S1.fq'" in log
        assert not [r for r in omics.list_runs()["items"] if r["name"].startswith(flowcell)]
    finally:
        intake.pause(FLOWCELL_DAG)
