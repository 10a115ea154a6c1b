"""Run waits wake on "Run Status Change" events instead of sleeping out their poll interval.

The emulator sends its run events to an SQS queue (moto); the waits poll once an hour,
so finishing at all within the test's timeout means the event woke them. Polling still decides: the
event only makes the wait look now.
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
import uuid
from typing import Any

import pytest
from airflow.triggers.shared_stream import SharedStreamManager
from airflow.utils.state import DagRunState

from devkit.waiting import wait_until
from healthomics.triggers.run import HealthOmicsRunTrigger
from omics_emulator import EmulatorAdmin

from ..airflow_dags import new_dag, run_dag
from ..conftest import ROLE_ARN
from .helpers import first_shared_event, start_run_operator

# An hour between polls: within the test's timeout a wait can only end because an event woke it.
LONG_POLL = 3600.0


@pytest.fixture
def wake_queue(local_aws: Any, emulator: EmulatorAdmin) -> str:
    queue_url = str(local_aws.client("sqs").create_queue(QueueName=f"wake-{uuid.uuid4().hex[:10]}")["QueueUrl"])
    emulator.configure(events_queue_url=queue_url, profiles={"default": {"jitter": 0.0}})
    return queue_url


def finish_runs_after_first_poll(emulator: EmulatorAdmin, operation: str) -> threading.Thread:
    """Once the wait has looked at its run(s) (``operation`` called), let every run finish."""

    def finish() -> None:
        wait_until(lambda: emulator.calls(operation) > 0, timeout=60, interval=0.1, what=f"no {operation} call")
        time.sleep(1.0)  # the wait is asleep now
        emulator.advance(24 * 3600)

    thread = threading.Thread(target=finish, daemon=True)
    thread.start()
    return thread


def test_a_deferred_run_wait_ends_on_the_event_not_the_next_poll(
    airflow_env: dict[str, str],
    emulator: EmulatorAdmin,
    wake_queue: str,
    omics: Any,
    workflow: dict[str, Any],
    bucket: str,
) -> None:
    with new_dag() as dag:
        start_run_operator(workflow, bucket, deferrable=True, poll_interval=LONG_POLL, wake_queue_url=wake_queue)
    emulator.reset_counters()
    finisher = finish_runs_after_first_poll(emulator, "GetRun")
    states = run_dag(dag)
    finisher.join(timeout=1)
    assert states["dag_run"] == DagRunState.SUCCESS
    assert states["start"].xcom_pull(task_ids="start")["status"] == "COMPLETED"
    assert emulator.calls("GetRun") <= 4  # the first look, the woken look (and the final details)


def test_a_shared_batch_poll_wakes_on_events(
    airflow_env: dict[str, str],
    emulator: EmulatorAdmin,
    wake_queue: str,
    omics: Any,
    workflow: dict[str, Any],
    bucket: str,
) -> None:
    settings = [{"runSettingId": f"S{i}", "name": f"S{i}", "parameters": {"sample_id": f"S{i}"}} for i in range(5)]
    batch = omics.start_run_batch(
        requestId=uuid.uuid4().hex,
        defaultRunSetting={"workflowId": workflow["id"], "roleArn": ROLE_ARN, "outputUri": f"s3://{bucket}/o"},
        batchRunSettings={"inlineSettings": settings},
    )
    emulator.advance(30 + 60 + 300)  # submitted, running
    runs = [e["runId"] for e in omics.list_runs_in_batch(batchId=batch["id"])["runs"]]
    triggers = [
        HealthOmicsRunTrigger(run_id=r, batch_id=batch["id"], poll_interval=LONG_POLL, wake_queue_url=wake_queue)
        for r in runs
    ]
    emulator.reset_counters()

    async def wait_all() -> list[Any]:
        manager = SharedStreamManager()

        waiting = [asyncio.create_task(first_shared_event(manager, i, t)) for i, t in enumerate(triggers)]
        finisher = finish_runs_after_first_poll(emulator, "ListRuns")
        try:
            return list(await asyncio.wait_for(asyncio.gather(*waiting), timeout=240))  # a hang guard
        finally:
            await asyncio.to_thread(finisher.join, 5)
            await manager.stop_all()

    events = asyncio.run(wait_all())
    assert [e.payload["status"] for e in events] == ["success"] * 5
    # One scheduled poll; then each run that ended was looked at once, when its event came.
    assert emulator.calls("ListRuns") == 1
    assert emulator.calls("GetRun") == 5
    assert json.dumps(sorted(e.payload["run"]["id"] for e in events)) == json.dumps(sorted(runs))
