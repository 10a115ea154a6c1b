"""The one parser of ``s3://`` URIs, and the one rule for "is this location inside that prefix".

Manifests, Params, Variables and queue messages all name S3 locations; every one of them is
read through :func:`parse_s3_uri`, which refuses what a loose ``^s3://...$`` pattern let through:
a trailing newline (``$`` matches before it), ``s3://`` with no bucket, bucket names S3 would
refuse, keys with control characters or longer than S3 allows. :meth:`S3Uri.within` compares
bucket and key-prefix boundaries, so an allowed ``s3://<bucket>`` does not also allow
``s3://<bucket>-evil/...``.
"""

from __future__ import annotations

import json
import re
import unicodedata
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from botocore.exceptions import ClientError

from healthomics.utils.text import cut, shown

# S3's bucket naming rules (general purpose buckets).
BUCKET = re.compile(r"[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]")
IP_ADDRESS = re.compile(r"\d{1,3}(\.\d{1,3}){3}")
RESERVED_BUCKET_PREFIXES = ("xn--", "sthree-")
RESERVED_BUCKET_SUFFIXES = ("-s3alias", "--ol-s3", ".mrap", "--x-s3")
MAX_KEY_BYTES = 1024
NOT_FOUND_CODES = frozenset({"404", "NoSuchKey", "NotFound"})


class InvalidS3UriError(ValueError):
    """Not an S3 location this package will use; the message says why."""


@dataclass(frozen=True)
class S3Uri:
    """A bucket and a key (or key prefix; empty for the whole bucket)."""

    bucket: str
    key: str = ""

    @property
    def uri(self) -> str:
        return f"s3://{self.bucket}/{self.key}" if self.key else f"s3://{self.bucket}"

    def __str__(self) -> str:
        return self.uri

    def join(self, *parts: str) -> S3Uri:
        """A location under this one (``parts`` joined with single slashes)."""
        key = "/".join(p.strip("/") for p in (self.key, *parts) if p.strip("/"))
        return S3Uri(self.bucket, key)

    def parent(self) -> S3Uri:
        """The folder holding this key (``s3://b/a/m.json`` -> ``s3://b/a``)."""
        return S3Uri(self.bucket, self.key.rstrip("/").rpartition("/")[0])

    def within(self, prefix: S3Uri) -> bool:
        """In ``prefix``'s bucket, and at or below its key on a ``/`` boundary.

        ``s3://b/team-a`` holds ``s3://b/team-a`` and ``s3://b/team-a/x``, not ``s3://b/team-ab``;
        ``s3://b`` holds every key of bucket ``b``, and no other bucket.
        """
        if self.bucket != prefix.bucket:
            return False
        if not prefix.key:
            return True
        if prefix.key.endswith("/"):
            return self.key.startswith(prefix.key) or self.key == prefix.key.rstrip("/")
        return self.key == prefix.key or self.key.startswith(prefix.key + "/")


def bucket_problem(bucket: str) -> str | None:
    """Why S3 would refuse ``bucket`` as a name, or None."""
    if not BUCKET.fullmatch(bucket):
        return "3-63 lower-case letters, digits, dots and hyphens, starting and ending with a letter or digit"
    if ".." in bucket:
        return "two dots in a row"
    if IP_ADDRESS.fullmatch(bucket):
        return "shaped like an IP address"
    if bucket.startswith(RESERVED_BUCKET_PREFIXES) or bucket.endswith(RESERVED_BUCKET_SUFFIXES):
        return "a prefix or suffix S3 reserves"
    return None


def parse_s3_uri(uri: Any, *, need_key: bool = False) -> S3Uri:
    """``s3://<bucket>[/<key>]`` as an :class:`S3Uri`; raise :class:`InvalidS3UriError` saying why not.

    :param need_key: the location must name an object or a prefix below the bucket
        (an input file), not the bucket itself.
    """
    if not isinstance(uri, str):
        raise InvalidS3UriError(f"must be an s3:// URI string, got {type(uri).__name__}")
    if not uri.startswith("s3://"):
        raise InvalidS3UriError(f"not an s3:// URI: {shown(uri)}")
    bucket, _, key = uri[5:].partition("/")
    if not bucket:
        raise InvalidS3UriError(f"no bucket in {shown(uri)}")
    problem = bucket_problem(bucket)
    if problem:
        raise InvalidS3UriError(f"{shown(uri)}: {shown(bucket)} is not a valid bucket name ({problem})")
    if any(unicodedata.category(c)[0] == "C" for c in key):
        raise InvalidS3UriError(f"the key holds control or invisible characters: {shown(uri)}")
    if len(key.encode("utf-8", "surrogatepass")) > MAX_KEY_BYTES:
        raise InvalidS3UriError(f"the key is longer than S3's {MAX_KEY_BYTES} bytes: {shown(uri)}")
    if need_key and not key.strip("/"):
        raise InvalidS3UriError(f"names a whole bucket, not an object or prefix in it: {shown(uri)}")
    return S3Uri(bucket, key)


def within_any(location: S3Uri, prefixes: Iterable[S3Uri]) -> bool:
    """Inside one of ``prefixes`` (see :meth:`S3Uri.within`)."""
    return any(location.within(prefix) for prefix in prefixes)


@dataclass(frozen=True)
class RunOutputs:
    """A run's ``logs/outputs.json`` (what its workflow declared as outputs), or why it was not read."""

    location: str | None
    outputs: dict[str, Any] | None = None
    error: str | None = None


def read_run_outputs(s3_client: Any, run_output_uri: Any, allowed: Iterable[S3Uri] = ()) -> RunOutputs:
    """``<runOutputUri>/logs/outputs.json`` of a completed run, read only inside ``allowed`` (if any)."""
    try:
        location = parse_s3_uri(run_output_uri)
    except InvalidS3UriError as err:
        return RunOutputs(None, error=f"the run has no usable output location: {err}")
    prefixes = list(allowed)
    if prefixes and not within_any(location, prefixes):
        return RunOutputs(None, error=f"{location.uri} is outside the allowed output prefixes; not read")
    outputs = location.join("logs", "outputs.json")
    try:
        body = s3_client.get_object(Bucket=outputs.bucket, Key=outputs.key)["Body"].read()
        document = json.loads(body)
    except ClientError as err:
        return RunOutputs(location.uri, error=f"{outputs.uri}: {err.response.get('Error', {}).get('Code', err)}")
    except ValueError as err:
        return RunOutputs(location.uri, error=f"{outputs.uri}: not JSON ({cut(str(err), 200)})")
    if not isinstance(document, dict):
        return RunOutputs(location.uri, error=f"{outputs.uri}: not a JSON object")
    return RunOutputs(location.uri, outputs=document)


class S3Documents:
    """
    JSON documents under one S3 prefix, written encrypted; what the event archive and the dead letters are.

    :param s3_client: a boto3 S3 client.
    :param uri: ``s3://<bucket>/<prefix>`` the documents live under.
    :param encryption: ``put_object`` encryption arguments (default SSE-S3).
    """

    def __init__(self, s3_client: Any, uri: str, encryption: dict[str, str] | None = None) -> None:
        location = parse_s3_uri(uri)
        self.s3 = s3_client
        self.bucket = location.bucket
        self.prefix = location.key.strip("/")
        self.encryption = encryption or {"ServerSideEncryption": "AES256"}

    def key(self, *parts: str) -> str:
        """The key of a document under the prefix (``parts`` joined with ``/``)."""
        return "/".join(p for p in (self.prefix, *parts) if p)

    def uri(self, key: str) -> str:
        return f"s3://{self.bucket}/{key}"

    def exists(self, key: str) -> bool:
        try:
            self.s3.head_object(Bucket=self.bucket, Key=key)
        except ClientError as err:
            if str(err.response.get("Error", {}).get("Code", "")) in NOT_FOUND_CODES:
                return False
            raise
        return True

    def put(self, key: str, document: dict[str, Any]) -> None:
        self.s3.put_object(
            Bucket=self.bucket,
            Key=key,
            Body=json.dumps(document, indent=2, default=str).encode(),
            ContentType="application/json",
            **self.encryption,
        )

    def get(self, key: str) -> dict[str, Any] | None:
        """The document, or None if there is none."""
        try:
            return dict(json.loads(self.s3.get_object(Bucket=self.bucket, Key=key)["Body"].read()))
        except ClientError as err:
            if str(err.response.get("Error", {}).get("Code", "")) in NOT_FOUND_CODES:
                return None
            raise
