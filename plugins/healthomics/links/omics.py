"""Operator extra links to the AWS consoles for a HealthOmics run or batch.

Each link reads what the operator persisted to XCom *before* it waits (so the links
work while the task is deferred). The three run links read one XCom (``healthomics_run``:
run id, output URI, Region): one write per task instead of three, which counts when a
flowcell has a thousand sample tasks, each a round trip through the Execution API.

URL formats: the HealthOmics console run page (``#/runs/<id>``) as used by public
HealthOmics tools; no AWS page documents a per-batch console URL, so the batch link opens
the runs list of the Region.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any
from urllib.parse import quote, quote_plus

from airflow.providers.amazon.aws.links.base_aws import BASE_AWS_CONSOLE_LINK, BaseAwsLink

from healthomics.utils.s3 import InvalidS3UriError, parse_s3_uri

if TYPE_CHECKING:
    from airflow.sdk import BaseOperator, Context

    from healthomics.hooks.omics import HealthOmicsHook

OMICS_LOG_GROUP = "/aws/omics/WorkflowLog"


class HealthOmicsRunLink(BaseAwsLink):
    """The run's page in the HealthOmics console."""

    name = "HealthOmics Run"
    key = "healthomics_run"
    format_str = BASE_AWS_CONSOLE_LINK + "/omics/home?region={region_name}#/runs/{run_id}"


class HealthOmicsBatchLink(BaseAwsLink):
    """The HealthOmics console's runs list (where a batch's runs appear)."""

    name = "HealthOmics Runs"
    key = "healthomics_batch"
    format_str = BASE_AWS_CONSOLE_LINK + "/omics/home?region={region_name}#/runs"


class HealthOmicsRunLogsLink(BaseAwsLink):
    """The run's log stream (``run/<id>``) in CloudWatch Logs."""

    name = "HealthOmics Run Logs"
    key = HealthOmicsRunLink.key
    format_str = (
        BASE_AWS_CONSOLE_LINK
        + "/cloudwatch/home?region={region_name}#logsV2:log-groups/log-group/{log_group}/log-events/{log_stream}"
    )

    def format_link(self, **kwargs: Any) -> str:
        if "run_id" not in kwargs:
            return ""
        kwargs["log_group"] = quote_plus(OMICS_LOG_GROUP)
        kwargs["log_stream"] = quote_plus(f"run/{kwargs['run_id']}")
        return super().format_link(**kwargs)


class HealthOmicsRunOutputLink(BaseAwsLink):
    """The run's output folder (``runOutputUri``) in the S3 console."""

    name = "HealthOmics Run Output"
    key = HealthOmicsRunLink.key
    format_str = "https://s3.console.{aws_domain}/s3/buckets/{bucket}?region={region_name}&prefix={prefix}"

    def format_link(self, **kwargs: Any) -> str:
        try:
            location = parse_s3_uri(kwargs.get("run_output_uri"))
        except InvalidS3UriError:
            return ""  # no output yet, or nothing an S3 console could show
        kwargs["bucket"] = location.bucket
        kwargs["prefix"] = quote(location.key.rstrip("/") + "/", safe="/")
        return super().format_link(**kwargs)


def persist_run_links(
    context: Context, operator: BaseOperator, hook: HealthOmicsHook, run_id: str, run_output_uri: str | None = None
) -> None:
    """Store what the run links need in XCom, before the task waits (so they work while it is deferred)."""
    run = {"run_id": run_id, **({"run_output_uri": run_output_uri} if run_output_uri else {})}
    HealthOmicsRunLink.persist(
        context=context,
        operator=operator,
        region_name=hook.conn_region_name,
        aws_partition=hook.conn_partition,
        **run,
    )


def run_links(region: str, partition: str, run_id: str | None, run_output_uri: str | None) -> dict[str, str]:
    """Console, log and output URLs of a run (the same ones the task's extra links show)."""
    if not run_id:
        return {}
    common = {"region_name": region, "aws_domain": BaseAwsLink.get_aws_domain(partition) or "aws.amazon.com"}
    links = {
        "console": HealthOmicsRunLink().format_link(run_id=run_id, **common),
        "logs": HealthOmicsRunLogsLink().format_link(run_id=run_id, **common),
    }
    outputs = HealthOmicsRunOutputLink().format_link(run_output_uri=run_output_uri, **common)
    if outputs:
        links["outputs"] = outputs
    return links


def s3_object_link(region: str, partition: str, uri: str) -> str:
    """An S3 object's page in the S3 console (where it can be opened or downloaded)."""
    location = parse_s3_uri(uri, need_key=True)
    domain = BaseAwsLink.get_aws_domain(partition) or "aws.amazon.com"
    prefix = quote(location.key, safe="/")
    return f"https://s3.console.{domain}/s3/object/{location.bucket}?region={region}&prefix={prefix}"
