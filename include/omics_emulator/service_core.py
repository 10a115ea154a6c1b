"""Core of the emulated service: state, the event schedule, ids, idempotency and events.

State changes are a discrete-event simulation: every transition is scheduled at an
emulated time and applied, in time order, before each request is answered and by a
ticker thread in between. Transitions carry the time they were scheduled for, so the
timestamps a client reads are exact however late the real process gets to them.
"""

from __future__ import annotations

import base64
import copy
import hashlib
import heapq
import itertools
import json
import logging
import random
import threading
import time
import uuid
from collections.abc import Callable, Iterable
from typing import Any

from .clock import EmulatedClock
from .config import EmulatorConfig
from .errors import conflict, validation
from .faults import FaultInjector
from .quotas import QuotaTable
from .resources import (
    Batch,
    Gated,
    Run,
    Workflow,
)
from .sinks import EventPublisher, IoPool, S3Gateway

log = logging.getLogger(__name__)

MAX_TAGS = 50
MAX_BATCH_RUNS = 100_000
DEFAULT_STORAGE_CAPACITY = 1200

# Public Ready2Run workflows every account can see (a small, representative catalogue).
READY2RUN_WORKFLOWS: tuple[dict[str, Any], ...] = (
    {
        "id": "9500764",
        "name": "GATK-BP Germline fq2vcf for 30x genome",
        "parameterTemplate": {
            "sample_name": {"description": "Sample name", "optional": False},
            "fastq_1": {"description": "Read 1 FASTQ", "optional": False},
            "fastq_2": {"description": "Read 2 FASTQ", "optional": False},
        },
    },
)


def request_fingerprint(params: dict[str, Any]) -> str:
    """Canonical hash of a request without its idempotency token."""
    body = {k: v for k, v in params.items() if k != "requestId"}
    return hashlib.sha256(json.dumps(body, sort_keys=True, default=str).encode()).hexdigest()


def s3_uris_in(value: Any) -> Iterable[str]:
    if isinstance(value, str) and value.startswith("s3://"):
        yield value
    elif isinstance(value, dict):
        for item in value.values():
            yield from s3_uris_in(item)
    elif isinstance(value, list):
        for item in value:
            yield from s3_uris_in(item)


def paginate(items: list[Any], token: str | None, size: int) -> tuple[list[Any], str | None]:
    """Offset pagination over a list in stable order, with an opaque token."""
    start = 0
    if token:
        try:
            start = int(base64.urlsafe_b64decode(token.encode()).decode())
        except (ValueError, UnicodeDecodeError) as err:
            raise validation("Invalid pagination token") from err
        if start < 0 or start > len(items):
            raise validation("Invalid pagination token")
    page = items[start : start + size]
    end = start + len(page)
    next_token = base64.urlsafe_b64encode(str(end).encode()).decode() if end < len(items) else None
    return page, next_token


class ServiceCore:
    """State of one emulated account and Region, and the machinery every resource uses."""

    def __init__(self, config: EmulatorConfig, clock: EmulatedClock | None = None) -> None:
        self.config = config
        self._initial_config = copy.deepcopy(config)
        self.clock = clock or EmulatedClock(config.time_scale)
        self.lock = threading.RLock()
        self.quotas = QuotaTable(config.quotas)
        self.faults = FaultInjector(config.seed)
        self.io = IoPool()
        self.s3: S3Gateway | None = None
        self.events: EventPublisher | None = None
        self._configure_sinks()
        self._reset_state()
        self._stopped = threading.Event()
        self._ticker = threading.Thread(target=self._tick, name="emulator-ticker", daemon=True)
        self._ticker.start()

    # -- lifecycle of the emulator itself ----------------------------------

    def _reset_state(self) -> None:
        self._random = random.Random(self.config.seed)
        self.workflows: dict[str, Workflow] = {}
        self.runs: dict[str, Run] = {}
        self.batches: dict[str, Batch] = {}
        self._idempotency: dict[tuple[str, str], tuple[str, str]] = {}
        self._heap: list[tuple[float, int, Callable[[float], None]]] = []
        self._seq = itertools.count()
        self._waiting: list[tuple[int, int, Run]] = []
        self._active = 0
        self._free_run_ids: list[str] = []
        self._used_ids: set[str] = set()
        self._cache_entries: set[tuple[str, str, str]] = set()
        self._release_free_at = 0.0  # when the account's StartRun rate can release the next batch run
        now = self.clock.now()
        for template in READY2RUN_WORKFLOWS:
            workflow = Workflow(
                id=template["id"],
                arn=self._arn("workflow", template["id"]),
                uuid=str(uuid.UUID(int=self._random.getrandbits(128))),
                name=template["name"],
                type="READY2RUN",
                status="ACTIVE",
                creation_time=now,
                engine="WDL",
                parameter_template=template["parameterTemplate"],
                digest="sha256:" + hashlib.sha256(template["name"].encode()).hexdigest(),
            )
            self.workflows[workflow.id] = workflow
            self._used_ids.add(workflow.id)

    def _configure_sinks(self) -> None:
        if self.events is not None:
            self.events.close()
        cfg = self.config
        self.s3 = S3Gateway(cfg.s3_endpoint_url, cfg.region) if cfg.s3_endpoint_url else None
        self.events = (
            EventPublisher(cfg.events_queue_url, cfg.s3_endpoint_url, cfg.region) if cfg.events_queue_url else None
        )

    def reset(self, restore_config: bool = False) -> None:
        """Forget every resource and fault; optionally go back to the startup settings."""
        self.settle(timeout=10.0)
        with self.lock:
            if restore_config:
                changed_sinks = (self.config.s3_endpoint_url, self.config.events_queue_url) != (
                    self._initial_config.s3_endpoint_url,
                    self._initial_config.events_queue_url,
                )
                self.config = copy.deepcopy(self._initial_config)
                self.clock.set_time_scale(self.config.time_scale)
                self.quotas = QuotaTable(self.config.quotas)
                if changed_sinks:
                    self._configure_sinks()
            self._reset_state()
            self.faults = FaultInjector(self.config.seed)

    def reconfigure(self, changes: dict[str, Any]) -> None:
        with self.lock:
            self.config.update(changes)
            if "time_scale" in changes:
                self.clock.set_time_scale(self.config.time_scale)
            if "quotas" in changes:
                self.quotas.update(changes["quotas"])
            if {"s3_endpoint_url", "events_queue_url", "region"} & set(changes):
                self._configure_sinks()

    def close(self) -> None:
        self._stopped.set()
        self._ticker.join(timeout=5)
        self.settle(timeout=10.0)
        self.io.close()
        if self.events is not None:
            self.events.close()

    def _tick(self) -> None:
        while not self._stopped.wait(0.02):
            try:
                self.advance()
            except Exception:
                log.exception("transition failed")

    def settle(self, timeout: float = 30.0) -> bool:
        """Apply due transitions and wait until S3 work and event delivery are done."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self.advance()
            if not self.io.wait_idle(max(0.0, deadline - time.monotonic())):
                continue
            with self.lock:
                due = bool(self._heap) and self._heap[0][0] <= self.clock.now()
            if due or self.io.busy():
                continue  # I/O callbacks scheduled more work
            if self.events is None or self.events.wait_idle(max(0.0, deadline - time.monotonic())):
                return True
        return False

    def advance_clock(self, seconds: float) -> None:
        self.clock.advance(seconds)
        self.settle()

    # -- scheduling -----------------------------------------------------------

    def advance(self) -> None:
        with self.lock:
            self._advance_locked()

    def _advance_locked(self) -> None:
        now = self.clock.now()
        while self._heap and self._heap[0][0] <= now:
            when, _, action = heapq.heappop(self._heap)
            action(when)

    def _at(self, when: float, action: Callable[[float], None]) -> None:
        heapq.heappush(self._heap, (when, next(self._seq), action))

    def _schedule(self, record: Gated, when: float, step: Callable[[float], None]) -> None:
        """Run ``step`` at ``when`` unless the record moved on (cancel); wait for its I/O."""
        generation = record.generation

        def fire(at: float) -> None:
            if record.generation != generation:
                return
            if record.io_pending:
                record.parked, record.parked_time = step, at
                return
            step(at)

        self._at(when, fire)

    def _start_io(
        self, record: Gated, job: Callable[[], Any], done: Callable[[Any, BaseException | None], None]
    ) -> None:
        """Background S3 work; the record's next transition waits for it."""
        record.io_pending += 1

        def finished(result: Any, error: BaseException | None) -> None:
            with self.lock:
                done(result, error)
                record.io_pending -= 1
                if record.io_pending == 0 and record.parked is not None:
                    step, at = record.parked, record.parked_time
                    record.parked = None
                    step(max(at, self.clock.now()) if self.clock.time_scale else at)

        self.io.submit(job, finished)

    # -- identifiers -------------------------------------------------------

    def _arn(self, kind: str, resource_id: str) -> str:
        return f"arn:aws:omics:{self.config.region}:{self.config.account_id}:{kind}/{resource_id}"

    def _new_id(self, reuse: bool = False) -> str:
        if reuse and self._free_run_ids:
            return self._free_run_ids.pop(0)  # the service reuses deleted run ids
        while True:
            candidate = str(self._random.randint(1_000_000, 9_999_999))
            if candidate not in self._used_ids:
                self._used_ids.add(candidate)
                return candidate

    def _new_uuid(self) -> str:
        return str(uuid.UUID(int=self._random.getrandbits(128), version=4))

    def _remember_request(self, kind: str, request_id: str, fingerprint: str) -> str | None:
        """The id created earlier for this requestId, or None; ConflictException on mismatch."""
        known = self._idempotency.get((kind, request_id))
        if known is None:
            return None
        previous_fingerprint, resource_id = known
        if previous_fingerprint != fingerprint and self.config.idempotency_mismatch == "conflict":
            raise conflict(f"requestId {request_id} was already used with different parameters")
        return resource_id

    # -- events --------------------------------------------------------------

    def _emit(self, detail_type: str, resource_arn: str, detail: dict[str, Any], when: float) -> None:
        if self.events is None:
            return
        stamp = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(when))
        self.events.publish(
            {
                "version": "0",
                "id": self._new_uuid(),
                "detail-type": detail_type,
                "source": "aws.omics",
                "account": self.config.account_id,
                "time": stamp,
                "region": self.config.region,
                "resources": [resource_arn],
                "detail": {"omicsVersion": "1.0.0", "arn": resource_arn, **detail},
            }
        )

    def _emit_run(self, run: Run, when: float) -> None:
        self._emit(
            "Run Status Change",
            run.arn,
            {
                "status": run.status,
                "uuid": run.uuid,
                "runId": run.id,
                "runName": run.name or "",
                "runOutputUri": run.run_output_uri,
                "workflowId": run.workflow_id,
                "workflowName": (run.workflow.name if run.workflow else "") or "",
            },
            when,
        )

    def _emit_batch(self, batch: Batch, when: float) -> None:
        if not self.config.batch_events:
            return
        detail: dict[str, Any] = {
            "batchId": batch.id,
            "status": batch.status,
            "uuid": batch.uuid,
            "batchName": batch.name or "",
            "totalRuns": str(batch.total_runs or 0),
            "workflowId": batch.workflow.id if batch.workflow else "",
            "workflowArn": batch.workflow.arn if batch.workflow else "",
        }
        # The documented event carries every count as a string.
        detail.update({k: str(v) for k, v in batch.submission_summary().items() if "Start" in k})
        detail.update({k: str(v) for k, v in batch.run_summary().items()})
        if batch.status == "FAILED":
            detail["failureReason"] = "VALIDATION_EXCEPTION"
            detail["failureMessage"] = batch.failure_reason or ""
        self._emit("RunBatch Status Change", batch.arn, detail, when)

    def _check_tag_count(self, tags: dict[str, str]) -> None:
        if len(tags) > MAX_TAGS:
            raise validation(f"A resource can have at most {MAX_TAGS} tags; {len(tags)} were given")

    def _on_batch_run_finished(self, run: Run, when: float) -> None:
        """Hook for the batch layer: a run that belongs to a batch reached a final state."""
