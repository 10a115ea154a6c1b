"""The emulator's own AWS side effects: reading/writing S3 and sending events to SQS.

They go through real boto3 clients to the local stack (moto), outside the backend
lock, on worker threads, so a slow S3 never stalls the API.
"""

from __future__ import annotations

import json
import logging
import queue
import threading
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import boto3
from botocore.config import Config
from botocore.exceptions import ClientError

if TYPE_CHECKING:
    from mypy_boto3_sqs.type_defs import SendMessageBatchRequestEntryTypeDef

log = logging.getLogger(__name__)

# moto accepts any credentials; these never leave the machine.
_LOCAL_KEY = "emulator"


@dataclass(frozen=True)
class S3Uri:
    bucket: str
    key: str

    @classmethod
    def parse(cls, uri: str) -> S3Uri:
        if not uri.startswith("s3://"):
            raise ValueError(f"not an S3 URI: {uri}")
        bucket, _, key = uri[5:].partition("/")
        if not bucket:
            raise ValueError(f"S3 URI has no bucket: {uri}")
        return cls(bucket, key)

    def __str__(self) -> str:
        return f"s3://{self.bucket}/{self.key}"


class S3Gateway:
    """The few S3 calls the service makes on a caller's behalf."""

    def __init__(self, endpoint_url: str, region: str) -> None:
        self._client = boto3.client(
            "s3",
            endpoint_url=endpoint_url,
            region_name=region,
            config=Config(retries={"mode": "standard", "max_attempts": 3}),
            aws_access_key_id=_LOCAL_KEY,
            aws_secret_access_key=_LOCAL_KEY,
        )

    def etag(self, uri: S3Uri) -> str | None:
        """The object's ETag, or None if it cannot be read."""
        try:
            return str(self._client.head_object(Bucket=uri.bucket, Key=uri.key)["ETag"])
        except ClientError:
            return None

    def read(self, uri: S3Uri) -> tuple[bytes, str]:
        response = self._client.get_object(Bucket=uri.bucket, Key=uri.key)
        return response["Body"].read(), str(response["ETag"])

    def exists(self, uri: S3Uri) -> bool:
        """An object, or a "folder" (any key under the prefix)."""
        if uri.key and self.etag(uri) is not None:
            return True
        prefix = uri.key if not uri.key or uri.key.endswith("/") else uri.key + "/"
        try:
            listing = self._client.list_objects_v2(Bucket=uri.bucket, Prefix=prefix, MaxKeys=1)
        except ClientError:
            return False
        return bool(listing.get("KeyCount"))

    def put_json(self, uri: S3Uri, document: Any) -> None:
        self._client.put_object(
            Bucket=uri.bucket,
            Key=uri.key,
            Body=json.dumps(document, indent=2, default=str).encode(),
            ContentType="application/json",
        )


class EventPublisher:
    """Sends EventBridge-shaped events to an SQS queue, in order, best effort."""

    def __init__(self, queue_url: str, endpoint_url: str | None, region: str) -> None:
        self.queue_url = queue_url
        self._client = boto3.client(
            "sqs",
            endpoint_url=endpoint_url,
            region_name=region,
            config=Config(retries={"mode": "standard", "max_attempts": 5}),
            aws_access_key_id=_LOCAL_KEY,
            aws_secret_access_key=_LOCAL_KEY,
        )
        self._queue: queue.Queue[dict[str, Any] | None] = queue.Queue()
        self._idle = threading.Event()
        self._idle.set()
        self.sent = 0
        self.failed = 0
        # Ids of the events SQS took, in order (what a test compares with what was processed).
        self.sent_ids: list[str] = []
        self._thread = threading.Thread(target=self._pump, name="event-publisher", daemon=True)
        self._thread.start()

    def publish(self, event: dict[str, Any]) -> None:
        self._idle.clear()
        self._queue.put(event)

    def _pump(self) -> None:
        while True:
            item = self._queue.get()
            if item is None:
                return
            batch = [item]
            while len(batch) < 10:  # SendMessageBatch takes at most 10 entries
                try:
                    nxt = self._queue.get_nowait()
                except queue.Empty:
                    break
                if nxt is None:
                    self._send(batch)
                    return
                batch.append(nxt)
            self._send(batch)
            if self._queue.empty():
                self._idle.set()

    def _send(self, batch: list[dict[str, Any]]) -> None:
        entries: list[SendMessageBatchRequestEntryTypeDef] = [
            {"Id": str(i), "MessageBody": json.dumps(event)} for i, event in enumerate(batch)
        ]
        try:
            response = self._client.send_message_batch(QueueUrl=self.queue_url, Entries=entries)
            self.sent += len(response.get("Successful", []))
            self.sent_ids += [str(batch[int(ok["Id"])]["id"]) for ok in response.get("Successful", [])]
            self.failed += len(response.get("Failed", []))
        except Exception:
            log.exception("could not deliver %d events to %s", len(batch), self.queue_url)
            self.failed += len(batch)

    def wait_idle(self, timeout: float) -> bool:
        return self._idle.wait(timeout)

    def summary(self) -> dict[str, Any]:
        return {"queue": self.queue_url, "sent": self.sent, "failed": self.failed, "ids": list(self.sent_ids)}

    def close(self, timeout: float = 10.0) -> None:
        self._queue.put(None)
        self._thread.join(timeout)


class IoPool:
    """Runs blocking S3 work off the lock; reports completion through a callback."""

    def __init__(self, workers: int = 4) -> None:
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="emulator-io")
        self._lock = threading.Lock()
        self._outstanding = 0
        self._idle = threading.Condition(self._lock)

    def submit(self, job: Callable[[], Any], done: Callable[[Any, BaseException | None], None]) -> None:
        with self._lock:
            self._outstanding += 1

        def run() -> None:
            try:
                result, error = job(), None
            except BaseException as exc:  # noqa: BLE001 - handed to the callback
                result, error = None, exc
            try:
                done(result, error)
            finally:
                with self._lock:
                    self._outstanding -= 1
                    if self._outstanding == 0:
                        self._idle.notify_all()

        future: Future[None] = self._pool.submit(run)
        del future

    def wait_idle(self, timeout: float) -> bool:
        with self._lock:
            return self._idle.wait_for(lambda: self._outstanding == 0, timeout)

    def busy(self) -> bool:
        with self._lock:
            return self._outstanding > 0

    def close(self) -> None:
        self._pool.shutdown(wait=True, cancel_futures=False)
