"""Deferrable wait for a HealthOmics run, with polling shared by every run of a batch.

One trigger waits for one run. Triggers that wait for runs of the same batch (or that
opt into an account-wide poll, see ``list_since``) declare the same
``shared_stream_key``: the triggerer then runs **one** poll loop for all of them
(Airflow's shared-stream mechanism, ``airflow.triggers.shared_stream``; before Airflow 3.3,
:mod:`healthomics.triggers.sharing` from ``run()``), listing the runs with ``ListRuns`` pages
of 100 and broadcasting each snapshot. 1,000 waiting samples
cost ``ceil(1000 / 100) = 10`` calls per poll interval instead of 1,000 ``GetRun`` calls.
Throttling stretches the poll interval (exponential backoff with jitter); it never fails
a task.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Hashable, Iterator
from contextlib import aclosing, contextmanager
from typing import TYPE_CHECKING, Any

from airflow.providers.amazon.aws.utils import validate_execute_complete_event
from airflow.triggers.base import TaskFailedEvent, TaskSuccessEvent, TriggerEvent
from botocore.exceptions import BotoCoreError, ClientError

from healthomics.exceptions import failure_detail
from healthomics.hooks.omics import (
    RUN_FAILURE_STATES,
    RUN_SUCCESS_STATES,
    RUN_TERMINAL_STATES,
    error_code,
    is_throttling,
    run_summary,
)
from healthomics.links.omics import HealthOmicsRunLink
from healthomics.triggers.base import (
    HealthOmicsBaseTrigger,
    backoff,
    cancel_killed_tasks_run,
    cancel_unless_fired,
    shielded,
    task_is_deferred,
)
from healthomics.triggers.sharing import TRIGGERER_SHARES_STREAMS, LocalSharedStream
from healthomics.triggers.wake import pause

if TYPE_CHECKING:
    from healthomics.hooks.omics import HealthOmicsHook

# Throttled ListRuns pages are retried this often within one poll before the poll is given up.
PAGE_ATTEMPTS = 5
# A run absent from this many shared snapshots in a row is looked up directly (GetRun).
MISSING_ROUNDS_BEFORE_LOOKUP = 2


# The runs each shared poll's subscribers in this process wait for (key -> run id -> subscribers):
# an account-wide poll stops paging once it has seen them all.
_WAITING: dict[Hashable, dict[str, int]] = {}


@contextmanager
def _waiting_for(key: Hashable, run_id: str) -> Iterator[None]:
    runs = _WAITING.setdefault(key, {})
    runs[run_id] = runs.get(run_id, 0) + 1
    try:
        yield
    finally:
        runs[run_id] -= 1
        if not runs[run_id]:
            del runs[run_id]
        if not runs:
            _WAITING.pop(key, None)


class HealthOmicsRunTrigger(HealthOmicsBaseTrigger):
    """
    Wait in the triggerer until a HealthOmics run finishes.

    Fires ``{"status": "success", "run": {...}}`` when the run COMPLETED, and
    ``{"status": "failed", "run": {...}, "message": ...}`` when it FAILED, was CANCELLED or
    DELETED (with the service's ``failureReason``/``statusMessage``), or ``"timeout"`` after
    ``deadline``. With ``end_from_trigger`` it ends the task itself instead
    (``TaskSuccessEvent`` / ``TaskFailedEvent`` with the run summary as the ``return_value``
    XCom), so no worker is needed after the wait.

    When a user kills the deferred task (mark failed, clear), the run is cancelled; a
    triggerer restart or a hand-over to another triggerer cancels nothing (the task
    instance is still DEFERRED then).

    :param run_id: the run to wait for.
    :param run_details: what is already known about the run (arn, uuid, runOutputUri, ...); merged
        into the result so a COMPLETED run needs no extra GetRun.
    :param poll_interval: seconds between polls.
    :param batch_id: the run's batch; triggers of one batch share one ListRuns poll.
    :param list_since: epoch seconds; triggers with the same value share one account-wide
        ListRuns poll that pages back to runs created at that time (for runs started one by
        one). Ignored when ``batch_id`` is set.
    :param deadline: epoch seconds after which the wait fails with ``"timeout"``.
    :param end_from_trigger: end the task from the triggerer.
    :param resume_on_failure: with ``end_from_trigger``, still hand failures back to the task
        (``execute_complete`` on a worker), for operators that decide how a failure ends.
    :param cancel_on_kill: cancel the run when the user kills the task.
    :param wake_queue_url: SQS queue of "Run Status Change" events: an event about the run
        cuts the wait for the next poll short (see :mod:`healthomics.triggers.wake`).

    Connection arguments as in :class:`~healthomics.triggers.base.HealthOmicsBaseTrigger`.
    """

    def __init__(
        self,
        run_id: str,
        *,
        run_details: dict[str, Any] | None = None,
        batch_id: str | None = None,
        list_since: float | None = None,
        end_from_trigger: bool = False,
        resume_on_failure: bool = False,
        wake_queue_url: str | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.wake_queue_url = wake_queue_url or None
        self.resume_on_failure = resume_on_failure
        self.run_id = run_id
        self.run_details = run_details or {}
        self.batch_id = batch_id
        self.list_since = list_since
        self.end_from_trigger = end_from_trigger
        self.fired = False  # an event was made (see cleanup)

    def serialize(self) -> tuple[str, dict[str, Any]]:
        return (
            f"{type(self).__module__}.{type(self).__qualname__}",
            {
                "run_id": self.run_id,
                "run_details": self.run_details,
                "batch_id": self.batch_id,
                "list_since": self.list_since,
                "end_from_trigger": self.end_from_trigger,
                "resume_on_failure": self.resume_on_failure,
                "wake_queue_url": self.wake_queue_url,
                **self._base_kwargs(),
            },
        )

    # -- one shared poll per batch (or per account and start time) -----------

    def shared_stream_key(self) -> Hashable | None:
        return self._stream_key(self.serialize()[1])

    @staticmethod
    def _stream_key(kwargs: dict[str, Any]) -> Hashable | None:
        if kwargs.get("batch_id"):
            scope: tuple[str, str] = ("batch", kwargs["batch_id"])
        elif kwargs.get("list_since") is not None:
            scope = ("since", repr(kwargs["list_since"]))
        else:
            return None
        return (
            "healthomics-run-status",
            kwargs.get("aws_conn_id"),
            kwargs.get("region_name"),
            *scope,
            kwargs.get("poll_interval"),
            kwargs.get("wake_queue_url"),
        )

    @classmethod
    async def open_shared_stream(cls, kwargs: dict[str, Any]) -> AsyncIterator[Any]:
        """Poll ListRuns for the group and yield ``{run id: ListRuns item}`` snapshots."""
        hook = cls.hook_from(kwargs)
        interval = float(kwargs["poll_interval"])
        delay = interval
        snapshot: dict[str, dict[str, Any]] = {}
        async with await hook.get_async_conn() as client:
            while True:
                try:
                    snapshot = await cls._list_runs(client, kwargs)
                except (ClientError, BotoCoreError) as err:
                    # A lost connection or an expired credential must not end every wait of the batch.
                    if not is_throttling(err):
                        hook.log.warning("Shared ListRuns poll failed (%s); retrying", err)
                        yield {}  # subscribers fall back to GetRun for their own run
                    delay = backoff(delay, interval)
                    hook.log.warning("ListRuns throttled; next poll in %.0fs", delay)
                else:
                    delay = interval
                    yield snapshot
                # Until the next poll, runs that an event says have ended are looked up one by one.
                next_poll = time.monotonic() + delay
                while (remaining := next_poll - time.monotonic()) > 0:
                    waiting = [r for r, item in snapshot.items() if item["status"] not in RUN_TERMINAL_STATES]
                    ended = await pause(remaining, waiting, kwargs.get("wake_queue_url"), kwargs)
                    if not ended:
                        break
                    snapshot = {**snapshot, **await cls._get_runs(client, ended)}
                    yield snapshot

    @staticmethod
    async def _get_runs(client: Any, run_ids: set[str]) -> dict[str, dict[str, Any]]:
        """GetRun for each run an event named (a throttled or failed look waits for the next poll)."""
        found: dict[str, dict[str, Any]] = {}
        for run_id in sorted(run_ids):
            try:
                found[run_id] = run_summary(await client.get_run(id=run_id))
            except ClientError as err:
                if error_code(err) == "ResourceNotFoundException":
                    found[run_id] = {"id": run_id, "status": "DELETED", "statusMessage": "the run no longer exists"}
            except BotoCoreError:
                continue  # a lost connection: the next poll looks again
        return found

    @staticmethod
    async def _list_runs(client: Any, kwargs: dict[str, Any]) -> dict[str, dict[str, Any]]:
        """One poll: the pages of ListRuns for the group, each page retried on throttling."""
        snapshot: dict[str, dict[str, Any]] = {}
        filters = {"batchId": kwargs["batch_id"]} if kwargs.get("batch_id") else {}
        since = None if filters else float(kwargs["list_since"])
        waiting = _WAITING.get(HealthOmicsRunTrigger._stream_key(kwargs))
        token: str | None = None
        while True:
            page = await HealthOmicsRunTrigger._list_page(client, filters, token, float(kwargs["poll_interval"]))
            items = page.get("items", [])
            for item in items:
                snapshot[item["id"]] = run_summary(item)
            token = page.get("nextToken")
            # Runs come newest first. A poll stops once it has seen every run its subscribers (in
            # this process) wait for: a batch's oldest runs, or an account's, that ended are not
            # paged through again and again. An account-wide poll stops past the group's start at
            # the latest (a run missed is looked up directly by its trigger).
            seen_all = waiting is not None and bool(waiting) and waiting.keys() <= snapshot.keys()
            past_start = since is not None and items and all(i["creationTime"].timestamp() < since for i in items)
            if not token or seen_all or past_start:
                return snapshot

    @staticmethod
    async def _list_page(client: Any, filters: dict[str, Any], token: str | None, poll_interval: float) -> Any:
        delay = min(1.0, poll_interval)
        for attempt in range(PAGE_ATTEMPTS):
            try:
                return await client.list_runs(maxResults=100, **filters, **({"startingToken": token} if token else {}))
            except ClientError as err:
                if not is_throttling(err) or attempt == PAGE_ATTEMPTS - 1:
                    raise
                delay = backoff(delay, min(1.0, poll_interval))
                await asyncio.sleep(delay)
        raise AssertionError("unreachable")

    async def filter_shared_stream(self, shared_stream: AsyncIterator[Any]) -> AsyncIterator[TriggerEvent]:
        with _waiting_for(self.shared_stream_key(), self.run_id):
            async for event in self._watch(shared_stream):
                yield event

    async def _watch(self, shared_stream: AsyncIterator[Any]) -> AsyncIterator[TriggerEvent]:
        missing = 0
        async for snapshot in shared_stream:
            if self.past_deadline():
                yield self._event("timeout", self.run_details, f"run {self.run_id} did not finish before the deadline")
                return
            item = snapshot.get(self.run_id)
            if item is None:
                missing += 1
                if missing < MISSING_ROUNDS_BEFORE_LOOKUP:
                    continue
                missing = 0
                try:
                    item = await self._describe()
                except ClientError as err:
                    if is_throttling(err):
                        continue
                    raise
            if item["status"] in RUN_TERMINAL_STATES:
                yield await self._final_event(item)
                return

    # -- standalone wait (no sharing, or dag.test) --------------------------------

    async def run(self) -> AsyncIterator[TriggerEvent]:
        key = self.shared_stream_key()
        if key is not None and not TRIGGERER_SHARES_STREAMS:
            # A triggerer that only calls run(): share the poll within this event loop ourselves.
            _, kwargs = self.serialize()
            async with aclosing(LocalSharedStream.join(key, lambda: self.open_shared_stream(kwargs))) as shared:
                async for event in self.filter_shared_stream(shared):
                    yield event
            return
        delay = float(self.poll_interval)
        while True:
            if self.past_deadline():
                yield self._event("timeout", self.run_details, f"run {self.run_id} did not finish before the deadline")
                return
            try:
                item = await self._describe()
            except ClientError as err:
                if not is_throttling(err):
                    raise
                delay = backoff(delay, self.poll_interval)
                self.log.warning("GetRun %s throttled; next poll in %.0fs", self.run_id, delay)
            else:
                delay = float(self.poll_interval)
                if item["status"] in RUN_TERMINAL_STATES:
                    yield await self._final_event(item)
                    return
                self.log.info("HealthOmics run %s is %s", self.run_id, item["status"])
            if await pause(delay, [self.run_id], self.wake_queue_url, self._base_kwargs()):
                self.log.info("An event says run %s ended; looking now", self.run_id)

    # -- helpers ------------------------------------------------------------------

    async def _describe(self) -> dict[str, Any]:
        """GetRun of this run; a run that no longer exists counts as DELETED."""
        async with await self.hook().get_async_conn() as client:
            try:
                return run_summary(await client.get_run(id=self.run_id))
            except ClientError as err:
                if error_code(err) == "ResourceNotFoundException":
                    return {"id": self.run_id, "status": "DELETED", "statusMessage": "the run no longer exists"}
                raise

    async def _final_event(self, item: dict[str, Any]) -> TriggerEvent:
        status = item["status"]
        if status in RUN_FAILURE_STATES and "failureReason" not in item and "statusMessage" not in item:
            for _ in range(5):  # the failure details are only in GetRun
                try:
                    item = await self._describe()
                    break
                except ClientError as err:
                    if not is_throttling(err):
                        raise
                    await asyncio.sleep(backoff(self.poll_interval, 1.0) / 10)
        result = {**self.run_details, **item}
        if status in RUN_SUCCESS_STATES:
            return self._event("success", result, f"run {self.run_id} COMPLETED")
        detail = failure_detail(result.get("failureReason"), result.get("statusMessage"))
        return self._event("failed", result, f"run {self.run_id} ended {status}" + (f" ({detail})" if detail else ""))

    def _event(self, status: str, run: dict[str, Any], message: str) -> TriggerEvent:
        self.fired = True
        if not self.end_from_trigger or (status != "success" and self.resume_on_failure):
            return TriggerEvent({"status": status, "run": run, "message": message})
        if status == "success":
            self.log.info("%s; ending the task from the triggerer", message)
            return TaskSuccessEvent(xcoms={"return_value": run})
        self.log.error("%s; failing the task from the triggerer", message)
        return TaskFailedEvent(xcoms={"return_value": {**run, "message": message}})

    async def on_kill(self) -> None:
        """The user killed the task: cancel the run, unless the task is in fact still deferred."""
        if self.cancel_on_kill:
            await shielded(self._cancel_run())

    async def cleanup(self) -> None:
        await cancel_unless_fired(self, self.fired)

    async def _cancel_run(self) -> None:
        if await task_is_deferred(self):
            self.log.info("Task still deferred (trigger moved); not cancelling run %s", self.run_id)
            return
        await cancel_killed_tasks_run(self.hook(), self.run_id)


def read_run_event(event: dict[str, Any] | str | None, hook: HealthOmicsHook, context: Any) -> dict[str, Any]:
    """A run trigger's event, back in ``execute_complete``, as a dict ``{"status", "run", "message"}``.

    A trigger that ends the task itself (``TaskSuccessEvent``/``TaskFailedEvent``) never resumes
    it in a real deployment, but ``dag.test()`` (and so ``airflow dags test``) resumes it anyway
    with just ``"success"`` or ``"failed"``. Then the run is looked up again by the id the task
    stored with its console link before deferring.
    """
    if not isinstance(event, str):
        return validate_execute_complete_event(event)
    ti = context["ti"]
    link = ti.xcom_pull(task_ids=ti.task_id, key=HealthOmicsRunLink.key, map_indexes=ti.map_index)
    run = run_summary(hook.get_run(link["run_id"]))
    ok = run["status"] in RUN_SUCCESS_STATES
    detail = failure_detail(run.get("failureReason"), run.get("statusMessage"))
    return {"status": "success" if ok else "failed", "run": run, "message": detail or f"run ended {run['status']}"}
