"""Wake run waits early on "Run Status Change" events; polling stays the source of truth.

An EventBridge rule sends the service's run events to an SQS queue kept for this purpose (a
second target of the archive rule, say). In each triggerer, one :class:`RunEventWaker` per
queue long-polls it and wakes the waits on a run that an event says has ended; a woken wait
looks at that run at once (one GetRun) instead of sleeping out its interval, so a run costs
one extra call in its life, and the regular polls keep their schedule. The messages are
only wake-up calls: they are deleted on receipt, and one that is lost or early costs nothing
but the next regular poll. With several triggerers each sees part of the stream; give each
its own queue (an SNS fan-out) for every wait to be woken.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable
from typing import Any, ClassVar

from airflow.providers.amazon.aws.hooks.sqs import SqsHook
from botocore.exceptions import BotoCoreError, ClientError

from healthomics.events.envelope import MalformedEventError, parse_event
from healthomics.hooks.omics import RUN_TERMINAL_STATES

log = logging.getLogger(__name__)

RECEIVE_WAIT_SECONDS = 10
ERROR_PAUSE_SECONDS = 5.0


class _Subscription:
    def __init__(self) -> None:
        self.event = asyncio.Event()
        self.woken: set[str] = set()


class RunEventWaker:
    """Reads one wake queue for every wait in this event loop that subscribed to it."""

    _wakers: ClassVar[dict[tuple[Any, ...], RunEventWaker]] = {}

    def __init__(self, key: tuple[Any, ...], queue_url: str, hook: SqsHook) -> None:
        self.key = key
        self.queue_url = queue_url
        self.hook = hook
        self.subscribers: dict[str, set[_Subscription]] = {}
        self.reader: asyncio.Task[None] | None = None

    @classmethod
    def for_queue(cls, queue_url: str, hook_kwargs: dict[str, Any]) -> RunEventWaker:
        loop = asyncio.get_running_loop()
        key = (id(loop), queue_url, hook_kwargs.get("aws_conn_id"), hook_kwargs.get("region_name"))
        waker = cls._wakers.get(key)
        if waker is None:
            hook = SqsHook(
                aws_conn_id=hook_kwargs.get("aws_conn_id"),
                region_name=hook_kwargs.get("region_name"),
                verify=hook_kwargs.get("verify"),
            )
            waker = cls._wakers[key] = cls(key, queue_url, hook)
        return waker

    async def wait(self, run_ids: Iterable[str], timeout: float) -> set[str]:
        """Sleep up to ``timeout`` seconds, less if one of ``run_ids`` ends first; the runs that ended."""
        subscription = _Subscription()
        ids = [str(r) for r in run_ids]
        for run_id in ids:
            self.subscribers.setdefault(run_id, set()).add(subscription)
        self._ensure_reader()
        try:
            await asyncio.wait_for(subscription.event.wait(), timeout)
        except TimeoutError:
            pass
        finally:
            for run_id in ids:
                waiting = self.subscribers.get(run_id)
                if waiting is not None:
                    waiting.discard(subscription)
                    if not waiting:
                        del self.subscribers[run_id]
        return subscription.woken

    def _ensure_reader(self) -> None:
        if self.reader is None or self.reader.done():
            self.reader = asyncio.ensure_future(self._read())

    async def _read(self) -> None:
        """Receive until nobody waits any more."""
        async with await self.hook.get_async_conn() as client:
            while self.subscribers:
                try:
                    response = await client.receive_message(
                        QueueUrl=self.queue_url, MaxNumberOfMessages=10, WaitTimeSeconds=RECEIVE_WAIT_SECONDS
                    )
                except (BotoCoreError, ClientError) as err:  # a wake-up is optional: keep polling, say why
                    log.warning("Reading the run event queue failed (%s); waits fall back to polling", err)
                    await asyncio.sleep(ERROR_PAUSE_SECONDS)
                    continue
                messages = response.get("Messages", [])
                if not messages:
                    continue
                await client.delete_message_batch(
                    QueueUrl=self.queue_url,
                    Entries=[{"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(messages)],
                )
                for message in messages:
                    self._wake(message.get("Body", ""))
        self._wakers.pop(self.key, None)

    def _wake(self, body: str) -> None:
        """Wake the waits on a run that reached a final state (other state changes need no look)."""
        try:
            event = parse_event(body)
        except MalformedEventError:
            return
        if not event.is_run_status or event.detail.get("status") not in RUN_TERMINAL_STATES or not event.run_id:
            return
        for subscription in self.subscribers.get(event.run_id, ()):
            subscription.woken.add(event.run_id)
            subscription.event.set()


async def pause(
    seconds: float, run_ids: Iterable[str], wake_queue_url: str | None, hook_kwargs: dict[str, Any]
) -> set[str]:
    """Sleep ``seconds``, or less when one of ``run_ids`` ends (an event says so); the runs that ended."""
    ids = list(run_ids)
    if not wake_queue_url or not ids:
        await asyncio.sleep(seconds)
        return set()
    return await RunEventWaker.for_queue(wake_queue_url, hook_kwargs).wait(ids, seconds)
