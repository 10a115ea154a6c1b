"""Manifests that land in S3: find them (S3 event notifications or a listing) and name their runs.

Exactly one ``healthomics_flowcell`` run per manifest version comes from the run id: it is
derived from the flowcell id and the object's ETag, and the run is triggered with
"skip when it already exists". A duplicate event, a rescan or a restart finds the run there
and starts nothing; a changed manifest has a new ETag, so a new run.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import logging
import re
from collections.abc import Iterable, Iterator
from dataclasses import asdict, dataclass
from typing import Any
from urllib.parse import unquote_plus

from botocore.exceptions import ClientError

from healthomics.manifest import declared_flowcell_id

log = logging.getLogger(__name__)

MANIFEST_SUFFIXES = (".json", ".csv")
# Airflow's default allowed_run_id_pattern is ^[A-Za-z0-9_.~:+-]+$.
RUN_ID_UNSAFE = re.compile(r"[^A-Za-z0-9_.~:+-]+")
MAX_FLOWCELL_IN_RUN_ID = 100


@dataclass(frozen=True)
class ManifestObject:
    """One version of one manifest object."""

    bucket: str
    key: str
    etag: str
    version_id: str | None = None
    last_modified: str | None = None  # ISO 8601

    @property
    def uri(self) -> str:
        return f"s3://{self.bucket}/{self.key}"

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def split_s3_uri(uri: str) -> tuple[str, str]:
    """``s3://<bucket>/<prefix>`` -> ``(bucket, prefix)``; the prefix may be empty."""
    if not uri.startswith("s3://") or not uri[5:].split("/", 1)[0]:
        raise ValueError(f"not an s3:// URI: {uri!r}")
    bucket, _, prefix = uri[5:].partition("/")
    return bucket, prefix


def is_manifest(obj: ManifestObject, prefix_uri: str | None) -> bool:
    """A manifest file (by suffix) under the watched prefix (any prefix when none is set)."""
    if not obj.key.lower().endswith(MANIFEST_SUFFIXES) or obj.key.endswith("/"):
        return False
    if not prefix_uri:
        return True
    bucket, prefix = split_s3_uri(prefix_uri)
    return obj.bucket == bucket and obj.key.startswith(prefix)


def _clean_etag(etag: str | None) -> str:
    return (etag or "").strip('"')


def objects_in_notification(body: Any) -> list[ManifestObject]:
    """The created objects one queue message announces.

    Understands S3 event notifications (``Records``, keys URL-encoded), the same wrapped in an
    SNS notification, and EventBridge "Object Created" events. ``s3:TestEvent`` and other
    events announce nothing. Raises ``ValueError`` for a body that is none of these.
    """
    if isinstance(body, str):
        body = json.loads(body)
    if not isinstance(body, dict):
        raise ValueError("not a JSON object")
    if body.get("Type") == "Notification" and "Message" in body:  # S3 -> SNS -> SQS
        return objects_in_notification(body["Message"])
    if body.get("Event") == "s3:TestEvent":
        return []
    if "Records" in body:
        found = []
        for record in body["Records"]:
            if not str(record.get("eventName", "")).startswith("ObjectCreated"):
                continue
            s3 = record["s3"]
            found.append(
                ManifestObject(
                    bucket=s3["bucket"]["name"],
                    key=unquote_plus(s3["object"]["key"]),
                    etag=_clean_etag(s3["object"].get("eTag")),
                    version_id=s3["object"].get("versionId"),
                    last_modified=record.get("eventTime"),
                )
            )
        return found
    if body.get("source") == "aws.s3" and "detail" in body:
        if body.get("detail-type") != "Object Created":
            return []
        detail = body["detail"]
        return [
            ManifestObject(
                bucket=detail["bucket"]["name"],
                key=detail["object"]["key"],
                etag=_clean_etag(detail["object"].get("etag")),
                version_id=detail["object"].get("version-id"),
                last_modified=body.get("time"),
            )
        ]
    raise ValueError("neither an S3 event notification nor an EventBridge S3 event")


def list_manifests(
    s3_client: Any, prefix_uri: str, since: dt.datetime | None = None, until: dt.datetime | None = None
) -> list[ManifestObject]:
    """Manifests under ``prefix_uri`` that landed in ``[since, until)`` (LastModified), oldest first."""
    bucket, prefix = split_s3_uri(prefix_uri)
    found = []
    for page in s3_client.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
        for item in page.get("Contents", []):
            landed: dt.datetime = item["LastModified"]
            if (since and landed < since) or (until and landed >= until):
                continue
            obj = ManifestObject(bucket, item["Key"], _clean_etag(item.get("ETag")), None, landed.isoformat())
            if is_manifest(obj, prefix_uri):
                found.append(obj)
    return sorted(found, key=lambda o: (o.last_modified or "", o.key))


def unique(objects: Iterable[ManifestObject]) -> list[ManifestObject]:
    """One entry per object version (duplicate deliveries of one event collapse)."""
    seen: dict[tuple[str, str, str], ManifestObject] = {}
    for obj in objects:
        seen.setdefault((obj.bucket, obj.key, obj.etag), obj)
    return list(seen.values())


def safe_run_id_part(text: str, limit: int = MAX_FLOWCELL_IN_RUN_ID) -> str:
    """``text`` with what Airflow run ids may not hold replaced; long text keeps a hash suffix."""
    safe = RUN_ID_UNSAFE.sub("-", text).strip("-") or "x"
    if len(safe) > limit:
        safe = f"{safe[: limit - 9]}-{hashlib.sha256(text.encode()).hexdigest()[:8]}"
    return safe


def flowcell_run_id(flowcell_id: str, etag: str) -> str:
    """The ``healthomics_flowcell`` run id of one manifest version."""
    return f"manifest__{safe_run_id_part(flowcell_id)}__{safe_run_id_part(etag, 64)}"


def read_version(s3_client: Any, obj: ManifestObject) -> bytes | None:
    """The bytes of exactly this version; None if it is gone or was replaced since."""
    request: dict[str, Any] = {"Bucket": obj.bucket, "Key": obj.key}
    if obj.version_id:
        request["VersionId"] = obj.version_id
    elif obj.etag:
        request["IfMatch"] = f'"{obj.etag}"'
    try:
        body: bytes = s3_client.get_object(**request)["Body"].read()
    except ClientError as err:
        code = err.response.get("Error", {}).get("Code", "")
        if code in ("PreconditionFailed", "412", "NoSuchKey", "NoSuchVersion", "404"):
            return None
        raise
    return body


def flowcell_runs(s3_client: Any, objects: Iterable[ManifestObject]) -> Iterator[dict[str, Any]]:
    """TriggerDagRunOperator arguments for each manifest version still in S3.

    The flowcell id comes from the manifest (read here) or its file name; a manifest that
    cannot be parsed still gets its run, which fails on it and says why. A version already
    replaced is passed over: the newer one has its own event. The run reads exactly this
    version (``manifest_etag``).
    """
    for obj in unique(objects):
        # A read error raises: the run id must not depend on whether this read worked (the
        # message comes back, the next sweep looks again). Unparseable content is fine.
        body = read_version(s3_client, obj)
        if body is None:
            log.info("Skipping %s (ETag %s): deleted or replaced since it landed", obj.uri, obj.etag)
            continue
        flowcell_id = declared_flowcell_id(body, obj.uri) or obj.key
        run_id = flowcell_run_id(flowcell_id, obj.etag)
        log.info("%s -> flowcell %s, run %s", obj.uri, flowcell_id, run_id)
        yield {
            "trigger_run_id": run_id,
            "conf": {"manifest_uri": obj.uri, "manifest_etag": obj.etag},
            "note": f"Manifest {obj.uri} (ETag {obj.etag}) landed {obj.last_modified or ''}".strip(),
        }
