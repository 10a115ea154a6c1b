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
from airflow.providers.common.compat.sdk import AirflowException, AirflowFailException, AirflowSkipException
from airflow.sdk import Param, Variable

from healthomics.intake.manifests import (
    MANIFEST_SUFFIXES,
    MalformedNotificationError,
    ManifestObject,
    flowcell_run,
    identity,
    is_manifest,
    list_manifests,
    objects_in_notification,
    split_s3_uri,
    unique,
)
from healthomics.settings import AWS_CONN_ID, MANIFEST_PREFIX, MANIFEST_QUEUE_URL, VAR_MANIFEST_DEAD_LETTER_URI, option
from healthomics.utils.dead_letters import DeadLetters, digest
from healthomics.utils.queue import delete_messages, receipts, triggering_messages
from healthomics.utils.s3 import parse_s3_uri
from healthomics.utils.xcom import is_last_try, task_states

log = logging.getLogger(__name__)

DEAD_LETTER_FOLDER = "_healthomics/dead-letter"

MESSAGES_XCOM = "messages"
SOURCES_XCOM = "sources"  # message id -> the object versions it announced
RUN_OBJECTS_XCOM = "run_objects"  # the object version of each run, in trigger_flowcell's map order
PENDING_XCOM = "pending"  # object versions without a run yet (they come back: message or next sweep)
MANIFESTS_TASK = "manifests"
RUNS_TASK = "flowcell_runs"
TRIGGER_TASK = "trigger_flowcell"
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
        description=f"s3://<bucket>/<prefix>/ to sweep. Default: the option [healthomics] {MANIFEST_PREFIX}.",
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
    """The watched prefix: the run's ``manifest_prefix`` param, else the deployment's ``[healthomics]`` option."""
    prefix = (params or {}).get("manifest_prefix") or option(MANIFEST_PREFIX)
    if not prefix:
        raise AirflowFailException(
            f"No manifest prefix: set the configuration option [healthomics] {MANIFEST_PREFIX} "
            f"(AIRFLOW__HEALTHOMICS__{MANIFEST_PREFIX.upper()}=s3://<bucket>/<prefix>/)"
        )
    return str(prefix)


def _s3() -> Any:
    return S3Hook(aws_conn_id=AWS_CONN_ID).get_conn()


def dead_letters(prefix: str) -> DeadLetters:
    """The intake's dead letters: the Variable's location, else a reserved folder under the prefix."""
    uri = Variable.get(VAR_MANIFEST_DEAD_LETTER_URI, default=None) or parse_s3_uri(prefix).join(DEAD_LETTER_FOLDER).uri
    return DeadLetters(_s3(), uri)


# -- the events path ---------------------------------------------------------------------------


def manifests_from_events(**context: Any) -> list[dict[str, Any]]:
    """The manifest objects the triggering asset events announce (one per object version).

    Every message seen is kept in XCom ``messages`` for :func:`acknowledge_messages`, with the
    object versions it announced (``sources``). A message that is not an S3 event notification
    is dead-lettered with the reason and acknowledged, so it can neither block the queue nor be
    lost.
    """
    prefix = manifest_prefix()
    letters = dead_letters(prefix)
    objects: list[ManifestObject] = []
    sources: dict[str, list[str]] = {}
    messages = triggering_messages(context)
    for message in messages:
        body, message_id = message.get("Body", ""), str(message["MessageId"])
        sources[message_id] = []
        try:
            announced = objects_in_notification(body)
        except MalformedNotificationError as err:
            letters.dead_letter("notification", digest(str(body)), str(err), {"messageId": message_id, "body": body})
            continue
        for obj in announced:
            if is_manifest(obj, prefix):
                objects.append(obj)
                sources[message_id].append(identity(obj))
            else:
                log.info("Ignoring %s: not a manifest under %s", obj.uri, prefix)
    context["ti"].xcom_push(key=MESSAGES_XCOM, value=receipts(messages))
    context["ti"].xcom_push(key=SOURCES_XCOM, value=sources)
    log.info("%d message(s), %d manifest version(s)", len(messages), len(objects))
    return [o.as_dict() for o in unique(objects)]


def runs_for_manifests(objects: list[dict[str, Any]], **context: Any) -> list[dict[str, Any]]:
    """TriggerDagRunOperator arguments (deterministic run id, manifest URI) per manifest version.

    Each object on its own. One that cannot be read now (S3 refused or failed) makes the task
    try again (its retries outlast a short outage) after the others were read; on the last try
    it is left ``pending`` while the others get their runs: its message comes back, or the next
    sweep looks again. Those failed tries are counted, and after the last one it is
    dead-lettered with the reason.
    """
    prefix = manifest_prefix(context.get("params"))
    s3 = _s3()
    runs, run_objects, unreadable = [], [], []
    for obj in (ManifestObject(**o) for o in objects):
        try:
            run = flowcell_run(s3, obj)
        except Exception as err:  # this object's problem, whatever it is; the others go on
            log.exception("No run for %s (ETag %s) this time", obj.uri, obj.etag)
            unreadable.append((obj, f"could not read it to name its run: {type(err).__name__}: {err}"))
            continue
        if run is not None:
            runs.append(run)
            run_objects.append({"identity": identity(obj), "object": obj.as_dict()})
    if unreadable and not is_last_try(context):
        raise AirflowException(f"{len(unreadable)} of {len(objects)} manifest(s) could not be read; trying again")
    letters = dead_letters(prefix)
    pending = [
        identity(obj)
        for obj, reason in unreadable
        if not letters.failed_try("manifest", identity(obj), reason, obj.as_dict())
    ]
    context["ti"].xcom_push(key=RUN_OBJECTS_XCOM, value=run_objects)
    context["ti"].xcom_push(key=PENDING_XCOM, value=pending)
    return runs


def _unhandled(context: dict[str, Any], prefix: str) -> set[str] | None:
    """Object versions of this run that have no flowcell run yet; None if it is not known which.

    A trigger that failed (after its retries) is a failed try of its object, counted like a
    failed read, so it too is dead-lettered after the last one.
    """
    ti = context["ti"]
    run_objects = ti.xcom_pull(task_ids=RUNS_TASK, key=RUN_OBJECTS_XCOM)
    pending = ti.xcom_pull(task_ids=RUNS_TASK, key=PENDING_XCOM)
    if run_objects is None or pending is None:
        return None  # flowcell_runs did not finish: nothing is known to have its run
    unhandled = set(pending)
    states = task_states(context, [TRIGGER_TASK])
    letters = dead_letters(prefix)
    for index, entry in enumerate(run_objects):
        state = states.get(f"{TRIGGER_TASK}_{index}")
        if state in ("success", "skipped"):  # triggered now, or its run was already there
            continue
        reason = f"trigger_flowcell[{index}] ended {state or 'without running'}"
        if not letters.failed_try("manifest", entry["identity"], reason, entry["object"]):
            unhandled.add(entry["identity"])
    return unhandled


def acknowledge_messages(**context: Any) -> int:
    """Delete the messages this run handled from the queue: every object they announced has its run
    (or is dead-lettered). The others stay, come back after their visibility timeout, and fail this
    task, so it shows."""
    ti = context["ti"]
    messages = ti.xcom_pull(task_ids=MANIFESTS_TASK, key=MESSAGES_XCOM) or []
    sources: dict[str, list[str]] = ti.xcom_pull(task_ids=MANIFESTS_TASK, key=SOURCES_XCOM) or {}
    unhandled = _unhandled(context, manifest_prefix())
    done = [
        m
        for m in messages
        if not sources.get(m["MessageId"])
        or (unhandled is not None and not unhandled.intersection(sources[m["MessageId"]]))
    ]
    deleted = delete_messages(str(option(MANIFEST_QUEUE_URL)), done, AWS_CONN_ID) if done else 0
    if len(done) < len(messages):  # (a retry would change nothing: the messages come back instead)
        raise AirflowFailException(
            f"{len(messages) - len(done)} of {len(messages)} message(s) announce manifests without a run yet; "
            "they will be delivered again"
        )
    return deleted


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
    unusable: list[dict[str, str]] = []
    found = list_manifests(_s3(), prefix, since, until, unusable=unusable)
    log.info("%d manifest(s) under %s landed since %s%s", len(found), prefix, since, f" until {until}" if until else "")
    letters = dead_letters(prefix)
    for item in unusable:
        letters.dead_letter("manifest", digest(f"{item['key']}@{item['etag']}"), item["reason"], item)
    return [o.as_dict() for o in found]


def sweep_outcome(**context: Any) -> int:
    """Fail the sweep while a manifest of its window has no run yet, so the next sweep looks again.

    The next sweep starts where the last successful one ended; each failed try of a manifest
    is counted, and after the last it is dead-lettered and no longer holds the sweep back.
    """
    if task_states(context, [RUNS_TASK]).get(RUNS_TASK) == "skipped":
        raise AirflowSkipException("no manifest landed in this sweep's window")
    unhandled = _unhandled(context, manifest_prefix(context["params"]))
    if unhandled is None:
        raise AirflowFailException("flowcell_runs did not finish; the next sweep takes this window again")
    if unhandled:
        raise AirflowFailException(f"{len(unhandled)} manifest(s) have no run yet; the next sweep takes them again")
    return len(context["ti"].xcom_pull(task_ids=RUNS_TASK, key=RUN_OBJECTS_XCOM) or [])


def sensor_bucket(params: dict[str, Any] | None = None) -> str:
    """The S3 key sensor's bucket (its trigger needs bucket and key apart)."""
    return split_s3_uri(manifest_prefix(params))[0]


def sensor_key(params: dict[str, Any] | None = None) -> str:
    """The S3 key sensor's wildcard: everything under the watched prefix."""
    return split_s3_uri(manifest_prefix(params))[1] + "*"
