"""The tasks every flowcell DAG shares, wired around its per-sample part.

manifest -> validate everything -> submit (a run batch per workflow, or one run per sample)
-> the per-sample tasks (mapped, named by sample id) -> QC gate (after every sample, whatever
its state) -> QC run -> notification (always) -> flowcell outcome; beside QC, the runs' costs
for the report.

``healthomics_flowcell`` gives it one mapped task per sample; ``healthomics_pipeline`` a mapped
task group per sample with one task per stage.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from typing import Any

from airflow.sdk import AssetAlias, XComArg, task

from healthomics import settings
from healthomics.flowcell import costs, delivery, load, qc, task_ids
from healthomics.flowcell.params import PARAMS
from healthomics.operators.batch import HealthOmicsStartRunBatchOperator
from healthomics.operators.run import HealthOmicsStartRunOperator


def flowcell_dag_args() -> dict[str, Any]:
    """What every flowcell DAG is declared with: no schedule (a flowcell is an event, not an
    interval), the flowcell Params form, the package's task defaults, flowcells in flight."""
    return {
        "schedule": None,
        "start_date": dt.datetime(2026, 1, 1, tzinfo=dt.UTC),
        "catchup": False,
        "default_args": settings.TASK_DEFAULTS,
        "max_active_runs": settings.max_active_flowcells(),
        "params": PARAMS,
    }


# What the sample tasks share: a lost worker or an API error is retried; a failed run is not
# (clear the task to pay for another run; it resumes from the run cache).
SAMPLE_TASK_ARGS: dict[str, Any] = {
    "aws_conn_id": settings.AWS_CONN_ID,
    "deferrable": True,
    "wake_queue_url": settings.WAKE_QUEUE_URL,
    "start_requests_from": (task_ids.ENTRIES_TASK, task_ids.START_REQUESTS_XCOM),
    "retries": 2,
    "retry_delay": dt.timedelta(seconds=30),
}


def flowcell_tasks(per_sample: Callable[[XComArg], Any], *, stage_slots: int | None = None) -> None:
    """Add the flowcell's tasks to the DAG being defined; ``per_sample(entries)`` adds the sample tasks
    (mapped over the entries) and returns what the QC gate waits for.

    :param stage_slots: a pipeline DAG's stage tasks per sample (None: one task per sample).
    """
    poll_seconds = settings.poll_seconds()
    # Invalid input fails for good (AirflowFailException); throttling or a 5xx is retried.
    plan: Any = task(task_id=task_ids.LOAD_TASK, retries=2, retry_delay=dt.timedelta(seconds=30))(load.load_manifest)(
        stage_slots=stage_slots
    )
    go = task.short_circuit(task_id="proceed", ignore_downstream_trigger_rules=False)(load.proceed)(plan)

    submit = HealthOmicsStartRunBatchOperator.partial(
        task_id="submit_batch",
        aws_conn_id=settings.AWS_CONN_ID,
        deferrable=True,
        poll_interval=poll_seconds,
        fail_on_submission_failure=False,  # the sample tasks report refused samples one by one
        retries=2,
        retry_delay=dt.timedelta(minutes=1),
    ).expand_kwargs(task(task_id="batches")(load.batches_of)(plan))

    entries: Any = task(task_id=task_ids.ENTRIES_TASK, trigger_rule="none_failed_min_one_success")(
        load.entries_for_samples
    )(plan, submit.output)
    samples = per_sample(entries)

    gate: Any = task(task_id=task_ids.QC_GATE_TASK, trigger_rule="all_done", multiple_outputs=True)(qc.qc_gate)()
    qc_run = HealthOmicsStartRunOperator(
        task_id=task_ids.QC_TASK,
        aws_conn_id=settings.AWS_CONN_ID,
        workflow_id=gate["workflow_id"],
        role_arn=gate["role_arn"],
        output_uri=gate["output_uri"],
        name=gate["name"],
        parameters=gate["parameters"],
        tags=gate["tags"],
        run_options=gate["run_options"],
        idempotency_key=gate["idempotency_key"],
        deferrable=True,
        end_from_trigger=True,
        poll_interval=poll_seconds,
        wake_queue_url=settings.WAKE_QUEUE_URL,
    )
    # Pricing the runs (a GetRun and a ListRunTasks each) goes on beside QC and never fails the flowcell.
    priced = task(
        task_id=task_ids.COSTS_TASK, trigger_rule="all_done", retries=1, retry_delay=dt.timedelta(seconds=30)
    )(costs.costs)()
    report = task(
        task_id=task_ids.NOTIFY_TASK,
        trigger_rule="all_done",
        retries=3,
        retry_delay=dt.timedelta(seconds=30),
        outlets=[AssetAlias(task_ids.OUTPUTS_ASSET_ALIAS)],
    )(delivery.notify)()
    verdict = task(task_id="flowcell_outcome", trigger_rule="all_done")(qc.flowcell_outcome)()

    go >> [submit, entries]  # a dry run stops here
    # The verdict waits for the samples and QC only: pricing never delays the flowcell's outcome.
    samples >> gate >> qc_run >> [report, verdict]
    samples >> priced >> report
    plan >> [gate, priced, report, verdict]  # they read the plan themselves: an invalid manifest still gets a report
