"""What every HealthOmics trigger shares: connection kwargs, the hook, and kill detection."""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Awaitable
from datetime import timedelta
from typing import Any

from airflow.triggers.base import BaseEventTrigger, BaseTrigger
from airflow.utils.state import TaskInstanceState
from asgiref.sync import sync_to_async
from botocore.exceptions import ClientError

from healthomics.hooks.omics import HealthOmicsHook

MAX_BACKOFF_SECONDS = 600.0
# Airflow 3.3's triggerer calls a trigger's on_kill() when a user kills its deferred task; before
# 3.3 it only calls cleanup(), also after an event and at shutdown (see cancel_unless_fired).
TRIGGERER_CALLS_ON_KILL = hasattr(BaseTrigger, "on_kill")
# Cancellations started from on_kill(), kept referenced until they finish (see shielded()).
_CANCELLATIONS: set[asyncio.Task[None]] = set()
# Backoff never grows past this many poll intervals (nor past MAX_BACKOFF_SECONDS).
MAX_BACKOFF_INTERVALS = 16


def may_end_from_trigger() -> bool:
    """Whether a task may end in the triggerer (``end_from_trigger``). Not with listener plugins
    (OpenLineage's among them) registered: Airflow then refuses to load a DAG with such a task, and
    listeners never hear of a task that did not end on a worker. Asked when a task is built, on
    the DAG processor and the worker alike."""
    managers: list[Any] = []  # core's and the Task SDK's ListenerManager
    try:
        from airflow.listeners.listener import get_listener_manager

        managers.append(get_listener_manager)
    except ImportError:  # a worker with the Task SDK only
        pass
    try:
        from airflow.sdk.listener import get_listener_manager as get_sdk_listener_manager

        managers.append(get_sdk_listener_manager)
    except ImportError:  # before Airflow 3.2 the Task SDK used core's listener manager
        pass
    return not any(manager().has_listeners for manager in managers)


def deadline_after(max_wait: timedelta | None) -> float | None:
    """Wall-clock deadline (epoch seconds) for a wait of ``max_wait``."""
    return None if max_wait is None else time.time() + max_wait.total_seconds()


def backoff(current: float, base: float) -> float:
    """Next delay after a throttled poll: doubled, capped, with +/-20% jitter."""
    cap = min(MAX_BACKOFF_SECONDS, base * MAX_BACKOFF_INTERVALS)
    return min(cap, max(base, current) * 2) * random.uniform(0.8, 1.2)


async def shielded(cancellation: Awaitable[None]) -> None:
    """Run a remote cancel to completion even if the awaiting coroutine is cancelled again.

    The triggerer re-cancels a trigger that is still running on every loop, which would cut
    an on_kill() short in the middle of its CancelRun call.
    """
    task = asyncio.ensure_future(cancellation)
    _CANCELLATIONS.add(task)
    task.add_done_callback(_CANCELLATIONS.discard)
    await asyncio.shield(task)


def connection_kwargs(operator: Any) -> dict[str, Any]:
    """The AWS connection arguments of an amazon-provider style operator, for its trigger."""
    return {
        "aws_conn_id": operator.aws_conn_id,
        "region_name": operator.region_name,
        "verify": operator.verify,
        "botocore_config": operator.botocore_config,
    }


class HealthOmicsBaseTrigger(BaseEventTrigger):
    """
    Base for HealthOmics triggers (``BaseEventTrigger`` so they may share a poll stream).

    :param poll_interval: seconds between polls.
    :param deadline: epoch seconds after which the wait ends with ``"timeout"``.
    :param cancel_on_kill: cancel the remote work when the user kills the task.
    :param aws_conn_id: Airflow AWS connection.
    :param region_name: AWS region.
    :param verify: SSL verification for boto3.
    :param botocore_config: botocore client configuration.
    """

    def __init__(
        self,
        *,
        poll_interval: float = 60,
        deadline: float | None = None,
        cancel_on_kill: bool = True,
        aws_conn_id: str | None = "aws_default",
        region_name: str | None = None,
        verify: bool | str | None = None,
        botocore_config: dict[str, Any] | None = None,
    ) -> None:
        super().__init__()
        self.poll_interval = poll_interval
        self.deadline = deadline
        self.cancel_on_kill = cancel_on_kill
        self.aws_conn_id = aws_conn_id
        self.region_name = region_name
        self.verify = verify
        self.botocore_config = botocore_config

    def _base_kwargs(self) -> dict[str, Any]:
        return {
            "poll_interval": self.poll_interval,
            "deadline": self.deadline,
            "cancel_on_kill": self.cancel_on_kill,
            "aws_conn_id": self.aws_conn_id,
            "region_name": self.region_name,
            "verify": self.verify,
            "botocore_config": self.botocore_config,
        }

    @staticmethod
    def hook_from(kwargs: dict[str, Any]) -> HealthOmicsHook:
        return HealthOmicsHook(
            aws_conn_id=kwargs.get("aws_conn_id"),
            region_name=kwargs.get("region_name"),
            verify=kwargs.get("verify"),
            config=kwargs.get("botocore_config"),
        )

    def hook(self) -> HealthOmicsHook:
        return self.hook_from(self._base_kwargs())

    def past_deadline(self) -> bool:
        return self.deadline is not None and time.time() > self.deadline


async def cancel_killed_tasks_run(hook: HealthOmicsHook, run_id: str) -> None:
    """CancelRun for a killed task's run; a run that already ended (or is gone) is only logged."""
    async with await hook.get_async_conn() as client:
        try:
            await client.cancel_run(id=run_id)
            hook.log.info("Task killed: cancelled HealthOmics run %s", run_id)
        except ClientError as err:
            hook.log.info("Run %s not cancelled: %s", run_id, err)


async def cancel_unless_fired(trigger: Any, fired: bool) -> None:
    """cleanup() of a trigger that cancels remote work on a kill, for triggerers before Airflow 3.3.

    Such a triggerer calls cleanup() however the trigger ended. One that fired its event is done;
    otherwise its on_kill() runs, which cancels nothing while the task is still DEFERRED (a
    triggerer shutdown or hand-over) and cancels the work once the task is not (a user's kill, a
    timeout).
    """
    if not TRIGGERER_CALLS_ON_KILL and not fired:
        await trigger.on_kill()


async def task_is_deferred(trigger: Any) -> bool:
    """True while the trigger's task instance is still DEFERRED: a triggerer restart or hand-over, not a kill."""
    ti = trigger.task_instance
    if ti is None:
        return False
    from airflow.sdk.execution_time.task_runner import RuntimeTaskInstance

    states = await sync_to_async(RuntimeTaskInstance.get_task_states)(
        dag_id=ti.dag_id, task_ids=[ti.task_id], run_ids=[ti.run_id], map_index=ti.map_index
    )
    # The API keys mapped task instances as "<task_id>_<map_index>".
    key = ti.task_id if ti.map_index is None or ti.map_index < 0 else f"{ti.task_id}_{ti.map_index}"
    return bool(states.get(ti.run_id, {}).get(key) == TaskInstanceState.DEFERRED)
