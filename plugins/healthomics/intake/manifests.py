"""Manifests that land in S3: find them (S3 event notifications or a listing) and name their runs.

Exactly one ``healthomics_flowcell`` (or, with stages, ``healthomics_pipeline``) run per
manifest version comes from the run id: it is derived from the flowcell id and the object's
ETag, and the run is triggered with "skip when it already exists". A duplicate event, a rescan
or a restart finds the run there and starts nothing; a changed manifest has a new ETag, so a new
run."""

from __future__ import annotations

import datetime as dt
import logging
import re
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from typing import Any
from urllib.parse import unquote_plus

from botocore.exceptions import ClientError

from healthomics.manifest import declared_flowcell_id, declares_stages
from healthomics.manifest.model import MAX_MANIFEST_BYTES
from healthomics.settings import FLOWCELL_DAG_ID, PIPELINE_DAG_ID
from healthomics.utils.dead_letters import digest
from healthomics.utils.documents import DocumentError, strict_json
from healthomics.utils.s3 import InvalidS3UriError, parse_s3_uri
from healthomics.utils.text import markdown_literal, safe_id_part, shown

log = logging.getLogger(__name__)

MANIFEST_SUFFIXES = (".json", ".csv")
# Folders of this package's own writes next to manifests (reports of refused manifests, dead
# letters): never manifests, or a report written there would start a run of its own.
RESERVED_FOLDERS = ("_reports", "_healthomics")
# An S3 ETag: hex digits, "-<parts>" for a multipart upload.
ETAG = re.compile(r"[0-9A-Za-z]{1,64}(-[0-9]{1,5})?")
VERSION_ID = re.compile(r"[\w.+=/-]{1,1024}", re.ASCII)


class MalformedNotificationError(ValueError):
    """A queue message that is not a usable S3 event notification (the message says why)."""


# Airflow's default allowed_run_id_pattern is ^[A-Za-z0-9_.~:+-]+$.


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
    location = parse_s3_uri(uri)
    return location.bucket, location.key


def is_manifest(obj: ManifestObject, prefix_uri: str | None) -> bool:
    """A manifest file (by suffix) under the watched prefix (any prefix when none is set).

    Nothing under a reserved folder (``_reports/``, ``_healthomics/``) is one.
    """
    if not obj.key.lower().endswith(MANIFEST_SUFFIXES) or obj.key.endswith("/"):
        return False
    if any(folder in RESERVED_FOLDERS for folder in obj.key.split("/")[:-1]):
        return False
    if not prefix_uri:
        return True
    return parse_s3_uri(obj.uri).within(parse_s3_uri(prefix_uri))


def _clean_etag(etag: str | None) -> str:
    return (etag or "").strip('"')


def _manifest_object(bucket: Any, key: Any, etag: Any, version_id: Any, landed: Any) -> ManifestObject:
    """One announced object, its fields checked: they become run ids, S3 requests and run notes."""
    if not isinstance(bucket, str) or not isinstance(key, str) or not key:
        raise MalformedNotificationError("an announced object has no bucket name or key")
    try:
        location = parse_s3_uri(f"s3://{bucket}/{key}", need_key=True)
    except InvalidS3UriError as err:
        raise MalformedNotificationError(f"announces an object S3 could not hold: {err}") from err
    cleaned = _clean_etag(etag if isinstance(etag, str) else None)
    if cleaned and not ETAG.fullmatch(cleaned):
        raise MalformedNotificationError(f"not an S3 ETag: {shown(cleaned)}")
    if version_id is not None and (
        not isinstance(version_id, str) or not re.fullmatch(r"[\w.+=/-]{1,1024}", version_id)
    ):
        raise MalformedNotificationError(f"not an S3 version id: {shown(version_id)}")
    return ManifestObject(location.bucket, location.key, cleaned, version_id, _timestamp(landed))


def _timestamp(value: Any) -> str | None:
    """An ISO 8601 time as given, or None for anything else (it is only shown in the run note)."""
    if not isinstance(value, str) or len(value) > 40:
        return None
    try:
        dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return value


def objects_in_notification(body: Any) -> list[ManifestObject]:
    """The created objects one queue message announces.

    Understands S3 event notifications (``Records``, keys URL-encoded), the same wrapped in an
    SNS notification, and EventBridge "Object Created" events. ``s3:TestEvent`` and other
    events announce nothing. Raises :class:`MalformedNotificationError` for a body that is none
    of these, or that announces an object no S3 could hold; never anything else.
    """
    try:
        return _objects_in(body, wrapped=False)
    except MalformedNotificationError:
        raise
    except (KeyError, TypeError, AttributeError, ValueError) as err:  # a field missing or of the wrong type
        raise MalformedNotificationError(f"not an S3 event notification ({type(err).__name__}: {shown(err)})") from err


def _objects_in(body: Any, wrapped: bool) -> list[ManifestObject]:
    if isinstance(body, str):
        try:
            body = strict_json(body, root="message")
        except DocumentError as err:
            raise MalformedNotificationError(str(err)) from err
    if not isinstance(body, dict):
        raise MalformedNotificationError("not a JSON object")
    if body.get("Type") == "Notification" and "Message" in body and not wrapped:  # S3 -> SNS -> SQS
        return _objects_in(body["Message"], wrapped=True)
    if body.get("Event") == "s3:TestEvent":
        return []
    if "Records" in body:
        if not isinstance(body["Records"], list):
            raise MalformedNotificationError("Records is not a list")
        found = []
        for record in body["Records"]:
            if not str(record.get("eventName", "")).startswith("ObjectCreated"):
                continue
            s3 = record["s3"]
            found.append(
                _manifest_object(
                    s3["bucket"]["name"],
                    unquote_plus(s3["object"]["key"]),
                    s3["object"].get("eTag"),
                    s3["object"].get("versionId"),
                    record.get("eventTime"),
                )
            )
        return found
    if body.get("source") == "aws.s3" and "detail" in body:
        if body.get("detail-type") != "Object Created":
            return []
        detail = body["detail"]
        return [
            _manifest_object(
                detail["bucket"]["name"],
                detail["object"]["key"],
                detail["object"].get("etag"),
                detail["object"].get("version-id"),
                body.get("time"),
            )
        ]
    raise MalformedNotificationError("neither an S3 event notification nor an EventBridge S3 event")


def list_manifests(
    s3_client: Any,
    prefix_uri: str,
    since: dt.datetime | None = None,
    until: dt.datetime | None = None,
    unusable: list[dict[str, str]] | None = None,
) -> list[ManifestObject]:
    """Manifests under ``prefix_uri`` that landed in ``[since, until)`` (LastModified), oldest first.

    :param unusable: if given, gets ``{"key", "etag", "reason"}`` of each object named like a
        manifest whose key this package cannot use (control characters, ...), instead of
        passing over it without a word.
    """
    bucket, prefix = split_s3_uri(prefix_uri)
    found = []
    for page in s3_client.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
        for item in page.get("Contents", []):
            landed: dt.datetime = item["LastModified"]
            if (since and landed < since) or (until and landed >= until):
                continue
            etag = _clean_etag(item.get("ETag"))
            try:
                parse_s3_uri(f"s3://{bucket}/{item['Key']}", need_key=True)
            except InvalidS3UriError as err:
                if unusable is not None and item["Key"].lower().endswith(MANIFEST_SUFFIXES):
                    unusable.append({"key": item["Key"], "etag": etag, "reason": str(err)})
                continue
            obj = ManifestObject(bucket, item["Key"], etag, None, landed.isoformat())
            if is_manifest(obj, prefix_uri):
                found.append(obj)
    return sorted(found, key=lambda o: (o.last_modified or "", o.key))


def unique(objects: Iterable[ManifestObject]) -> list[ManifestObject]:
    """One entry per object version (duplicate deliveries of one event collapse)."""
    seen: dict[tuple[str, str, str], ManifestObject] = {}
    for obj in objects:
        seen.setdefault((obj.bucket, obj.key, obj.etag), obj)
    return list(seen.values())


def flowcell_dag_id(body: bytes | str | dict[str, Any]) -> str:
    """The DAG that runs a manifest: a pipeline's (it has ``stages``), else the one-workflow flowcell DAG."""
    return PIPELINE_DAG_ID if declares_stages(body) else FLOWCELL_DAG_ID


def flowcell_run_id(flowcell_id: str, etag: str) -> str:
    """The ``healthomics_flowcell`` run id of one manifest version."""
    return f"manifest__{safe_id_part(flowcell_id)}__{safe_id_part(etag, 64)}"


def read_version(s3_client: Any, obj: ManifestObject) -> bytes | None:
    """The bytes of exactly this version; None if it is gone or was replaced since."""
    request: dict[str, Any] = {"Bucket": obj.bucket, "Key": obj.key}
    if obj.version_id:
        request["VersionId"] = obj.version_id
    elif obj.etag:
        request["IfMatch"] = f'"{obj.etag}"'
    try:
        response = s3_client.get_object(**request)
    except ClientError as err:
        code = err.response.get("Error", {}).get("Code", "")
        if code in ("PreconditionFailed", "412", "NoSuchKey", "NoSuchVersion", "404"):
            return None
        raise
    if int(response.get("ContentLength") or 0) > MAX_MANIFEST_BYTES:
        response["Body"].close()
        return b""  # named by its file name; its run refuses it as too large
    body: bytes = response["Body"].read()
    return body


def flowcell_run(s3_client: Any, obj: ManifestObject) -> dict[str, Any] | None:
    """TriggerDagRunOperator arguments for one manifest version; None if it is no longer in S3.

    The flowcell id comes from the manifest (read here) or its file name; a manifest that
    cannot be parsed still gets its run, which fails on it and says why. A version already
    replaced is passed over: the newer one has its own event. The run reads exactly this
    version (``manifest_etag``). A read error raises: the run id must not depend on whether
    this read worked (the message comes back, the next sweep looks again).
    """
    body = read_version(s3_client, obj)
    if body is None:
        log.info("Skipping %s (ETag %s): deleted or replaced since it landed", obj.uri, obj.etag)
        return None
    flowcell_id = declared_flowcell_id(body, obj.uri) or obj.key
    run_id = flowcell_run_id(flowcell_id, obj.etag)
    dag_id = flowcell_dag_id(body)
    log.info("%s -> flowcell %s, %s run %s", obj.uri, flowcell_id, dag_id, run_id)
    return {
        "trigger_dag_id": dag_id,
        "trigger_run_id": run_id,
        "conf": {"manifest_uri": obj.uri, "manifest_etag": obj.etag},
        # Airflow renders notes as Markdown: the key is shown as code, never as a link.
        "note": f"Manifest {markdown_literal(obj.uri)} (ETag {obj.etag}) landed {obj.last_modified or ''}".strip(),
    }


def identity(obj: ManifestObject) -> str:
    """A short name of one object version (what its failed tries and dead letter are filed under)."""
    return digest(f"{obj.bucket}/{obj.key}@{obj.etag}@{obj.version_id or ''}")
