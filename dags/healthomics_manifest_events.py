"""Start one flowcell run for every manifest that lands in S3, from S3 event notifications.

S3 (ObjectCreated under the manifest prefix) -> SQS -> an Asset watcher (the amazon provider's
SqsSensorTrigger, in the triggerer) -> an asset event -> this DAG -> one
``healthomics_flowcell`` run (``healthomics_pipeline`` for a manifest with stages) per manifest
version, its run id made of flowcell id + ETag, so a duplicate event starts nothing and a
changed manifest starts a new run.

Configure with the options ``manifest_prefix`` (s3://<bucket>/<prefix>/) and
``manifest_queue_url`` of the ``[healthomics]`` configuration section (e.g.
``AIRFLOW__HEALTHOMICS__MANIFEST_QUEUE_URL``); without them the DAG has no schedule and does
nothing. See docs/configuration.md.
Messages are deleted from the queue only after their runs exist: while Airflow is down they
wait in the queue. Where there is no queue, ``healthomics_manifest_sweep`` does the same by
listing the prefix.
"""

from __future__ import annotations

import datetime as dt

from airflow.providers.standard.operators.trigger_dagrun import TriggerDagRunOperator
from airflow.sdk import DAG, Asset, task

from healthomics import settings
from healthomics.intake import tasks as intake
from healthomics.utils.queue import sqs_watched_asset

PREFIX = settings.option(settings.MANIFEST_PREFIX)
QUEUE_URL = settings.option(settings.MANIFEST_QUEUE_URL)

schedule: list[Asset] | None = None
if PREFIX and QUEUE_URL:
    # Messages are deleted by the acknowledge task, once their runs exist.
    schedule = [
        sqs_watched_asset(
            "healthomics_manifests", PREFIX, QUEUE_URL, settings.AWS_CONN_ID, settings.manifest_visibility_seconds()
        )
    ]

with DAG(
    dag_id="healthomics_manifest_events",
    description="One healthomics_flowcell run per manifest landing in S3 (S3 events through SQS)",
    schedule=schedule,
    start_date=dt.datetime(2026, 1, 1, tzinfo=dt.UTC),
    catchup=False,
    default_args=settings.TASK_DEFAULTS,
    tags=["healthomics", "intake"],
    doc_md=__doc__,
) as dag:
    manifests = task(intake.manifests_from_events, task_id=intake.MANIFESTS_TASK)()
    runs = task(intake.runs_for_manifests, task_id=intake.RUNS_TASK)(manifests)
    trigger = TriggerDagRunOperator.partial(
        task_id=intake.TRIGGER_TASK,
        # trigger_dag_id per manifest: healthomics_pipeline for one with stages
        skip_when_already_exists=True,  # the same manifest version again: its run is there
        map_index_template="{{ task.trigger_run_id }}",
    ).expand_kwargs(runs)
    # Deletes exactly the messages whose manifests have their runs (or are dead-lettered).
    acknowledge = task(intake.acknowledge_messages, task_id="acknowledge", trigger_rule="all_done")()
    trigger >> acknowledge
