"""Deferrable submit of a throttled run in a micro batch with the other runs ready at the same time.

The account's StartRun quota is 0.1-1 per second and a submitting run batch takes all of it, so
while a flowcell's first batch releases its runs every later stage's StartRun is refused. A
task whose StartRun was throttled defers here instead: every ``poll_interval`` the runs waiting
in one triggerer for the same group (batch name and batch-level settings) go out as one
``StartRunBatch`` of up to 100 run settings, which the service queues behind the batch before it
and submits at the quota, never refused. Each trigger fires once its run exists (or was refused),
with the run's id; the task then waits for the run like any other. ``make bench`` measured it
against StartRuns paced in turn (benchmarks.md, "Submitting the later stages").

Exactly once, with no ``requestId`` per run: a run setting's id is the run's own attempt
``requestId`` (one per sample, stage and attempt), the task records it before deferring, and
before each submit the group's batches are listed by name (``ListBatch``). A run setting found
in a batch this triggerer did not submit (another triggerer's, or its own before a restart) is
taken from there, and while such a batch is still submitting nothing of the group is submitted
(its runs may be among the ones waiting). A batch request whose answer was lost is repeated as
it was (same settings, same ``requestId``). The one window left is a batch request still in
flight from a triggerer that died, which its triggers outlast: Airflow hands them to another
triggerer only after the dead one's heartbeat expired.
"""

from __future__ import annotations

import asyncio
import contextlib
import weakref
from collections import Counter
from collections.abc import AsyncIterator, Hashable
from dataclasses import dataclass, field
from typing import Any, ClassVar

from airflow.triggers.base import TriggerEvent
from botocore.exceptions import BotoCoreError, ClientError

from healthomics.hooks.omics import BATCH_SUBMISSION_DONE_STATES, MAX_INLINE_RUN_SETTINGS, error_code, is_refusal
from healthomics.triggers.base import (
    MAX_BACKOFF_INTERVALS,
    HealthOmicsBaseTrigger,
    backoff,
    cancel_killed_tasks_run,
    shielded,
    task_is_deferred,
)
from healthomics.utils.idempotency import fingerprint
from healthomics.utils.text import cut

# A run setting the service could not submit for these reasons is submitted again in a later batch.
RETRYABLE_SUBMISSION_FAILURES = frozenset(
    {
        "ThrottlingException",
        "ServiceQuotaExceededException",
        "RequestTimeoutException",
        "InternalServerException",
        "ConflictException",
    }
)
# A run setting missing from its batch this many polls after the batch submitted is reported lost.
MISSING_ROUNDS = 3


@dataclass
class _Member:
    """One run waiting in a micro batch, and the trigger waiting for it."""

    setting: dict[str, Any]
    future: asyncio.Future[dict[str, Any]]
    batch_id: str | None = None  # the batch it went out in
    missing: int = 0  # polls since its batch submitted, without it listed
    cancel: bool = False  # its task was killed: cancel the run once it exists
    triggers: int = 0  # triggers waiting for it (a moved trigger may overlap its successor)


@dataclass
class _Check:
    """When one of a batcher's batches is looked at next, and what it had submitted then."""

    attempted: int = 0  # runs submitted or refused at the last look
    delay: float = 0.0  # the current wait between looks (0: every round)
    due: float = 0.0  # event loop time of the next look
    seen_at: float = 0.0  # event loop time of the last look


@dataclass
class MicroBatcher:
    """The waiting runs of one group in one event loop, and the one loop that submits them."""

    kwargs: dict[str, Any]  # the first trigger's: connection, batch name, default run setting
    waiting: dict[str, _Member] = field(default_factory=dict)  # run setting id -> member, not resolved
    own: set[str] = field(default_factory=set)  # batches this batcher submitted
    listed: set[str] = field(default_factory=set)  # other batches of the group, read to their end
    sent: dict[str, str] = field(default_factory=dict)  # run setting id -> own batch it went out in
    entries: dict[str, tuple[str, dict[str, Any]]] = field(default_factory=dict)  # id -> (batch, entry) read
    checks: dict[str, _Check] = field(default_factory=dict)  # own batch id -> when to look at it next
    failures: Counter[str] = field(default_factory=Counter)  # run setting id -> batches that failed it
    in_flight: list[dict[str, Any]] | None = None  # a batch request to repeat as is (its answer was lost)
    worker: asyncio.Task[None] | None = None
    cancellations: set[asyncio.Task[None]] = field(default_factory=set)  # CancelRuns of killed tasks' runs

    _batchers: ClassVar[weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, dict[Hashable, MicroBatcher]]] = (
        weakref.WeakKeyDictionary()
    )

    @classmethod
    def shared(cls, key: Hashable, kwargs: dict[str, Any]) -> MicroBatcher:
        """The group's batcher in the running loop. Kept for the loop's life: it remembers its batches."""
        batchers = cls._batchers.setdefault(asyncio.get_running_loop(), {})
        if key not in batchers:
            batchers[key] = cls(kwargs)
        return batchers[key]

    @property
    def interval(self) -> float:
        return float(self.kwargs["poll_interval"])

    async def submit(self, setting: dict[str, Any]) -> dict[str, Any]:
        """Wait until ``setting``'s run exists; its event (``submitted`` with the run, or ``not_submitted``)."""
        setting_id = setting["runSettingId"]
        member = self.waiting.get(setting_id)
        if member is None or member.future.done():
            member = self.waiting[setting_id] = _Member(setting, asyncio.get_running_loop().create_future())
            # Asked again (a retry whose worker died before it recorded the run): what this batcher
            # already sent or read answers it, never a second batch.
            member.batch_id = self.sent.get(setting_id)
            if setting_id in self.entries:
                self._settle(member, *self.entries[setting_id])
        member.cancel = False
        member.triggers += 1
        if not member.future.done() and (self.worker is None or self.worker.done()):
            self.worker = asyncio.get_running_loop().create_task(self._work())
        try:
            return await asyncio.shield(member.future)
        except asyncio.CancelledError:
            # The trigger went away (a kill, a triggerer shutting down): a run not yet in a batch is
            # not submitted; one already in a batch is found again when the task asks again.
            member.triggers -= 1
            sent = member.batch_id is not None or any(s["runSettingId"] == setting_id for s in self.in_flight or [])
            if not sent and not member.triggers and self.waiting.get(setting_id) is member and not member.future.done():
                del self.waiting[setting_id]
            raise

    def abandon(self, setting_id: str) -> None:
        """The task was killed: its run, if it comes to exist, is cancelled."""
        member = self.waiting.get(setting_id)
        if member is not None:
            member.cancel = True

    # -- the group's loop ----------------------------------------------------------------

    async def _work(self) -> None:
        """Rounds every poll interval while runs wait. API errors (throttling, 5xx, a lost connection,
        credentials) wait for the next round; anything else fails every waiting trigger, loudly."""
        delay = self.interval
        hook = HealthOmicsBaseTrigger.hook_from(self.kwargs)
        try:
            async with contextlib.AsyncExitStack() as clients:
                client = None  # made at the first round, kept while the loop runs
                while True:
                    if not self.waiting:
                        # Decided with no await before it: a run that comes now starts a new loop.
                        self.worker = None
                        return
                    await asyncio.sleep(delay)
                    try:
                        if client is None:
                            client = await clients.enter_async_context(await hook.get_async_conn())
                        await self._round(client)
                    except (ClientError, BotoCoreError) as err:
                        delay = backoff(delay, self.interval)
                        name = self.kwargs["batch_name"]
                        hook.log.warning("Micro batch %s: %s; next round in %.0fs", name, err, delay)
                    else:
                        delay = self.interval
        except Exception as err:
            hook.log.exception("Micro batch %s failed", self.kwargs["batch_name"])
            for member in list(self.waiting.values()):
                if not member.future.done():
                    member.future.set_exception(RuntimeError(f"micro batch {self.kwargs['batch_name']}: {err!r}"))
            self.waiting.clear()
            self.worker = None

    async def _round(self, client: Any) -> None:
        unsent = [m for m in self.waiting.values() if m.batch_id is None]
        if unsent or self.in_flight:
            others_submitting = await self._read_other_batches(client)
            if not others_submitting:
                await self._send(client)
        for batch_id in sorted({m.batch_id for m in self.waiting.values() if m.batch_id in self.own}):
            await self._resolve(client, batch_id)

    async def _read_other_batches(self, client: Any) -> bool:
        """Take waiting runs from the group's batches this batcher did not submit; True while one of
        them is still submitting (the runs it will submit are not listed yet)."""
        submitting = False
        pages = client.get_paginator("list_batch").paginate(name=self.kwargs["batch_name"])
        async for page in pages:
            for item in page.get("items", []):
                if item["id"] in self.own or item["id"] in self.listed:
                    continue
                if item.get("status") not in BATCH_SUBMISSION_DONE_STATES:
                    # Read once it is done (a first-stage batch of thousands would be paged every round).
                    submitting = True
                    continue
                async for entry in self._entries(client, item["id"]):
                    member = self.waiting.get(entry.get("runSettingId", ""))
                    if member is not None and member.batch_id is None:
                        self._settle(member, item["id"], entry)
                    elif member is None and entry.get("runId"):
                        self.entries[entry.get("runSettingId", "")] = (item["id"], entry)
                self.listed.add(item["id"])
        return submitting

    async def _send(self, client: Any) -> None:
        """One StartRunBatch of up to 100 waiting runs (the lost one again first)."""
        if self.in_flight is None:
            unsent = sorted(
                (m for m in self.waiting.values() if m.batch_id is None), key=lambda m: m.setting["runSettingId"]
            )
            if not unsent:
                return
            self.in_flight = [m.setting for m in unsent[:MAX_INLINE_RUN_SETTINGS]]
        settings = self.in_flight
        default = self.kwargs["default_run_setting"]
        identity = {
            "batchName": self.kwargs["batch_name"],
            "default": default,
            "settings": settings,
            # A batch that failed as a whole is asked for again with another requestId.
            "failures": {s["runSettingId"]: self.failures[s["runSettingId"]] for s in settings},
        }
        try:
            batch = await client.start_run_batch(
                batchName=self.kwargs["batch_name"],
                requestId=f"hoa-mb-{fingerprint(identity)[:48]}",
                defaultRunSetting=default,
                batchRunSettings={"inlineSettings": settings},
                tags=self.kwargs.get("batch_tags") or {},
            )
        except ClientError as err:
            if not is_refusal(err):
                raise  # the answer may be lost: the same request next round
            self.in_flight = None
            reason, message = error_code(err), err.response.get("Error", {}).get("Message", "")
            for setting in settings:
                member = self.waiting.get(setting["runSettingId"])
                if member is not None:
                    self._finish(member, not_submitted(reason, f"StartRunBatch refused: {cut(message)}"))
            return
        self.in_flight = None
        self.own.add(batch["id"])
        for setting in settings:
            self.sent[setting["runSettingId"]] = batch["id"]
            member = self.waiting.get(setting["runSettingId"])
            if member is not None and member.batch_id is None:
                member.batch_id = batch["id"]

    async def _resolve(self, client: Any, batch_id: str) -> None:
        """Hand each run of one of its batches that the service submitted (or refused) to its trigger.

        GetBatch says whether any run was submitted since the last look; only then are the
        batch's runs listed. A batch waiting its turn behind others is looked at less and less
        often (doubling, up to 16 poll intervals) until it moves: queued batches cost a few calls,
        not two a round each. A batch seen submitting is looked at next when, at the rate it went
        since the last look, it will be done: a few looks per batch, not one a round.
        """
        now = asyncio.get_running_loop().time()
        check = self.checks.setdefault(batch_id, _Check())
        if now < check.due:
            return
        batch = await client.get_batch(batchId=batch_id)
        summary = batch.get("submissionSummary") or {}
        attempted = int(summary.get("successfulStartSubmissionCount") or 0) + int(
            summary.get("failedStartSubmissionCount") or 0
        )
        status = batch.get("status")
        done = status in BATCH_SUBMISSION_DONE_STATES
        members = {sid: m for sid, m in self.waiting.items() if m.batch_id == batch_id}
        if attempted > check.attempted or done:
            check.due = now + self._time_to_done(check, int(batch.get("totalRuns") or 0), attempted, now)
            check.attempted, check.delay, check.seen_at = attempted, 0.0, now
            async for entry in self._entries(client, batch_id):
                member = members.pop(entry.get("runSettingId", ""), None)
                if member is not None:
                    self._settle(member, batch_id, entry)
        else:
            check.delay = backoff(check.delay, self.interval)
            check.due, check.seen_at = now + check.delay, now
        if not members or not done:
            return  # still submitting: the rest come later
        for setting_id, member in members.items():
            if status == "FAILED" and "transient" in str(batch.get("failureReason", "")).lower():
                self._again(member)  # "a transient error in the service. Retry the batch."
            elif status in ("FAILED", "CANCELLED", "STOPPING"):
                reason = f"BATCH_{status}"
                self._finish(
                    member, not_submitted(reason, f"its batch {batch_id} {status}: {batch.get('failureReason')}")
                )
            else:
                member.missing += 1
                if member.missing >= MISSING_ROUNDS:
                    self._finish(
                        member, not_submitted("MISSING", f"run setting {setting_id} is not in batch {batch_id}")
                    )

    def _time_to_done(self, check: _Check, total: int, attempted: int, now: float) -> float:
        """How long a submitting batch takes to submit the rest, at the rate seen since the last look
        (0, look next round: no rate yet, e.g. it started submitting since; at most 16 intervals)."""
        if not check.attempted or attempted <= check.attempted or attempted >= total or now <= check.seen_at:
            return 0.0
        rate = (attempted - check.attempted) / (now - check.seen_at)
        return min((total - attempted) / rate, self.interval * MAX_BACKOFF_INTERVALS)

    async def _entries(self, client: Any, batch_id: str) -> AsyncIterator[dict[str, Any]]:
        pages = client.get_paginator("list_runs_in_batch").paginate(
            batchId=batch_id, PaginationConfig={"PageSize": MAX_INLINE_RUN_SETTINGS}
        )
        async for page in pages:
            for entry in page.get("runs", []):
                yield entry

    def _settle(self, member: _Member, batch_id: str, entry: dict[str, Any]) -> None:
        """What one ListRunsInBatch entry says about a waiting run. Any entry with a run id is that
        run (cancelled or deleted since, its wait will say so); a failed submission is retried
        when the service could not submit it for now, else reported."""
        if entry.get("runId"):
            self.entries[member.setting["runSettingId"]] = (batch_id, entry)
            run: dict[str, Any] = {
                "id": entry["runId"],
                "batchId": batch_id,
                "status": "PENDING",
                **{k: member.setting[k] for k in ("name", "outputUri") if k in member.setting},
                "workflowId": self.kwargs["default_run_setting"].get("workflowId"),
            }
            if entry.get("runArn"):
                run["arn"] = entry["runArn"]
            self._finish(member, {"status": "submitted", "run": run})
            return
        reason = str(entry.get("submissionFailureReason") or entry.get("submissionStatus") or "SUBMISSION_FAILED")
        if reason in RETRYABLE_SUBMISSION_FAILURES:
            self._again(member)
        else:
            self._finish(member, not_submitted(reason, str(entry.get("submissionFailureMessage") or "")))

    def _again(self, member: _Member) -> None:
        """Into a later batch: the service could not submit it this time."""
        self.failures[member.setting["runSettingId"]] += 1
        member.batch_id, member.missing = None, 0

    def _finish(self, member: _Member, event: dict[str, Any]) -> None:
        setting_id = member.setting["runSettingId"]
        if self.waiting.get(setting_id) is member:
            del self.waiting[setting_id]
        if member.cancel and event["status"] == "submitted":
            task = asyncio.ensure_future(
                cancel_killed_tasks_run(HealthOmicsBaseTrigger.hook_from(self.kwargs), event["run"]["id"])
            )
            self.cancellations.add(task)
            task.add_done_callback(self.cancellations.discard)
        if not member.future.done():
            member.future.set_result(event)


def not_submitted(reason: str, message: str) -> dict[str, Any]:
    return {"status": "not_submitted", "reason": reason, "message": message}


class HealthOmicsMicroBatchTrigger(HealthOmicsBaseTrigger):
    """
    Submit one run in the next micro batch of its group (see the module); fire once it exists.

    Fires ``{"status": "submitted", "run": {"id", "batchId", "status", "name", ...}}``, or
    ``{"status": "not_submitted", "reason", "message"}`` when the service refused it.

    :param batch_name: the group's batch name (the batches are found again by it).
    :param default_run_setting: the batch-level settings (runs with other ones form another group).
    :param run_setting: the run's ``InlineSetting``; its ``runSettingId`` identifies the run's attempt.
    :param batch_tags: tags of the batches.
    :param poll_interval: seconds between micro batches (and between reads of their runs).

    Connection arguments as in :class:`~healthomics.triggers.base.HealthOmicsBaseTrigger`.
    """

    def __init__(
        self,
        *,
        batch_name: str,
        default_run_setting: dict[str, Any],
        run_setting: dict[str, Any],
        batch_tags: dict[str, str] | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.batch_name = batch_name
        self.default_run_setting = default_run_setting
        self.run_setting = run_setting
        self.batch_tags = batch_tags or {}

    def serialize(self) -> tuple[str, dict[str, Any]]:
        return (
            f"{type(self).__module__}.{type(self).__qualname__}",
            {
                "batch_name": self.batch_name,
                "default_run_setting": self.default_run_setting,
                "run_setting": self.run_setting,
                "batch_tags": self.batch_tags,
                **self._base_kwargs(),
            },
        )

    def _batcher(self) -> MicroBatcher:
        _, kwargs = self.serialize()
        key = (
            "healthomics-micro-batch",
            self.aws_conn_id,
            self.region_name,
            self.batch_name,
            fingerprint({"default": self.default_run_setting, "tags": self.batch_tags}),
            self.poll_interval,
        )
        return MicroBatcher.shared(key, kwargs)

    async def run(self) -> AsyncIterator[TriggerEvent]:
        yield TriggerEvent(await self._batcher().submit(self.run_setting))

    async def on_kill(self) -> None:
        """The user killed the task: its run is not submitted, or is cancelled once it exists."""
        if self.cancel_on_kill:
            await shielded(self._abandon())

    async def _abandon(self) -> None:
        if not await task_is_deferred(self):
            self._batcher().abandon(self.run_setting["runSettingId"])
