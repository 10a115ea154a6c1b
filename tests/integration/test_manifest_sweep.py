"""Manifests landing in S3 without an event queue: the sweep DAG (deferrable S3 key sensor) in dag.test."""

from __future__ import annotations

import json
import logging
import threading
import time
import uuid
from typing import Any

import pytest
from airflow.utils.state import DagRunState, TaskInstanceState

from devkit.waiting import wait_until

from .airflow_dags import run_dag
from .flowcells import dag_runs, reference_manifest

FLOWCELL_DAG = "healthomics_flowcell"


def test_the_sweep_starts_one_run_per_manifest_version(project_dags: Any, lab: dict[str, Any], s3: Any) -> None:
    tag = uuid.uuid4().hex[:6].upper()
    first, second = f"FCA{tag}", f"FCB{tag}"
    for flowcell in (first, second):
        s3.put_object(
            Bucket=lab["bucket"],
            Key=f"incoming/{flowcell}.json",
            Body=json.dumps(reference_manifest(lab)).encode(),
        )
    s3.put_object(Bucket=lab["bucket"], Key="incoming/README.txt", Body=b"not a manifest")
    sweep_conf = {"manifest_prefix": f"s3://{lab['bucket']}/incoming/"}

    states = run_dag(project_dags("healthomics_manifest_sweep"), run_conf=sweep_conf)
    assert states["dag_run"] == DagRunState.SUCCESS
    assert states["wait_for_manifest"].state == TaskInstanceState.SUCCESS
    runs = {**dag_runs(FLOWCELL_DAG, f"manifest__{first}__"), **dag_runs(FLOWCELL_DAG, f"manifest__{second}__")}
    etag = s3.head_object(Bucket=lab["bucket"], Key=f"incoming/{first}.json")["ETag"].strip('"')
    assert sorted(runs) == sorted([f"manifest__{first}__{etag}", f"manifest__{second}__{etag}"])
    assert runs[f"manifest__{first}__{etag}"]["conf"] == {
        "manifest_uri": f"s3://{lab['bucket']}/incoming/{first}.json",
        "manifest_etag": etag,
    }

    # Swept again (the windows overlap): the runs exist, nothing new starts.
    states = run_dag(project_dags("healthomics_manifest_sweep"), run_conf=sweep_conf)
    assert states["dag_run"] == DagRunState.SUCCESS
    assert {
        **dag_runs(FLOWCELL_DAG, f"manifest__{first}__"),
        **dag_runs(FLOWCELL_DAG, f"manifest__{second}__"),
    }.keys() == runs.keys()

    # A changed manifest is a new version: one more run, for it only.
    changed = reference_manifest(lab, ["NA12878"])
    s3.put_object(Bucket=lab["bucket"], Key=f"incoming/{first}.json", Body=json.dumps(changed).encode())
    run_dag(project_dags("healthomics_manifest_sweep"), run_conf=sweep_conf)
    assert len(dag_runs(FLOWCELL_DAG, f"manifest__{first}__")) == 2
    assert len(dag_runs(FLOWCELL_DAG, f"manifest__{second}__")) == 1


def _once_started(dag_id: str, task_id: str, then: Any, delay: float, timeout: float = 60.0) -> threading.Thread:
    """Call ``then`` ``delay`` seconds after the task started running, from another thread."""
    from airflow.models import TaskInstance
    from airflow.utils.session import create_session
    from sqlalchemy import select

    def started() -> bool:
        with create_session() as session:
            states = session.scalars(
                select(TaskInstance.state).where(TaskInstance.dag_id == dag_id, TaskInstance.task_id == task_id)
            ).all()
        return any(s is not None and s != TaskInstanceState.SCHEDULED for s in states)

    def watch() -> None:
        wait_until(started, timeout=timeout, interval=0.1, what=f"{dag_id}.{task_id} never started")
        time.sleep(delay)
        then()

    thread = threading.Thread(target=watch, daemon=True)
    thread.start()
    return thread


def test_the_sweep_waits_deferred_until_a_manifest_lands(
    project_dags: Any, lab: dict[str, Any], s3: Any, caplog: pytest.LogCaptureFixture
) -> None:
    flowcell = f"FCW{uuid.uuid4().hex[:6].upper()}"
    key = f"landing/{flowcell}.json"
    # The sensor's first look (on the worker) finds nothing; the manifest lands while it waits deferred.
    watcher = _once_started(
        "healthomics_manifest_sweep",
        "wait_for_manifest",
        lambda: s3.put_object(Bucket=lab["bucket"], Key=key, Body=json.dumps(reference_manifest(lab)).encode()),
        delay=4.0,
    )
    with caplog.at_level(logging.INFO, logger="airflow.sdk.definitions.dag"):
        states = run_dag(
            project_dags("healthomics_manifest_sweep"), run_conf={"manifest_prefix": f"s3://{lab['bucket']}/landing/"}
        )
    watcher.join(timeout=1)
    assert "[DAG TEST] running trigger in line" in caplog.text  # it did wait in a trigger
    assert states["dag_run"] == DagRunState.SUCCESS
    assert states["wait_for_manifest"].state == TaskInstanceState.SUCCESS
    etag = s3.head_object(Bucket=lab["bucket"], Key=key)["ETag"].strip('"')
    [run] = dag_runs(FLOWCELL_DAG, f"manifest__{flowcell}__").values()
    assert run["conf"] == {"manifest_uri": f"s3://{lab['bucket']}/{key}", "manifest_etag": etag}
