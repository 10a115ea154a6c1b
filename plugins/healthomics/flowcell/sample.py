"""Bring one sample of a flowcell to a COMPLETED run: wait for its batch run, or start another."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from datetime import timedelta
from typing import TYPE_CHECKING, Any, NoReturn

from airflow.providers.amazon.aws.utils.mixins import aws_template_fields
from airflow.providers.common.compat.sdk import AirflowFailException, conf
from botocore.exceptions import ClientError

from healthomics import settings
from healthomics.exceptions import HealthOmicsRunFailedError, HealthOmicsSubmissionError
from healthomics.flowcell.plan import TAG_FLOWCELL, TAG_STAGE, batch_name
from healthomics.flowcell.task_ids import FAILURE_XCOM
from healthomics.hooks.omics import (
    RUN_FAILURE_STATES,
    error_code,
    error_message,
    is_refusal,
    is_throttling,
    run_summary,
)
from healthomics.operators.run import HealthOmicsRunWaitOperator
from healthomics.triggers.base import connection_kwargs, may_end_from_trigger
from healthomics.triggers.micro_batch import HealthOmicsMicroBatchTrigger
from healthomics.triggers.quota import HealthOmicsStartTurnTrigger
from healthomics.utils.idempotency import (
    VIA_MICRO_BATCH,
    Submission,
    SubmissionJournal,
    attempt_tags,
    provenance_tags,
    run_request_id,
)
from healthomics.utils.service_model import as_batch_run
from healthomics.utils.text import cut

if TYPE_CHECKING:
    from airflow.sdk import Context

# task_state_store key of the sample's Submission record: which attempt (and run) it is on.
STATE_KEY = "healthomics_sample"
# botocore attempts of a throttled StartRun on a worker before a deferrable task defers (to a micro
# batch or a turn): retrying on the worker only holds its slot while a batch takes the quota.
START_RUN_ATTEMPTS = 1


def last_submission(
    journal: SubmissionJournal,
    key: str,
    try_number: int,
    batch_run: dict[str, Any] | None,
    submission_failure: dict[str, Any] | None,
) -> Submission | None:
    """Where a sample task resumes: its journal's last record, or, with no task state store to keep one
    (Airflow before 3.3), on any try after the first (a clear, a retry) the run batch's attempt 1 as
    the first try recorded it. From there a failed run moves on to attempt 2, whose deterministic
    ``requestId`` finds any run a previous clear started, exactly as with the store."""
    last = journal.last(key)  # a record for another key (the manifest changed under the task) is not ours
    if last is None and not journal.keeps_records and try_number > 1 and (batch_run or submission_failure):
        return Submission(key, 1, external_id=str(batch_run["id"]) if batch_run else None)
    return last


def micro_batch_name(request: dict[str, Any]) -> str:
    """The batch name of a run's micro batches: its flowcell and stage (or workflow)."""
    tags = request.get("tags") or {}
    return batch_name(tags.get(TAG_FLOWCELL, "healthomics"), tags.get(TAG_STAGE) or request["workflowId"])


class HealthOmicsSampleRunOperator(HealthOmicsRunWaitOperator):
    """
    Get one sample to a COMPLETED HealthOmics run, and wait for it (deferrable).

    ``sample`` describes the sample (see :func:`healthomics.flowcell.plan.sample_entries`):
    ``sample_id``, the StartRun ``request``, its ``idempotency_key``, and either the
    ``batch_run`` a run batch started for it, an ``existing_run`` to reuse (a backfill's
    COMPLETED or live run), or the ``submission_failure`` the batch reported. An entry with a
    run to follow may leave ``request`` and ``idempotency_key`` to ``start_requests_from``
    (every mapped task reads the whole list of entries, so they are kept small).

    * First execution: waits for the batch run (success only if it COMPLETED), fails with the
      service's reason if the batch could not submit it, or — with no batch — starts the run.
    * A retry or a cleared task: a COMPLETED run is reused and nothing starts; a live run is
      waited on again; after a FAILED/CANCELLED/DELETED run (or a refused submission) the next
      attempt is started with StartRun and a new attempt-specific ``requestId`` (the manifest's
      run cache, if any, lets it resume from cached task results). A failed run fails the task
      for good: retries cover a lost worker or an API error, a person clears the task to pay
      for another run.

    The result (XCom ``return_value``) is the run summary with ``sample_id`` and ``attempt``.
    A failure also leaves XCom ``failure`` (status, reason, message) for the QC gate and report.
    Waiting runs of one batch share one ListRuns poll in the triggerer; a COMPLETED run ends
    the task from the triggerer, a failure comes back to the task to be reported.

    :param sample: the sample's entry (templated; usually an expanded XCom).
    :param deferrable: wait in the triggerer (default: ``[operators] default_deferrable``).
    :param poll_interval: seconds between status polls.
    :param max_wait: how long to wait for a run.
    :param cancel_on_kill: cancel the sample's live run when the task is killed.
    :param wake_queue_url: SQS queue of "Run Status Change" events; in deferrable mode an event
        about the run ends the wait for the next poll early (polling stays authoritative).
    :param start_requests_from: ``(task_id, key)`` of an XCom ``{sample_id: {"request": ...,
        "idempotency_key": ...}}`` for entries that leave them out; read only to start a run.

    Connection arguments (``aws_conn_id``, ``region_name``, ``verify``, ``botocore_config``)
    as in the amazon provider.
    """

    template_fields: Sequence[str] = aws_template_fields("sample", "wake_queue_url")
    template_fields_renderers = {"sample": "json"}
    # A failure comes back to a worker to be recorded; a COMPLETED run ends the task in the
    # triggerer (unless listeners need it on a worker, see __init__).
    resume_on_failure = True

    def __init__(
        self,
        *,
        sample: dict[str, Any],
        deferrable: bool = conf.getboolean("operators", "default_deferrable", fallback=False),
        poll_interval: float = 60,
        max_wait: timedelta | None = timedelta(days=7),
        cancel_on_kill: bool = True,
        wake_queue_url: str | None = None,
        start_requests_from: tuple[str, str] | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.sample = sample
        self.deferrable = deferrable
        self.poll_interval = poll_interval
        self.max_wait = max_wait
        self.cancel_on_kill = cancel_on_kill
        self.wake_queue_url = wake_queue_url
        self.start_requests_from = start_requests_from
        self.end_from_trigger = may_end_from_trigger()
        self.run_id = None

    @property
    def _hook_parameters(self) -> dict[str, Any]:
        # Deferrable: a throttled StartRun soon waits in the triggerer instead of holding a worker slot.
        return {**super()._hook_parameters, "start_run_attempts": START_RUN_ATTEMPTS if self.deferrable else None}

    # -- which run, which attempt ------------------------------------------------

    def execute(self, context: Context) -> dict[str, Any]:
        sample = self.sample
        journal = SubmissionJournal(context, STATE_KEY)
        # The run to follow first: the one a batch started for it, or one it was told to reuse.
        batch_run = sample.get("batch_run") or sample.get("existing_run")
        key = str(sample.get("idempotency_key") or sample["sample_id"])
        last = last_submission(journal, key, int(context["ti"].try_number), batch_run, sample.get("submission_failure"))
        max_tries = getattr(context["ti"], "max_tries", None)
        if last is not None and max_tries is not None and last.ended_at_max_tries == max_tries:
            self._fail_again(context, last)
        if last is None:
            # First execution: the run batch owns attempt 1.
            if batch_run:
                journal.record(Submission(key, 1, external_id=batch_run["id"]))
                run = self._current_run(batch_run["id"])
                if run is None:
                    self.run_failed(context, {"status": "DELETED", "id": batch_run["id"]}, "its run no longer exists")
                # GetRun names the run's batch: its wait joins the batch's shared poll.
                return self._follow(context, run, 1, run.get("batchId") or batch_run.get("batchId"))
            if sample.get("submission_failure"):
                journal.record(Submission(key, 1))
                failure = sample["submission_failure"]
                self.run_failed(
                    context,
                    {"status": "NOT_SUBMITTED", "failureReason": failure.get("reason")},
                    f"the run batch did not submit it: {failure.get('reason')}: {failure.get('message')}",
                )
            first_attempt, sent_before = 1, None
        else:
            run = self._current_run(last.external_id)
            if run is not None and run["status"] not in RUN_FAILURE_STATES:
                self.log.info("Sample %s: resuming with run %s (%s)", sample["sample_id"], run["id"], run["status"])
                return self._follow(context, run, last.attempt, run.get("batchId"))
            if last.waits_in_micro_batch:
                start = self._start_fields(context)
                request = self._request(context, start)
                run = self._micro_batch_run(start["idempotency_key"], request, last)
                if run is not None:
                    journal.record(replace(last, external_id=run["id"]))
                    return self._follow(context, run, last.attempt, None)
                self._submit_in_micro_batch(context, start["idempotency_key"], request, last)
            # An unanswered StartRun is repeated as is; anything else that ended without a usable run
            # (a micro batch's refusal that a person cleared included) moves on to the next attempt.
            sent_before = last.attempt if last.sent_unanswered else None
            first_attempt = last.attempt if last.sent_unanswered else last.attempt + 1

        # Start (or find again) the run of this attempt; a repeat gets the same run back.
        start = self._start_fields(context)
        request = self._request(context, start)
        if sent_before is None and self.micro_batch_first():
            self._submit_straight_in_micro_batch(context, start["idempotency_key"], request, first_attempt)
        try:
            run, attempt = self.hook.start_run_idempotently(
                request,
                start["idempotency_key"],
                first_attempt=first_attempt,
                journal=journal,
                unused_key=bool(start.get("unused_key")),
            )
        except ClientError as err:
            if is_throttling(err) and self.deferrable:
                self._wait_for_quota(context, start["idempotency_key"], request, sent_before)
            if not is_refusal(err):
                raise  # 5xx, a lost connection (or throttling, not deferrable): the task's retries
            # Refused as asked: the same request would be refused again, so no retry.
            self.run_failed(
                context,
                {"status": "NOT_SUBMITTED", "failureReason": error_code(err), "attempt": first_attempt},
                f"StartRun refused: {error_code(err)}: {cut(error_message(err))}",
            )
        return self._follow(context, run, attempt, None)

    def _request(self, context: Context, start: dict[str, Any]) -> dict[str, Any]:
        """The StartRun request of the sample's run, with the task's provenance tags."""
        return {**start["request"], "tags": {**start["request"].get("tags", {}), **provenance_tags(context)}}

    def _wait_for_quota(self, context: Context, key: str, request: dict[str, Any], sent_before: int | None) -> NoReturn:
        """StartRun stayed throttled (the account's StartRun quota is 0.1-1 per second, and a
        submitting run batch takes all of it): submit the run in the triggerer's next micro batch,
        or, where a batch cannot run it (Ready2Run, no task state store to remember it went
        there, an attempt an earlier try may have started with StartRun), wait for a turn, paced
        for every task of the triggerer, and submit again. Never a failure: the journal's record
        of the attempt keeps its requestId.

        :param sent_before: the attempt an earlier try sent with StartRun without learning the outcome.
        """
        journal = SubmissionJournal(context, STATE_KEY)
        last = journal.last(key)
        if journal.keeps_records and last is not None and last.request_id and last.attempt != sent_before:
            self._submit_in_micro_batch(context, key, request, last)
        self.log.warning("Sample %s: StartRun throttled; waiting for a turn", self.sample["sample_id"])
        self.defer(
            trigger=HealthOmicsStartTurnTrigger(start_run_tps=settings.start_run_tps(), **connection_kwargs(self)),
            method_name="start_after_throttling",
        )

    def micro_batch_first(self) -> bool:
        """Whether the run goes in a micro batch without a first StartRun (a large flowcell's later
        stages, see :class:`~healthomics.flowcell.stage.HealthOmicsStageRunOperator`)."""
        return False

    def _submit_straight_in_micro_batch(
        self, context: Context, key: str, request: dict[str, Any], attempt: int
    ) -> None:
        """Submit ``attempt`` in a micro batch, recording its requestId first as StartRun would; returns
        only where no batch can run it (not deferrable, no task state store, Ready2Run)."""
        journal = SubmissionJournal(context, STATE_KEY)
        if not (self.deferrable and journal.keeps_records):
            return
        submission = Submission(key, attempt, run_request_id(key, request, attempt))
        journal.record(submission)
        self._submit_in_micro_batch(context, key, request, submission)

    def _submit_in_micro_batch(self, context: Context, key: str, request: dict[str, Any], last: Submission) -> None:
        """Defer to the micro batch trigger with the attempt's run (its run setting id is the attempt's
        requestId, recorded first); returns only if no batch can run the request."""
        tags = {**request.get("tags", {}), **attempt_tags(key, last.attempt)}
        split = as_batch_run({**request, "tags": tags}, str(last.request_id))
        if split is None:
            return
        default, setting = split
        SubmissionJournal(context, STATE_KEY).record(replace(last, via=VIA_MICRO_BATCH))
        self.log.warning("Sample %s: submitting in the next micro batch", self.sample["sample_id"])
        self.defer(
            trigger=HealthOmicsMicroBatchTrigger(
                batch_name=micro_batch_name(request),
                default_run_setting=default,
                run_setting=setting,
                batch_tags={TAG_FLOWCELL: tags[TAG_FLOWCELL]} if TAG_FLOWCELL in tags else {},
                poll_interval=self.poll_interval,
                cancel_on_kill=self.cancel_on_kill,
                **connection_kwargs(self),
            ),
            method_name="submitted_in_micro_batch",
        )

    def _micro_batch_run(self, key: str, request: dict[str, Any], last: Submission) -> dict[str, Any] | None:
        """The run a micro batch made for ``last``'s attempt, found by its name and attempt tags.

        A try after the one that deferred to the micro batch (a lost worker; or Airflow's stale
        executor event after a deferral that resumed at once, apache/airflow#72716, which marks the
        resumed try for retry) looks it up here first: asking the batcher again would answer at
        once and resume straight into the same race."""
        if not request.get("name"):
            return None
        found = self.hook.find_runs(str(request["name"]), attempt_tags(key, last.attempt))
        return found[0] if found else None

    def submitted_in_micro_batch(self, context: Context, event: dict[str, Any] | None = None) -> dict[str, Any]:
        """Back from the micro batch: record the run and wait for it, or fail as not submitted."""
        journal = SubmissionJournal(context, STATE_KEY)
        last = journal.last()
        attempt = last.attempt if last is not None else 1
        event = event or {}
        if event.get("status") != "submitted":
            self.run_failed(
                context,
                {"status": "NOT_SUBMITTED", "failureReason": event.get("reason"), "attempt": attempt},
                f"its micro batch did not submit it: {event.get('reason')}: {cut(str(event.get('message')))}",
            )
        run = dict(event["run"])
        if last is not None:
            journal.record(replace(last, external_id=run["id"]))
        # Its wait joins the account-wide poll of the runs started one by one, not one poll per
        # micro batch (a flowcell's later stages make many small ones).
        return self._follow(context, run, attempt, None)

    def start_after_throttling(self, context: Context, event: Any = None) -> dict[str, Any]:
        """Back from the wait for a StartRun turn: everything again from the journal."""
        return self.execute(context)

    def _fail_again(self, context: Context, last: Submission) -> NoReturn:
        """Airflow retried a task that had failed for good without anyone clearing it: with a
        deferral resumed at once, a stale executor event can mark the resumed try for retry
        (apache/airflow#72716). No new paid attempt: the same failure again."""
        message = "it failed for good on an earlier try of this task; clear the task to run it again"
        self.log.warning("Sample %s: retried although %s", self.sample["sample_id"], message)
        run = self._current_run(last.external_id)
        if run is None:
            self.run_failed(context, {"status": "NOT_SUBMITTED", "attempt": last.attempt}, message)
        self.run_failed(context, {**run_summary(run), "attempt": last.attempt}, message)

    def _current_run(self, run_id: str | None) -> dict[str, Any] | None:
        if not run_id:
            return None
        try:
            return self.hook.get_run(run_id)
        except ClientError as err:
            if error_code(err) == "ResourceNotFoundException":
                return None
            raise

    def _start_fields(self, context: Context) -> dict[str, Any]:
        """The sample's StartRun ``request`` and ``idempotency_key`` (and ``unused_key``, see
        :meth:`~healthomics.hooks.omics.HealthOmicsHook.start_run_idempotently`): in its entry,
        or in the XCom named."""
        if "request" in self.sample:
            return self.sample
        if not self.start_requests_from:
            raise AirflowFailException(
                f"Sample {self.sample['sample_id']}: its entry has no run request and no start_requests_from"
            )
        task_id, key = self.start_requests_from
        start_requests = context["ti"].xcom_pull(task_ids=task_id, key=key) or {}
        if self.sample["sample_id"] not in start_requests:
            raise AirflowFailException(
                f"Sample {self.sample['sample_id']}: no run request in XCom {key!r} of task {task_id!r}"
            )
        return dict(start_requests[self.sample["sample_id"]])

    def start_request(self) -> dict[str, Any] | None:
        # A sample that follows its batch's run carries no request (its parameters are the run's).
        request = self.sample.get("request")
        return dict(request) if isinstance(request, dict) and "existing_run" not in self.sample else None

    # -- waiting and finishing -------------------------------------------------------

    def labels(self) -> dict[str, Any]:
        """What names this task's run in its result and failure XComs (the sample)."""
        return {"sample_id": self.sample["sample_id"]}

    def _follow(self, context: Context, run: dict[str, Any], attempt: int, batch_id: str | None) -> dict[str, Any]:
        summary = {**run_summary(run), **self.labels(), "attempt": attempt}
        return self.follow_run(context, run, summary, batch_id=batch_id)

    def known_about_run(self, context: Context) -> dict[str, Any]:
        last = SubmissionJournal(context, STATE_KEY).last()
        known: dict[str, Any] = self.labels()
        if last is not None:
            known["attempt"] = last.attempt
        return known

    def run_failed(self, context: Context, run: dict[str, Any], message: str | None) -> NoReturn:
        """Record the failure for the QC gate and the report, then fail the task for good.

        A run that failed is not run again by the task's retries (each would be a new paid
        run); retries are for what goes wrong around it (a lost worker, an API error).
        Clearing the task runs the sample again.
        """
        failure = {
            **self.labels(),
            "id": run.get("id"),
            "status": run.get("status", "FAILED"),
            "failureReason": run.get("failureReason"),
            "statusMessage": run.get("statusMessage") or message,  # the service's own words first
            "attempt": run.get("attempt"),
            "creationTime": run.get("creationTime"),  # what the failed run took, for the report
            "startTime": run.get("startTime"),
            "stopTime": run.get("stopTime"),
        }
        context["ti"].xcom_push(key=FAILURE_XCOM, value=failure)
        journal = SubmissionJournal(context, STATE_KEY)
        last, max_tries = journal.last(), getattr(context["ti"], "max_tries", None)
        if last is not None and isinstance(max_tries, int):
            journal.record(replace(last, ended_at_max_tries=max_tries))
        error: Exception
        if failure["status"] == "NOT_SUBMITTED":
            error = HealthOmicsSubmissionError(f"Sample {self.sample['sample_id']}: {message}")
        else:
            error = HealthOmicsRunFailedError(
                str(failure["id"]), failure["status"], failure["failureReason"], failure["statusMessage"]
            )
        raise AirflowFailException(str(error)) from error
