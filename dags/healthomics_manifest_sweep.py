"""Start one flowcell run for every manifest that lands in S3, without an event queue.

A deferrable S3 key sensor (the amazon provider's, waiting in the triggerer) waits until a
manifest has landed under the prefix since the last successful sweep; then each manifest of that
window gets its ``healthomics_flowcell`` (or ``healthomics_pipeline``) run, with the same
deterministic run id as the events path (flowcell id + ETag), so overlapping windows, rescans
and both paths together never start a manifest twice. A sweep that finds nothing before its
timeout is skipped.

Manifests that landed between two past dates: ``airflow backfill create --dag-id
healthomics_manifest_sweep --from-date ... --to-date ...`` sweeps exactly those intervals.
Prefix: the ``manifest_prefix`` param, else the option ``[healthomics] manifest_prefix``.
"""

from __future__ import annotations

import datetime as dt

from airflow.providers.amazon.aws.sensors.s3 import S3KeySensor
from airflow.providers.standard.operators.trigger_dagrun import TriggerDagRunOperator
from airflow.sdk import DAG, task

from healthomics import settings
from healthomics.intake import tasks as intake

with DAG(
    dag_id="healthomics_manifest_sweep",
    description="One healthomics_flowcell run per manifest landing in S3 (deferrable S3 key sensor)",
    schedule=settings.sweep_schedule(),
    start_date=dt.datetime(2026, 1, 1, tzinfo=dt.UTC),
    catchup=False,
    default_args=settings.TASK_DEFAULTS,
    max_active_runs=1,
    params=intake.SWEEP_PARAMS,
    user_defined_macros={"sensor_bucket": intake.sensor_bucket, "sensor_key": intake.sensor_key},
    tags=["healthomics", "intake"],
    doc_md=__doc__,
) as dag:
    landed = S3KeySensor(
        task_id="wait_for_manifest",
        aws_conn_id=settings.AWS_CONN_ID,
        bucket_name="{{ sensor_bucket(params) }}",
        bucket_key="{{ sensor_key(params) }}",
        wildcard_match=True,
        check_fn=intake.landed_in_window,
        metadata_keys=["Key", "LastModified"],
        deferrable=True,
        poke_interval=settings.sweep_poke_seconds(),
        timeout=intake.SWEEP_WAIT.total_seconds() + 600,  # (check_fn skips the sweep at SWEEP_WAIT)
        soft_fail=True,
    )
    manifests = task(intake.manifests_in_window, task_id=intake.MANIFESTS_TASK)()
    runs = task(intake.runs_for_manifests, task_id=intake.RUNS_TASK)(manifests)
    trigger = TriggerDagRunOperator.partial(
        task_id=intake.TRIGGER_TASK,
        # trigger_dag_id per manifest: healthomics_pipeline for one with stages
        skip_when_already_exists=True,
        map_index_template="{{ task.trigger_run_id }}",
    ).expand_kwargs(runs)
    # A manifest left without a run fails the sweep, so the next one takes its window again.
    outcome = task(intake.sweep_outcome, task_id="sweep_outcome", trigger_rule="all_done")()
    landed >> manifests
    trigger >> outcome
