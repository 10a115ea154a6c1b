"""Hook for AWS HealthOmics workflow runs and run batches."""

from __future__ import annotations

import json
import os
import sys
import time
from collections.abc import Callable, Iterable, Iterator
from functools import cache, cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from airflow.providers.amazon.aws.hooks.base_aws import AwsBaseHook
from airflow.providers.amazon.aws.utils.waiter_with_logging import wait
from airflow.providers.common.compat.sdk import AirflowException
from botocore import UNSIGNED
from botocore.config import Config
from botocore.exceptions import ClientError

from healthomics.cost.estimate import RunCost, run_cost
from healthomics.cost.prices import PriceTable
from healthomics.exceptions import HealthOmicsRunFailedError
from healthomics.utils.idempotency import Submission, SubmissionJournal, attempt_tags, request_id, run_request_id

if TYPE_CHECKING:
    from mypy_boto3_omics.client import OmicsClient

# Run statuses (botocore model, RunStatus) and what each means to a waiting task.
RUN_SUCCESS_STATES = frozenset({"COMPLETED"})
RUN_FAILURE_STATES = frozenset({"FAILED", "CANCELLED", "DELETED"})
RUN_TERMINAL_STATES = RUN_SUCCESS_STATES | RUN_FAILURE_STATES
RUN_ACTIVE_STATES = frozenset({"PENDING", "STARTING", "RUNNING", "STOPPING"})

# A batch whose submission is over: every run has been submitted or refused (or it never will be).
BATCH_SUBMISSION_DONE_STATES = frozenset(
    {
        "INPROGRESS",
        "PROCESSED",
        "FAILED",
        "CANCELLED",
        "STOPPING",
        "RUNS_DELETING",
        "RUNS_DELETED",
        "RUNS_DELETE_FAILED",
    }
)
BATCH_CANCELLABLE_STATES = frozenset({"PENDING", "SUBMITTING", "INPROGRESS"})
# A batch that ended like this is not used again: its key's next attempt is submitted.
BATCH_RETRY_STATES = frozenset({"FAILED", "CANCELLED"})
MAX_INLINE_RUN_SETTINGS = 100  # the service's fixed limit; larger batches go through S3

# The package's waiters: run ended (CANCELLED and DELETED included), batch submission done.
WAITERS = Path(__file__).resolve().parents[1] / "waiters" / "omics.json"

THROTTLING_CODES = frozenset({"ThrottlingException", "TooManyRequestsException", "RequestLimitExceeded"})

# Retries for every call: the service's default quotas are low (StartRun 0.1-1 TPS, reads 10 TPS),
# so throttling is normal, not exceptional. "standard" mode backs off exponentially with jitter
# on 429s and 5xx.
DEFAULT_RETRIES: Any = {"mode": "standard", "total_max_attempts": 10}


@cache
def waiter_max_attempts(waiter: str) -> int:
    """The package waiter's own ``maxAttempts`` (read once per process)."""
    with open(WAITERS) as config:
        return int(json.load(config)["waiters"][waiter]["maxAttempts"])


def max_attempts(timeout: float, poll_interval: float) -> int:
    """Polls that fit in ``timeout`` (at least one)."""
    return max(1, int(timeout // poll_interval) if poll_interval > 0 else int(timeout))


def run_summary(run: dict[str, Any]) -> dict[str, Any]:
    """The JSON-safe part of a GetRun/StartRun/ListRuns item that tasks pass downstream."""
    summary: dict[str, Any] = {}
    for key in (
        "id",
        "arn",
        "uuid",
        "name",
        "status",
        "statusMessage",
        "failureReason",
        "workflowId",
        "batchId",
        "outputUri",
        "runOutputUri",
        "tags",
    ):
        if run.get(key) is not None:
            summary[key] = run[key]
    for key in ("creationTime", "startTime", "stopTime"):
        value = run.get(key)
        if value is not None:
            summary[key] = value.isoformat() if hasattr(value, "isoformat") else str(value)
    return summary


def is_throttling(error: BaseException) -> bool:
    return isinstance(error, ClientError) and error.response.get("Error", {}).get("Code") in THROTTLING_CODES


def error_code(error: ClientError) -> str:
    return str(error.response.get("Error", {}).get("Code", ""))


def error_message(error: ClientError) -> str:
    """The service's own message (what the report and the task log show)."""
    return str(error.response.get("Error", {}).get("Message", "") or error)


def is_refusal(error: BaseException) -> bool:
    """The service refused the request itself (a 4xx but throttling and timeouts): trying again changes nothing."""
    if not isinstance(error, ClientError) or is_throttling(error):
        return False
    status = int(error.response.get("ResponseMetadata", {}).get("HTTPStatusCode") or 0)
    return 400 <= status < 500 and status not in (408, 429)


class HealthOmicsHook(AwsBaseHook):
    """
    Interact with AWS HealthOmics workflow runs and run batches.

    Provides a thin wrapper around :external+boto3:py:class:`boto3.client("omics") <Omics.Client>`
    with retries suited to the service's low default quotas, and helpers for the paginated
    ListRuns / ListRunsInBatch calls.

    :param start_run_attempts: botocore attempts of a throttled StartRun (default: as every call).

    The client is configured from the Airflow connection. For a local endpoint (the connection
    extra has ``endpoint_url`` or ``service_config.omics.endpoint_url`` pointing somewhere other
    than ``amazonaws.com``), ``inject_host_prefix`` defaults to ``False``: every omics operation
    has a ``workflows-``/``tags-`` host prefix that a local server cannot answer. The connection's
    ``config_kwargs`` are kept even when ``botocore_config`` is given (that one wins key by key).

    Additional arguments (such as ``aws_conn_id`` or ``region_name``) are passed down to
    :class:`~airflow.providers.amazon.aws.hooks.base_aws.AwsBaseHook`.
    """

    def __init__(self, *args: Any, start_run_attempts: int | None = None, **kwargs: Any) -> None:
        kwargs["client_type"] = "omics"
        super().__init__(*args, **kwargs)
        self.start_run_attempts = start_run_attempts

    @property
    def conn(self) -> OmicsClient:
        """The boto3 omics client (cached)."""
        return super().conn

    @property
    def config(self) -> Config:
        """botocore config: retries, then the connection's ``config_kwargs``, then ``botocore_config``."""
        merged = Config(retries=DEFAULT_RETRIES)
        connection_kwargs = dict(self.conn_config.extra_config.get("config_kwargs") or {})
        if connection_kwargs.get("signature_version") == "unsigned":
            connection_kwargs["signature_version"] = UNSIGNED
        if "inject_host_prefix" not in connection_kwargs and self._endpoint_is_local():
            connection_kwargs["inject_host_prefix"] = False
        merged = merged.merge(Config(**connection_kwargs))
        if self._config is not None:
            merged = merged.merge(self._config)
        return merged

    def _get_caller(self, target_function_name: str = "execute") -> str:
        """The operator class on the stack, for the client's user agent (``Caller/...``).

        The amazon provider finds it with ``inspect.stack()``, which reads the source file of
        every frame on the stack: about a sixth of a sample task's time on a worker, paid at
        every client. The frames alone give the same answer.
        """
        frame = sys._getframe(1)
        while frame is not None:
            if frame.f_code.co_name == target_function_name and "self" in frame.f_code.co_varnames:
                caller = frame.f_locals.get("self")
                if caller is not None:
                    return type(caller).__name__
            frame = frame.f_back  # type: ignore[assignment]
        return "Unknown"

    def _endpoint_is_local(self) -> bool:
        endpoint = self.conn_config.get_service_endpoint_url("omics")
        if not endpoint:
            return False
        host = urlsplit(endpoint).hostname or ""
        return not host.endswith((".amazonaws.com", ".amazonaws.com.cn", ".api.aws"))

    # -- runs --------------------------------------------------------------

    def start_run(self, **request: Any) -> dict[str, Any]:
        """
        Start a run (:external+boto3:py:meth:`Omics.Client.start_run`).

        ``requestId`` is required here: boto3 would otherwise fill in a random one, and a retried
        call would start a second, paid run.
        """
        if not request.get("requestId"):
            raise ValueError("start_run needs a deterministic requestId (see healthomics.utils.idempotency)")
        return dict(self._start_run_client.start_run(**request))

    @cached_property
    def _start_run_client(self) -> OmicsClient:
        """The client StartRun goes through: the hook's, or with ``start_run_attempts`` one that gives
        up on throttling sooner (a deferrable task then waits for the quota in the triggerer, not
        in botocore's backoff on a worker slot)."""
        if not self.start_run_attempts:
            return self.conn
        retries: Any = {**DEFAULT_RETRIES, "total_max_attempts": self.start_run_attempts}
        return self.get_client_type(config=self.config.merge(Config(retries=retries)))

    def get_run(self, run_id: str) -> dict[str, Any]:
        return dict(self.conn.get_run(id=run_id))

    def start_run_idempotently(
        self,
        request: dict[str, Any],
        idempotency_key: str,
        *,
        first_attempt: int = 1,
        reuse_completed: bool = True,
        journal: SubmissionJournal | None = None,
        max_attempts: int = 100,
        unused_key: bool = False,
    ) -> tuple[dict[str, Any], int]:
        """
        Start the run for ``idempotency_key`` once, whatever happened before; return (run, attempt).

        Attempt *n* is submitted with ``requestId`` = f(key, request, n), so repeating it (a retry, a
        worker that died right after the call, a cleared task) returns the same run. If that run
        is live it is returned to be waited on; if COMPLETED it is reused (unless
        ``reuse_completed`` is False); if it FAILED, was CANCELLED or DELETED, attempt *n+1* starts a
        new run. ``request`` tags should not vary between submits of the same key.

        The run returned is GetRun's, or with ``unused_key`` StartRun's answer (with the request's
        ``name``, ``workflowId`` and ``outputUri``) when that says the run is live: one call per run.

        :param first_attempt: where to start probing (the journal's last attempt); attempts before
            it are assumed to have ended without a usable run.
        :param journal: where each attempt is recorded before its submit and after it.
        :param unused_key: the caller knows no run of ``idempotency_key`` exists yet, so StartRun's
            answer is about a run it has just created.
        """

        def usable(run: dict[str, Any]) -> bool:
            return run["status"] in RUN_ACTIVE_STATES or (run["status"] in RUN_SUCCESS_STATES and reuse_completed)

        def submit(token: str, tags: dict[str, str]) -> dict[str, Any]:
            started = self.start_run(**{**request, "tags": {**(request.get("tags") or {}), **tags}, "requestId": token})
            return {**{k: request[k] for k in ("name", "workflowId", "outputUri") if k in request}, **started}

        def describe(started: dict[str, Any]) -> dict[str, Any]:
            # A run just created needs no GetRun (its wait reads the rest). StartRun's answer for a
            # requestId used before may not say how that run is now: it is looked up.
            new = unused_key and started.get("status") in RUN_ACTIVE_STATES
            return started if new else self.get_run(started["id"])

        return self._submit_idempotently(
            kind="run",
            idempotency_key=idempotency_key,
            token=lambda attempt: run_request_id(idempotency_key, request, attempt),
            submit=submit,
            describe=describe,
            find=lambda tags: next(iter(self.find_runs(request["name"], tags)), None) if request.get("name") else None,
            usable=usable,
            first_attempt=first_attempt,
            journal=journal,
            max_attempts=max_attempts,
        )

    def _submit_idempotently(
        self,
        *,
        kind: str,
        idempotency_key: str,
        token: Callable[[int], str],
        submit: Callable[[str, dict[str, str]], dict[str, Any]],
        describe: Callable[[dict[str, Any]], dict[str, Any]],
        find: Callable[[dict[str, str]], dict[str, Any] | None],
        usable: Callable[[dict[str, Any]], bool],
        first_attempt: int,
        journal: SubmissionJournal | None,
        max_attempts: int,
    ) -> tuple[dict[str, Any], int]:
        """The one exactly-once loop, for runs and run batches alike.

        Per attempt: record the intent (key, attempt, requestId), submit with that requestId and
        the attempt's tags, describe what came back (from the submit's answer), record its id;
        return it if ``usable``, else go on with the next attempt. A ConflictException (the same
        requestId used with other tags, e.g. by another DAG run of the same input) finds the
        resource by its tags instead.
        """
        attempt = max(1, first_attempt)
        while attempt <= max_attempts:
            request_token = token(attempt)
            if journal is not None:
                journal.record(Submission(idempotency_key, attempt, request_token))
            tags = attempt_tags(idempotency_key, attempt)
            try:
                resource = describe(submit(request_token, tags))
            except ClientError as err:
                if error_code(err) != "ConflictException":
                    raise
                found = find(tags)
                if found is None:
                    raise
                resource = found
            if journal is not None:
                journal.record(Submission(idempotency_key, attempt, request_token, str(resource["id"])))
            if usable(resource):
                self.log.info("HealthOmics %s %s (attempt %d) is %s", kind, resource["id"], attempt, resource["status"])
                return resource, attempt
            self.log.info(
                "Attempt %d of %s ended with %s %s %s; next attempt",
                attempt,
                idempotency_key,
                kind,
                resource["id"],
                resource["status"],
            )
            attempt += 1
        raise RuntimeError(f"{idempotency_key}: {max_attempts} attempts exhausted")

    def cancel_run(self, run_id: str) -> bool:
        """Cancel a live run. False if it had already finished (the service answers 409)."""
        try:
            self.conn.cancel_run(id=run_id)
        except ClientError as err:
            if error_code(err) in ("ConflictException", "ResourceNotFoundException"):
                self.log.info("Run %s was not cancelled: %s", run_id, err)
                return False
            raise
        self.log.info("Cancelled HealthOmics run %s", run_id)
        return True

    def iter_runs(self, page_size: int = 100, **filters: Any) -> Iterator[dict[str, Any]]:
        """Every run matching ListRuns filters (``name``, ``status``, ``batchId``, ``runGroupId``)."""
        paginator = self.conn.get_paginator("list_runs")
        for page in paginator.paginate(**filters, PaginationConfig={"PageSize": page_size}):
            yield from (dict(item) for item in page.get("items", []))

    def list_run_tasks(self, run_id: str) -> list[dict[str, Any]]:
        """Every task of a run (ListRunTasks items: name, cpus, memory, gpus, instanceType, times)."""
        paginator = self.conn.get_paginator("list_run_tasks")
        return [dict(item) for page in paginator.paginate(id=run_id) for item in page.get("items", [])]

    def run_cost(self, run: dict[str, Any], prices: PriceTable) -> RunCost:
        """The estimated cost of a finished run (GetRun) from its tasks; see :mod:`healthomics.cost.estimate`."""
        tasks = [] if run.get("workflowType") == "READY2RUN" else self.list_run_tasks(str(run["id"]))
        return run_cost(run, tasks, prices)

    def find_runs(self, name: str, tags: dict[str, str]) -> list[dict[str, Any]]:
        """
        Runs named ``name`` whose tags include ``tags`` (GetRun details, newest first).

        Used to find runs again when no local record of them survives; ListRuns cannot filter
        by tags, so each run of that name is described once.
        """
        return self._find_tagged(self.iter_runs(name=name), name, tags, self.get_run)

    def find_batches(self, name: str, tags: dict[str, str]) -> list[dict[str, Any]]:
        """Run batches named ``name`` whose tags include ``tags`` (GetBatch details, newest first)."""
        paginator = self.conn.get_paginator("list_batch")
        items = (dict(item) for page in paginator.paginate(name=name) for item in page.get("items", []))
        return self._find_tagged(items, name, tags, self.get_batch)

    @staticmethod
    def _find_tagged(
        items: Iterable[dict[str, Any]], name: str, tags: dict[str, str], describe: Callable[[str], dict[str, Any]]
    ) -> list[dict[str, Any]]:
        found = []
        for item in items:
            if item.get("name") != name:
                continue
            try:
                resource = describe(item["id"])
            except ClientError as err:
                if error_code(err) == "ResourceNotFoundException":
                    continue
                raise
            if all(resource.get("tags", {}).get(k) == v for k, v in tags.items()):
                found.append(resource)
        return found

    def wait_for_run(self, run_id: str, poll_interval: float = 60.0, timeout: float | None = None) -> dict[str, Any]:
        """
        Block until the run ends (the ``run_ended`` waiter); return GetRun of a COMPLETED run.

        FAILED, CANCELLED and DELETED raise :class:`HealthOmicsRunFailedError` with the service's
        ``failureReason`` and ``statusMessage``. Throttling is botocore's to retry; the waiter
        polls every ``poll_interval`` seconds.

        :param timeout: seconds to wait in total; None waits as long as a run may last (7 days).
        """
        try:
            self._wait("run_ended", {"id": run_id}, poll_interval, timeout, f"HealthOmics run {run_id}")
        except AirflowException as err:
            if "terminal failure" not in str(err):
                raise
            # The failure details: GetRun once more (older amazon providers do not keep the
            # waiter's last answer, and one call per failed run is nothing).
            try:
                run = self.get_run(run_id)
            except ClientError as lookup_error:
                if error_code(lookup_error) == "ResourceNotFoundException":
                    raise HealthOmicsRunFailedError.deleted(run_id) from err
                raise
            raise HealthOmicsRunFailedError.from_run(run) from err
        return self.get_run(run_id)

    def _wait(self, waiter: str, args: dict[str, Any], poll_interval: float, timeout: float | None, what: str) -> None:
        """One of the package's waiters (``waiters/omics.json``), logging the status at each poll.

        ``timeout`` becomes the waiter's attempts; reaching them raises :class:`TimeoutError`.
        Throttling that outlasts botocore's retries delays the wait, never ends it: amazon
        providers before 9.3x end a wait on any service error, so the wait goes on here.
        """
        delay = max(0.0, float(poll_interval))
        attempts = max_attempts(timeout, delay) if timeout is not None else waiter_max_attempts(waiter)
        deadline = time.monotonic() + attempts * delay
        while True:
            try:
                wait(
                    waiter=self.get_waiter(waiter),
                    waiter_delay=delay,  # type: ignore[arg-type]
                    waiter_max_attempts=attempts,
                    args=args,
                    failure_message=f"{what} did not end well",
                    status_message=f"{what} is",
                    status_args=["status"],
                )
                return
            except AirflowException as err:
                if "max attempts reached" in str(err):
                    raise TimeoutError(f"{what} did not finish within {attempts * delay:.0f}s") from err
                if not any(f"({code})" in str(err) for code in THROTTLING_CODES):
                    raise
                self.log.warning("%s: throttled beyond botocore's retries; waiting on", what)
            attempts = max_attempts(max(0.0, deadline - time.monotonic()), delay)
            time.sleep(delay)

    @property
    def waiter_path(self) -> os.PathLike[str] | None:
        """The package's own waiters (the amazon provider looks for them beside its own)."""
        return WAITERS

    # -- run batches -----------------------------------------------------------

    def start_run_batch(self, **request: Any) -> dict[str, Any]:
        """Start a run batch (:external+boto3:py:meth:`Omics.Client.start_run_batch`); needs ``requestId``."""
        if not request.get("requestId"):
            raise ValueError("start_run_batch needs a deterministic requestId (see healthomics.utils.idempotency)")
        return dict(self.conn.start_run_batch(**request))

    def get_batch(self, batch_id: str) -> dict[str, Any]:
        return dict(self.conn.get_batch(batchId=batch_id))

    def cancel_run_batch(self, batch_id: str) -> bool:
        """Cancel a batch that is still submitting or running. False if it is past that."""
        try:
            self.conn.cancel_run_batch(batchId=batch_id)
        except ClientError as err:
            if error_code(err) in ("ConflictException", "ResourceNotFoundException"):
                self.log.info("Run batch %s was not cancelled: %s", batch_id, err)
                return False
            raise
        self.log.info("Cancelled HealthOmics run batch %s", batch_id)
        return True

    def iter_runs_in_batch(self, batch_id: str, page_size: int = 100, **filters: Any) -> Iterator[dict[str, Any]]:
        """Every entry of ListRunsInBatch (one of ``submissionStatus``, ``runSettingId``, ``runId``)."""
        paginator = self.conn.get_paginator("list_runs_in_batch")
        for page in paginator.paginate(batchId=batch_id, **filters, PaginationConfig={"PageSize": page_size}):
            yield from (dict(entry) for entry in page.get("runs", []))

    def start_run_batch_idempotently(
        self,
        *,
        batch_name: str,
        default_run_setting: dict[str, Any],
        run_settings: list[dict[str, Any]],
        idempotency_key: str,
        tags: dict[str, str] | None = None,
        settings_file: Callable[[str], str] | None = None,
        first_attempt: int = 1,
        journal: SubmissionJournal | None = None,
        max_attempts: int = 100,
    ) -> tuple[dict[str, Any], int]:
        """
        Start the run batch for ``idempotency_key`` once; return (GetBatch, attempt).

        The same rule as :meth:`start_run_idempotently`: attempt *n* has one ``requestId``, so a
        repeat returns the same batch; a batch of that attempt that FAILED or was CANCELLED
        moves on to attempt *n+1*; anything else (submitting, in progress, processed) is returned.

        :param run_settings: one entry per run; up to 100 go inline, more through ``settings_file``.
        :param settings_file: writes the settings as a JSON array to S3 for a requestId and returns
            its URI (needed above 100 runs; the service fails a batch whose file changes, so it
            must name the file after the requestId and never rewrite it).
        """

        def batch_run_settings(token: str) -> dict[str, Any]:
            if len(run_settings) <= MAX_INLINE_RUN_SETTINGS:
                return {"inlineSettings": run_settings}
            if settings_file is None:
                raise ValueError(f"{len(run_settings)} run settings need a settings file in S3")
            return {"s3UriSettings": settings_file(token)}

        def submit(token: str, attempt_tags: dict[str, str]) -> dict[str, Any]:
            request = {
                "batchName": batch_name,
                "requestId": token,
                "defaultRunSetting": default_run_setting,
                "batchRunSettings": batch_run_settings(token),
                "tags": {**(tags or {}), **attempt_tags},
            }
            return self.start_run_batch(**request)

        return self._submit_idempotently(
            kind="run batch",
            idempotency_key=idempotency_key,
            token=lambda attempt: request_id(
                idempotency_key,
                {"defaultRunSetting": default_run_setting, "runSettings": run_settings, "name": batch_name},
                attempt,
            ),
            submit=submit,
            describe=lambda started: self.get_batch(started["id"]),
            find=lambda tags: next(iter(self.find_batches(batch_name, tags)), None),
            usable=lambda batch: batch["status"] not in BATCH_RETRY_STATES,
            first_attempt=first_attempt,
            journal=journal,
            max_attempts=max_attempts,
        )

    def wait_for_batch_submission(
        self, batch_id: str, poll_interval: float = 30.0, timeout: float | None = None
    ) -> dict[str, Any]:
        """Block until every run of the batch was submitted or refused (the ``batch_submitted`` waiter)."""
        self._wait(
            "batch_submitted", {"batchId": batch_id}, poll_interval, timeout, f"HealthOmics run batch {batch_id}"
        )
        return self.get_batch(batch_id)
