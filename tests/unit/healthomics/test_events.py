"""Run status events: envelope checks, flattening without loss, archive names; which events wake a wait."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest

from healthomics.triggers.wake import RunEventWaker
from healthomics.utils.eventbridge import MalformedEventError, flat_event, flatten, parse_event


def event(status: str = "COMPLETED", **detail: Any) -> dict[str, Any]:
    return {
        "version": "0",
        "id": "c0e540f4-df38-b986-86c1-3e3730f971fe",
        "detail-type": "Run Status Change",
        "source": "aws.omics",
        "account": "123456789012",
        "time": "2022-10-20T22:07:35Z",
        "region": "us-west-2",
        "resources": ["arn:aws:omics:us-west-2:123456789012:run/2101313"],
        "detail": {
            "omicsVersion": "1.0.0",
            "arn": "arn:aws:omics:us-west-2:123456789012:run/2101313",
            "status": status,
            **detail,
        },
    }


def test_the_documented_event_parses_and_is_named_by_its_time_and_id() -> None:
    parsed = parse_event(json.dumps(event(runId="2101313")))
    assert parsed.run_id == "2101313" and parsed.is_run_status
    assert parsed.archive_name() == "event_20221020_220735_c0e540f4-df38-b986-86c1-3e3730f971fe.json"
    # Older events carry only the ARN; an SNS-wrapped event is unwrapped.
    wrapped = {"Type": "Notification", "Message": json.dumps(event())}
    assert parse_event(wrapped).run_id == "2101313"


def test_flattening_keeps_every_key() -> None:
    nested = {"a": {"b": {"c": 1}, "d": [1, 2]}, "e": {}, "f": None}
    assert flatten(nested) == {"a.b.c": 1, "a.d": [1, 2], "e": {}, "f": None}
    flat = flat_event(parse_event(event(runId="1", region="inner", nested={"x": 1})))
    assert flat["eventId"] == "c0e540f4-df38-b986-86c1-3e3730f971fe" and flat["eventType"] == "Run Status Change"
    assert flat["region"] == "us-west-2" and flat["detail.region"] == "inner"  # a clash keeps both
    assert flat["nested.x"] == 1 and flat["status"] == "COMPLETED"


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        ("{", "not valid JSON"),
        ("[]", "not a JSON object but list"),
        (json.dumps({**event(), "source": "aws.batch"}), "not a HealthOmics event"),
        (json.dumps({**event(), "time": "yesterday"}), "bad event time"),
        (
            json.dumps({**event(), "detail": {"arn": "arn:aws:omics:us-west-2:1:workflow/9", "status": "X"}}),
            "without runId",
        ),
    ],
)
def test_unusable_messages_say_why(body: str, reason: str) -> None:
    with pytest.raises(MalformedEventError, match=reason):
        parse_event(body)


def test_only_a_run_that_ended_wakes_its_waits() -> None:
    async def scenario() -> tuple[set[str], set[str]]:
        waker = RunEventWaker(("test",), "unused", hook=None)  # type: ignore[arg-type]
        waker._ensure_reader = lambda: None  # type: ignore[method-assign]  # no queue here: events are fed directly

        async def feed() -> None:
            await asyncio.sleep(0.05)
            waker._wake(json.dumps(event("RUNNING", runId="2101313")))  # not an end: no wake
            waker._wake("garbage")
            await asyncio.sleep(0.05)
            waker._wake(json.dumps(event("FAILED", runId="2101313")))

        feeder = asyncio.ensure_future(feed())
        woken = await waker.wait(["2101313", "7"], timeout=5)
        await feeder
        idle = await waker.wait(["7"], timeout=0.05)
        return woken, idle

    woken, idle = asyncio.run(scenario())
    assert woken == {"2101313"} and idle == set()


def test_an_end_that_comes_between_two_pauses_wakes_the_next_one_once() -> None:
    async def scenario() -> tuple[set[str], set[str], set[str]]:
        waker = RunEventWaker(("test",), "unused", hook=None)  # type: ignore[arg-type]
        waker._ensure_reader = lambda: None  # type: ignore[method-assign]
        waker._wake(json.dumps(event("COMPLETED", runId="2101313")))  # nobody waits right now
        first = await waker.wait(["2101313", "7"], timeout=5)  # at once, without sleeping
        again = await waker.wait(["2101313"], timeout=0.05)  # the event was used up
        unrelated = await waker.wait(["7"], timeout=0.05)
        return first, again, unrelated

    first, again, unrelated = asyncio.run(scenario())
    assert (first, again, unrelated) == ({"2101313"}, set(), set())


def test_a_watched_queue_keeps_its_messages_until_the_dag_deletes_them() -> None:
    from healthomics.utils.queue import sqs_watched_asset

    asset = sqs_watched_asset("events", "s3://archive/events/", "https://queue", "aws_default", 900, waiter_delay=1)
    (watcher,) = asset.watchers
    classpath, kwargs = watcher.trigger.serialize()
    assert (asset.name, watcher.name) == ("events", "events_queue")
    assert classpath.endswith("SqsSensorTrigger")
    assert kwargs["delete_message_on_reception"] is False
    assert (kwargs["sqs_queue"], kwargs["visibility_timeout"], kwargs["waiter_delay"]) == ("https://queue", 900, 1)
