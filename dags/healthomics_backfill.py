"""Re-run past flowcells after a workflow version change, a failure, or a reference update.

Pick flowcells by id, by S3 prefix, or by the day their manifest landed; choose what runs
again (samples with no COMPLETED run of this workflow version, failed ones, or all). Each
flowcell's plan (one mapped task per flowcell) shows what will happen to every sample before
anything starts; a dry run (the default) stops there. Completed runs are found through run
tags and reused, so their outputs still reach QC; live runs are never duplicated.

Flowcell runs in flight are bounded by ``healthomics_flowcell``'s ``max_active_runs``
([healthomics] max_active_flowcells); a backfill of 200 flowcells queues the rest.
"""

from __future__ import annotations

import datetime as dt

from airflow.providers.standard.operators.trigger_dagrun import TriggerDagRunOperator
from airflow.sdk import DAG, task

from healthomics import settings
from healthomics.reruns import tasks as reruns

with DAG(
    dag_id="healthomics_backfill",
    description="Re-run past flowcells: only what is missing, failed, or everything",
    schedule=None,
    start_date=dt.datetime(2026, 1, 1, tzinfo=dt.UTC),
    catchup=False,
    default_args=settings.TASK_DEFAULTS,
    params=reruns.PARAMS,
    tags=["healthomics", "backfill"],
    doc_md=__doc__,
) as dag:
    flowcells = task(reruns.select_flowcells, task_id="select_flowcells", retries=0)()
    plans = task(
        reruns.plan_flowcell,
        task_id=reruns.PLAN_TASK,
        map_index_template="{{ flowcell_id }}",
        retries=2,
    ).expand(flowcell=flowcells)
    runs = task(reruns.runs_to_trigger, task_id="runs_to_trigger", trigger_rule="all_done")(plans)
    trigger = TriggerDagRunOperator.partial(
        task_id="trigger_flowcell",
        # trigger_dag_id per flowcell: healthomics_pipeline for a pipeline
        skip_when_already_exists=True,  # a retried trigger finds its run
        map_index_template="{{ task.trigger_run_id }}",
    ).expand_kwargs(runs)
    trigger >> task(reruns.backfill_outcome, task_id="backfill_outcome", trigger_rule="all_done")()
