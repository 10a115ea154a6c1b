"""The Python callables and settings of the manifest intake DAGs.

``healthomics_manifest_events``
    Scheduled on an Asset whose watcher reads S3 event notifications from SQS: each batch of
    messages becomes an asset event, each manifest in them a ``healthomics_flowcell`` run.
    Messages are deleted only after their runs exist (or are known to exist), so a crash
    anywhere in between redelivers them; the run ids make the redelivery harmless.
``healthomics_manifest_sweep``
    For deployments without the queue: a deferrable S3 key sensor waits for a manifest that
    landed since the last successful sweep, then every manifest of that window gets its run.
"""

from __future__ import annotations

import datetime as dt
import logging
from typing import Any

from airflow.providers.amazon.aws.hooks.s3 import S3Hook
from airflow.providers.common.compat.sdk import AirflowFailException, AirflowSkipException
from airflow.sdk import Param, Variable

from healthomics.flowcell.tasks import AWS_CONN_ID
from healthomics.intake.manifests import (
    MANIFEST_SUFFIXES,
    ManifestObject,
    flowcell_runs,
    is_manifest,
    list_manifests,
    objects_in_notification,
    split_s3_uri,
)
from healthomics.utils.queue import delete_messages, receipts, triggering_messages

log = logging.getLogger(__name__)

FLOWCELL_DAG_ID = "healthomics_flowcell"
# Deployment settings (Airflow Variables, or AIRFLOW_VAR_* in the environment).
VAR_MANIFEST_PREFIX = "healthomics_manifest_prefix"  # s3://<bucket>/<prefix>/ the lab's manifests land under
VAR_MANIFEST_QUEUE_URL = "healthomics_manifest_queue_url"  # SQS queue receiving that prefix's S3 events

# Seconds a received message stays invisible: the time the events DAG has to trigger its runs
# before the message is delivered again (harmless: the runs exist by then, or get created).
MESSAGE_VISIBILITY_SECONDS = 900
MESSAGES_XCOM = "messages"
# The sweep looks this far before the last successful sweep ended (objects listed late).
SWEEP_OVERLAP = dt.timedelta(minutes=10)
# How long one sweep waits for a new manifest before leaving it to the next (hourly) sweep.
SWEEP_WAIT = dt.timedelta(minutes=50)

SWEEP_PARAMS: dict[str, Param] = {
    "manifest_prefix": Param(
        None,
        type=["null", "string"],
        pattern=r"^s3://",
        title="Manifest prefix",
        description=f"s3://<bucket>/<prefix>/ to sweep. Default: the Airflow Variable {VAR_MANIFEST_PREFIX}.",
    ),
    "lookback_hours": Param(
        24,
        type="number",
        minimum=0,
        title="Look back (first sweep)",
        description="With no earlier successful sweep, manifests that landed this many hours back are taken.",
    ),
}


def manifest_prefix(params: dict[str, Any] | None = None) -> str:
    """The watched prefix: the run's ``manifest_prefix`` param, else the deployment's Variable."""
    prefix = (params or {}).get("manifest_prefix") or Variable.get(VAR_MANIFEST_PREFIX, default=None)
    if not prefix:
        raise AirflowFailException(
            f"No manifest prefix: set the Airflow Variable {VAR_MANIFEST_PREFIX} (s3://<bucket>/<prefix>/)"
        )
    return str(prefix)


def _s3() -> Any:
    return S3Hook(aws_conn_id=AWS_CONN_ID).get_conn()


# -- the events path ---------------------------------------------------------------------------


def manifests_from_events(**context: Any) -> list[dict[str, Any]]:
    """The manifest objects the triggering asset events announce (one per object version).

    Every message seen is kept in XCom ``messages`` for :func:`acknowledge_messages`;
    a message that is not an S3 event is logged and acknowledged, so it cannot block the queue.
    """
    prefix = manifest_prefix()
    objects: list[ManifestObject] = []
    messages = triggering_messages(context)
    for message in messages:
        try:
            announced = objects_in_notification(message.get("Body", ""))
        except (ValueError, KeyError, TypeError) as err:
            log.error("Message %s is not an S3 event (%s); dropping it: %.500s", message["MessageId"], err, message)
            continue
        for obj in announced:
            if is_manifest(obj, prefix):
                objects.append(obj)
            else:
                log.info("Ignoring %s: not a manifest under %s", obj.uri, prefix)
    context["ti"].xcom_push(key=MESSAGES_XCOM, value=receipts(messages))
    log.info("%d message(s), %d manifest version(s)", len(messages), len(objects))
    return [o.as_dict() for o in objects]


def runs_for_manifests(objects: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """TriggerDagRunOperator arguments (deterministic run id, manifest URI) per manifest version."""
    return list(flowcell_runs(_s3(), [ManifestObject(**o) for o in objects]))


def acknowledge_messages(**context: Any) -> int:
    """Delete the messages this run handled from the queue (after their runs were triggered)."""
    messages = context["ti"].xcom_pull(task_ids="manifests", key=MESSAGES_XCOM) or []
    if not messages:
        return 0
    return delete_messages(Variable.get(VAR_MANIFEST_QUEUE_URL), messages, AWS_CONN_ID)


# -- the sweep path ----------------------------------------------------------------------------


def sweep_window(context: dict[str, Any]) -> tuple[dt.datetime, dt.datetime | None]:
    """Manifests that landed since the last successful sweep ended (less an overlap) are this sweep's.

    The first sweep looks back ``lookback_hours``. A DAG-run with an explicit data interval in
    the past (``airflow backfill create``) sweeps exactly that interval.
    """
    dag_run = context["dag_run"]
    start = context.get("data_interval_start")
    end = context.get("data_interval_end")
    run_type = getattr(dag_run, "run_type", None)
    if getattr(run_type, "value", run_type) == "backfill" and start and end:
        return start - SWEEP_OVERLAP, end
    previous = context.get("prev_data_interval_end_success")
    if not previous:  # (a lazy proxy: test its truth, not its identity)
        now = dt.datetime.now(dt.UTC)
        return now - dt.timedelta(hours=float(context["params"].get("lookback_hours") or 24)), None
    return dt.datetime.fromisoformat(str(previous)) - SWEEP_OVERLAP, None


def _landed(value: Any) -> dt.datetime | None:
    if isinstance(value, dt.datetime):
        return value
    if isinstance(value, str):
        return dt.datetime.fromisoformat(value)
    return None


def landed_in_window(files: list[dict[str, Any]], **context: Any) -> bool:
    """``check_fn`` of the sweep's S3 key sensor: has a manifest landed in this sweep's window?

    A window wholly in the past (a backfill) cannot gain manifests: nothing there skips the
    sweep at once instead of waiting for the sensor's timeout.
    """
    since, until = sweep_window(context)
    for f in files:
        landed = _landed(f.get("LastModified"))
        if landed is None or landed < since or (until and landed >= until):
            continue
        if str(f.get("Key", "")).lower().endswith(MANIFEST_SUFFIXES):
            return True
    now = dt.datetime.now(dt.UTC)
    if until is not None and until <= now:
        raise AirflowSkipException(f"No manifest landed between {since.isoformat()} and {until.isoformat()}")
    # The sensor re-defers (with a fresh timeout) after every miss: stop when the next sweep is due.
    started = context.get("data_interval_end") or now
    if now >= started + SWEEP_WAIT:
        raise AirflowSkipException(f"No new manifest since {since.isoformat()}; the next sweep takes over")
    return False


def manifests_in_window(**context: Any) -> list[dict[str, Any]]:
    """Every manifest that landed in this sweep's window."""
    prefix = manifest_prefix(context["params"])
    since, until = sweep_window(context)
    found = list_manifests(_s3(), prefix, since, until)
    log.info("%d manifest(s) under %s landed since %s%s", len(found), prefix, since, f" until {until}" if until else "")
    return [o.as_dict() for o in found]


def sensor_bucket(params: dict[str, Any] | None = None) -> str:
    """The S3 key sensor's bucket (its trigger needs bucket and key apart)."""
    return split_s3_uri(manifest_prefix(params))[0]


def sensor_key(params: dict[str, Any] | None = None) -> str:
    """The S3 key sensor's wildcard: everything under the watched prefix."""
    return split_s3_uri(manifest_prefix(params))[1] + "*"
