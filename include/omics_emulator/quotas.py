"""API rate quotas as token buckets, answered with 429 ThrottlingException.

Rates are transactions per *real* second, because the callers (Airflow tasks and
triggers) live in real time. Defaults are the published per-account, per-Region
quotas (https://docs.aws.amazon.com/omics/latest/dev/api-quotas.html). The batch
operations have no published row; they draw on the bucket the dev guide says they
consume (StartRunBatch → StartRun, CancelRunBatch → CancelRun, DeleteRunBatch →
DeleteRun) or, for reads, get the 10 TPS of their run counterparts.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field

# The newer copy of the quota page says 0.1 TPS for StartRun (the older one said 1).
DEFAULT_TPS: dict[str, float] = {
    "StartRun": 0.1,
    "GetRun": 10.0,
    "ListRuns": 10.0,
    "ListRunTasks": 10.0,
    "GetRunTask": 10.0,
    "CancelRun": 10.0,
    "DeleteRun": 10.0,
    "GetBatch": 10.0,
    "ListBatch": 10.0,
    "ListRunsInBatch": 10.0,
    "DeleteBatch": 10.0,
    "CreateWorkflow": 5.0,
    "GetWorkflow": 10.0,
    "ListWorkflows": 10.0,
    "TagResource": 5.0,
    "UntagResource": 5.0,
    "ListTagsForResource": 5.0,
}

# Operations that consume another operation's quota.
SHARED_BUCKET: dict[str, str] = {
    "StartRunBatch": "StartRun",
    "CancelRunBatch": "CancelRun",
    "DeleteRunBatch": "DeleteRun",
}


@dataclass
class TokenBucket:
    """``rate`` tokens per second, holding at most ``burst`` (at least one call)."""

    rate: float
    burst: float
    tokens: float = field(init=False)
    updated: float = field(init=False)

    def __post_init__(self) -> None:
        self.tokens = self.burst
        self.updated = time.monotonic()

    def try_acquire(self) -> bool:
        now = time.monotonic()
        self.tokens = min(self.burst, self.tokens + (now - self.updated) * self.rate)
        self.updated = now
        if self.tokens >= 1.0:
            self.tokens -= 1.0
            return True
        return False


class QuotaTable:
    """Per-operation buckets. A rate of ``None`` (or <= 0) means unlimited."""

    def __init__(self, tps: dict[str, float | None] | None = None) -> None:
        self._lock = threading.Lock()
        self._tps: dict[str, float | None] = dict(DEFAULT_TPS)
        self._buckets: dict[str, TokenBucket] = {}
        if tps:
            self.update(tps)

    def bucket_name(self, operation: str) -> str:
        return SHARED_BUCKET.get(operation, operation)

    def update(self, tps: dict[str, float | None]) -> None:
        with self._lock:
            for operation, rate in tps.items():
                name = self.bucket_name(operation)
                self._tps[name] = rate if rate and rate > 0 else None
                self._buckets.pop(name, None)

    def as_dict(self) -> dict[str, float | None]:
        with self._lock:
            return dict(self._tps)

    def try_acquire(self, operation: str) -> bool:
        name = self.bucket_name(operation)
        with self._lock:
            rate = self._tps.get(name)
            if rate is None:
                return True
            bucket = self._buckets.get(name)
            if bucket is None:
                bucket = self._buckets[name] = TokenBucket(rate=rate, burst=max(1.0, rate))
            return bucket.try_acquire()

    def rate(self, operation: str) -> float | None:
        with self._lock:
            return self._tps.get(self.bucket_name(operation))
