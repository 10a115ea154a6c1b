"""Wake run waits early on "Run Status Change" events; polling stays the source of truth.

An EventBridge rule sends the service's run events to an SQS queue kept for this purpose (a
second target of the archive rule, say). In each triggerer, one :class:`RunEventWaker` per
queue long-polls it and wakes the waits on a run that an event says has ended; a woken wait
looks at that run at once (one GetRun) instead of sleeping out its interval, so a run costs
one extra call in its life, and the regular polls keep their schedule. The messages are
only wake-up calls: they are deleted on receipt, and one that is lost costs nothing but the
next regular poll. An event that comes while its run's wait is between two pauses (looking
at other runs, say) is kept for a while and wakes that wait's next pause at once. With several
triggerers each sees part of the stream; give each its own queue (an SNS fan-out) for every
wait to be woken.
"""

from __future__ import annotations

import asyncio
import logging
import time
import weakref
from collections.abc import Iterable
from typing import Any, ClassVar

from airflow.providers.amazon.aws.hooks.sqs import SqsHook
from botocore.exceptions import BotoCoreError, ClientError

from healthomics.hooks.omics import RUN_TERMINAL_STATES
from healthomics.utils.eventbridge import MalformedEventError, parse_event

log = logging.getLogger(__name__)

RECEIVE_WAIT_SECONDS = 10
ERROR_PAUSE_SECONDS = 5.0
# How long an end event nobody was waiting for is kept for a wait that comes later.
ENDED_MEMORY_SECONDS = 900.0


class _Subscription:
    def __init__(self) -> None:
        self.event = asyncio.Event()
        self.woken: set[str] = set()


class RunEventWaker:
    """Reads one wake queue for every wait in this event loop that subscribed to it."""

    # Per event loop (the triggerer has one; tests make many), so no reader outlives its loop.
    _wakers: ClassVar[weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, dict[tuple[Any, ...], RunEventWaker]]] = (
        weakref.WeakKeyDictionary()
    )

    def __init__(self, key: tuple[Any, ...], queue_url: str, hook: SqsHook) -> None:
        self.key = key
        self.queue_url = queue_url
        self.hook = hook
        self.subscribers: dict[str, set[_Subscription]] = {}
        # Run id -> when an event said it ended, for runs whose wait was not subscribed then.
        self.ended: dict[str, float] = {}
        self.reader: asyncio.Task[None] | None = None

    @classmethod
    def for_queue(cls, queue_url: str, hook_kwargs: dict[str, Any]) -> RunEventWaker:
        wakers = cls._wakers.setdefault(asyncio.get_running_loop(), {})
        key = (queue_url, hook_kwargs.get("aws_conn_id"), hook_kwargs.get("region_name"))
        waker = wakers.get(key)
        if waker is None:
            hook = SqsHook(
                aws_conn_id=hook_kwargs.get("aws_conn_id"),
                region_name=hook_kwargs.get("region_name"),
                verify=hook_kwargs.get("verify"),
            )
            waker = wakers[key] = cls(key, queue_url, hook)
        return waker

    async def wait(self, run_ids: Iterable[str], timeout: float) -> set[str]:
        """Sleep up to ``timeout`` seconds, less if one of ``run_ids`` ends first; the runs that ended."""
        ids = [str(r) for r in run_ids]
        self._forget_old_ends()
        # Ends that came while nobody waited: each wakes one wait, once.
        already = {run_id for run_id in ids if self.ended.pop(run_id, None) is not None}
        if already:
            return already
        subscription = _Subscription()
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

    def _wake(self, body: str) -> None:
        """Wake the waits on a run that reached a final state (other state changes need no look)."""
        try:
            event = parse_event(body)
        except MalformedEventError:
            return
        if not event.is_run_status or event.detail.get("status") not in RUN_TERMINAL_STATES or not event.run_id:
            return
        subscriptions = self.subscribers.get(event.run_id)
        if not subscriptions:
            self.ended[event.run_id] = time.monotonic()
        for subscription in subscriptions or ():
            subscription.woken.add(event.run_id)
            subscription.event.set()

    def _forget_old_ends(self) -> None:
        horizon = time.monotonic() - ENDED_MEMORY_SECONDS
        for run_id in [r for r, seen in self.ended.items() if seen < horizon]:
            del self.ended[run_id]


async def pause(
    seconds: float, run_ids: Iterable[str], wake_queue_url: str | None, hook_kwargs: dict[str, Any]
) -> set[str]:
    """Sleep ``seconds``, or less when one of ``run_ids`` ends (an event says so); the runs that ended."""
    ids = list(run_ids)
    if not wake_queue_url or not ids:
        await asyncio.sleep(seconds)
        return set()
    return await RunEventWaker.for_queue(wake_queue_url, hook_kwargs).wait(ids, seconds)
