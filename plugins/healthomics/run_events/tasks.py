"""The Python callables and settings of the ``healthomics_run_events`` DAG."""

from __future__ import annotations

import logging
from typing import Any

from airflow.providers.amazon.aws.hooks.s3 import S3Hook
from airflow.providers.common.compat.sdk import AirflowException, AirflowNotFoundException
from airflow.sdk import BaseHook, Variable

from healthomics.hooks.omics import HealthOmicsHook
from healthomics.run_events.processor import EventProcessor, ProcessorSettings
from healthomics.settings import (
    AWS_CONN_ID,
    CALLBACK_CONN_ID,
    RUN_EVENTS_ARCHIVE_URI,
    RUN_EVENTS_QUEUE_URL,
    VAR_EVENTS_KMS_KEY,
    allowed_output_prefixes,
    option,
)
from healthomics.utils.queue import delete_messages, receipts, triggering_messages
from healthomics.utils.xcom import is_last_try

log = logging.getLogger(__name__)

HANDLED_XCOM = "handled"
PROCESS_TASK = "process_events"


def _callback_conn_id() -> str | None:
    try:
        BaseHook.get_connection(CALLBACK_CONN_ID)
    except AirflowNotFoundException:
        log.info("No Airflow connection %r: events are archived without callbacks", CALLBACK_CONN_ID)
        return None
    return CALLBACK_CONN_ID


def processor() -> EventProcessor:
    """An :class:`EventProcessor` configured from the deployment's settings and connections."""
    settings = ProcessorSettings(
        archive_uri=str(option(RUN_EVENTS_ARCHIVE_URI)),
        kms_key_id=Variable.get(VAR_EVENTS_KMS_KEY, default=None),
        callback_conn_id=_callback_conn_id(),
        allowed_output_prefixes=tuple(allowed_output_prefixes()),
    )
    return EventProcessor(
        settings,
        s3_client=S3Hook(aws_conn_id=AWS_CONN_ID).get_conn(),
        omics_client=HealthOmicsHook(aws_conn_id=AWS_CONN_ID).conn,
    )


def process_events(**context: Any) -> dict[str, int]:
    """Process every message of the triggering asset events; keep the handled ones for ``acknowledge``.

    A message whose processing failed (S3 unreachable, say, or anything about it the code did
    not expect) makes the task try again, after the others were processed (a retry finds them
    archived). On the last try it is not acknowledged: it comes back after its visibility
    timeout, and the task fails so the failure shows. Those failed tries are counted; after
    the last one the message is dead-lettered with the reason and acknowledged. One message
    never stops the others.
    """
    messages = triggering_messages(context)
    events = processor()
    handled, failed, counts = [], [], dict.fromkeys(("archived", "duplicate", "dead_letter"), 0)
    errors: list[tuple[dict[str, Any], BaseException]] = []
    for message in messages:
        try:
            outcome = events.process(message.get("Body", ""), str(message.get("MessageId")))
        except Exception as err:  # any one message's failure, whatever it is, stays with that message
            log.exception("Message %s not processed", message.get("MessageId"))
            errors.append((message, err))
            continue
        handled.append(message)
        counts[outcome["status"]] += 1
    if errors and not is_last_try(context):
        raise AirflowException(f"{len(errors)} of {len(messages)} message(s) could not be processed; trying again")
    for message, error in errors:
        try:
            dead = events.failed(message.get("Body", ""), str(message.get("MessageId")), error)
        except Exception:  # the dead-letter store itself is down: the message comes back anyway
            log.exception("Could not count the failed try of message %s", message.get("MessageId"))
            dead = False
        if dead:
            handled.append(message)
            counts["dead_letter"] += 1
        else:
            failed.append(message)
    context["ti"].xcom_push(key=HANDLED_XCOM, value=receipts(handled))
    log.info("%d message(s): %s; %d failed", len(messages), counts, len(failed))
    if failed:
        raise AirflowException(f"{len(failed)} of {len(messages)} message(s) could not be processed")
    return counts


def acknowledge(**context: Any) -> int:
    """Delete the handled messages (archived, or dead-lettered with their reason) from the queue."""
    handled = context["ti"].xcom_pull(task_ids=PROCESS_TASK, key=HANDLED_XCOM) or []
    return delete_messages(str(option(RUN_EVENTS_QUEUE_URL)), handled, AWS_CONN_ID) if handled else 0
