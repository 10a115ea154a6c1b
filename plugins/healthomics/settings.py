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
from dataclasses import dataclass
from typing import Any

# No Airflow import at module level: Airflow reads this module's OPTIONS (through
# get_provider_info) while it builds its own configuration, before `conf` exists.

SECTION = "healthomics"

# -- connections -------------------------------------------------------------------------------

AWS_CONN_ID = "aws_default"
CALLBACK_CONN_ID = "healthomics_callback"

# -- DAGs --------------------------------------------------------------------------------------

FLOWCELL_DAG_ID = "healthomics_flowcell"
PIPELINE_DAG_ID = "healthomics_pipeline"
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
    from airflow.sdk import Variable

    return list(json.loads(Variable.get(VAR_ALLOWED_OUTPUTS, default="[]")))


# -- configuration options (read when a DAG file is parsed) -------------------------------------


@dataclass(frozen=True)
class Option:
    """One option of the ``[healthomics]`` section (also declared in the provider's metadata)."""

    description: str
    default: str | None = None
    example: str | None = None
    type: str = "string"


MANIFEST_PREFIX = "manifest_prefix"
MANIFEST_QUEUE_URL = "manifest_queue_url"
RUN_EVENTS_QUEUE_URL = "run_events_queue_url"
RUN_EVENTS_ARCHIVE_URI = "run_events_archive_uri"

OPTIONS: dict[str, Option] = {
    MANIFEST_PREFIX: Option(
        "s3://<bucket>/<prefix>/ the lab's manifests land under: the asset of healthomics_manifest_events, "
        "the prefix healthomics_manifest_sweep lists and healthomics_backfill searches.",
        example="s3://<bucket>/manifests/",
    ),
    MANIFEST_QUEUE_URL: Option(
        "SQS queue receiving that prefix's S3 ObjectCreated events; without it healthomics_manifest_events "
        "has no schedule.",
        example="https://sqs.<region>.amazonaws.com/<account>/healthomics-manifests",
    ),
    RUN_EVENTS_QUEUE_URL: Option(
        "SQS queue an EventBridge rule feeds with aws.omics 'Run Status Change' events (healthomics_run_events).",
        example="https://sqs.<region>.amazonaws.com/<account>/omics-run-events",
    ),
    RUN_EVENTS_ARCHIVE_URI: Option(
        "s3://<bucket>/<prefix> the run status events are archived under; without it (or the queue) "
        "healthomics_run_events has no schedule.",
        example="s3://<bucket>/run-events",
    ),
    "poll_seconds": Option(
        "Seconds between run status polls (one ListRuns page per 100 waiting samples each time) and batch "
        "submission polls.",
        default="60",
        type="float",
    ),
    "max_active_flowcells": Option(
        "Flowcell runs in flight at once (the rest queue): size it to the account's HealthOmics run quotas.",
        default="8",
        type="integer",
    ),
    "manifest_visibility_seconds": Option(
        "How long a received intake message stays hidden before it is delivered again; keep it under a "
        "dead-letter queue's maxReceiveCount budget.",
        default="900",
        type="integer",
    ),
    "run_events_visibility_seconds": Option(
        "How long a received run status event stays hidden before it is delivered again if not acknowledged.",
        default="900",
        type="integer",
    ),
    "pipeline_stages": Option(
        "Stage tasks per sample in healthomics_pipeline: the most stages a manifest may chain. Read when the "
        "DAG is parsed; a sample's unused stage tasks are skipped.",
        default="4",
        type="integer",
    ),
    "start_run_tps": Option(
        "The account's StartRun quota (per second): sample and stage tasks whose StartRun was throttled "
        "wait in the triggerer and get turns to try again at this rate, all of them together.",
        default="0.1",
        type="float",
    ),
    "micro_batch_min_samples": Option(
        "Flowcells with at least this many samples submit their later pipeline stages (PRIVATE workflows) "
        "straight in micro batches, without a first StartRun: at that size the stages become ready faster "
        "than the StartRun quota starts them, and nearly every first StartRun is throttled (docs/pipelines.md). "
        "0: always try StartRun first.",
        default="100",
        type="integer",
    ),
    "price_source": Option(
        "Where run cost estimates take HealthOmics list prices from: price_list_api (the AWS Price List API, "
        "needs pricing:GetProducts; the shipped table when it cannot be reached) or shipped (the table in the "
        "package only).",
        default="price_list_api",
    ),
    "price_list_region": Option(
        "The Region of the AWS Price List API endpoint, when the AWS connection's Region is not one it answers "
        "in (it answers in three Regions, for every Region's prices: docs/costs.md).",
    ),
    "sweep_schedule": Option("When healthomics_manifest_sweep lists the prefix (cron or preset).", default="@hourly"),
    "sweep_poke_seconds": Option("Seconds between the sweep sensor's listings.", default="60", type="float"),
}


def option(name: str) -> str | None:
    """``[healthomics] <name>``, else its default; empty counts as unset."""
    from airflow.providers.common.compat.sdk import conf

    default = OPTIONS[name].default
    return conf.get(SECTION, name, fallback=default) or default


def _number(name: str) -> float:
    return float(option(name) or 0)


def poll_seconds() -> float:
    return _number("poll_seconds")


def max_active_flowcells() -> int:
    return int(_number("max_active_flowcells"))


def pipeline_stages() -> int:
    return max(1, int(_number("pipeline_stages")))


def start_run_tps() -> float:
    return _number("start_run_tps")


def micro_batch_min_samples() -> int:
    return int(_number("micro_batch_min_samples"))


def manifest_visibility_seconds() -> int:
    return int(_number("manifest_visibility_seconds"))


def run_events_visibility_seconds() -> int:
    return int(_number("run_events_visibility_seconds"))


def sweep_schedule() -> str:
    return str(option("sweep_schedule"))


def sweep_poke_seconds() -> float:
    return _number("sweep_poke_seconds")
