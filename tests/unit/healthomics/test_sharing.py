"""The in-process shared poll for triggerers before Airflow 3.3: one poll per key, every snapshot to
every subscriber, the poll stopped when the last one leaves, its failure seen by all."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import aclosing
from typing import Any

import pytest

from healthomics.triggers.sharing import LocalSharedStream, SharedPollError


class Poll:
    """A fake upstream: counts how often it is opened and closed, yields what it is fed."""

    def __init__(self) -> None:
        self.opened = 0
        self.closed = 0
        self.feed: asyncio.Queue[Any] = asyncio.Queue()

    async def stream(self) -> AsyncIterator[Any]:
        self.opened += 1
        try:
            while True:
                item = await self.feed.get()
                if isinstance(item, Exception):
                    raise item
                yield item
        finally:
            self.closed += 1


async def take(stream: AsyncIterator[Any], count: int) -> list[Any]:
    return [await anext(stream) for _ in range(count)]


async def settle() -> None:
    for _ in range(5):
        await asyncio.sleep(0)


def test_subscribers_of_one_key_share_one_poll_and_see_every_snapshot() -> None:
    async def scenario() -> None:
        poll = Poll()
        streams = [LocalSharedStream.join("key", poll.stream) for _ in range(3)]
        readers = [asyncio.ensure_future(take(s, 2)) for s in streams]
        await settle()
        for snapshot in ({"r1": "RUNNING"}, {"r1": "COMPLETED"}):
            await poll.feed.put(snapshot)
            await settle()
        assert [await r for r in readers] == [[{"r1": "RUNNING"}, {"r1": "COMPLETED"}]] * 3
        assert poll.opened == 1

        other = Poll()
        async with aclosing(LocalSharedStream.join("other key", other.stream)) as stream:
            await other.feed.put({"r2": "RUNNING"})
            assert await anext(stream) == {"r2": "RUNNING"}
        assert other.opened == 1

        for stream in streams:
            await stream.aclose()
        await settle()
        assert poll.closed == 1, "the poll stops when its last subscriber leaves"
        assert other.closed == 1

    asyncio.run(scenario())


def test_a_late_subscriber_starts_from_the_newest_snapshot_and_a_slow_one_skips_to_it() -> None:
    async def scenario() -> None:
        poll = Poll()
        async with aclosing(LocalSharedStream.join("key", poll.stream)) as first:
            await poll.feed.put({"n": 1})
            assert await anext(first) == {"n": 1}
            async with aclosing(LocalSharedStream.join("key", poll.stream)) as late:
                assert await anext(late) == {"n": 1}
                await poll.feed.put({"n": 2})
                await poll.feed.put({"n": 3})
                await settle()
                # Each snapshot is the whole state: the subscriber that fell behind gets the newest.
                assert await anext(late) == {"n": 3}
                assert await anext(first) == {"n": 3}
        assert poll.opened == 1

    asyncio.run(scenario())


def test_a_failed_poll_fails_every_subscriber_and_the_next_subscriber_starts_a_new_one() -> None:
    async def scenario() -> None:
        poll = Poll()
        streams = [LocalSharedStream.join("key", poll.stream) for _ in range(2)]
        readers = [asyncio.ensure_future(take(s, 1)) for s in streams]
        await settle()
        cause = RuntimeError("AccessDeniedException")
        await poll.feed.put(cause)
        raised = []
        for reader in readers:
            with pytest.raises(SharedPollError, match="AccessDeniedException") as error:
                await reader
            raised.append(error.value)
        # Each subscriber its own exception (one raised twice would carry both tracebacks), the cause kept.
        assert raised[0] is not raised[1] and all(e.__cause__ is cause for e in raised)
        async with aclosing(LocalSharedStream.join("key", poll.stream)) as again:
            await poll.feed.put({"n": 1})
            assert await anext(again) == {"n": 1}
        assert poll.opened == 2

    asyncio.run(scenario())


def test_polls_belong_to_their_event_loop() -> None:
    """dag.test() runs each trigger in a loop of its own: a poll of a closed loop is never reused."""
    poll = Poll()

    async def one_wait() -> Any:
        async with aclosing(LocalSharedStream.join("key", poll.stream)) as stream:
            await poll.feed.put({"n": 1})
            return await anext(stream)

    for _ in range(2):
        poll.feed = asyncio.Queue()
        assert asyncio.run(one_wait()) == {"n": 1}
    assert poll.opened == 2
