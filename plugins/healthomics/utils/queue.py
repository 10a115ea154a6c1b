"""SQS messages that reached a DAG run through an Asset watcher (the amazon provider's SqsSensorTrigger)."""

from __future__ import annotations

import json
import logging
from typing import Any

from airflow.providers.amazon.aws.hooks.sqs import SqsHook
from airflow.providers.amazon.aws.triggers.sqs import SqsSensorTrigger
from airflow.sdk import Asset, AssetWatcher

log = logging.getLogger(__name__)


def sqs_watched_asset(
    name: str,
    uri: str,
    queue_url: str,
    aws_conn_id: str | None,
    visibility_seconds: int,
    waiter_delay: int = 5,
    batches: int = 1,
) -> Asset:
    """
    An Asset whose events are batches of messages from an SQS queue, received in the triggerer.

    Messages stay in the queue (hidden for ``visibility_seconds``) until the DAG run they start
    deletes them (:func:`delete_messages`): a message whose run never finished comes back.

    :param name: the asset's name; its watcher is ``<name>_queue``.
    :param uri: the asset's URI (where the data lives).
    :param queue_url: the queue to watch.
    :param aws_conn_id: Airflow AWS connection.
    :param visibility_seconds: how long a received message stays hidden before it is delivered again.
    :param waiter_delay: seconds between receives when the queue is empty.
    :param batches: receives (of up to 10 messages) gathered into one asset event, so a busy
        queue makes fewer, larger DAG runs.
    """
    trigger = SqsSensorTrigger(
        sqs_queue=queue_url,
        aws_conn_id=aws_conn_id,
        max_messages=10,
        num_batches=batches,
        wait_time_seconds=10,  # long polling: few empty receives
        waiter_delay=waiter_delay,
        visibility_timeout=visibility_seconds,
        delete_message_on_reception=False,  # deleted by the DAG once handled
    )
    return Asset(name=name, uri=uri, watchers=[AssetWatcher(name=f"{name}_queue", trigger=trigger)])


def triggering_messages(context: dict[str, Any]) -> list[dict[str, Any]]:
    """Every SQS message in this run's triggering asset events (each event holds one received batch)."""
    messages = []
    for events in context["triggering_asset_events"].values():
        for event in events:
            payload = (event.extra or {}).get("payload")
            if isinstance(payload, dict):
                messages.extend(payload.get("message_batch", []))
    return messages


def receipts(messages: list[dict[str, Any]]) -> list[dict[str, str]]:
    """What deleting them later takes."""
    return [{"MessageId": m["MessageId"], "ReceiptHandle": m["ReceiptHandle"]} for m in messages]


def delete_messages(queue_url: str, messages: list[dict[str, Any]], aws_conn_id: str | None) -> int:
    """Delete handled messages (10 a call); how many went. One that cannot be deleted comes back later."""
    client: Any = SqsHook(aws_conn_id=aws_conn_id).get_conn()
    failed = []
    for start in range(0, len(messages), 10):
        chunk = messages[start : start + 10]
        response = client.delete_message_batch(
            QueueUrl=queue_url,
            Entries=[{"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(chunk)],
        )
        failed += response.get("Failed", [])
    if failed:
        log.warning("Could not delete %d message(s) (they will be redelivered): %s", len(failed), json.dumps(failed))
    return len(messages) - len(failed)
