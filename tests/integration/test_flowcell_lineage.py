"""OpenLineage records every sample's run: its FASTQ in, its output location out, the run and sample as facets.

The provider's own listener sends the events through its file transport; the test reads the file.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from healthomics.utils.openlineage import data_uris, dataset
from omics_emulator import EmulatorAdmin

from .airflow_dags import run_dag
from .flowcells import SAMPLES, conf, reference_manifest, upload


@pytest.fixture
def lineage_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """OpenLineage on, with the file transport, for this test: the provider's listener registered as
    its plugin registers it when a transport is configured."""
    from airflow.listeners.listener import get_listener_manager
    from airflow.providers.openlineage.plugins.listener import get_openlineage_listener
    from airflow.sdk.listener import get_listener_manager as get_sdk_listener_manager

    events = tmp_path / "openlineage.jsonl"
    monkeypatch.setenv(
        "AIRFLOW__OPENLINEAGE__TRANSPORT", json.dumps({"type": "file", "log_file_path": str(events), "append": True})
    )
    monkeypatch.setenv("AIRFLOW__OPENLINEAGE__NAMESPACE", "lab")
    clear_cached_options()
    managers = (get_listener_manager(), get_sdk_listener_manager())  # DAG runs and the DAG bag; tasks
    listener = get_openlineage_listener()
    for manager in managers:
        manager.add_listener(listener)
    try:
        yield events
    finally:
        for manager in managers:
            manager.pm.unregister(listener)
        monkeypatch.delenv("AIRFLOW__OPENLINEAGE__TRANSPORT")
        clear_cached_options()


def clear_cached_options() -> None:
    """The provider reads its options once per process (functools.cache)."""
    from airflow.providers.openlineage import conf as lineage_conf

    for name in dir(lineage_conf):
        clear = getattr(getattr(lineage_conf, name), "cache_clear", None)
        if callable(clear):
            clear()


def read_events(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()] if path.exists() else []


def test_each_sample_run_is_recorded_with_its_inputs_outputs_run_and_sample(
    lineage_file: Path, flowcell_dag: Any, lab: dict[str, Any], realtime: EmulatorAdmin, omics: Any, s3: Any
) -> None:  # the listener first: the DAG is built knowing of it, as on a deployment
    realtime.add_fault(action="fail", match={"name": "NA12891$"}, failureReason="OUT_OF_MEMORY_ERROR")
    uri = upload(s3, lab, reference_manifest(lab))
    run_dag(flowcell_dag, run_conf=conf(lab, uri, qc_min_completed_fraction=0.75))  # QC runs on three

    ended = [
        e
        for e in read_events(lineage_file)
        if e["eventType"] in ("COMPLETE", "FAIL") and e["job"]["name"] == f"{flowcell_dag.dag_id}.sample"
    ]
    by_sample = {e["run"]["facets"]["healthomics_run"]["sampleId"]: e for e in ended}
    assert set(by_sample) == set(SAMPLES)  # every sample, the failed one too
    runs = {r["name"].removeprefix("FC-0001-"): omics.get_run(id=r["id"]) for r in omics.list_runs()["items"]}
    for sample, event in by_sample.items():
        run = runs[sample]
        facet = event["run"]["facets"]["healthomics_run"]
        assert (facet["runId"], facet["status"], facet["workflowId"]) == (run["id"], run["status"], run["workflowId"])
        assert event["run"]["facets"]["externalQuery"]["externalQueryId"] == run["id"]
        assert event["job"]["namespace"] == "lab"
        inputs = {(d["namespace"], d["name"]) for d in event["inputs"]}
        assert (f"s3://{lab['bucket']}", f"fastq/{sample}.fastq.gz") in inputs
        output_key = run["runOutputUri"].removeprefix(f"s3://{lab['bucket']}/")
        assert [(d["namespace"], d["name"]) for d in event["outputs"]] == [(f"s3://{lab['bucket']}", output_key)]
    assert by_sample["NA12891"]["eventType"] == "FAIL"
    assert by_sample["NA12891"]["run"]["facets"]["healthomics_run"]["failureReason"] == "OUT_OF_MEMORY_ERROR"
    assert {by_sample[s]["eventType"] for s in SAMPLES if s != "NA12891"} == {"COMPLETE"}

    qc = [e for e in read_events(lineage_file) if e["eventType"] == "COMPLETE" and e["job"]["name"].endswith(".qc")]
    assert qc and qc[0]["run"]["facets"]["healthomics_run"]["runId"] == runs["qc"]["id"]
    # QC starts its own run: its START already names the inputs, those its run was started with.
    events = read_events(lineage_file)
    qc_start = next(e for e in events if e["eventType"] == "START" and e["job"]["name"].endswith(".qc"))
    started_with = {(d.namespace, d.name) for d in map(dataset, data_uris(runs["qc"]["parameters"]))}
    assert started_with and {(d["namespace"], d["name"]) for d in qc_start["inputs"]} == started_with
