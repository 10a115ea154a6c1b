"""Archive, enrich and forward HealthOmics run status events.

EventBridge ("Run Status Change", source ``aws.omics``) -> SQS -> an Asset watcher (the
amazon provider's SqsSensorTrigger, in the triggerer) -> this DAG: each event is flattened,
enriched (the run's tags — flowcell, sample, DAG run, any ``WESRunId`` —, console and log
links, and for COMPLETED runs the outputs map), archived to S3 encrypted as
``event_YYYYMMDD_HHMMSS_<event id>.json`` and POSTed to the callback receiver (the
``healthomics_callback`` HTTP connection) at ``/internal/callbacks/omics-state-change``.
Messages leave the queue only once handled; redeliveries change nothing; what fails goes to
``dead-letter/`` under the archive, with the reason.

Configure with the Airflow Variables ``healthomics_run_events_queue_url`` and
``healthomics_run_events_archive_uri`` (optional ``healthomics_run_events_kms_key_id``);
without them the DAG has no schedule.
"""

from __future__ import annotations

import datetime as dt
import os

from airflow.sdk import DAG, Asset, Variable, task

from healthomics.events import tasks as events
from healthomics.flowcell.tasks import AWS_CONN_ID, TASK_DEFAULTS
from healthomics.utils.queue import sqs_watched_asset

QUEUE_URL = Variable.get(events.VAR_EVENTS_QUEUE_URL, default=None)
ARCHIVE_URI = Variable.get(events.VAR_EVENTS_ARCHIVE_URI, default=None)
# How long a received message stays hidden before it is delivered again if not acknowledged.
VISIBILITY_SECONDS = int(os.environ.get("HEALTHOMICS_EVENTS_VISIBILITY_SECONDS", "900"))

schedule: list[Asset] | None = None
if QUEUE_URL and ARCHIVE_URI:
    # Messages are deleted by the acknowledge task, once archived.
    schedule = [
        # Up to 50 events a DAG run: a flowcell of 1,000 samples sends about 5,000.
        sqs_watched_asset(
            "healthomics_run_events", ARCHIVE_URI, QUEUE_URL, AWS_CONN_ID, VISIBILITY_SECONDS, waiter_delay=1, batches=5
        )
    ]

with DAG(
    dag_id="healthomics_run_events",
    description="Archive, enrich and forward HealthOmics run status events (EventBridge via SQS)",
    schedule=schedule,
    start_date=dt.datetime(2026, 1, 1, tzinfo=dt.UTC),
    catchup=False,
    default_args=TASK_DEFAULTS,
    tags=["healthomics", "events"],
    doc_md=__doc__,
) as dag:
    processed = task(events.process_events, task_id=events.PROCESS_TASK, retries=2)()
    processed >> task(events.acknowledge, task_id="acknowledge", trigger_rule="all_done")()
