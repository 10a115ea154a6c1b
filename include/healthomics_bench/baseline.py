"""The baseline: HealthOmics the way existing integrations drive it.

One ``StartRun`` per sample (boto3's client-side retries absorb throttling, as a Step
Functions ``Retry`` block does), then one deferrable wait per run that calls ``GetRun``
every poll interval: the amazon provider's waiter-trigger pattern
(``AwsBaseWaiterTrigger``: one client per trigger, a failed or throttled poll is logged
and tried again next interval), resuming the task on a worker when the run ends.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any

from airflow.providers.amazon.aws.operators.base_aws import AwsBaseOperator
from airflow.providers.common.compat.sdk import AirflowException
from airflow.triggers.base import BaseTrigger, TriggerEvent
from botocore.exceptions import ClientError

from healthomics.hooks.omics import RUN_SUCCESS_STATES, RUN_TERMINAL_STATES, HealthOmicsHook, run_summary

# What a typical integration configures: standard retry mode, a handful of attempts.
CLIENT_RETRIES = {"retries": {"mode": "standard", "max_attempts": 5}}


class BaselineRunTrigger(BaseTrigger):
    """
    Poll ``GetRun`` for one run until it ends (one trigger, one client, one call per interval).

    :param run_id: the run to wait for.
    :param poll_interval: seconds between ``GetRun`` calls.
    :param aws_conn_id: Airflow AWS connection.
    """

    def __init__(self, run_id: str, poll_interval: float, aws_conn_id: str | None = "aws_default") -> None:
        super().__init__()
        self.run_id = run_id
        self.poll_interval = poll_interval
        self.aws_conn_id = aws_conn_id

    def serialize(self) -> tuple[str, dict[str, Any]]:
        return (
            f"{type(self).__module__}.{type(self).__qualname__}",
            {"run_id": self.run_id, "poll_interval": self.poll_interval, "aws_conn_id": self.aws_conn_id},
        )

    async def run(self) -> AsyncIterator[TriggerEvent]:
        hook = HealthOmicsHook(aws_conn_id=self.aws_conn_id, config=CLIENT_RETRIES)
        async with await hook.get_async_conn() as client:
            while True:
                try:
                    run = run_summary(await client.get_run(id=self.run_id))
                except ClientError as err:
                    self.log.info("GetRun %s failed (%s); trying again next interval", self.run_id, err)
                else:
                    if run["status"] in RUN_TERMINAL_STATES:
                        yield TriggerEvent({"run": run})
                        return
                await asyncio.sleep(self.poll_interval)


class BaselineStartRunOperator(AwsBaseOperator[HealthOmicsHook]):
    """
    ``StartRun`` for one sample, then wait in the triggerer and resume on a worker.

    :param request: the ``StartRun`` request (without ``requestId``: boto3 generates one).
    :param poll_interval: seconds between ``GetRun`` polls.
    """

    aws_hook_class = HealthOmicsHook
    template_fields = ("request",)

    def __init__(self, *, request: dict[str, Any], poll_interval: float = 60, **kwargs: Any) -> None:
        super().__init__(botocore_config=CLIENT_RETRIES, **kwargs)
        self.request = request
        self.poll_interval = poll_interval

    def execute(self, context: Any) -> None:
        run_id = self.hook.conn.start_run(**self.request)["id"]
        self.defer(
            trigger=BaselineRunTrigger(run_id, self.poll_interval, self.aws_conn_id),
            method_name="execute_complete",
            timeout=timedelta(days=7),
        )

    def execute_complete(self, context: Any, event: dict[str, Any]) -> dict[str, Any]:
        run = dict(event["run"])
        if run["status"] not in RUN_SUCCESS_STATES:
            raise AirflowException(f"run {run['id']} ended {run['status']}")
        return run
