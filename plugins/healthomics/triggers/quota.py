"""Deferrable wait for a turn to call StartRun, paced for every task of a triggerer.

The account's StartRun quota is low (0.1-1 per second) and a submitting run batch takes all of
it. Tasks whose StartRun was throttled wait here rather than on a worker: one queue per
triggerer process (and AWS connection and Region) hands out one turn per ``1 / start_run_tps``
seconds, first come first served, and a throttle reported by a returning task pauses every turn
for a while (doubling while throttles go on). So N throttled samples cost about one StartRun
attempt per turn in all, not N tasks each backing off on its own and resuming on a worker to be
throttled again.
"""

from __future__ import annotations

import asyncio
import collections
import weakref
from collections.abc import AsyncIterator, Hashable
from typing import Any

from airflow.triggers.base import TriggerEvent

from healthomics.triggers.base import HealthOmicsBaseTrigger, backoff


class StartPacer:
    """One queue of turns at ``rate`` per second, paused after a throttle (per event loop and key)."""

    _pacers: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, dict[Hashable, StartPacer]] = (
        weakref.WeakKeyDictionary()
    )

    def __init__(self, rate: float) -> None:
        self.interval = 1.0 / rate if rate > 0 else 0.0
        self._waiting: collections.deque[asyncio.Future[None]] = collections.deque()
        self._next_turn = 0.0
        self._paused_until = 0.0
        self._pause = 0.0
        self._dispatcher: asyncio.Task[None] | None = None

    @classmethod
    def shared(cls, key: Hashable, rate: float) -> StartPacer:
        """The pacer of ``key`` in the running event loop (the triggerer's), made on first use."""
        pacers = cls._pacers.setdefault(asyncio.get_running_loop(), {})
        if key not in pacers:
            pacers[key] = cls(rate)
        return pacers[key]

    def throttled(self) -> None:
        """A StartRun was throttled: no turn for a while. Reports during a pause do not lengthen it
        (a burst of them is one throttle); one after a long quiet spell starts from one interval."""
        now = asyncio.get_running_loop().time()
        if now < self._paused_until:
            return
        quiet = now - self._paused_until > max(self._pause, self.interval) * 2
        self._pause = backoff(0.0 if quiet else self._pause, self.interval or 1.0)
        self._paused_until = now + self._pause

    async def turn(self) -> None:
        """Wait for this caller's turn (FIFO)."""
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiting.append(future)
        if self._dispatcher is None or self._dispatcher.done():
            self._dispatcher = asyncio.ensure_future(self._dispatch())
        await future

    async def _dispatch(self) -> None:
        loop = asyncio.get_running_loop()
        while self._waiting:
            now = loop.time()
            due = max(self._next_turn, self._paused_until)
            if due > now:
                await asyncio.sleep(due - now)
                continue  # a throttle may have paused the turns meanwhile
            future = self._waiting.popleft()
            if future.done():  # its trigger was cancelled
                continue
            future.set_result(None)
            self._next_turn = now + self.interval


class HealthOmicsStartTurnTrigger(HealthOmicsBaseTrigger):
    """
    Wait for a turn to call StartRun again (see the module); fires ``{"status": "success"}``.

    :param start_run_tps: the account's StartRun quota (turns per second of this triggerer).
    :param throttled: the task's StartRun was throttled (pauses every task's turns).

    Connection arguments as in :class:`~healthomics.triggers.base.HealthOmicsBaseTrigger`
    (they name the pacer: one per connection and Region).
    """

    def __init__(self, *, start_run_tps: float, throttled: bool = True, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.start_run_tps = start_run_tps
        self.throttled = throttled

    def serialize(self) -> tuple[str, dict[str, Any]]:
        return (
            f"{type(self).__module__}.{type(self).__qualname__}",
            {"start_run_tps": self.start_run_tps, "throttled": self.throttled, **self._base_kwargs()},
        )

    async def run(self) -> AsyncIterator[TriggerEvent]:
        pacer = StartPacer.shared((self.aws_conn_id, self.region_name), self.start_run_tps)
        if self.throttled:
            pacer.throttled()
        await pacer.turn()
        yield TriggerEvent({"status": "success"})
