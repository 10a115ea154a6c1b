"""The triggerer's StartRun pacing: one turn per interval for every waiting task, first come first
served, every turn paused after a throttle (a burst of reports counting once), cancelled waits skipped."""

from __future__ import annotations

import asyncio
import itertools

import pytest

from healthomics.triggers.quota import HealthOmicsStartTurnTrigger, StartPacer

RATE = 20.0  # turns per second: 50 ms apart
INTERVAL = 1 / RATE


async def turns(pacer: StartPacer, names: list[str]) -> list[tuple[str, float]]:
    loop = asyncio.get_running_loop()
    got: list[tuple[str, float]] = []

    async def wait(name: str) -> None:
        await pacer.turn()
        got.append((name, loop.time()))

    await asyncio.gather(*(wait(name) for name in names))
    return got


def test_turns_come_one_interval_apart_in_the_order_asked() -> None:
    async def scenario() -> list[tuple[str, float]]:
        return await turns(StartPacer(RATE), ["a", "b", "c", "d", "e"])

    got = asyncio.run(scenario())
    assert [name for name, _ in got] == ["a", "b", "c", "d", "e"]
    gaps = [later - earlier for (_, earlier), (_, later) in itertools.pairwise(got)]
    assert all(gap >= INTERVAL * 0.95 for gap in gaps), gaps  # never sooner than the quota allows


def test_a_throttle_pauses_every_turn_and_a_burst_of_reports_counts_once() -> None:
    async def scenario() -> tuple[float, float, float]:
        pacer = StartPacer(RATE)
        loop = asyncio.get_running_loop()
        start = loop.time()
        for _ in range(50):  # fifty tasks came back throttled at once
            pacer.throttled()
        first_pause = pacer._paused_until - start
        await turns(pacer, ["a"])
        waited = loop.time() - start
        pacer.throttled()  # throttled again just after: the pause doubles
        return first_pause, waited, pacer._paused_until - loop.time()

    first_pause, waited, second_pause = asyncio.run(scenario())
    assert 1.6 * INTERVAL <= first_pause <= 2.4 * INTERVAL  # twice the interval, once: not fifty doublings
    assert waited >= first_pause
    assert second_pause >= first_pause * 1.3


def test_a_cancelled_wait_gives_its_turn_to_the_next() -> None:
    async def scenario() -> list[str]:
        pacer = StartPacer(RATE)
        order: list[str] = []

        async def wait(name: str) -> None:
            await pacer.turn()
            order.append(name)

        first = asyncio.ensure_future(wait("a"))
        cancelled = asyncio.ensure_future(wait("b"))
        last = asyncio.ensure_future(wait("c"))
        await asyncio.sleep(0)
        cancelled.cancel()
        await asyncio.gather(first, last)
        return order

    assert asyncio.run(scenario()) == ["a", "c"]


def test_triggers_of_one_connection_share_one_pacer_per_event_loop() -> None:
    async def scenario() -> bool:
        one = StartPacer.shared(("aws_default", "eu-west-1"), RATE)
        again = StartPacer.shared(("aws_default", "eu-west-1"), RATE)
        other = StartPacer.shared(("aws_other", "eu-west-1"), RATE)
        return one is again and one is not other

    assert asyncio.run(scenario())


@pytest.mark.parametrize("throttled", [True, False])
def test_the_trigger_fires_once_its_turn_comes(throttled: bool) -> None:
    trigger = HealthOmicsStartTurnTrigger(start_run_tps=1000.0, throttled=throttled, aws_conn_id="aws_default")
    classpath, kwargs = trigger.serialize()
    assert classpath == "healthomics.triggers.quota.HealthOmicsStartTurnTrigger"
    assert HealthOmicsStartTurnTrigger(**kwargs).serialize() == (classpath, kwargs)

    async def first_event() -> object:
        async for event in trigger.run():
            return event.payload
        return None

    assert asyncio.run(first_event()) == {"status": "success"}
