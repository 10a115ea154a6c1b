"""One poll per shared-stream key on triggerers that cannot share streams themselves (Airflow < 3.3).

Airflow 3.3's triggerer routes triggers with the same ``shared_stream_key()`` through one
``open_shared_stream`` poll (``airflow.triggers.shared_stream``). Older triggerers only call
``run()``; there a run trigger subscribes to :class:`LocalSharedStream` instead, which does the
same within one event loop: the first subscriber of a key starts the group's poll, every
snapshot reaches every subscriber, and the poll stops when the last subscriber leaves. A
subscriber that falls behind gets the newest snapshot, not a backlog: each snapshot is the
whole state of the group, so nothing is lost by skipping one.
"""

from __future__ import annotations

import asyncio
import contextvars
import importlib.util
import logging
import weakref
from collections.abc import AsyncGenerator, AsyncIterator, Callable, Hashable
from typing import Any, ClassVar

log = logging.getLogger(__name__)

# True where the triggerer itself shares streams (Airflow >= 3.3).
TRIGGERER_SHARES_STREAMS = importlib.util.find_spec("airflow.triggers.shared_stream") is not None

_NOTHING = object()


class SharedPollError(RuntimeError):
    """The poll a subscriber shared has ended (its cause is why)."""


class _Subscriber:
    def __init__(self) -> None:
        self.latest: Any = _NOTHING
        self.ready = asyncio.Event()

    def offer(self, snapshot: Any) -> None:
        self.latest = snapshot
        self.ready.set()

    async def take(self) -> Any:
        await self.ready.wait()
        self.ready.clear()
        snapshot, self.latest = self.latest, _NOTHING
        return snapshot


class LocalSharedStream:
    """The subscribers of one key in one event loop and the single poll that feeds them."""

    # Per event loop (the triggerer has one; dag.test() and tests make many), so no poll outlives its loop.
    _streams: ClassVar[weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, dict[Hashable, LocalSharedStream]]] = (
        weakref.WeakKeyDictionary()
    )

    def __init__(self, key: Hashable, open_stream: Callable[[], AsyncIterator[Any]]) -> None:
        self.key = key
        self.open_stream = open_stream
        self.subscribers: set[_Subscriber] = set()
        self.latest: Any = _NOTHING
        self.error: BaseException | None = None
        self.poll: asyncio.Task[None] | None = None

    @classmethod
    async def join(cls, key: Hashable, open_stream: Callable[[], AsyncIterator[Any]]) -> AsyncGenerator[Any, None]:
        """Snapshots of the poll for ``key`` (started with ``open_stream`` if none runs), the newest known first."""
        streams = cls._streams.setdefault(asyncio.get_running_loop(), {})
        stream = streams.get(key)
        if stream is None or stream.poll is None or stream.poll.done():
            stream = streams[key] = cls(key, open_stream)
            # In a context of its own: the poll outlives the subscriber that started it (and its log bindings).
            stream.poll = asyncio.get_running_loop().create_task(stream._run(), context=contextvars.Context())
        subscriber = _Subscriber()
        if stream.latest is not _NOTHING:
            subscriber.offer(stream.latest)
        stream.subscribers.add(subscriber)
        try:
            while True:
                snapshot = await subscriber.take()
                if snapshot is _NOTHING:  # the poll ended
                    # A new exception each: one raised N times would carry N subscribers' frames.
                    raise SharedPollError(f"the shared poll {stream.key!r} ended: {stream.error}") from stream.error
                yield snapshot
        finally:
            stream.subscribers.discard(subscriber)
            if not stream.subscribers:
                stream._stop(streams)

    async def _run(self) -> None:
        try:
            async for snapshot in self.open_stream():
                self.latest = snapshot
                for subscriber in self.subscribers:
                    subscriber.offer(snapshot)
        except asyncio.CancelledError:
            raise
        except Exception as err:  # noqa: BLE001 - whatever ended the poll, every subscriber must see it (as with Airflow's)
            log.warning("Shared poll %r failed: %s", self.key, err)
            self.error = err
        else:
            self.error = RuntimeError("its stream returned")
        for subscriber in self.subscribers:
            subscriber.offer(_NOTHING)

    def _stop(self, streams: dict[Hashable, LocalSharedStream]) -> None:
        if streams.get(self.key) is self:
            del streams[self.key]
        if self.poll is not None and not self.poll.done():
            self.poll.cancel()
