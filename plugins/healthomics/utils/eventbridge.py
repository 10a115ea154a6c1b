"""EventBridge events from HealthOmics: validate the envelope, flatten it, name its archive object."""

from __future__ import annotations

import datetime as dt
import hashlib
import re
from dataclasses import dataclass
from typing import Any

from healthomics.utils.documents import DocumentError, strict_json
from healthomics.utils.text import shown

RUN_STATUS_CHANGE = "Run Status Change"
SOURCE = "aws.omics"
ENVELOPE_FIELDS = ("id", "detail-type", "source", "time", "detail")
# EventBridge event ids are UUIDs; anything else names its archive object by a hash instead.
SAFE_EVENT_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9-]{0,63}")
RUN_ID = re.compile(r"[0-9]{1,18}")
RUN_ARN = re.compile(r"arn:aws[\w-]*:omics:[a-z0-9-]{1,32}:[0-9]{12}:run/(?P<id>[0-9]{1,18})", re.ASCII)
REGION = re.compile(r"[a-z]{2}(-[a-z]+)+-[0-9]{1,2}")
MAX_FIELD_CHARACTERS = 2048


class MalformedEventError(ValueError):
    """A message that is not a usable HealthOmics event (the reason says why)."""


@dataclass(frozen=True)
class OmicsEvent:
    """One EventBridge event from ``aws.omics``."""

    raw: dict[str, Any]

    @property
    def event_id(self) -> str:
        return str(self.raw["id"])

    @property
    def safe_id(self) -> str:
        """The event id as it may appear in an S3 key: itself if it is UUID-like, else ``h<hash>``."""
        if SAFE_EVENT_ID.fullmatch(self.event_id):
            return self.event_id
        return "h" + hashlib.sha256(self.event_id.encode("utf-8", "surrogatepass")).hexdigest()[:32]

    @property
    def region(self) -> str:
        """The event's Region if it is one ("" if absent or not Region-shaped)."""
        region = self.raw.get("region")
        return region if isinstance(region, str) and REGION.fullmatch(region) else ""

    @property
    def detail_type(self) -> str:
        return str(self.raw["detail-type"])

    @property
    def detail(self) -> dict[str, Any]:
        return dict(self.raw["detail"])

    @property
    def time(self) -> dt.datetime:
        return dt.datetime.fromisoformat(str(self.raw["time"]).replace("Z", "+00:00"))

    @property
    def is_run_status(self) -> bool:
        return self.detail_type == RUN_STATUS_CHANGE

    @property
    def run_id(self) -> str | None:
        """The run's id: ``detail.runId``, else the one in its ARN (older events carry only the ARN)."""
        detail = self.detail
        if detail.get("runId"):
            return str(detail["runId"])
        arn = RUN_ARN.fullmatch(str(detail.get("arn") or ""))
        return arn["id"] if arn else None

    @property
    def run_arn(self) -> str | None:
        """``detail.arn`` if it is the ARN of this event's run."""
        arn = self.detail.get("arn")
        found = RUN_ARN.fullmatch(arn) if isinstance(arn, str) else None
        return arn if found and found["id"] == self.run_id else None

    def archive_name(self) -> str:
        """``event_YYYYMMDD_HHMMSS_<event id>.json``: its own time and id, so a redelivery names the same object."""
        return f"event_{self.time.strftime('%Y%m%d_%H%M%S')}_{self.safe_id}.json"


def _document(body: Any) -> Any:
    if not isinstance(body, str):
        return body
    try:
        return strict_json(body, root="message")
    except DocumentError as err:
        raise MalformedEventError(str(err)) from err


def parse_event(body: Any) -> OmicsEvent:
    """The event in an SQS message body (raw EventBridge JSON, or wrapped once in an SNS notification).

    Raises :class:`MalformedEventError` for anything that is not a usable HealthOmics event, and
    nothing else: every field later used in a key, a link or a call is checked here.
    """
    body = _document(body)
    if isinstance(body, dict) and body.get("Type") == "Notification" and isinstance(body.get("Message"), str):
        body = _document(body["Message"])
    if not isinstance(body, dict):
        raise MalformedEventError(f"not a JSON object but {type(body).__name__}")
    missing = [f for f in ENVELOPE_FIELDS if f not in body]
    if missing:
        raise MalformedEventError(f"not an EventBridge event: missing {', '.join(missing)}")
    for name in ("id", "detail-type", "source", "time"):
        value = body[name]
        if not isinstance(value, str) or not value or len(value) > MAX_FIELD_CHARACTERS:
            raise MalformedEventError(f"the event's {name} is not a string of 1-{MAX_FIELD_CHARACTERS} characters")
    if body["source"] != SOURCE:
        raise MalformedEventError(f"not a HealthOmics event: source {shown(body['source'])}")
    detail = body["detail"]
    if not isinstance(detail, dict) or not isinstance(detail.get("status"), str):
        raise MalformedEventError("the event's detail has no status")
    event = OmicsEvent(body)
    try:
        event.time  # noqa: B018 - validates the timestamp
    except ValueError as err:
        raise MalformedEventError(f"bad event time {shown(body['time'])}") from err
    if event.is_run_status:
        if not event.run_id:
            raise MalformedEventError("a Run Status Change without runId or run ARN")
        if not RUN_ID.fullmatch(event.run_id):
            raise MalformedEventError(f"not a HealthOmics run id: {shown(event.run_id)}")
    return event


def flatten(value: Any, prefix: str = "") -> dict[str, Any]:
    """Nested objects as dotted keys (``a.b.c``); lists and scalars stay as they are; no key is lost."""
    if not isinstance(value, dict):
        return {prefix: value} if prefix else {}
    flat: dict[str, Any] = {}
    for key, item in value.items():
        name = f"{prefix}.{key}" if prefix else str(key)
        if isinstance(item, dict) and item:
            flat.update(flatten(item, name))
        else:
            flat[name] = item
    return flat


def flat_event(event: OmicsEvent) -> dict[str, Any]:
    """The envelope's fields as ``event*`` keys, the detail's fields flattened beside them."""
    raw = event.raw
    flat: dict[str, Any] = {
        "eventId": event.event_id,
        "eventType": event.detail_type,
        "eventSource": raw["source"],
        "eventTime": raw["time"],
        "account": raw.get("account"),
        "region": raw.get("region"),
        "resources": raw.get("resources", []),
    }
    for key, item in flatten(event.detail).items():
        flat[f"detail.{key}" if key in flat else key] = item
    return flat
