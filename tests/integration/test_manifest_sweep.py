"""Manifests landing in S3 without an event queue: the sweep DAG (deferrable S3 key sensor) in dag.test."""

from __future__ import annotations

import json
import uuid
from typing import Any

from airflow.utils.state import DagRunState, TaskInstanceState

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
    assert runs[f"manifest__{first}__{etag}"]["conf"] == {"manifest_uri": f"s3://{lab['bucket']}/incoming/{first}.json"}

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
