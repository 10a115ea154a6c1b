"""One sequencing flowcell through AWS HealthOmics.

manifest -> validate everything -> submit (a run batch per workflow, or one run per sample)
-> one mapped task per sample (deferred, named by sample id) -> QC gate (after every sample,
whatever its state) -> QC run -> notification (always) -> flowcell outcome.

Trigger it from the UI (the Params form), with ``airflow dags trigger --conf``, or through
the REST API. The logic lives in ``plugins/healthomics``; this file only wires it.
"""

from __future__ import annotations

import datetime as dt

from airflow.sdk import DAG, task

from healthomics import settings
from healthomics.flowcell import delivery, load, qc, task_ids
from healthomics.flowcell.params import PARAMS
from healthomics.flowcell.sample import HealthOmicsSampleRunOperator
from healthomics.operators.batch import HealthOmicsStartRunBatchOperator
from healthomics.operators.run import HealthOmicsStartRunOperator

POLL_SECONDS = settings.poll_seconds()

with DAG(
    dag_id="healthomics_flowcell",
    description="Run every sample of a sequencing flowcell on AWS HealthOmics, then QC, then notify",
    schedule=None,
    start_date=dt.datetime(2026, 1, 1, tzinfo=dt.UTC),
    catchup=False,
    default_args=settings.TASK_DEFAULTS,
    max_active_runs=settings.max_active_flowcells(),
    params=PARAMS,
    tags=["healthomics", "genomics"],
    doc_md=__doc__,
) as dag:
    # Invalid input fails for good (AirflowFailException); throttling or a 5xx is retried.
    plan = task(load.load_manifest, task_id=task_ids.LOAD_TASK, retries=2, retry_delay=dt.timedelta(seconds=30))()
    go = task.short_circuit(load.proceed, task_id="proceed", ignore_downstream_trigger_rules=False)(plan)

    submit = HealthOmicsStartRunBatchOperator.partial(
        task_id="submit_batch",
        aws_conn_id=settings.AWS_CONN_ID,
        deferrable=True,
        poll_interval=POLL_SECONDS,
        fail_on_submission_failure=False,  # the sample tasks report refused samples one by one
        retries=2,
        retry_delay=dt.timedelta(minutes=1),
    ).expand_kwargs(task(load.batches_of, task_id="batches")(plan))

    entries = task(load.entries_for_samples, task_id=task_ids.ENTRIES_TASK, trigger_rule="none_failed_min_one_success")(
        plan, submit.output
    )
    samples = HealthOmicsSampleRunOperator.partial(
        task_id=task_ids.SAMPLE_TASK,
        aws_conn_id=settings.AWS_CONN_ID,
        deferrable=True,
        poll_interval=POLL_SECONDS,
        map_index_template="{{ task.sample['sample_id'] }}",
        wake_queue_url=settings.WAKE_QUEUE_URL,
        start_requests_from=(task_ids.ENTRIES_TASK, task_ids.START_REQUESTS_XCOM),
        # A lost worker or an API error is retried; a failed run is not (clear the task to pay for
        # another run; it resumes from the run cache).
        retries=2,
        retry_delay=dt.timedelta(seconds=30),
    ).expand(sample=entries)

    gate = task(qc.qc_gate, task_id=task_ids.QC_GATE_TASK, trigger_rule="all_done", multiple_outputs=True)()
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
        poll_interval=POLL_SECONDS,
        wake_queue_url=settings.WAKE_QUEUE_URL,
    )
    report = task(
        delivery.notify, task_id="notify", trigger_rule="all_done", retries=3, retry_delay=dt.timedelta(seconds=30)
    )()
    verdict = task(qc.flowcell_outcome, task_id="flowcell_outcome", trigger_rule="all_done")()

    go >> [submit, entries]  # a dry run stops here
    samples >> gate >> qc_run >> report >> verdict
    plan >> [gate, report, verdict]  # they read the plan themselves: an invalid manifest still gets a report
