"""EventBridge events from HealthOmics: validate the envelope, flatten it, name its archive object."""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass
from typing import Any

RUN_STATUS_CHANGE = "Run Status Change"
SOURCE = "aws.omics"
ENVELOPE_FIELDS = ("id", "detail-type", "source", "time", "detail")


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
        """The run's id: ``detail.runId``, else the last part of its ARN (older events carry only the ARN)."""
        detail = self.detail
        if detail.get("runId"):
            return str(detail["runId"])
        arn = str(detail.get("arn") or "")
        return arn.rsplit("/", 1)[-1] if ":run/" in arn else None

    def archive_name(self) -> str:
        """``event_YYYYMMDD_HHMMSS_<event id>.json``: its own time and id, so a redelivery names the same object."""
        return f"event_{self.time.strftime('%Y%m%d_%H%M%S')}_{self.event_id}.json"


def parse_event(body: Any) -> OmicsEvent:
    """The event in an SQS message body (raw EventBridge JSON, or wrapped in an SNS notification)."""
    if isinstance(body, str):
        try:
            body = json.loads(body)
        except ValueError as err:
            raise MalformedEventError(f"not JSON: {err}") from err
    if isinstance(body, dict) and body.get("Type") == "Notification" and isinstance(body.get("Message"), str):
        return parse_event(body["Message"])
    if not isinstance(body, dict):
        raise MalformedEventError(f"not a JSON object but {type(body).__name__}")
    missing = [f for f in ENVELOPE_FIELDS if f not in body]
    if missing:
        raise MalformedEventError(f"not an EventBridge event: missing {', '.join(missing)}")
    if body["source"] != SOURCE:
        raise MalformedEventError(f"not a HealthOmics event: source {body['source']!r}")
    if not isinstance(body["detail"], dict) or "status" not in body["detail"]:
        raise MalformedEventError("the event's detail has no status")
    event = OmicsEvent(body)
    try:
        event.time  # noqa: B018 - validates the timestamp
    except ValueError as err:
        raise MalformedEventError(f"bad event time {body['time']!r}") from err
    if event.is_run_status and not event.run_id:
        raise MalformedEventError("a Run Status Change without runId or run ARN")
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
