"""Submit many runs of one workflow as a HealthOmics run batch (StartRunBatch)."""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from airflow.providers.amazon.aws.hooks.s3 import S3Hook
from airflow.providers.amazon.aws.operators.base_aws import AwsBaseOperator
from airflow.providers.amazon.aws.utils import validate_execute_complete_event
from airflow.providers.amazon.aws.utils.mixins import aws_template_fields
from airflow.providers.common.compat.sdk import AirflowFailException, conf
from botocore.exceptions import ClientError

from healthomics.exceptions import HealthOmicsSubmissionError
from healthomics.hooks.omics import (
    BATCH_CANCELLABLE_STATES,
    HealthOmicsHook,
    error_code,
    error_message,
    is_refusal,
    max_attempts,
)
from healthomics.links.omics import HealthOmicsBatchLink
from healthomics.triggers.base import connection_kwargs
from healthomics.triggers.batch import HealthOmicsBatchSubmissionTrigger
from healthomics.utils.idempotency import (
    TAG_DAG_RUN_ID,
    Submission,
    SubmissionJournal,
    default_idempotency_key,
    provenance_tags,
)
from healthomics.utils.s3 import InvalidS3UriError, parse_s3_uri
from healthomics.utils.text import cut

if TYPE_CHECKING:
    from airflow.sdk import Context

# How long a batch may take to submit when max_wait is None: HealthOmics' own limit on a run's life.
MAX_SUBMISSION_SECONDS = 7 * 24 * 3600

# task_state_store key of the batch operator's Submission record (see SubmissionJournal).
STATE_KEY = "healthomics_batch"


class HealthOmicsStartRunBatchOperator(AwsBaseOperator[HealthOmicsHook]):
    """
    Submit runs of one workflow as one HealthOmics run batch, and wait until all are submitted.

    ``run_settings`` holds one entry per run with ``runSettingId`` (use the sample id) and the
    per-run overrides the service allows (``name``, ``outputUri``, ``priority``,
    ``parameters`` and ``runTags`` — the last two merged key by key over
    ``default_run_setting``). Up to 100 entries go inline; above that the operator writes them
    as a JSON array to S3 itself and passes ``s3UriSettings``.

    Submission is idempotent (deterministic ``requestId``; batch tagged with the DAG, DAG run,
    task and idempotency key); a retry after the batch FAILED or was CANCELLED submits a new
    attempt. The service releases the runs gradually at the account's StartRun rate; the task
    waits (deferrable) until every run is submitted or refused, then returns::

        {"batchId": ..., "arn": ..., "status": ..., "attempt": 1, "dagRunId": ...,
         "runs": {"<runSettingId>": {"id", "arn", "uuid", "runOutputUri"}, ...},
         "failed": {"<runSettingId>": {"reason", "message"}, ...}}

    ``dagRunId`` is the DAG run that started the batch (its tag): another one's when a DAG run
    of the same input found an earlier batch again.

    Runs whose submission failed are reported with the service's reason; with
    ``fail_on_submission_failure`` the task then fails (after pushing that result to XCom), so a
    flowcell DAG can instead let per-sample tasks report them. A batch the service refuses
    outright (a 4xx other than throttling: ``ValidationException``, ``AccessDeniedException``,
    ...) is not retried: every run of it is reported failed with the service's code and message
    (``"status": "REFUSED"``, no ``batchId``). Killing the task while it waits cancels the batch.

    .. seealso::
        - :external+boto3:py:meth:`Omics.Client.start_run_batch`

    :param default_run_setting: ``defaultRunSetting`` (``workflowId``, ``roleArn``,
        ``outputUri``, ``parameters``, ``runTags``, storage and cache settings, ...).
    :param run_settings: per-run settings, each with a unique ``runSettingId``.
    :param batch_name: batch name (default: derived from the DAG and task).
    :param tags: tags for the batch itself (runs get ``runTags``).
    :param settings_uri_prefix: S3 prefix for the settings file of batches above 100 runs
        (default: ``<outputUri>/.healthomics/batch-settings``).
    :param idempotency_key: what makes two submits the same (see
        :class:`~healthomics.operators.run.HealthOmicsStartRunOperator`).
    :param wait_for_submission: wait until every run is submitted or refused (default True).
    :param fail_on_submission_failure: fail the task if any run could not be submitted.
    :param deferrable: wait in the triggerer instead of a worker slot.
    :param poll_interval: seconds between GetBatch polls.
    :param max_wait: how long to wait for the submission (None: as long as it takes).
    :param cancel_on_kill: cancel the batch when the task is killed.

    Connection arguments (``aws_conn_id``, ``region_name``, ``verify``, ``botocore_config``)
    as in the amazon provider.
    """

    aws_hook_class = HealthOmicsHook
    template_fields: Sequence[str] = aws_template_fields(
        "default_run_setting",
        "run_settings",
        "batch_name",
        "tags",
        "settings_uri_prefix",
        "idempotency_key",
    )
    template_fields_renderers = {"default_run_setting": "json", "run_settings": "json", "tags": "json"}
    operator_extra_links = (HealthOmicsBatchLink(),)
    ui_color = "#d5ecf6"

    def __init__(
        self,
        *,
        default_run_setting: dict[str, Any],
        run_settings: list[dict[str, Any]],
        batch_name: str | None = None,
        tags: dict[str, str] | None = None,
        settings_uri_prefix: str | None = None,
        idempotency_key: str | None = None,
        wait_for_submission: bool = True,
        fail_on_submission_failure: bool = True,
        deferrable: bool = conf.getboolean("operators", "default_deferrable", fallback=False),
        poll_interval: float = 30,
        max_wait: timedelta | None = None,
        cancel_on_kill: bool = True,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.default_run_setting = default_run_setting
        self.run_settings = run_settings
        self.batch_name = batch_name
        self.tags = tags
        self.settings_uri_prefix = settings_uri_prefix
        self.idempotency_key = idempotency_key
        self.wait_for_submission = wait_for_submission
        self.fail_on_submission_failure = fail_on_submission_failure
        self.deferrable = deferrable
        self.poll_interval = poll_interval
        self.max_wait = max_wait
        self.cancel_on_kill = cancel_on_kill
        self.batch_id: str | None = None

    # -- submit ----------------------------------------------------------------

    def execute(self, context: Context) -> dict[str, Any]:
        if self.default_run_setting.get("workflowType") == "READY2RUN":
            raise HealthOmicsSubmissionError(
                "Ready2Run workflows cannot run in a batch; start one run per sample instead"
            )
        ids = [s.get("runSettingId") for s in self.run_settings]
        if not ids or any(not i for i in ids) or len(set(ids)) != len(ids):
            raise HealthOmicsSubmissionError("run_settings need one unique, non-empty runSettingId each")
        key = self.idempotency_key or default_idempotency_key(context)
        journal = SubmissionJournal(context, STATE_KEY)
        last = journal.last(key)
        ti = context["ti"]
        try:
            batch, attempt = self.hook.start_run_batch_idempotently(
                batch_name=(self.batch_name or f"{ti.dag_id}.{ti.task_id}")[:64],
                default_run_setting=self.default_run_setting,
                run_settings=self.run_settings,
                idempotency_key=key,
                tags={**(self.tags or {}), **provenance_tags(context)},
                settings_file=self._settings_file,
                first_attempt=last.attempt if last else 1,
                journal=journal,
            )
        except ClientError as err:
            if not is_refusal(err):
                raise  # throttling, 5xx: the task's retries
            return self._refused(context, (journal.last(key) or Submission(key, 1)).attempt, err)
        self.batch_id = batch["id"]
        self.log.info(
            "Run batch %s (%d runs, attempt %d) is %s", batch["id"], len(self.run_settings), attempt, batch["status"]
        )
        HealthOmicsBatchLink.persist(
            context=context,
            operator=self,
            region_name=self.hook.conn_region_name,
            aws_partition=self.hook.conn_partition,
            batch_id=batch["id"],
        )
        if not self.wait_for_submission:
            return {"batchId": batch["id"], "arn": batch["arn"], "status": batch["status"], "attempt": attempt}
        timeout = self.max_wait.total_seconds() if self.max_wait else None
        if self.deferrable:
            self.defer(
                trigger=HealthOmicsBatchSubmissionTrigger(
                    batch_id=batch["id"],
                    waiter_delay=self.poll_interval,
                    waiter_max_attempts=max_attempts(timeout or MAX_SUBMISSION_SECONDS, self.poll_interval),
                    cancel_on_kill=self.cancel_on_kill,
                    **connection_kwargs(self),
                ),
                method_name="execute_complete",
                kwargs={"attempt": attempt},
            )
        self.hook.wait_for_batch_submission(batch["id"], poll_interval=self.poll_interval, timeout=timeout)
        return self._result(context, batch["id"], attempt)

    def _settings_file(self, token: str) -> str:
        """The batch's run settings as a JSON array in S3, named after its requestId (above 100 runs)."""
        prefix = self.settings_uri_prefix or (
            f"{str(self.default_run_setting.get('outputUri', '')).rstrip('/')}/.healthomics/batch-settings"
        )
        try:
            location = parse_s3_uri(prefix).join(f"{token}.json")
        except InvalidS3UriError as err:
            raise HealthOmicsSubmissionError(
                f"{len(self.run_settings)} runs need a settings file in S3: set settings_uri_prefix or "
                f"defaultRunSetting.outputUri to an s3:// URI ({err})"
            ) from err
        uri, bucket, object_key = location.uri, location.bucket, location.key
        s3 = S3Hook(aws_conn_id=self.aws_conn_id, region_name=self.region_name, verify=self.verify)
        # The service records the file's ETag at submit and fails the batch if it changes, so a
        # resubmit never rewrites it (the name is the requestId: same content by construction).
        if not s3.check_for_key(object_key, bucket_name=bucket):
            s3.load_bytes(json.dumps(self.run_settings).encode(), key=object_key, bucket_name=bucket)
            self.log.info("Wrote %d run settings to %s", len(self.run_settings), uri)
        return uri

    # -- results -------------------------------------------------------------

    def execute_complete(self, context: Context, event: dict[str, Any] | None = None, attempt: int = 1) -> Any:
        validated = validate_execute_complete_event(event)
        if validated.get("status") != "success":
            raise HealthOmicsSubmissionError(
                f"Run batch {validated.get('batch_id')} was not submitted in time ({validated.get('status')})"
            )
        return self._result(context, validated["batch_id"], attempt)

    def _refused(self, context: Context, attempt: int, err: ClientError) -> dict[str, Any]:
        """Every run of a refused batch, failed with the service's reason (the same request is refused again)."""
        reason, message = error_code(err), cut(error_message(err), 300)
        self.log.error("StartRunBatch refused (%s): %s", reason, error_message(err))
        failed = {str(s["runSettingId"]): {"reason": reason, "message": message} for s in self.run_settings}
        result = {"batchId": None, "arn": None, "status": "REFUSED", "attempt": attempt, "runs": {}, "failed": failed}
        if self.fail_on_submission_failure:
            context["ti"].xcom_push(key="return_value", value=result)
            raise AirflowFailException(f"StartRunBatch refused ({reason}): {cut(error_message(err))}") from err
        return result

    def _result(self, context: Context, batch_id: str, attempt: int) -> dict[str, Any]:
        batch = self.hook.get_batch(batch_id)
        output_uris = {
            s["runSettingId"]: s.get("outputUri") or self.default_run_setting.get("outputUri")
            for s in self.run_settings
        }
        runs: dict[str, dict[str, Any]] = {}
        failed: dict[str, dict[str, Any]] = {}
        for entry in self.hook.iter_runs_in_batch(batch_id):
            sample = entry["runSettingId"]
            if entry.get("runId"):
                runs[sample] = {"id": entry["runId"], "arn": entry.get("runArn"), "uuid": entry.get("runInternalUuid")}
                if output_uris.get(sample):
                    runs[sample]["runOutputUri"] = f"{str(output_uris[sample]).rstrip('/')}/{entry['runId']}"
            elif entry.get("submissionStatus") == "FAILED":
                failed[sample] = {
                    "reason": entry.get("submissionFailureReason"),
                    "message": entry.get("submissionFailureMessage"),
                }
        if batch["status"] == "FAILED":
            for sample in output_uris:
                failed.setdefault(sample, {"reason": "BatchFailed", "message": batch.get("failureReason")})
        for sample in output_uris:  # never submitted: the batch was cancelled first
            if sample not in runs and sample not in failed:
                failed[sample] = {"reason": "NotSubmitted", "message": f"batch ended {batch['status']} first"}
        result = {
            "batchId": batch_id,
            "arn": batch["arn"],
            "status": batch["status"],
            "attempt": attempt,
            "dagRunId": (batch.get("tags") or {}).get(TAG_DAG_RUN_ID),
            "runs": runs,
            "failed": failed,
        }
        if failed and self.fail_on_submission_failure:
            context["ti"].xcom_push(key="return_value", value=result)
            lines = [f"  {sample}: {f['reason']}: {f['message']}" for sample, f in sorted(failed.items())]
            raise HealthOmicsSubmissionError(
                f"Run batch {batch_id}: {len(failed)} of {len(output_uris)} runs were not submitted:\n"
                + "\n".join(lines)
            )
        return result

    def on_kill(self) -> None:
        """Cancel the batch when the task is killed on a worker while it waits."""
        if not (self.cancel_on_kill and self.batch_id):
            return
        if self.hook.get_batch(self.batch_id)["status"] in BATCH_CANCELLABLE_STATES:
            self.hook.cancel_run_batch(self.batch_id)
