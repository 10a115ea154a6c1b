"""Start one HealthOmics run (StartRun) and optionally wait for it."""

from __future__ import annotations

import time
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, NoReturn

from airflow.providers.amazon.aws.operators.base_aws import AwsBaseOperator
from airflow.providers.amazon.aws.utils.mixins import aws_template_fields
from airflow.providers.common.compat.sdk import conf
from botocore.exceptions import ClientError

from healthomics.exceptions import HealthOmicsRunFailedError
from healthomics.hooks.omics import RUN_FAILURE_STATES, RUN_SUCCESS_STATES, HealthOmicsHook, run_summary
from healthomics.links.omics import (
    HealthOmicsRunLink,
    HealthOmicsRunLogsLink,
    HealthOmicsRunOutputLink,
    persist_run_links,
)
from healthomics.triggers.base import connection_kwargs, deadline_after, may_end_from_trigger
from healthomics.triggers.run import HealthOmicsRunTrigger, read_run_event
from healthomics.utils.idempotency import SubmissionJournal, default_idempotency_key, provenance_tags
from healthomics.utils.openlineage import request_lineage, run_lineage

if TYPE_CHECKING:
    from airflow.sdk import Context

    from healthomics.utils.openlineage import RunLineage

# task_state_store key of the run operator's Submission record (see SubmissionJournal).
STATE_KEY = "healthomics_run"


# Runs outside a batch (a pipeline's later stages, QC, one run per sample) wait on one account-wide
# ListRuns poll per window of creation time: the poll pages back to the window's start, so a
# window bounds what it reads while one flowcell's runs mostly fall in one or two windows.
SHARED_POLL_WINDOW_SECONDS = 6 * 3600


# A run StartRun has just answered for was created at most this long ago (the call and its retries).
START_SLACK_SECONDS = 300


def shared_poll_since(run: dict[str, Any]) -> float:
    """The start of the window ``run`` was created in. A run known only from StartRun's answer
    (no ``creationTime``) counts as created a few minutes ago: an older one (a repeated
    requestId's) is missing from the window's poll and looked up directly by its trigger."""
    created = run.get("creationTime")
    if isinstance(created, str):
        created = datetime.fromisoformat(created)
    stamp = created.timestamp() if isinstance(created, datetime) else time.time() - START_SLACK_SECONDS
    return stamp - stamp % SHARED_POLL_WINDOW_SECONDS


class HealthOmicsRunWaitOperator(AwsBaseOperator[HealthOmicsHook]):
    """
    What every operator that brings one run to its end shares: the run's links, the wait (deferred
    to the shared-poll run trigger, or in the worker with the ``run_ended`` waiter), the result, the
    failure and the cancel on kill. Subclasses find or start the run and call :meth:`follow_run`.

    Subclasses set ``deferrable``, ``poll_interval``, ``max_wait`` (the one timeout: the trigger's
    deadline, or the waiter's attempts), ``cancel_on_kill`` and ``wake_queue_url``.
    """

    aws_hook_class = HealthOmicsHook
    operator_extra_links = (HealthOmicsRunLink(), HealthOmicsRunLogsLink(), HealthOmicsRunOutputLink())
    ui_color = "#d5ecf6"
    # With end_from_trigger the trigger ends a COMPLETED task itself (no worker after the wait);
    # resume_on_failure still hands failures back to run_failed() on a worker. Subclasses set it
    # with may_end_from_trigger(): with listeners (OpenLineage) the task ends on a worker.
    end_from_trigger = False
    resume_on_failure = False

    deferrable: bool
    poll_interval: float
    max_wait: timedelta | None
    cancel_on_kill: bool
    wake_queue_url: str | None
    run_id: str | None = None

    def follow_run(
        self, context: Context, run: dict[str, Any], summary: dict[str, Any], batch_id: str | None = None
    ) -> dict[str, Any]:
        """Wait for ``run`` (GetRun) to end; return ``summary`` updated with its end, or fail the task.

        The wait shares one ListRuns poll: the batch's, or (a run outside any batch) the one of
        the runs created in the same window (:func:`shared_poll_since`).
        """
        self.run_id = run["id"]
        persist_run_links(context, self, self.hook, summary["id"], summary.get("runOutputUri"))
        if run["status"] in RUN_SUCCESS_STATES:
            return summary
        if run["status"] in RUN_FAILURE_STATES:
            self.run_failed(context, summary, None)
        if self.deferrable:
            self.defer(
                trigger=HealthOmicsRunTrigger(
                    run_id=run["id"],
                    run_details=summary,
                    batch_id=batch_id,
                    list_since=None if batch_id else shared_poll_since(run),
                    poll_interval=self.poll_interval,
                    deadline=deadline_after(self.max_wait),
                    end_from_trigger=self.end_from_trigger,
                    resume_on_failure=self.resume_on_failure,
                    cancel_on_kill=self.cancel_on_kill,
                    wake_queue_url=self.wake_queue_url,
                    **connection_kwargs(self),
                ),
                method_name="execute_complete",
            )
        try:
            finished = self.hook.wait_for_run(
                run["id"],
                poll_interval=self.poll_interval,
                timeout=self.max_wait.total_seconds() if self.max_wait else None,
            )
        except HealthOmicsRunFailedError as err:
            failed = {**summary, "status": err.status, "failureReason": err.failure_reason}
            self.run_failed(context, {**failed, "statusMessage": err.status_message}, None)
        return {**summary, **run_summary(finished)}

    def execute_complete(self, context: Context, event: dict[str, Any] | str | None = None) -> dict[str, Any]:
        validated = read_run_event(event, self.hook, context)
        run = {**self.known_about_run(context), **dict(validated.get("run", {}))}
        self.run_id = run.get("id", self.run_id)
        if validated.get("status") == "success":
            return run
        self.run_failed(context, run, validated.get("message"))

    def known_about_run(self, context: Context) -> dict[str, Any]:
        """What the result carries besides the trigger's run summary."""
        return {}

    def labels(self) -> dict[str, Any]:
        """What names this task's run in its result, failure XCom and lineage (a sample, a stage)."""
        return {}

    def start_request(self) -> dict[str, Any] | None:
        """The StartRun request this task would send, where it knows one before its run exists."""
        return None

    def get_openlineage_facets_on_start(self) -> RunLineage:
        """The inputs of the request the task starts its run with (none known for a run it follows)."""
        return request_lineage(self.start_request())

    def get_openlineage_facets_on_complete(self, task_instance: Any) -> RunLineage:
        """The run's inputs (data URIs among its parameters), output location and facets."""
        return self._run_lineage()

    def get_openlineage_facets_on_failure(self, task_instance: Any) -> RunLineage:
        return self._run_lineage()

    def _run_lineage(self) -> RunLineage:
        # GetRun holds the parameters (a batch's run was started without this task's request);
        # one call per task, made only when the provider records lineage.
        if not self.run_id:
            return run_lineage(None, self.labels())
        try:
            run = self.hook.get_run(self.run_id)
        except ClientError as err:  # a DELETED run, an API error: the run and sample, without data
            self.log.warning("No lineage details of run %s: %s", self.run_id, err)
            run = {"id": self.run_id, "status": "UNKNOWN"}
        return run_lineage(run, self.labels())

    def run_failed(self, context: Context, run: dict[str, Any], message: str | None) -> NoReturn:
        """The run ended FAILED, CANCELLED or DELETED (or the wait timed out): fail the task."""
        raise HealthOmicsRunFailedError(
            str(run.get("id", self.run_id)),
            run.get("status", "UNKNOWN"),
            run.get("failureReason"),
            message or run.get("statusMessage"),
        )

    def on_kill(self) -> None:
        """Cancel the run when the task is killed on a worker (deferred waits cancel in the trigger)."""
        if self.cancel_on_kill and self.run_id:
            self.hook.cancel_run(self.run_id)


class HealthOmicsStartRunOperator(HealthOmicsRunWaitOperator):
    """
    Start an AWS HealthOmics run, exactly once, and (by default) wait until it finishes.

    Submits with a deterministic ``requestId`` derived from ``idempotency_key`` and the request,
    so a retried, cleared or crashed-and-restarted task gets the same run back instead of
    starting a second, paid one. A retry after the run FAILED (or was CANCELLED/DELETED) starts
    a new *attempt* with a new ``requestId``; a run that COMPLETED is reused.

    The task succeeds only if the run COMPLETED; FAILED, CANCELLED and DELETED fail it with the
    service's ``failureReason`` and ``statusMessage``. Killing the task (mark failed, clear)
    cancels the run, also while deferred. Returns a JSON summary of the run
    (``id``, ``arn``, ``uuid``, ``status``, ``runOutputUri``, times, ``attempt``).

    .. seealso::
        - :external+boto3:py:meth:`Omics.Client.start_run`

    :param workflow_id: the workflow to run.
    :param role_arn: IAM role HealthOmics assumes for the run.
    :param output_uri: S3 prefix for outputs; the run writes under ``<output_uri>/<run id>``.
    :param parameters: workflow parameters.
    :param name: run name (default: derived from the DAG, task and map index).
    :param tags: tags for the run (e.g. ``{"flowcell": ..., "sample": ...}``); the operator adds
        ``healthomics:*`` provenance tags (DAG, DAG run, task, idempotency key, attempt).
    :param run_options: other StartRun fields, in the API's names (``workflowType``,
        ``workflowVersionName``, ``storageType``, ``cacheId``, ``cacheBehavior``, ``priority``,
        ``runGroupId``, ``logLevel``, ``retentionMode``, ...).
    :param idempotency_key: what makes two submits "the same" (default: DAG id, task id, map index
        and logical run id). Give e.g. ``"<flowcell>/<manifest sha>/<sample>"`` to share one run
        between DAG runs of the same input.
    :param reuse_completed_run: return a COMPLETED run of the same key instead of running again.
    :param wait_for_completion: wait for the run to finish (default True).
    :param deferrable: wait in the triggerer instead of a worker slot.
    :param poll_interval: seconds between status checks.
    :param max_wait: how long to wait for the run (the service's own limit is 7 days).
    :param end_from_trigger: with ``deferrable``, let the trigger end the task (no worker needed
        after the wait); the XCom result is the same. Ignored while listener plugins (e.g.
        OpenLineage) are registered: they hear only of tasks that end on a worker.
    :param cancel_on_kill: cancel the run when the task is killed.
    :param wake_queue_url: SQS queue of "Run Status Change" events; in deferrable mode an event
        about the run ends the wait for the next poll early (polling stays authoritative).
    :param aws_conn_id: Airflow AWS connection (its extra may route ``omics`` to a local endpoint).
    :param region_name: AWS region (default: from the connection).
    :param verify: SSL certificate verification for boto3.
    :param botocore_config: extra botocore client configuration (merged over the connection's).
    """

    template_fields: Sequence[str] = aws_template_fields(
        "workflow_id",
        "role_arn",
        "output_uri",
        "parameters",
        "name",
        "tags",
        "run_options",
        "idempotency_key",
        "wake_queue_url",
    )
    template_fields_renderers = {"parameters": "json", "tags": "json", "run_options": "json"}

    def __init__(
        self,
        *,
        workflow_id: str,
        role_arn: str,
        output_uri: str,
        parameters: dict[str, Any] | None = None,
        name: str | None = None,
        tags: dict[str, str] | None = None,
        run_options: dict[str, Any] | None = None,
        idempotency_key: str | None = None,
        reuse_completed_run: bool = True,
        wait_for_completion: bool = True,
        deferrable: bool = conf.getboolean("operators", "default_deferrable", fallback=False),
        poll_interval: float = 60,
        max_wait: timedelta | None = timedelta(days=7),
        end_from_trigger: bool = False,
        cancel_on_kill: bool = True,
        wake_queue_url: str | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.workflow_id = workflow_id
        self.role_arn = role_arn
        self.output_uri = output_uri
        self.parameters = parameters
        self.name = name
        self.tags = tags
        self.run_options = run_options
        self.idempotency_key = idempotency_key
        self.reuse_completed_run = reuse_completed_run
        self.wait_for_completion = wait_for_completion
        self.deferrable = deferrable
        self.poll_interval = poll_interval
        self.max_wait = max_wait
        self.end_from_trigger = end_from_trigger and may_end_from_trigger()
        self.cancel_on_kill = cancel_on_kill
        self.wake_queue_url = wake_queue_url
        self.run_id = None

    def start_request(self) -> dict[str, Any] | None:
        return {"workflowId": self.workflow_id, "outputUri": self.output_uri, "parameters": self.parameters or {}}

    def _request(self, context: Context) -> dict[str, Any]:
        ti = context["ti"]
        request: dict[str, Any] = {
            **(self.run_options or {}),
            "workflowId": self.workflow_id,
            "roleArn": self.role_arn,
            "outputUri": self.output_uri,
            "name": (self.name or f"{ti.dag_id}.{ti.task_id}.{ti.map_index}")[:128],
            "tags": {**(self.tags or {}), **provenance_tags(context)},
        }
        if self.parameters is not None:
            request["parameters"] = self.parameters
        return request

    def execute(self, context: Context) -> dict[str, Any]:
        key = self.idempotency_key or default_idempotency_key(context)
        journal = SubmissionJournal(context, STATE_KEY)
        last = journal.last(key)
        run, attempt = self.hook.start_run_idempotently(
            self._request(context),
            key,
            first_attempt=last.attempt if last else 1,
            reuse_completed=self.reuse_completed_run,
            journal=journal,
        )
        summary = {**run_summary(run), "attempt": attempt}
        if not self.wait_for_completion:
            self.run_id = run["id"]
            persist_run_links(context, self, self.hook, summary["id"], summary.get("runOutputUri"))
            return summary
        return self.follow_run(context, run, summary)
