"""Deterministic request ids and provenance tags.

Every submit carries a ``requestId`` derived from what is being run (never the random
one boto3 fills in), so a retried, cleared or re-run task that repeats a submit gets
the same run back instead of a second, paid one. A new *attempt* (after a run failed)
gets a new id on purpose.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

# Tag keys this package sets on runs and batches, to find them again without local state.
TAG_PREFIX = "healthomics:"
TAG_DAG_ID = TAG_PREFIX + "dag_id"
TAG_DAG_RUN_ID = TAG_PREFIX + "dag_run_id"
TAG_TASK_ID = TAG_PREFIX + "task_id"
TAG_KEY = TAG_PREFIX + "key"
TAG_ATTEMPT = TAG_PREFIX + "attempt"

MAX_TAG_VALUE = 256


def fingerprint(document: Any) -> str:
    """SHA-256 of a JSON document with sorted keys (stable across processes and runs)."""
    return hashlib.sha256(json.dumps(document, sort_keys=True, separators=(",", ":"), default=str).encode()).hexdigest()


def request_id(idempotency_key: str, request: dict[str, Any], attempt: int = 1) -> str:
    """
    The ``requestId`` for one submit.

    :param idempotency_key: what this submit is for, e.g. ``"dag/flowcell/sample"``; two submits
        with the same key and request are the same submit.
    :param request: the request without ``requestId``; a changed request (new parameters,
        new workflow version) is a different submit.
    :param attempt: 1 for the first run; a retry after a failed run uses the next number.
    """
    if attempt < 1:
        raise ValueError("attempt numbers start at 1")
    digest = fingerprint({"key": idempotency_key, "request": {k: v for k, v in request.items() if k != "requestId"}})
    return f"hoa-{digest[:48]}-a{attempt}"


def key_tag(idempotency_key: str) -> str:
    """Short, tag-safe form of an idempotency key."""
    return hashlib.sha256(idempotency_key.encode()).hexdigest()[:32]


def provenance_tags(context: Any) -> dict[str, str]:
    """Tags that tie a run or batch to the Airflow task instance that submitted it."""
    ti = context["ti"]
    return {
        TAG_DAG_ID: str(ti.dag_id)[:MAX_TAG_VALUE],
        TAG_DAG_RUN_ID: str(ti.run_id)[:MAX_TAG_VALUE],
        TAG_TASK_ID: str(ti.task_id)[:MAX_TAG_VALUE],
    }


def attempt_tags(idempotency_key: str, attempt: int) -> dict[str, str]:
    """Tags that identify which submit (key) and which attempt a run or batch is."""
    return {TAG_KEY: key_tag(idempotency_key), TAG_ATTEMPT: str(attempt)}


def default_idempotency_key(context: Any) -> str:
    """One task instance of one DAG run: ``dag/task/map_index/run_id``."""
    ti = context["ti"]
    return f"{ti.dag_id}/{ti.task_id}/{ti.map_index}/{ti.run_id}"
