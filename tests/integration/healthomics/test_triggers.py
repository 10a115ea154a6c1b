"""Run triggers in Airflow's own shared-stream manager (the triggerer's) against the emulator.

1,000 triggers waiting on the runs of one batch share one ListRuns poll: the emulator's
counters show ceil(1000 / 100) calls per poll, not 1,000 GetRun calls. The same holds where the
triggerer only calls ``run()`` (Airflow before 3.3): the triggers share the poll themselves.
"""

from __future__ import annotations

import asyncio
import json
import math
from contextlib import aclosing
from typing import Any

import pytest
from airflow.triggers.base import TaskFailedEvent, TaskSuccessEvent, TriggerEvent
from airflow.triggers.shared_stream import SharedStreamManager

from devkit.waiting import wait_until
from healthomics.operators.run import shared_poll_since
from healthomics.triggers import run as run_trigger_module
from healthomics.triggers.run import _WAITING, HealthOmicsRunTrigger
from omics_emulator import EmulatorAdmin

from ..conftest import ROLE_ARN
from .helpers import first_shared_event

SAMPLES = 1000
POLL = 0.5


@pytest.fixture
def big_batch(
    airflow_env: dict[str, str], emulator: EmulatorAdmin, omics: Any, s3: Any, workflow: dict[str, Any], bucket: str
) -> dict[str, Any]:
    """A batch of 1,000 runs, all submitted and RUNNING (time frozen), one of them set to fail."""
    emulator.configure(write_outputs=False, events_queue_url=None, profiles={"default": {"jitter": 0.0}})
    emulator.add_fault(
        action="fail",
        match={"name": "^S0042$"},
        failureReason="OUT_OF_MEMORY_ERROR",
        statusMessage="Task bwa_mem ran out of memory",
    )
    settings = [
        {"runSettingId": f"S{i:04d}", "name": f"S{i:04d}", "parameters": {"sample_id": f"S{i:04d}"}}
        for i in range(SAMPLES)
    ]
    s3.put_object(Bucket=bucket, Key="settings.json", Body=json.dumps(settings).encode())
    batch = omics.start_run_batch(
        requestId="big-batch",
        defaultRunSetting={"workflowId": workflow["id"], "roleArn": ROLE_ARN, "outputUri": f"s3://{bucket}/o"},
        batchRunSettings={"s3UriSettings": f"s3://{bucket}/settings.json"},
    )
    emulator.advance(30 + 60 + 300)  # validated, submitted, through PENDING and STARTING
    runs = {
        e["runSettingId"]: e["runId"]
        for p in omics.get_paginator("list_runs_in_batch").paginate(batchId=batch["id"])
        for e in p["runs"]
    }
    assert len(runs) == SAMPLES
    return {"id": batch["id"], "runs": runs}


async def first_run_event(trigger: HealthOmicsRunTrigger) -> TriggerEvent:
    """A trigger's first event from ``run()``, as a triggerer without shared streams takes it."""
    async with aclosing(trigger.run()) as events:
        return await anext(events)


async def wait_all(
    triggers: list[HealthOmicsRunTrigger],
    emulator: EmulatorAdmin,
    rounds_before_finish: int,
    manager: SharedStreamManager | None,
) -> list[TriggerEvent]:
    """Subscribe every trigger like the triggerer does (with ``manager`` None, like one before
    Airflow 3.3: each trigger's ``run()``); let the runs finish once the shared poll has answered
    ``rounds_before_finish - 1`` whole polls (at least one), however long they take here."""
    emulator.reset_counters()
    waiting = [
        asyncio.create_task(first_shared_event(manager, i, t) if manager else first_run_event(t))
        for i, t in enumerate(triggers)
    ]
    pages = math.ceil(SAMPLES / 100) * max(1, rounds_before_finish - 1)

    def pages_answered() -> int:
        return int(emulator.counters()["operations"].get("ListRuns", {}).get("statuses", {}).get("200", 0))

    await asyncio.to_thread(
        wait_until, lambda: pages_answered() >= pages, timeout=60, interval=0.1, what=f"fewer than {pages} pages"
    )
    assert not any(task.done() for task in waiting), "nothing has finished yet"
    await asyncio.to_thread(emulator.advance, 24 * 3600)
    events = await asyncio.wait_for(asyncio.gather(*waiting), timeout=120)
    if manager:
        await manager.stop_all()
    return list(events)


def make_triggers(batch: dict[str, Any], **kwargs: Any) -> list[HealthOmicsRunTrigger]:
    return [
        HealthOmicsRunTrigger(
            run_id=run_id, batch_id=batch["id"], poll_interval=POLL, run_details={"sampleId": sample}, **kwargs
        )
        for sample, run_id in sorted(batch["runs"].items())
    ]


@pytest.mark.parametrize("triggerer", ["shares streams (Airflow >= 3.3)", "calls run() only (Airflow < 3.3)"])
def test_thousand_waiting_runs_cost_ten_calls_per_poll(
    big_batch: dict[str, Any], emulator: EmulatorAdmin, triggerer: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    triggers = make_triggers(big_batch)
    assert len({t.shared_stream_key() for t in triggers}) == 1
    if "run()" in triggerer:
        monkeypatch.setattr(run_trigger_module, "TRIGGERER_SHARES_STREAMS", False)
    manager = None if "run()" in triggerer else SharedStreamManager()
    events = asyncio.run(wait_all(triggers, emulator, rounds_before_finish=3, manager=manager))

    operations = emulator.counters()["operations"]
    # Pages answered (a page throttled on a busy machine is asked again by botocore: counted once):
    # whole polls of ten pages while every run is waited for (a poll stops early only once it
    # has seen every run still waited for).
    list_calls = operations["ListRuns"]["statuses"].get("200", 0)
    pages_per_poll = math.ceil(SAMPLES / 100)
    assert 2 * pages_per_poll <= list_calls <= 4 * pages_per_poll, f"{list_calls} ListRuns calls"
    # Only the failed run is described individually (for its failureReason).
    assert operations.get("GetRun", {}).get("statuses", {}).get("200", 0) == 1
    assert set(operations) <= {"ListRuns", "GetRun"}

    by_sample = {e.payload["run"]["sampleId"]: e.payload for e in events}
    assert len(by_sample) == SAMPLES
    assert by_sample["S0042"]["status"] == "failed"
    assert by_sample["S0042"]["run"]["failureReason"] == "OUT_OF_MEMORY_ERROR"
    assert "Task bwa_mem ran out of memory" in by_sample["S0042"]["message"]
    completed = [p for s, p in by_sample.items() if s != "S0042"]
    assert all(p["status"] == "success" and p["run"]["status"] == "COMPLETED" for p in completed)
    assert all(p["run"]["stopTime"] for p in completed)


def test_a_throttling_storm_delays_but_never_fails_the_waits(
    big_batch: dict[str, Any], emulator: EmulatorAdmin
) -> None:
    emulator.add_fault(
        action="error", operations=["ListRuns", "GetRun"], code="ThrottlingException", rate=0.5, times=15
    )
    # Few botocore retries, so the poller's own backoff is what rides out the storm.
    triggers = make_triggers(big_batch, botocore_config={"retries": {"mode": "standard", "total_max_attempts": 2}})
    events = asyncio.run(wait_all(triggers, emulator, rounds_before_finish=2, manager=SharedStreamManager()))
    assert sum(e.payload["status"] == "success" for e in events) == SAMPLES - 1
    assert emulator.counters()["totalThrottled"] > 0


def test_end_from_trigger_ends_the_task_with_the_run_as_xcom(
    big_batch: dict[str, Any], emulator: EmulatorAdmin
) -> None:
    failing = HealthOmicsRunTrigger(
        run_id=big_batch["runs"]["S0042"], batch_id=big_batch["id"], poll_interval=POLL, end_from_trigger=True
    )
    triggers = [*make_triggers(big_batch, end_from_trigger=True)[100:150], failing]
    events = asyncio.run(wait_all(triggers, emulator, rounds_before_finish=1, manager=SharedStreamManager()))
    assert all(isinstance(e, TaskSuccessEvent) for e in events[:50])
    assert events[0].xcoms["return_value"]["status"] == "COMPLETED"
    assert isinstance(events[-1], TaskFailedEvent)
    assert events[-1].xcoms["return_value"]["failureReason"] == "OUT_OF_MEMORY_ERROR"


def test_standalone_wait_and_on_kill(
    airflow_env: dict[str, str], emulator: EmulatorAdmin, omics: Any, start_run: Any
) -> None:
    """Without a batch there is no sharing: the trigger polls GetRun. A kill cancels the run."""
    run = start_run()
    trigger = HealthOmicsRunTrigger(run_id=run["id"], poll_interval=POLL)
    assert trigger.shared_stream_key() is None

    async def kill_while_waiting() -> None:
        waiting = asyncio.create_task(anext(trigger.run()))
        await asyncio.sleep(POLL * 1.5)
        assert not waiting.done()
        await trigger.on_kill()  # what the triggerer calls when the user kills the task
        waiting.cancel()

    asyncio.run(kill_while_waiting())
    assert omics.get_run(id=run["id"])["status"] in ("STOPPING", "CANCELLED")


def test_triggers_serialize_round_trip() -> None:
    trigger = HealthOmicsRunTrigger(
        run_id="1234567",
        batch_id="7",
        poll_interval=30,
        deadline=1.5,
        run_details={"sampleId": "S1"},
        end_from_trigger=True,
        aws_conn_id="c",
        wake_queue_url="https://sqs.example/q",
    )
    classpath, kwargs = trigger.serialize()
    assert classpath == "healthomics.triggers.run.HealthOmicsRunTrigger"
    again = HealthOmicsRunTrigger(**json.loads(json.dumps(kwargs)))
    assert again.serialize() == (classpath, kwargs)
    # Waits with another wake queue (or none) do not share a poll with these.
    assert again.shared_stream_key() == (
        "healthomics-run-status",
        "c",
        None,
        "batch",
        "7",
        30,
        "https://sqs.example/q",
    )


@pytest.fixture
def runs_one_by_one(
    airflow_env: dict[str, str], emulator: EmulatorAdmin, omics: Any, workflow: dict[str, Any], bucket: str
) -> dict[str, dict[str, Any]]:
    """300 runs started one by one with StartRun (a pipeline's later stages), all RUNNING."""
    emulator.configure(write_outputs=False, events_queue_url=None, profiles={"default": {"jitter": 0.0}})
    emulator.add_fault(action="fail", match={"name": "^R0007$"}, failureReason="OUT_OF_MEMORY_ERROR")
    runs = {}
    for i in range(300):
        name = f"R{i:04d}"
        started = omics.start_run(
            requestId=f"one-by-one-{i}",
            workflowId=workflow["id"],
            roleArn=ROLE_ARN,
            outputUri=f"s3://{bucket}/o",
            name=name,
            parameters={"sample_id": name},
        )
        runs[name] = dict(omics.get_run(id=started["id"]))
    emulator.advance(60 + 300)  # through PENDING and STARTING
    return runs


def test_runs_started_one_by_one_share_one_account_wide_poll(
    runs_one_by_one: dict[str, dict[str, Any]], emulator: EmulatorAdmin
) -> None:
    """The wait of a run outside any batch (a pipeline stage, QC, one run per sample) joins the
    poll of the runs created in the same window: one ListRuns page per 100 runs, not a GetRun each."""
    triggers = [
        HealthOmicsRunTrigger(
            run_id=run["id"], list_since=shared_poll_since(run), poll_interval=POLL, run_details={"sampleId": name}
        )
        for name, run in sorted(runs_one_by_one.items())
    ]
    assert len({t.shared_stream_key() for t in triggers}) == 1

    async def main() -> list[TriggerEvent]:
        manager = SharedStreamManager()
        emulator.reset_counters()
        waiting = [asyncio.create_task(first_shared_event(manager, i, t)) for i, t in enumerate(triggers)]

        def pages() -> int:
            return int(emulator.counters()["operations"].get("ListRuns", {}).get("statuses", {}).get("200", 0))

        # Two whole polls of ceil(300 / 100) pages (at most one more page past the window).
        await asyncio.to_thread(wait_until, lambda: pages() >= 6, timeout=60, interval=0.1, what="two polls")
        assert not any(task.done() for task in waiting), "nothing has finished yet"
        await asyncio.to_thread(emulator.advance, 24 * 3600)
        events = await asyncio.wait_for(asyncio.gather(*waiting), timeout=120)
        await manager.stop_all()
        return list(events)

    events = asyncio.run(main())
    operations = emulator.counters()["operations"]
    assert operations.get("GetRun", {}).get("statuses", {}).get("200", 0) == 1  # the failed run's reason
    by_sample = {e.payload["run"]["sampleId"]: e.payload for e in events}
    assert len(by_sample) == 300
    assert by_sample["R0007"]["status"] == "failed"
    assert all(p["status"] == "success" for s, p in by_sample.items() if s != "R0007")


def test_an_account_wide_poll_stops_paging_once_it_has_seen_every_run_waited_for(
    runs_one_by_one: dict[str, dict[str, Any]], emulator: EmulatorAdmin, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Waits for the 50 newest of 300 runs: each poll reads one page of 100 (runs come newest
    first), not every run created since the window's start."""
    polls: list[int] = []
    list_runs = HealthOmicsRunTrigger._list_runs

    async def counted(client: Any, kwargs: dict[str, Any]) -> dict[str, dict[str, Any]]:
        snapshot = await list_runs(client, kwargs)
        polls.append(len(snapshot))
        return snapshot

    monkeypatch.setattr(HealthOmicsRunTrigger, "_list_runs", staticmethod(counted))
    newest = sorted(runs_one_by_one.items())[-50:]
    triggers = [
        HealthOmicsRunTrigger(
            run_id=run["id"], list_since=shared_poll_since(run), poll_interval=POLL, run_details={"sampleId": name}
        )
        for name, run in newest
    ]

    emulator.reset_counters()  # the fixture described every run it started

    async def main() -> list[TriggerEvent]:
        manager = SharedStreamManager()
        waiting = [asyncio.create_task(first_shared_event(manager, i, t)) for i, t in enumerate(triggers)]
        key = triggers[0].shared_stream_key()
        await asyncio.to_thread(
            wait_until, lambda: len(_WAITING.get(key, {})) == 50, timeout=30, interval=0.05, what="subscribers"
        )
        polls.clear()
        await asyncio.to_thread(wait_until, lambda: len(polls) >= 3, timeout=60, interval=0.1, what="three polls")
        assert not any(task.done() for task in waiting), "nothing has finished yet"
        assert set(polls) == {100}, polls  # one page each
        await asyncio.to_thread(emulator.advance, 24 * 3600)
        events = await asyncio.wait_for(asyncio.gather(*waiting), timeout=120)
        await manager.stop_all()
        return list(events)

    events = asyncio.run(main())
    assert {e.payload["status"] for e in events} == {"success"}
    assert _WAITING == {}  # every subscriber left its poll's list
    assert emulator.counters()["operations"].get("GetRun", {}).get("calls", 0) == 0
