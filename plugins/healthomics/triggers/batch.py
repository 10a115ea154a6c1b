"""Deferrable wait until a run batch has submitted (or refused) every run."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

from airflow.triggers.base import TriggerEvent
from botocore.exceptions import ClientError

from healthomics.hooks.omics import BATCH_CANCELLABLE_STATES, BATCH_SUBMISSION_DONE_STATES, is_throttling
from healthomics.triggers.base import HealthOmicsBaseTrigger, backoff, shielded


class HealthOmicsBatchSubmissionTrigger(HealthOmicsBaseTrigger):
    """
    Wait until a HealthOmics run batch is past submission (INPROGRESS, PROCESSED, FAILED, ...).

    The service releases a batch's runs gradually, at the account's StartRun rate, so a
    large batch can take hours to submit. Fires ``{"status": "success", "batch_id": ...,
    "batch_status": ...}`` once submission is over (whatever the outcome; the operator
    reads the per-run results), or ``"timeout"`` after ``deadline``. Killing the task
    cancels the batch (CancelRunBatch); a triggerer restart does not.

    :param batch_id: the batch to wait for.

    Other arguments as in :class:`~healthomics.triggers.base.HealthOmicsBaseTrigger`.
    """

    def __init__(self, batch_id: str, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.batch_id = batch_id

    def serialize(self) -> tuple[str, dict[str, Any]]:
        return (
            f"{type(self).__module__}.{type(self).__qualname__}",
            {"batch_id": self.batch_id, **self._base_kwargs()},
        )

    async def run(self) -> AsyncIterator[TriggerEvent]:
        delay = float(self.poll_interval)
        async with await self.hook().get_async_conn() as client:
            while True:
                if self.past_deadline():
                    yield TriggerEvent({"status": "timeout", "batch_id": self.batch_id})
                    return
                try:
                    batch = await client.get_batch(batchId=self.batch_id)
                except ClientError as err:
                    if not is_throttling(err):
                        raise
                    delay = backoff(delay, self.poll_interval)
                else:
                    delay = float(self.poll_interval)
                    if batch["status"] in BATCH_SUBMISSION_DONE_STATES:
                        yield TriggerEvent(
                            {"status": "success", "batch_id": self.batch_id, "batch_status": batch["status"]}
                        )
                        return
                    self.log.info("Run batch %s is %s", self.batch_id, batch["status"])
                await asyncio.sleep(delay)

    async def on_kill(self) -> None:
        """The user killed the task: cancel the batch (its submitted runs too), unless still deferred."""
        if self.cancel_on_kill:
            await shielded(self._cancel_batch())

    async def _cancel_batch(self) -> None:
        if await self.task_is_deferred():
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
