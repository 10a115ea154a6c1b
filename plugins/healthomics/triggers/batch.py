"""Deferrable wait until a run batch has submitted (or refused) every run: the ``batch_submitted`` waiter."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

from airflow.providers.amazon.aws.triggers.base import AwsBaseWaiterTrigger
from airflow.triggers.base import TriggerEvent
from botocore.exceptions import ClientError

from healthomics.hooks.omics import BATCH_CANCELLABLE_STATES, HealthOmicsHook
from healthomics.triggers.base import cancel_unless_fired, shielded, task_is_deferred


class HealthOmicsBatchSubmissionTrigger(AwsBaseWaiterTrigger):
    """
    Wait until a HealthOmics run batch is past submission (INPROGRESS, PROCESSED, FAILED, ...).

    The service releases a batch's runs gradually, at the account's StartRun rate, so a
    large batch can take hours to submit. Fires ``{"status": "success", "batch_id": ...}`` once
    submission is over (whatever the outcome; the operator reads the per-run results), or
    ``{"status": "error", "message": ...}`` when the attempts run out. Killing the task cancels
    the batch (CancelRunBatch); a triggerer restart does not.

    :param batch_id: the batch to wait for.
    :param waiter_delay: seconds between GetBatch polls.
    :param waiter_max_attempts: polls before the wait gives up.
    :param cancel_on_kill: cancel the batch when the user kills the task.

    Connection arguments (``aws_conn_id``, ``region_name``, ``verify``, ``botocore_config``) as in
    the amazon provider.
    """

    def __init__(
        self,
        *,
        batch_id: str,
        waiter_delay: float = 30,
        waiter_max_attempts: int = 20160,
        cancel_on_kill: bool = True,
        aws_conn_id: str | None = "aws_default",
        region_name: str | None = None,
        verify: bool | str | None = None,
        botocore_config: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(
            serialized_fields={"batch_id": batch_id, "cancel_on_kill": cancel_on_kill},
            waiter_name="batch_submitted",
            waiter_args={"batchId": batch_id},
            failure_message=f"HealthOmics run batch {batch_id} was not submitted",
            status_message=f"HealthOmics run batch {batch_id} is",
            status_queries=["status"],
            return_key="batch_id",
            return_value=batch_id,
            # Fractions of a second work (asyncio.sleep); the base class types it int.
            waiter_delay=waiter_delay,  # type: ignore[arg-type]
            waiter_max_attempts=waiter_max_attempts,
            aws_conn_id=aws_conn_id,
            region_name=region_name,
            verify=verify,
            botocore_config=botocore_config,
        )
        self.batch_id = batch_id
        self.cancel_on_kill = cancel_on_kill
        self.fired = False  # an event was made (see cleanup)

    async def run(self) -> AsyncIterator[TriggerEvent]:
        async for event in super().run():
            self.fired = True
            yield event

    async def cleanup(self) -> None:
        await cancel_unless_fired(self, self.fired)

    def hook(self) -> HealthOmicsHook:
        # Built here rather than from ``aws_hook_class``: older amazon providers (MWAA's) lack it.
        return HealthOmicsHook(
            aws_conn_id=self.aws_conn_id, region_name=self.region_name, verify=self.verify, config=self.botocore_config
        )

    async def on_kill(self) -> None:
        """The user killed the task: cancel the batch (its submitted runs too), unless still deferred."""
        if self.cancel_on_kill:
            await shielded(self._cancel_batch())

    async def _cancel_batch(self) -> None:
        if await task_is_deferred(self):
            self.log.info("Task still deferred (trigger moved); not cancelling run batch %s", self.batch_id)
            return
        async with await self.hook().get_async_conn() as client:
            try:
                batch = await client.get_batch(batchId=self.batch_id)
                if batch["status"] in BATCH_CANCELLABLE_STATES:
                    await client.cancel_run_batch(batchId=self.batch_id)
                    self.log.info("Task killed: cancelled HealthOmics run batch %s", self.batch_id)
            except ClientError as err:
                self.log.info("Run batch %s not cancelled: %s", self.batch_id, err)
