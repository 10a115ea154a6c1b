"""Every setting of the package: the connections, the Airflow Variables, the configuration options.

Nothing account-specific lives in code; a deployment sets these:

* **Connections**: ``aws_default`` (AWS; its extra may route ``omics`` to another endpoint) and
  the optional HTTP connection ``healthomics_callback`` (the run-event callback receiver).
* **Variables**, read by tasks when they run (change them without a restart): the run role,
  the SNS topic, the allowed output prefixes, the wake queue, the dead-letter and KMS settings.
* **Configuration options** of the ``[healthomics]`` section, read when a DAG file is parsed:
  what a schedule, a watcher or a concurrency limit is built from. They come from
  ``airflow.cfg`` or the environment (``AIRFLOW__HEALTHOMICS__<OPTION>``, e.g.
  ``AIRFLOW__HEALTHOMICS__POLL_SECONDS=30``) or, on Amazon MWAA, its configuration options;
  reading them costs no database or API call, so a DAG file never calls ``Variable.get``.

``docs/configuration.md`` lists each of them with what it does.
"""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

from airflow.providers.common.compat.sdk import conf
from airflow.sdk import Variable

SECTION = "healthomics"

# -- connections -------------------------------------------------------------------------------

AWS_CONN_ID = "aws_default"
CALLBACK_CONN_ID = "healthomics_callback"

# -- DAGs --------------------------------------------------------------------------------------

FLOWCELL_DAG_ID = "healthomics_flowcell"
# default_args of every DAG of the package. Each task is safe to run again (idempotent by
# construction), so a lost worker, a restarted component or S3 down for a minute costs a
# retry, not the DAG run; invalid input fails at once (AirflowFailException) all the same.
TASK_DEFAULTS: dict[str, Any] = {"retries": 2, "retry_delay": dt.timedelta(seconds=30)}

# -- Variables (read at run time) --------------------------------------------------------------

VAR_ROLE_ARN = "healthomics_run_role_arn"  # IAM role HealthOmics runs assume (unless the manifest names one)
VAR_SNS_TOPIC = "healthomics_sns_topic_arn"  # flowcell reports (unless the manifest or the run names one)
VAR_ALLOWED_OUTPUTS = "healthomics_allowed_output_prefixes"  # JSON list of s3:// prefixes; empty: any
VAR_WAKE_QUEUE = "healthomics_run_wake_queue_url"  # optional: run events that end waits early
# Where intake messages and manifests that cannot be processed are kept with their reason
# (default: <manifest prefix>/_healthomics/dead-letter/, a folder the intake never takes manifests from).
VAR_MANIFEST_DEAD_LETTER_URI = "healthomics_manifest_dead_letter_uri"
VAR_EVENTS_KMS_KEY = "healthomics_run_events_kms_key_id"  # optional: SSE-KMS for the event archive
# Rendered per task: the wake queue if the deployment has one, else nothing (poll only).
WAKE_QUEUE_URL = "{{ var.value.get('" + VAR_WAKE_QUEUE + "', '') }}"


def allowed_output_prefixes() -> list[str]:
    """The deployment's allowed output prefixes (Variable, a JSON list; empty: no restriction)."""
    return list(json.loads(Variable.get(VAR_ALLOWED_OUTPUTS, default="[]")))


# -- configuration options (read when a DAG file is parsed) -------------------------------------


def option(name: str, default: str | None = None) -> str | None:
    """``[healthomics] <name>``; empty counts as unset."""
    value = conf.get(SECTION, name, fallback=default)
    return value or default


def _number(name: str, default: float) -> float:
    return float(option(name) or default)


# s3://<bucket>/<prefix>/ the lab's manifests land under (the intake DAGs and the backfill).
MANIFEST_PREFIX = "manifest_prefix"
# SQS queue receiving that prefix's S3 ObjectCreated events (the manifest-events DAG).
MANIFEST_QUEUE_URL = "manifest_queue_url"
# SQS queue an EventBridge rule feeds with HealthOmics "Run Status Change" events, and the
# s3://<bucket>/<prefix> they are archived under (the run-events DAG).
RUN_EVENTS_QUEUE_URL = "run_events_queue_url"
RUN_EVENTS_ARCHIVE_URI = "run_events_archive_uri"


def poll_seconds() -> float:
    """Seconds between run status polls (one ListRuns page per 100 waiting samples each time)."""
    return _number("poll_seconds", 60)


def max_active_flowcells() -> int:
    """Flowcells in flight at once (the rest queue): size it to the account's HealthOmics run quotas."""
    return int(_number("max_active_flowcells", 8))


def manifest_visibility_seconds() -> int:
    """How long a received intake message stays hidden before it is delivered again (its runs not
    yet triggered, or its receiver gone). Keep it under a dead-letter queue's maxReceiveCount budget."""
    return int(_number("manifest_visibility_seconds", 900))


def run_events_visibility_seconds() -> int:
    """How long a received run event stays hidden before it is delivered again if not acknowledged."""
    return int(_number("run_events_visibility_seconds", 900))


def sweep_schedule() -> str:
    """When the manifest sweep lists the prefix (a cron expression or preset)."""
    return option("sweep_schedule") or "@hourly"


def sweep_poke_seconds() -> float:
    """Seconds between the sweep sensor's listings."""
    return _number("sweep_poke_seconds", 60)
