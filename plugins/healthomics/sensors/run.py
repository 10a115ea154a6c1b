"""Wait for an existing HealthOmics run to finish."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from airflow.providers.amazon.aws.sensors.base_aws import AwsBaseSensor
from airflow.providers.amazon.aws.utils.mixins import aws_template_fields
from airflow.providers.common.compat.sdk import conf

from healthomics.exceptions import HealthOmicsRunFailedError
from healthomics.hooks.omics import RUN_FAILURE_STATES, RUN_SUCCESS_STATES, HealthOmicsHook, run_summary
from healthomics.links.omics import HealthOmicsRunLink, HealthOmicsRunLogsLink, persist_run_links
from healthomics.triggers.base import connection_kwargs, deadline_after, may_end_from_trigger
from healthomics.triggers.run import HealthOmicsRunTrigger, read_run_event

if TYPE_CHECKING:
    from airflow.sdk import Context


class HealthOmicsRunSensor(AwsBaseSensor[HealthOmicsHook]):
    """
    Wait until a HealthOmics run finishes; succeed only if it COMPLETED.

    FAILED, CANCELLED and DELETED fail the task with the service's ``failureReason`` and
    ``statusMessage`` (a cancelled run never leaves the sensor waiting). The wait is bounded
    by the sensor ``timeout`` (default: 7 days, the service's maximum run duration), not by
    the 10 minutes of the SDK's ``run_completed`` waiter. In deferrable mode, sensors of runs
    of the same batch share one ListRuns poll in the triggerer (pass ``batch_id``).

    Returns the run summary (``id``, ``arn``, ``uuid``, ``status``, ``runOutputUri``, times).

    :param run_id: the run to wait for.
    :param batch_id: the run's batch, to share polling with its siblings (deferrable mode).
    :param deferrable: wait in the triggerer instead of a worker slot.
    :param poll_interval: seconds between checks.
    :param end_from_trigger: in deferrable mode, let the trigger end the task (ignored while listener
        plugins, e.g. OpenLineage, are registered: they hear only of tasks that end on a worker).
    :param cancel_on_kill: cancel the run if the (deferred) task is killed.
    :param wake_queue_url: SQS queue of "Run Status Change" events; in deferrable mode an event
        about the run ends the wait for the next poll early (polling stays authoritative).

    Connection arguments (``aws_conn_id``, ``region_name``, ``verify``, ``botocore_config``)
    as in the amazon provider.
    """

    aws_hook_class = HealthOmicsHook
    template_fields: Sequence[str] = aws_template_fields("run_id", "batch_id", "wake_queue_url")
    operator_extra_links = (HealthOmicsRunLink(), HealthOmicsRunLogsLink())
    ui_color = "#d5ecf6"

    def __init__(
        self,
        *,
        run_id: str,
        batch_id: str | None = None,
        deferrable: bool = conf.getboolean("operators", "default_deferrable", fallback=False),
        poll_interval: float = 60,
        end_from_trigger: bool = False,
        cancel_on_kill: bool = False,
        wake_queue_url: str | None = None,
        timeout: float = timedelta(days=7).total_seconds(),
        **kwargs: Any,
    ) -> None:
        super().__init__(timeout=timeout, poke_interval=poll_interval, **kwargs)
        self.run_id = run_id
        self.batch_id = batch_id
        self.deferrable = deferrable
        self.poll_interval = poll_interval
        self.end_from_trigger = end_from_trigger and may_end_from_trigger()
        self.cancel_on_kill = cancel_on_kill
        self.wake_queue_url = wake_queue_url

    def poke(self, context: Context) -> bool:
        run = self.hook.get_run(self.run_id)
        if run["status"] in RUN_FAILURE_STATES:
            raise HealthOmicsRunFailedError.from_run(run)
        if run["status"] in RUN_SUCCESS_STATES:
            self._completed = run_summary(run)
            return True
        self.log.info("HealthOmics run %s is %s", self.run_id, run["status"])
        return False

    def execute(self, context: Context) -> Any:
        persist_run_links(context, self, self.hook, self.run_id)
        if not self.deferrable:
            super().execute(context)
            return self._completed
        self.defer(
            trigger=HealthOmicsRunTrigger(
                run_id=self.run_id,
                batch_id=self.batch_id,
                poll_interval=self.poll_interval,
                deadline=deadline_after(timedelta(seconds=self.timeout)),
                end_from_trigger=self.end_from_trigger,
                cancel_on_kill=self.cancel_on_kill,
                wake_queue_url=self.wake_queue_url,
                **connection_kwargs(self),
            ),
            method_name="execute_complete",
        )

    def execute_complete(self, context: Context, event: dict[str, Any] | str | None = None) -> dict[str, Any]:
        validated = read_run_event(event, self.hook, context)
        run = dict(validated.get("run", {}))
        if validated.get("status") != "success":
            raise HealthOmicsRunFailedError(
                self.run_id,
                run.get("status", validated.get("status", "UNKNOWN")),
                run.get("failureReason"),
                validated.get("message") or run.get("statusMessage"),
            )
        return run
