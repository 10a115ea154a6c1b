"""Micro batches of throttled runs, against the emulator: one StartRunBatch for the runs ready at
the same time, each trigger handed its own run, exactly once across a triggerer restart, a refused
batch failing each of its runs with the reason, a kill cancelling the run once it exists.

Emulated time is frozen (tests/aws_stack.py) and moved on by a background thread, so a batch
stays in validation for as long as a test needs it to.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable
from contextlib import aclosing
from typing import Any

import pytest

from healthomics.triggers.micro_batch import HealthOmicsMicroBatchTrigger
from omics_emulator import EmulatorAdmin

from ..conftest import ROLE_ARN

POLL = 0.05
BATCH_NAME = "FC-0001-call"


def trigger(workflow_id: str, bucket: str, sample: str) -> HealthOmicsMicroBatchTrigger:
    return HealthOmicsMicroBatchTrigger(
        batch_name=BATCH_NAME,
        default_run_setting={"workflowId": workflow_id, "roleArn": ROLE_ARN},
        run_setting={
            "runSettingId": f"hoa-{sample}-a1",
            "name": f"FC-0001-{sample}-call",
            "outputUri": f"s3://{bucket}/outputs",
            "parameters": {"sample_id": sample},
            "runTags": {"sample": sample, "stage": "call"},
        },
        batch_tags={"flowcell": "FC-0001"},
        poll_interval=POLL,
    )


async def first_event(t: HealthOmicsMicroBatchTrigger) -> dict[str, Any]:
    async with aclosing(t.run()) as events:
        return dict((await anext(events)).payload)


@contextlib.asynccontextmanager
async def time_moving(emulator: EmulatorAdmin, after: Awaitable[Any] | None = None) -> AsyncIterator[None]:
    """Emulated time moving on (a minute every few polls) once ``after`` is done."""

    async def move() -> None:
        if after is not None:
            await after
        while True:
            await asyncio.to_thread(emulator.advance, 60)
            await asyncio.sleep(POLL * 2)

    mover = asyncio.ensure_future(move())
    try:
        yield
    finally:
        mover.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await mover


async def calls_reach(emulator: EmulatorAdmin, operation: str, count: int) -> None:
    while await asyncio.to_thread(emulator.calls, operation) < count:
        await asyncio.sleep(POLL / 2)


def samples(n: int, start: int = 0) -> list[str]:
    return [f"S{i:03d}" for i in range(start, start + n)]


def runs_named(omics: Any, sample: str) -> list[dict[str, Any]]:
    return list(omics.list_runs(name=f"FC-0001-{sample}-call")["items"])


def test_runs_ready_together_go_out_as_one_batch_and_each_trigger_gets_its_own_run(
    airflow_env: dict[str, str], emulator: EmulatorAdmin, omics: Any, workflow: dict[str, Any], bucket: str
) -> None:
    names = samples(30)

    async def main() -> list[dict[str, Any]]:
        async with time_moving(emulator):
            return await asyncio.gather(*(first_event(trigger(workflow["id"], bucket, s)) for s in names))

    events = asyncio.run(main())

    assert [e["status"] for e in events] == ["submitted"] * len(names)
    assert emulator.calls("StartRunBatch") == 1
    (batch,) = omics.list_batch(name=BATCH_NAME)["items"]
    assert omics.get_batch(batchId=batch["id"])["tags"]["flowcell"] == "FC-0001"
    for sample, event in zip(names, events, strict=True):
        run = omics.get_run(id=event["run"]["id"])
        assert (run["name"], run["batchId"], run["parameters"]) == (
            f"FC-0001-{sample}-call",
            batch["id"],
            {"sample_id": sample},
        )
        assert run["tags"]["sample"] == sample
        assert event["run"]["outputUri"] == f"s3://{bucket}/outputs"


def test_after_a_restart_runs_of_a_batch_still_submitting_are_taken_from_it_not_submitted_again(
    airflow_env: dict[str, str], emulator: EmulatorAdmin, omics: Any, workflow: dict[str, Any], bucket: str
) -> None:
    """A triggerer sends a batch and stops before its runs exist; the next one (a new event loop:
    a new batcher, as after a restart) gets the same triggers and two new ones. It waits for the
    batch to submit, takes the ten runs from it and sends only the two."""
    first, late = samples(10), samples(2, start=10)

    async def before_restart() -> None:
        waiting = [asyncio.ensure_future(first_event(trigger(workflow["id"], bucket, s))) for s in first]
        await calls_reach(emulator, "StartRunBatch", 1)  # sent; time frozen, so still validating
        for task in waiting:
            task.cancel()
        await asyncio.gather(*waiting, return_exceptions=True)

    asyncio.run(before_restart())
    assert all(runs_named(omics, s) == [] for s in first)

    async def after_restart() -> list[dict[str, Any]]:
        # Time moves on only once the new batcher has seen the batch submitting (and so waited).
        async with time_moving(emulator, after=calls_reach(emulator, "ListBatch", 2)):
            return await asyncio.gather(*(first_event(trigger(workflow["id"], bucket, s)) for s in first + late))

    events = asyncio.run(after_restart())

    assert [e["status"] for e in events] == ["submitted"] * 12
    assert emulator.calls("StartRunBatch") == 2
    assert all(len(runs_named(omics, s)) == 1 for s in first + late)
    first_batch = {e["run"]["batchId"] for e in events[:10]}
    assert len(first_batch) == 1 and first_batch.isdisjoint({e["run"]["batchId"] for e in events[10:]})


def test_a_run_asked_for_again_in_the_same_triggerer_is_answered_from_its_batch(
    airflow_env: dict[str, str], emulator: EmulatorAdmin, omics: Any, workflow: dict[str, Any], bucket: str
) -> None:
    """The trigger fired, the worker died before it recorded the run, the retry defers again to
    the same triggerer: the batcher answers from the batch it sent, and sends nothing."""

    async def main() -> tuple[dict[str, Any], dict[str, Any]]:
        async with time_moving(emulator):
            first = await first_event(trigger(workflow["id"], bucket, "S000"))
            again = await first_event(trigger(workflow["id"], bucket, "S000"))
        return first, again

    first, again = asyncio.run(main())

    assert first["status"] == again["status"] == "submitted"
    assert first["run"]["id"] == again["run"]["id"]
    assert emulator.calls("StartRunBatch") == 1
    assert len(runs_named(omics, "S000")) == 1


def test_a_refused_batch_fails_each_of_its_runs_with_the_reason(
    airflow_env: dict[str, str], emulator: EmulatorAdmin, omics: Any, bucket: str
) -> None:
    async def main() -> list[dict[str, Any]]:
        return await asyncio.gather(*(first_event(trigger("9999999", bucket, s)) for s in samples(3)))

    events = asyncio.run(main())

    assert {e["status"] for e in events} == {"not_submitted"}
    assert {e["reason"] for e in events} == {"ResourceNotFoundException"}
    assert all("StartRunBatch refused" in e["message"] for e in events)
    assert omics.list_runs()["items"] == []


def test_a_run_the_service_could_not_submit_for_now_goes_in_the_next_batch(
    airflow_env: dict[str, str], emulator: EmulatorAdmin, omics: Any, workflow: dict[str, Any], bucket: str
) -> None:
    emulator.add_fault(action="fail_submission", match={"runSettingId": "S001"}, code="ThrottlingException", times=1)

    async def main() -> list[dict[str, Any]]:
        async with time_moving(emulator):
            return await asyncio.gather(*(first_event(trigger(workflow["id"], bucket, s)) for s in samples(3)))

    events = asyncio.run(main())

    assert [e["status"] for e in events] == ["submitted"] * 3
    assert emulator.calls("StartRunBatch") == 2
    assert all(len(runs_named(omics, s)) == 1 for s in samples(3))


def test_a_killed_task_s_run_is_cancelled_once_its_batch_creates_it(
    airflow_env: dict[str, str], emulator: EmulatorAdmin, omics: Any, workflow: dict[str, Any], bucket: str
) -> None:
    killed, kept = trigger(workflow["id"], bucket, "S000"), trigger(workflow["id"], bucket, "S001")

    async def main() -> dict[str, Any]:
        task = asyncio.ensure_future(first_event(killed))
        other = asyncio.ensure_future(first_event(kept))
        await calls_reach(emulator, "StartRunBatch", 1)
        task.cancel()  # the triggerer cancels a killed task's trigger, then calls on_kill()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        await killed.on_kill()
        async with time_moving(emulator):
            event = await other
            await calls_reach(emulator, "CancelRun", 1)
        return event

    event = asyncio.run(main())

    assert event["status"] == "submitted"
    (run,) = runs_named(omics, "S000")
    assert omics.get_run(id=run["id"])["status"] in ("CANCELLED", "STOPPING")
    assert omics.get_run(id=event["run"]["id"])["status"] not in ("CANCELLED", "STOPPING")


@pytest.mark.parametrize("field", ["runId", "workflowType"])
def test_a_request_no_batch_can_run_is_not_split(field: str) -> None:
    from healthomics.utils.service_model import as_batch_run

    request = {"workflowId": "1", "roleArn": ROLE_ARN, "outputUri": "s3://b/o", "name": "n"}
    request[field] = "READY2RUN" if field == "workflowType" else "1234567"
    assert as_batch_run(request, "id") is None
