"""What the provider-layer tests share: a StartRun operator with test defaults, a trigger's first event,
a run's cost written out again from the emulator's records."""

from __future__ import annotations

from typing import Any

from airflow.triggers.base import TriggerEvent
from airflow.triggers.shared_stream import SharedStreamManager

from healthomics.cost.prices import shipped_table
from healthomics.operators.run import HealthOmicsStartRunOperator
from healthomics.triggers.run import HealthOmicsRunTrigger

from ..conftest import ROLE_ARN

POLL = 0.2


def start_run_operator(workflow: dict[str, Any], bucket: str, **kwargs: Any) -> HealthOmicsStartRunOperator:
    defaults: dict[str, Any] = {
        "task_id": "start",
        "workflow_id": workflow["id"],
        "role_arn": ROLE_ARN,
        "output_uri": f"s3://{bucket}/runs",
        "name": "NA12878",
        "parameters": {"sample_id": "NA12878"},
        "poll_interval": POLL,
    }
    defaults.update(kwargs)
    return HealthOmicsStartRunOperator(**defaults)


async def first_shared_event(
    manager: SharedStreamManager, trigger_id: int, trigger: HealthOmicsRunTrigger
) -> TriggerEvent:
    """Subscribe a trigger to its shared stream the way the triggerer does; its first event."""
    key = trigger.shared_stream_key()
    try:
        async for event in trigger.filter_shared_stream(
            manager.subscribe(trigger_id=trigger_id, trigger=trigger, key=key)
        ):
            return event
        raise AssertionError("stream ended without an event")
    finally:
        await manager.unsubscribe(trigger_id, key)


# The emulator's Region (moto's default) is the shipped price table's.
REGION = "us-east-1"


def expected_cost(omics: Any, run_id: str) -> float:
    """What the run cost, from the emulator's own records and the price table, written out again."""
    table = shipped_table(REGION)
    run = omics.get_run(id=run_id)
    compute = 0.0
    for page in omics.get_paginator("list_run_tasks").paginate(id=run_id):
        for task in page["items"]:
            if "startTime" in task and not task["cacheHit"]:
                seconds = max(60.0, (task["stopTime"] - task["startTime"]).total_seconds())
                compute += table.instances[task["instanceType"]] * seconds / 3600
    hours = (run["stopTime"] - run["startTime"]).total_seconds() / 3600
    if run["storageType"] == "DYNAMIC":
        storage = run["storageCapacity"] * hours * table.dynamic_storage_gib_hour
    else:
        storage = -(-run["storageCapacity"] // 1200) * 1200 * hours * table.static_storage_gib_hour
    return compute + storage
