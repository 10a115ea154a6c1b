"""One sequencing flowcell through AWS HealthOmics.

manifest -> validate everything -> submit (a run batch per workflow, or one run per sample)
-> one mapped task per sample (deferred, named by sample id) -> QC gate (after every sample,
whatever its state) -> QC run -> notification (always) -> flowcell outcome.

Trigger it from the UI (the Params form), with ``airflow dags trigger --conf``, or through
the REST API. The logic lives in ``plugins/healthomics``; this file only wires it.
"""

from __future__ import annotations

import datetime as dt
import os

from airflow.sdk import DAG, task

from healthomics.flowcell import tasks as flowcell
from healthomics.flowcell.tasks import TASK_DEFAULTS
from healthomics.operators.batch import HealthOmicsStartRunBatchOperator
from healthomics.operators.run import HealthOmicsStartRunOperator
from healthomics.operators.sample import HealthOmicsSampleRunOperator

# Seconds between status polls (one ListRuns page per 100 waiting samples each time).
POLL_SECONDS = float(os.environ.get("HEALTHOMICS_POLL_SECONDS", "60"))
# Flowcells in flight at once (the rest queue): size it to the account's HealthOmics run quotas.
MAX_ACTIVE_FLOWCELLS = int(os.environ.get("HEALTHOMICS_MAX_ACTIVE_FLOWCELLS", "8"))

with DAG(
    dag_id="healthomics_flowcell",
    description="Run every sample of a sequencing flowcell on AWS HealthOmics, then QC, then notify",
    schedule=None,
    start_date=dt.datetime(2026, 1, 1, tzinfo=dt.UTC),
    catchup=False,
    default_args=TASK_DEFAULTS,
    max_active_runs=MAX_ACTIVE_FLOWCELLS,
    params=flowcell.PARAMS,
    tags=["healthomics", "genomics"],
    doc_md=__doc__,
) as dag:
    # Invalid input fails for good (AirflowFailException); throttling or a 5xx is retried.
    plan = task(flowcell.load_manifest, task_id=flowcell.LOAD_TASK, retries=2, retry_delay=dt.timedelta(seconds=30))()
    go = task.short_circuit(flowcell.proceed, task_id="proceed", ignore_downstream_trigger_rules=False)(plan)

    submit = HealthOmicsStartRunBatchOperator.partial(
        task_id="submit_batch",
        aws_conn_id=flowcell.AWS_CONN_ID,
        deferrable=True,
        poll_interval=POLL_SECONDS,
        fail_on_submission_failure=False,  # the sample tasks report refused samples one by one
        retries=2,
        retry_delay=dt.timedelta(minutes=1),
    ).expand_kwargs(task(flowcell.batches_of, task_id="batches")(plan))

    entries = task(
        flowcell.entries_for_samples, task_id=flowcell.ENTRIES_TASK, trigger_rule="none_failed_min_one_success"
    )(plan, submit.output)
    samples = HealthOmicsSampleRunOperator.partial(
        task_id=flowcell.SAMPLE_TASK,
        aws_conn_id=flowcell.AWS_CONN_ID,
        deferrable=True,
        poll_interval=POLL_SECONDS,
        map_index_template="{{ task.sample['sample_id'] }}",
        wake_queue_url=flowcell.WAKE_QUEUE_URL,
        start_requests_from=(flowcell.ENTRIES_TASK, flowcell.START_REQUESTS_XCOM),
        # A lost worker or an API error is retried; a failed run is not (clear the task to pay for
        # another run; it resumes from the run cache).
        retries=2,
        retry_delay=dt.timedelta(seconds=30),
    ).expand(sample=entries)

    gate = task(flowcell.qc_gate, task_id=flowcell.QC_GATE_TASK, trigger_rule="all_done", multiple_outputs=True)()
    qc = HealthOmicsStartRunOperator(
        task_id=flowcell.QC_TASK,
        aws_conn_id=flowcell.AWS_CONN_ID,
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
        wake_queue_url=flowcell.WAKE_QUEUE_URL,
    )
    report = task(
        flowcell.notify, task_id="notify", trigger_rule="all_done", retries=3, retry_delay=dt.timedelta(seconds=30)
    )()
    verdict = task(flowcell.flowcell_outcome, task_id="flowcell_outcome", trigger_rule="all_done")()

    go >> [submit, entries]  # a dry run stops here
    samples >> gate >> qc >> report >> verdict
    plan >> [gate, report, verdict]  # they read the plan themselves: an invalid manifest still gets a report
