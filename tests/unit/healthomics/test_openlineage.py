"""A run's OpenLineage: its data URIs in, its output out, the run and sample as facets (no servers)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from healthomics.triggers.base import may_end_from_trigger
from healthomics.utils.openlineage import HAS_OPENLINEAGE, data_uris, dataset, run_lineage

needs_openlineage = pytest.mark.skipif(not HAS_OPENLINEAGE, reason="apache-airflow-providers-openlineage is absent")

RUN = {
    "id": "1234567",
    "arn": "arn:aws:omics:eu-west-1:111122223333:run/1234567",
    "status": "COMPLETED",
    "workflowId": "9876543",
    "workflowType": "PRIVATE",
    "runOutputUri": "s3://lab/outputs/FC1/1234567",
    "tags": {"healthomics:attempt": "2", "sample": "NA12878"},
    "parameters": {
        "sample_id": "NA12878",
        "fastqs": [{"r1": "s3://lab/fastq/NA12878_R1.fastq.gz", "r2": "s3://lab/fastq/NA12878_R2.fastq.gz"}],
        "reference": "omics://111122223333.storage.eu-west-1.amazonaws.com/5555/reference/7777",
        "again": "s3://lab/fastq/NA12878_R1.fastq.gz",
        "note": "see s3://lab/readme for details",  # prose, not a URI
        "threads": 8,
    },
}


def test_data_uris_are_found_at_any_depth_in_document_order() -> None:
    assert list(data_uris(RUN["parameters"])) == [
        "s3://lab/fastq/NA12878_R1.fastq.gz",
        "s3://lab/fastq/NA12878_R2.fastq.gz",
        "omics://111122223333.storage.eu-west-1.amazonaws.com/5555/reference/7777",
        "s3://lab/fastq/NA12878_R1.fastq.gz",
    ]
    assert list(data_uris({"a": "https://example.org/x", "b": None, "c": "s3:/not-a-uri"})) == []


@needs_openlineage
def test_datasets_follow_openlineage_naming() -> None:
    fastq = dataset("s3://lab/fastq/NA12878_R1.fastq.gz")
    assert (fastq.namespace, fastq.name) == ("s3://lab", "fastq/NA12878_R1.fastq.gz")
    bucket = dataset("s3://lab")
    assert (bucket.namespace, bucket.name) == ("s3://lab", "/")


@needs_openlineage
def test_a_run_lineage_carries_its_inputs_once_its_output_and_facets() -> None:
    lineage = run_lineage(RUN, {"sample_id": "NA12878", "stage": "align"})
    assert [(d.namespace, d.name) for d in lineage.inputs] == [
        ("s3://lab", "fastq/NA12878_R1.fastq.gz"),
        ("s3://lab", "fastq/NA12878_R2.fastq.gz"),
        ("omics://111122223333.storage.eu-west-1.amazonaws.com", "5555/reference/7777"),
    ]
    assert [(d.namespace, d.name) for d in lineage.outputs] == [("s3://lab", "outputs/FC1/1234567")]
    facet = lineage.run_facets["healthomics_run"]
    assert (facet.runId, facet.sampleId, facet.stage, facet.attempt, facet.status) == (
        "1234567",
        "NA12878",
        "align",
        2,
        "COMPLETED",
    )
    assert lineage.run_facets["externalQuery"].externalQueryId == "1234567"


@needs_openlineage
def test_a_task_that_started_no_run_has_no_lineage() -> None:
    lineage = run_lineage(None, {"sample_id": "NA12878"})
    assert (lineage.inputs, lineage.outputs, lineage.run_facets) == ([], [], {})


class _Listener:
    """A listener plugin's object; any one makes Airflow refuse tasks that end in the triggerer."""

    from airflow.listeners import hookimpl

    @hookimpl
    def on_task_instance_success(self, previous_state: Any, task_instance: Any) -> None:
        pass


@pytest.fixture
def listener() -> Iterator[None]:
    from airflow.listeners.listener import get_listener_manager

    manager = get_listener_manager()
    plugin = _Listener()
    manager.add_listener(plugin)
    try:
        yield
    finally:
        manager.pm.unregister(plugin)


def run_operators() -> list[Any]:
    """A sample task as its worker builds it (unmapped), and a QC run asked to end in the triggerer."""
    from healthomics.flowcell.sample import HealthOmicsSampleRunOperator
    from healthomics.operators.run import HealthOmicsStartRunOperator

    return [
        HealthOmicsSampleRunOperator(task_id="sample", sample={"sample_id": "S1"}, deferrable=True),
        HealthOmicsStartRunOperator(
            task_id="qc", workflow_id="1", role_arn="r", output_uri="s3://b/qc/", deferrable=True, end_from_trigger=True
        ),
    ]


def test_tasks_end_on_a_worker_while_a_listener_is_registered(listener: None) -> None:
    assert not may_end_from_trigger()
    assert [op.end_from_trigger for op in run_operators()] == [False, False]


def test_tasks_end_in_the_triggerer_without_listeners() -> None:
    assert may_end_from_trigger()
    assert [op.end_from_trigger for op in run_operators()] == [True, True]


@needs_openlineage
def test_a_task_that_starts_its_run_reports_its_inputs_when_it_starts() -> None:
    from healthomics.flowcell.sample import HealthOmicsSampleRunOperator
    from healthomics.operators.run import HealthOmicsStartRunOperator

    qc = HealthOmicsStartRunOperator(
        task_id="qc",
        workflow_id="1",
        role_arn="r",
        output_uri="s3://lab/qc/",
        parameters={"qc_config": "s3://lab/qc.json", "samples": [{"output_uri": "s3://lab/outputs/1234567/"}]},
    )
    lineage = qc.get_openlineage_facets_on_start()
    names = [(d.namespace, d.name) for d in lineage.inputs]
    assert names == [("s3://lab", "qc.json"), ("s3://lab", "outputs/1234567/")]
    assert lineage.outputs == []  # the run's own output location exists once the run does

    request = {"workflowId": "1", "parameters": RUN["parameters"]}
    starting = HealthOmicsSampleRunOperator(task_id="sample", sample={"sample_id": "S1", "request": request})
    assert len(starting.get_openlineage_facets_on_start().inputs) == 3
    following = HealthOmicsSampleRunOperator(task_id="sample", sample={"sample_id": "S1", "batch_run": {"id": "1"}})
    assert following.get_openlineage_facets_on_start().inputs == []
