"""Console, log and output links (format only; persistence is exercised in real task runs)."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

from healthomics.links.omics import (
    HealthOmicsBatchLink,
    HealthOmicsRunLink,
    HealthOmicsRunLogsLink,
    HealthOmicsRunOutputLink,
    persist_run_links,
)

COMMON = {"region_name": "eu-west-1", "aws_domain": "aws.amazon.com"}
RUN_LINKS = (HealthOmicsRunLink(), HealthOmicsRunLogsLink(), HealthOmicsRunOutputLink())


def test_run_console_link() -> None:
    assert (
        HealthOmicsRunLink().format_link(run_id="1234567", **COMMON)
        == "https://console.aws.amazon.com/omics/home?region=eu-west-1#/runs/1234567"
    )


def test_run_logs_link_escapes_the_log_group_and_stream() -> None:
    url = HealthOmicsRunLogsLink().format_link(run_id="1234567", **COMMON)
    assert url == (
        "https://console.aws.amazon.com/cloudwatch/home?region=eu-west-1#logsV2:log-groups/log-group/"
        "%2Faws%2Fomics%2FWorkflowLog/log-events/run%2F1234567"
    )
    assert HealthOmicsRunLogsLink().format_link(**COMMON) == ""


def test_output_link_opens_the_run_folder() -> None:
    url = HealthOmicsRunOutputLink().format_link(run_output_uri="s3://lab-out/FC1/runs/1234567", **COMMON)
    assert url == "https://s3.console.aws.amazon.com/s3/buckets/lab-out?region=eu-west-1&prefix=FC1/runs/1234567/"
    assert HealthOmicsRunOutputLink().format_link(**COMMON) == ""


def test_batch_link_opens_the_runs_list() -> None:
    assert HealthOmicsBatchLink().format_link(batch_id="42", **COMMON).endswith("/omics/home?region=eu-west-1#/runs")


def test_the_run_links_share_one_xcom_written_once() -> None:
    pushed: dict[str, Any] = {}

    class TaskInstance:
        def xcom_push(self, key: str, value: Any) -> None:
            pushed[key] = value

    operator = SimpleNamespace(do_xcom_push=True)
    hook = SimpleNamespace(conn_region_name="eu-west-1", conn_partition="aws")
    persist_run_links({"ti": TaskInstance()}, operator, hook, "1234567", "s3://lab-out/FC1/runs/1234567")  # type: ignore[arg-type]
    assert list(pushed) == ["healthomics_run"]
    urls = [link.format_link(**pushed[link.key]) for link in RUN_LINKS]
    assert urls == [
        "https://console.aws.amazon.com/omics/home?region=eu-west-1#/runs/1234567",
        HealthOmicsRunLogsLink().format_link(run_id="1234567", **COMMON),
        HealthOmicsRunOutputLink().format_link(run_output_uri="s3://lab-out/FC1/runs/1234567", **COMMON),
    ]
