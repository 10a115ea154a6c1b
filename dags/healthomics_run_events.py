"""Archive, enrich and forward HealthOmics run status events.

EventBridge ("Run Status Change", source ``aws.omics``) -> SQS -> an Asset watcher (the
amazon provider's SqsSensorTrigger, in the triggerer) -> this DAG: each event is flattened,
enriched (the run's tags — flowcell, sample, DAG run, any ``WESRunId`` —, console and log
links, and for COMPLETED runs the outputs map), archived to S3 encrypted as
``event_YYYYMMDD_HHMMSS_<event id>.json`` and POSTed to the callback receiver (the
``healthomics_callback`` HTTP connection) at ``/internal/callbacks/omics-state-change``.
Messages leave the queue only once handled; redeliveries change nothing; what fails goes to
``dead-letter/`` under the archive, with the reason.

Configure with the options ``run_events_queue_url`` and ``run_events_archive_uri`` of the
``[healthomics]`` configuration section (e.g. ``AIRFLOW__HEALTHOMICS__RUN_EVENTS_QUEUE_URL``;
optional: the Variable ``healthomics_run_events_kms_key_id``); without them the DAG has no
schedule. See docs/configuration.md.
"""

from __future__ import annotations

import datetime as dt

from airflow.sdk import DAG, Asset, task

from healthomics import settings
from healthomics.run_events import tasks as events
from healthomics.utils.queue import sqs_watched_asset

QUEUE_URL = settings.option(settings.RUN_EVENTS_QUEUE_URL)
ARCHIVE_URI = settings.option(settings.RUN_EVENTS_ARCHIVE_URI)

schedule: list[Asset] | None = None
if QUEUE_URL and ARCHIVE_URI:
    # Messages are deleted by the acknowledge task, once archived.
    schedule = [
        # Up to 50 events a DAG run: a flowcell of 1,000 samples sends about 5,000.
        sqs_watched_asset(
            "healthomics_run_events",
            ARCHIVE_URI,
            QUEUE_URL,
            settings.AWS_CONN_ID,
            settings.run_events_visibility_seconds(),
            waiter_delay=1,
            batches=5,
        )
    ]

with DAG(
    dag_id="healthomics_run_events",
    description="Archive, enrich and forward HealthOmics run status events (EventBridge via SQS)",
    schedule=schedule,
    start_date=dt.datetime(2026, 1, 1, tzinfo=dt.UTC),
    catchup=False,
    default_args=settings.TASK_DEFAULTS,
    tags=["healthomics", "events"],
    doc_md=__doc__,
) as dag:
    processed = task(events.process_events, task_id=events.PROCESS_TASK, retries=2)()
    processed >> task(events.acknowledge, task_id="acknowledge", trigger_rule="all_done")()
