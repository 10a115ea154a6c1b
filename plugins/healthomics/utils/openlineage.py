"""OpenLineage for HealthOmics runs: what a run read and wrote, as ``apache-airflow-providers-openlineage``
records it for the task that brought the run to its end.

A run's inputs are the S3 (and HealthOmics storage) URIs among its parameters, at any depth: its
FASTQs, references, an earlier stage's outputs. Its output is the location the run wrote, its
``runOutputUri``. The run facet ``healthomics_run`` names the run, its workflow, sample, stage,
attempt and how it ended; ``externalQuery`` carries the run id as the standard facet for a job's id
in another system. Dataset names follow OpenLineage's naming: namespace ``s3://<bucket>``, name the
key.

The provider is optional, and imported only when its extractor asks for a run's lineage (its
modules pull in much of Airflow's core: a DAG file or task that records no lineage never pays
for them). Its listener hears only of tasks that end
on a worker: while it is registered, the operators end completed runs there rather than in the
triggerer (see :func:`healthomics.triggers.base.may_end_from_trigger`).
"""

from __future__ import annotations

import functools
import importlib.util
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any
from urllib.parse import urlparse

from healthomics.utils.idempotency import TAG_ATTEMPT

if TYPE_CHECKING:
    from airflow.providers.common.compat.openlineage.facet import Dataset, RunFacet
    from airflow.providers.openlineage.extractors import OperatorLineage

    # What the run operators return to the provider's extractor.
    RunLineage = OperatorLineage[Dataset, RunFacet]

HAS_OPENLINEAGE = importlib.util.find_spec("airflow.providers.openlineage") is not None
# URI schemes of data a run reads or writes: S3 objects and prefixes, HealthOmics sequence and
# reference stores.
DATA_SCHEMES = ("s3", "omics")
EXTERNAL_QUERY_SOURCE = "aws-healthomics"


def data_uris(value: Any) -> Iterator[str]:
    """Every data URI in ``value`` (a run's parameters), at any depth, in document order."""
    if isinstance(value, str):
        if urlparse(value).scheme in DATA_SCHEMES and "://" in value:
            yield value
    elif isinstance(value, dict):
        for item in value.values():
            yield from data_uris(item)
    elif isinstance(value, list | tuple):
        for item in value:
            yield from data_uris(item)


def dataset(uri: str) -> Dataset:
    """The OpenLineage dataset of ``uri``: namespace ``<scheme>://<authority>``, name the path."""
    from airflow.providers.common.compat.openlineage.facet import Dataset

    parts = urlparse(uri)
    return Dataset(namespace=f"{parts.scheme}://{parts.netloc}", name=parts.path.lstrip("/") or "/")


@functools.cache
def run_facet_class() -> type[Any]:
    """The ``healthomics_run`` facet (made on first use: it subclasses the provider's RunFacet)."""
    from airflow.providers.common.compat.openlineage.facet import RunFacet
    from attrs import define

    @define
    class HealthOmicsRunFacet(RunFacet):
        """The HealthOmics run a task brought to its end (field names in OpenLineage's camelCase)."""

        runId: str  # noqa: N815
        status: str | None = None
        arn: str | None = None
        workflowId: str | None = None  # noqa: N815
        workflowType: str | None = None  # noqa: N815
        workflowVersionName: str | None = None  # noqa: N815
        sampleId: str | None = None  # noqa: N815
        stage: str | None = None
        attempt: int | None = None
        batchId: str | None = None  # noqa: N815
        failureReason: str | None = None  # noqa: N815

    return HealthOmicsRunFacet


def request_lineage(request: dict[str, Any] | None) -> RunLineage:
    """The lineage a task knows before its run exists: the inputs among its StartRun request's
    parameters (``None``: it follows a run it did not ask for, whose parameters only the run holds)."""
    from airflow.providers.openlineage.extractors import OperatorLineage

    if request is None:
        return OperatorLineage()
    inputs = list(dict.fromkeys(data_uris(request.get("parameters") or {})))
    return OperatorLineage(inputs=[dataset(uri) for uri in inputs])


def run_lineage(run: dict[str, Any] | None, labels: dict[str, Any]) -> RunLineage:
    """The lineage of one run (a GetRun answer, or what is known of it; ``None``: the task started
    none): inputs from its parameters, its output location, and ``labels`` (``sample_id``,
    ``stage``) in its facet."""
    from airflow.providers.common.compat.openlineage.facet import ExternalQueryRunFacet
    from airflow.providers.openlineage.extractors import OperatorLineage

    if run is None:
        return OperatorLineage()
    inputs = list(dict.fromkeys(data_uris(run.get("parameters") or {})))
    output = run.get("runOutputUri") or run.get("outputUri")
    attempt = (run.get("tags") or {}).get(TAG_ATTEMPT)
    facet = run_facet_class()(
        runId=str(run["id"]),
        status=run.get("status"),
        arn=run.get("arn"),
        workflowId=run.get("workflowId"),
        workflowType=run.get("workflowType"),
        workflowVersionName=run.get("workflowVersionName"),
        sampleId=labels.get("sample_id"),
        stage=labels.get("stage"),
        attempt=int(attempt) if attempt is not None else None,
        batchId=run.get("batchId"),
        failureReason=run.get("failureReason"),
    )
    return OperatorLineage(
        inputs=[dataset(uri) for uri in inputs],
        outputs=[dataset(output)] if output else [],
        run_facets={
            "healthomics_run": facet,
            "externalQuery": ExternalQueryRunFacet(externalQueryId=str(run["id"]), source=EXTERNAL_QUERY_SOURCE),
        },
    )
