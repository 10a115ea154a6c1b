"""Hook for AWS HealthOmics workflow runs and run batches."""

from __future__ import annotations

import sys
import time
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from airflow.providers.amazon.aws.hooks.base_aws import AwsBaseHook
from botocore import UNSIGNED
from botocore.config import Config
from botocore.exceptions import ClientError

from healthomics.exceptions import HealthOmicsRunFailedError
from healthomics.utils.idempotency import attempt_tags, request_id

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

THROTTLING_CODES = frozenset({"ThrottlingException", "TooManyRequestsException", "RequestLimitExceeded"})

# Retries for every call: the service's default quotas are low (StartRun 0.1-1 TPS, reads 10 TPS),
# so throttling is normal, not exceptional. "standard" mode backs off exponentially with jitter
# on 429s and 5xx.
DEFAULT_RETRIES: Any = {"mode": "standard", "total_max_attempts": 10}


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

    The client is configured from the Airflow connection. For a local endpoint (the connection
    extra has ``endpoint_url`` or ``service_config.omics.endpoint_url`` pointing somewhere other
    than ``amazonaws.com``), ``inject_host_prefix`` defaults to ``False``: every omics operation
    has a ``workflows-``/``tags-`` host prefix that a local server cannot answer. The connection's
    ``config_kwargs`` are kept even when ``botocore_config`` is given (that one wins key by key).

    Additional arguments (such as ``aws_conn_id`` or ``region_name``) are passed down to
    :class:`~airflow.providers.amazon.aws.hooks.base_aws.AwsBaseHook`.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs["client_type"] = "omics"
        super().__init__(*args, **kwargs)

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
        return dict(self.conn.start_run(**request))

    def get_run(self, run_id: str) -> dict[str, Any]:
        return dict(self.conn.get_run(id=run_id))

    def start_run_idempotently(
        self,
        request: dict[str, Any],
        idempotency_key: str,
        *,
        first_attempt: int = 1,
        reuse_completed: bool = True,
        before_submit: Callable[[int, str], None] | None = None,
        max_attempts: int = 100,
    ) -> tuple[dict[str, Any], int]:
        """
        Start the run for ``idempotency_key`` once, whatever happened before; return (GetRun, attempt).

        Attempt *n* is submitted with ``requestId`` = f(key, request, n), so repeating it (a retry, a
        worker that died right after the call, a cleared task) returns the same run. If that run
        is live it is returned to be waited on; if COMPLETED it is reused (unless
        ``reuse_completed`` is False); if it FAILED, was CANCELLED or DELETED, attempt *n+1* starts a
        new run. ``request`` tags should not vary between submits of the same key.

        :param first_attempt: where to start probing (a hint kept by the caller); attempts before
            it are assumed to have ended without a usable run.
        :param before_submit: called with (attempt, requestId) before each submit, so the caller
            can persist its intent first and resume with the same ``requestId`` after a crash.
        """
        attempt = max(1, first_attempt)
        name = request.get("name")
        while attempt <= max_attempts:
            token = request_id(idempotency_key, {k: v for k, v in request.items() if k != "tags"}, attempt)
            if before_submit is not None:
                before_submit(attempt, token)
            tags = {**(request.get("tags") or {}), **attempt_tags(idempotency_key, attempt)}
            try:
                response = self.start_run(**{**request, "tags": tags, "requestId": token})
                run = self.get_run(response["id"])
            except ClientError as err:
                if error_code(err) != "ConflictException" or not name:
                    raise
                # The same requestId was used with other tags (e.g. by another DAG run):
                # find that run by its name and key tag instead.
                matches = self.find_runs(name, attempt_tags(idempotency_key, attempt))
                if not matches:
                    raise
                run = matches[0]
            status = run["status"]
            if status in RUN_ACTIVE_STATES or (status in RUN_SUCCESS_STATES and reuse_completed):
                self.log.info("HealthOmics run %s (attempt %d) is %s", run["id"], attempt, status)
                return run, attempt
            self.log.info(
                "Attempt %d of %s ended with run %s %s; next attempt", attempt, idempotency_key, run["id"], status
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

    def find_runs(self, name: str, tags: dict[str, str]) -> list[dict[str, Any]]:
        """
        Runs named ``name`` whose tags include ``tags`` (GetRun details, newest first).

        Used to find runs again when no local record of them survives; ListRuns cannot filter
        by tags, so each run of that name is described once.
        """
        found = []
        for item in self.iter_runs(name=name):
            if item.get("name") != name:
                continue
            try:
                run = self.get_run(item["id"])
            except ClientError as err:
                if error_code(err) == "ResourceNotFoundException":
                    continue
                raise
            if all(run.get("tags", {}).get(k) == v for k, v in tags.items()):
                found.append(run)
        return found

    def wait_for_run(
        self,
        run_id: str,
        poll_interval: float = 60.0,
        timeout: float | None = None,
        max_poll_interval: float = 600.0,
    ) -> dict[str, Any]:
        """
        Block until the run finishes; return GetRun of a COMPLETED run.

        FAILED, CANCELLED and DELETED raise :class:`HealthOmicsRunFailedError` with the service's
        ``failureReason`` and ``statusMessage``. Throttling that outlasts botocore's retries
        stretches the polling interval (up to ``max_poll_interval``) instead of failing.

        :param timeout: seconds to wait in total; None waits as long as the run lasts.
        """
        deadline = None if timeout is None else time.monotonic() + timeout
        interval = poll_interval
        while True:
            try:
                run = self.get_run(run_id)
                interval = poll_interval
            except ClientError as err:
                if error_code(err) == "ResourceNotFoundException":
                    raise HealthOmicsRunFailedError.deleted(run_id) from err
                if not is_throttling(err):
                    raise
                interval = min(max_poll_interval, interval * 2)
                self.log.warning("GetRun %s throttled; next poll in %.0fs", run_id, interval)
            else:
                status = run["status"]
                if status in RUN_SUCCESS_STATES:
                    return run
                if status in RUN_FAILURE_STATES:
                    raise HealthOmicsRunFailedError.from_run(run)
                self.log.info("Run %s is %s", run_id, status)
            if deadline is not None and time.monotonic() + interval > deadline:
                raise TimeoutError(f"HealthOmics run {run_id} did not finish within {timeout:.0f}s")
            time.sleep(interval)

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

    def wait_for_batch_submission(
        self, batch_id: str, poll_interval: float = 30.0, timeout: float | None = None
    ) -> dict[str, Any]:
        """Block until every run of the batch was submitted or refused; return GetBatch."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            try:
                batch = self.get_batch(batch_id)
            except ClientError as err:
                if not is_throttling(err):
                    raise
            else:
                if batch["status"] in BATCH_SUBMISSION_DONE_STATES:
                    return batch
                self.log.info("Run batch %s is %s", batch_id, batch["status"])
            if deadline is not None and time.monotonic() + poll_interval > deadline:
                raise TimeoutError(f"HealthOmics run batch {batch_id} was not submitted within {timeout:.0f}s")
            time.sleep(poll_interval)
