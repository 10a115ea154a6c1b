"""Process HealthOmics status events: flatten, enrich, archive (encrypted), call back; dead-letter what fails.

Each step is idempotent, so a redelivered message changes nothing:

* the archive object is named by the event's time and id (``event_YYYYMMDD_HHMMSS_<id>.json``)
  and written only if absent;
* a callback leaves a marker (``callbacks/<id>.json``) and is not sent again once it is there;
* what cannot be processed goes to ``dead-letter/`` under the archive prefix, with the reason:
  ``malformed/`` for messages that are not HealthOmics events, ``callback/`` for callbacks that
  still failed after their retries (the event itself is archived).

The caller deletes a message from the queue only after :meth:`EventProcessor.process` returned.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import logging
from dataclasses import dataclass
from typing import Any

from botocore.exceptions import ClientError

from healthomics.events.envelope import MalformedEventError, OmicsEvent, flat_event, parse_event
from healthomics.flowcell.report import run_links
from healthomics.hooks.omics import error_code
from healthomics.notifications.callback import CALLBACK_PATH, CallbackFailedError, post_state_change
from healthomics.utils.idempotency import TAG_DAG_ID, TAG_DAG_RUN_ID, TAG_TASK_ID

log = logging.getLogger(__name__)

# Tags lifted to top-level fields of the archived event (the rest stay under "tags").
LIFTED_TAGS = {
    "flowcell": "flowcellId",
    "sample": "sampleId",
    TAG_DAG_ID: "dagId",
    TAG_DAG_RUN_ID: "dagRunId",
    TAG_TASK_ID: "taskId",
    "WESRunId": "wesRunId",
}


@dataclass(frozen=True)
class ProcessorSettings:
    """Where events go.

    :param archive_uri: ``s3://<bucket>/<prefix>`` for the archive, markers and dead letters.
    :param kms_key_id: encrypt with this KMS key (SSE-KMS); default SSE-S3 (AES256).
    :param callback_conn_id: Airflow HTTP connection of the callback receiver; None: no callbacks.
    :param callback_path: path under the connection's base URL.
    :param callback_timeout: seconds per request.
    :param callback_attempts: tries in all before the callback is dead-lettered.
    :param callback_backoff: seconds before the second try (doubling after).
    """

    archive_uri: str
    kms_key_id: str | None = None
    callback_conn_id: str | None = None
    callback_path: str = CALLBACK_PATH
    callback_timeout: float = 10.0
    callback_attempts: int = 5
    callback_backoff: float = 1.0


def _key_of(uri: str) -> tuple[str, str]:
    bucket, _, prefix = uri.removeprefix("s3://").partition("/")
    return bucket, prefix.strip("/")


class EventProcessor:
    """Archive, enrich and forward HealthOmics events (see the module docstring)."""

    def __init__(self, settings: ProcessorSettings, *, s3_client: Any, omics_client: Any) -> None:
        self.settings = settings
        self.s3 = s3_client
        self.omics = omics_client
        self.bucket, self.prefix = _key_of(settings.archive_uri)

    # -- S3 ---------------------------------------------------------------------------

    def key(self, *parts: str) -> str:
        return "/".join(p for p in (self.prefix, *parts) if p)

    def _exists(self, key: str) -> bool:
        try:
            self.s3.head_object(Bucket=self.bucket, Key=key)
        except ClientError as err:
            if error_code(err) in ("404", "NoSuchKey", "NotFound"):
                return False
            raise
        return True

    def _put(self, key: str, document: dict[str, Any]) -> None:
        encryption: dict[str, Any] = {"ServerSideEncryption": "AES256"}
        if self.settings.kms_key_id:
            encryption = {"ServerSideEncryption": "aws:kms", "SSEKMSKeyId": self.settings.kms_key_id}
        self.s3.put_object(
            Bucket=self.bucket,
            Key=key,
            Body=json.dumps(document, indent=2, default=str).encode(),
            ContentType="application/json",
            **encryption,
        )

    def _get(self, key: str) -> dict[str, Any]:
        return dict(json.loads(self.s3.get_object(Bucket=self.bucket, Key=key)["Body"].read()))

    # -- processing ---------------------------------------------------------------------

    def process(self, body: Any, message_id: str | None = None) -> dict[str, Any]:
        """Handle one message body; what happened. Raises only when S3 itself fails (retry later)."""
        try:
            event = parse_event(body)
        except MalformedEventError as err:
            text = body if isinstance(body, str) else json.dumps(body, default=str)
            name = hashlib.sha256(text.encode()).hexdigest()[:32]
            key = self.key("dead-letter", "malformed", f"{name}.json")
            if not self._exists(key):
                self._put(key, {"reason": str(err), "messageId": message_id, "body": text, "at": _now()})
            log.error("Message %s dead-lettered to s3://%s/%s: %s", message_id, self.bucket, key, err)
            return {"status": "dead_letter", "reason": str(err), "key": key}

        key = self.key(event.archive_name())
        if self._exists(key):
            document = self._get(key)
            status = "duplicate"
        else:
            document = self.enrich(event)
            self._put(key, document)
            status = "archived"
        outcome = {
            "status": status,
            "eventId": event.event_id,
            "key": key,
            "callback": self._call_back(event, document),
        }
        log.info("Event %s (%s %s): %s", event.event_id, event.detail_type, event.detail.get("status"), outcome)
        return outcome

    def enrich(self, event: OmicsEvent) -> dict[str, Any]:
        """The flat event plus the run's tags, its console/log/output links and (COMPLETED) its outputs."""
        document = {**flat_event(event), "processedAt": _now()}
        if not event.is_run_status:
            return document
        detail = event.detail
        arn = str(detail.get("arn") or "")
        tags: dict[str, str] = {}
        try:
            tags = dict(self.omics.list_tags_for_resource(resourceArn=arn)["tags"]) if arn else {}
        except ClientError as err:  # a DELETED run has no tags any more
            document["tagsError"] = f"{error_code(err)}: {err}"
        document["tags"] = tags
        for tag, field in LIFTED_TAGS.items():
            if tag in tags:
                document[field] = tags[tag]
        partition = arn.split(":")[1] if arn.count(":") >= 5 else "aws"
        output_uri = detail.get("runOutputUri")
        document["links"] = run_links(str(event.raw.get("region") or ""), partition, event.run_id, output_uri)
        if detail.get("status") == "COMPLETED" and output_uri:
            document.update(self._outputs(str(output_uri)))
        return document

    def _outputs(self, run_output_uri: str) -> dict[str, Any]:
        bucket, prefix = _key_of(run_output_uri)
        key = f"{prefix}/logs/outputs.json"
        try:
            return {"outputs": json.loads(self.s3.get_object(Bucket=bucket, Key=key)["Body"].read())}
        except ClientError as err:
            return {"outputsError": f"s3://{bucket}/{key}: {error_code(err)}"}
        except ValueError as err:
            return {"outputsError": f"s3://{bucket}/{key}: not JSON ({err})"}

    def _call_back(self, event: OmicsEvent, document: dict[str, Any]) -> str:
        if not event.is_run_status:
            return "not_applicable"
        if not self.settings.callback_conn_id:
            return "disabled"
        sent = self.key("callbacks", f"{event.event_id}.json")
        dead = self.key("dead-letter", "callback", f"{event.event_id}.json")
        if self._exists(sent):
            return "already_sent"
        if self._exists(dead):
            return "dead_letter"
        try:
            status = post_state_change(
                document,
                http_conn_id=self.settings.callback_conn_id,
                idempotency_key=event.event_id,
                path=self.settings.callback_path,
                timeout=self.settings.callback_timeout,
                attempts=self.settings.callback_attempts,
                backoff=self.settings.callback_backoff,
            )
        except CallbackFailedError as err:
            self._put(dead, {"reason": err.reason, "attempts": err.attempts, "at": _now(), "event": document})
            log.error("Callback for event %s dead-lettered after %d attempt(s): %s", event.event_id, err.attempts, err)
            return "dead_letter"
        self._put(sent, {"status": status, "at": _now()})
        return "sent"


def _now() -> str:
    return dt.datetime.now(dt.UTC).isoformat()
