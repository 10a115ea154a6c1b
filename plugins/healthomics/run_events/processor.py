"""Process HealthOmics status events: flatten, enrich, archive (encrypted), call back; dead-letter what fails.

Each step is idempotent, so a redelivered message changes nothing:

* the archive object is named by the event's time and id (``event_YYYYMMDD_HHMMSS_<id>.json``)
  and written only if absent;
* a callback leaves a marker (``callbacks/<id>.json``) and is not sent again once it is there;
* what cannot be processed goes to ``dead-letter/`` under the archive prefix, with the reason
  (:mod:`healthomics.utils.dead_letters`): ``malformed/`` at once for messages that are not
  HealthOmics events, ``callback/`` for callbacks that still failed after their retries (the
  event itself is archived), ``processing/`` for a message whose processing failed on
  :data:`~healthomics.utils.dead_letters.MAX_TRIES` deliveries (:meth:`EventProcessor.failed`).

The caller deletes a message from the queue only after :meth:`EventProcessor.process` returned,
or :meth:`EventProcessor.failed` said it is dead-lettered.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
from dataclasses import dataclass
from typing import Any

from botocore.exceptions import ClientError

from healthomics.hooks.omics import error_code
from healthomics.links.omics import run_links
from healthomics.run_events.callback import CALLBACK_PATH, CallbackFailedError, post_state_change
from healthomics.utils.dead_letters import DeadLetters, digest
from healthomics.utils.eventbridge import MalformedEventError, OmicsEvent, flat_event, parse_event
from healthomics.utils.idempotency import TAG_DAG_ID, TAG_DAG_RUN_ID, TAG_TASK_ID
from healthomics.utils.s3 import S3Documents, parse_s3_uri, read_run_outputs
from healthomics.utils.text import cut

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
# Dead-letter kinds under <archive>/dead-letter/.
MALFORMED = "malformed"
CALLBACK = "callback"
PROCESSING = "processing"


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
    :param allowed_output_prefixes: run outputs (``logs/outputs.json``) are read only under these
        (the deployment's ``healthomics_allowed_output_prefixes``); empty: wherever GetRun says.
    """

    archive_uri: str
    kms_key_id: str | None = None
    callback_conn_id: str | None = None
    callback_path: str = CALLBACK_PATH
    callback_timeout: float = 10.0
    callback_attempts: int = 5
    callback_backoff: float = 1.0
    allowed_output_prefixes: tuple[str, ...] = ()


class EventProcessor:
    """Archive, enrich and forward HealthOmics events (see the module docstring)."""

    def __init__(self, settings: ProcessorSettings, *, s3_client: Any, omics_client: Any) -> None:
        self.settings = settings
        self.omics = omics_client
        encryption = {"ServerSideEncryption": "AES256"}
        if settings.kms_key_id:
            encryption = {"ServerSideEncryption": "aws:kms", "SSEKMSKeyId": settings.kms_key_id}
        self.archive = S3Documents(s3_client, settings.archive_uri, encryption)
        self.dead_letters = DeadLetters(
            s3_client, self.archive.uri(self.archive.key("dead-letter")), encryption=encryption
        )
        self.allowed = [parse_s3_uri(p) for p in settings.allowed_output_prefixes]

    # -- processing ---------------------------------------------------------------------

    def process(self, body: Any, message_id: str | None = None) -> dict[str, Any]:
        """Handle one message body; what happened. Raises only when S3 itself fails (retry later)."""
        try:
            event = parse_event(body)
        except MalformedEventError as err:
            text = body if isinstance(body, str) else json.dumps(body, default=str)
            item = {"messageId": message_id, "body": text}
            uri = self.dead_letters.dead_letter(MALFORMED, digest(text), str(err), item)
            return {"status": "dead_letter", "reason": str(err), "key": uri}

        key = self.archive.key(event.archive_name())
        existing = self.archive.get(key)
        if existing is not None:
            document = existing
            status = "duplicate"
        else:
            document = self.enrich(event)
            self.archive.put(key, document)
            status = "archived"
        outcome = {
            "status": status,
            "eventId": event.event_id,
            "key": key,
            "callback": self._call_back(event, document),
        }
        log.info("Event %s (%s %s): %s", event.safe_id, event.detail_type, event.detail.get("status"), outcome)
        return outcome

    def failed(self, body: Any, message_id: str, error: BaseException) -> bool:
        """Count a failed try of a message; True once it is dead-lettered (and may leave the queue)."""
        text = body if isinstance(body, str) else json.dumps(body, default=str)
        reason = f"{type(error).__name__}: {error}"
        return self.dead_letters.failed_try(
            PROCESSING, digest(message_id), reason, {"messageId": message_id, "body": text}
        )

    def enrich(self, event: OmicsEvent) -> dict[str, Any]:
        """The flat event plus the run's tags, its console/log/output links and (COMPLETED) its outputs.

        Nothing the event claims about where data lives is trusted: the run's output location
        comes from GetRun, and outputs are read only under the allowed output prefixes.
        """
        document = {**flat_event(event), "processedAt": _now()}
        if not event.is_run_status:
            return document
        arn = event.run_arn
        tags: dict[str, str] = {}
        try:
            tags = dict(self.omics.list_tags_for_resource(resourceArn=arn)["tags"]) if arn else {}
        except ClientError as err:  # a DELETED run has no tags any more
            document["tagsError"] = f"{error_code(err)}: {cut(str(err), 300)}"
        document["tags"] = tags
        for tag, field in LIFTED_TAGS.items():
            if tag in tags:
                document[field] = tags[tag]
        partition = arn.split(":")[1] if arn else "aws"
        output_uri = None
        if event.detail.get("status") == "COMPLETED":
            output_uri, outputs = self._outputs(str(event.run_id))
            document.update(outputs)
        document["links"] = run_links(event.region, partition, event.run_id, output_uri)
        return document

    def _outputs(self, run_id: str) -> tuple[str | None, dict[str, Any]]:
        """The run's output location (from GetRun) and its ``logs/outputs.json``, or why not."""
        try:
            run = self.omics.get_run(id=run_id)
        except ClientError as err:
            if error_code(err) != "ResourceNotFoundException":
                raise  # throttling, 5xx: this message is tried again
            return None, {"outputsError": f"run {run_id} no longer exists"}
        found = read_run_outputs(self.archive.s3, run.get("runOutputUri"), self.allowed)
        return found.location, {"outputs": found.outputs} if found.error is None else {"outputsError": found.error}

    def _call_back(self, event: OmicsEvent, document: dict[str, Any]) -> str:
        if not event.is_run_status:
            return "not_applicable"
        if not self.settings.callback_conn_id:
            return "disabled"
        sent = self.archive.key("callbacks", f"{event.safe_id}.json")
        if self.archive.exists(sent):
            return "already_sent"
        if self.dead_letters.is_dead(CALLBACK, event.safe_id):
            return "dead_letter"
        try:
            status = post_state_change(
                document,
                http_conn_id=self.settings.callback_conn_id,
                idempotency_key=event.safe_id,  # a header: the bounded, key-safe form
                path=self.settings.callback_path,
                timeout=self.settings.callback_timeout,
                attempts=self.settings.callback_attempts,
                backoff=self.settings.callback_backoff,
            )
        except CallbackFailedError as err:
            self.dead_letters.dead_letter(CALLBACK, event.safe_id, err.reason, {"event": document}, err.attempts)
            return "dead_letter"
        self.archive.put(sent, {"status": status, "at": _now()})
        return "sent"


def _now() -> str:
    return dt.datetime.now(dt.UTC).isoformat()
