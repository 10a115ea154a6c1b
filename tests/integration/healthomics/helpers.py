"""What the provider-layer tests share: a StartRun operator with test defaults, a trigger's first event."""

from __future__ import annotations

from typing import Any

from airflow.triggers.base import TriggerEvent
from airflow.triggers.shared_stream import SharedStreamManager

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
