"""Deterministic request ids and provenance tags.

Every submit carries a ``requestId`` derived from what is being run (never the random
one boto3 fills in), so a retried, cleared or re-run task that repeats a submit gets
the same run back instead of a second, paid one. A new *attempt* (after a run failed)
gets a new id on purpose.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
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


def run_request_id(idempotency_key: str, request: dict[str, Any], attempt: int = 1) -> str:
    """The ``requestId`` of attempt ``attempt`` of a StartRun ``request`` (its tags are not part of it:
    provenance tags differ between tries of one submit)."""
    return request_id(idempotency_key, {k: v for k, v in request.items() if k != "tags"}, attempt)


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


# Submission.via of an attempt that went in a micro batch (see healthomics.triggers.micro_batch).
VIA_MICRO_BATCH = "micro_batch"


@dataclass(frozen=True)
class Submission:
    """A task's record of one submit: which attempt, with which ``requestId``, and what it started.

    One shape for runs and run batches, kept in Airflow's task state store (3.3 and later) across
    retries and clears — the ``external_id`` of Airflow's ``ResumableJobMixin``, plus the
    ``requestId``, written *before* the call: a worker that dies between the call and the record
    repeats the call with the same ``requestId`` and gets the same run back, the crash window the
    mixin documents as open.

    :param key: the idempotency key the submit was for.
    :param attempt: 1 for the first run; the next number after a run failed.
    :param request_id: the attempt's ``requestId``.
    :param external_id: the run or batch id, once the service answered.
    :param via: how the attempt was submitted when not by its own call: ``"micro_batch"`` (the
        ``requestId`` is then its run setting's id in a micro batch, see
        :mod:`healthomics.triggers.micro_batch`); a repeat must look there, never call StartRun.
    :param ended_at_max_tries: the task instance's ``max_tries`` when the attempt failed the task
        for good. A clear raises ``max_tries``; a later try under the same value is Airflow
        retrying a task that failed for good, which pays for no new attempt.
    """

    key: str
    attempt: int
    request_id: str | None = None
    external_id: str | None = None
    via: str | None = None
    ended_at_max_tries: int | None = None

    @property
    def waits_in_micro_batch(self) -> bool:
        """It went in a micro batch whose answer was not recorded: look for it there again, never
        start it by StartRun (the run setting id is no StartRun requestId)."""
        return self.via == VIA_MICRO_BATCH and not self.external_id and self.ended_at_max_tries is None

    @property
    def sent_unanswered(self) -> bool:
        """Its own call (StartRun) may have gone out and its answer was not recorded (the worker
        died): repeat it as is, same requestId, same run; no micro batch may start it again."""
        return not self.external_id and bool(self.request_id) and self.via is None

    def as_json(self) -> dict[str, Any]:
        recorded = {"key": self.key, "attempt": self.attempt, "requestId": self.request_id}
        optional = {"via": self.via, "endedAtMaxTries": self.ended_at_max_tries}
        return {**recorded, "externalId": self.external_id, **{k: v for k, v in optional.items() if v is not None}}

    @classmethod
    def from_json(cls, value: Any) -> Submission | None:
        """The record, or None for anything else (nothing stored, another layout)."""
        if not isinstance(value, dict) or not isinstance(value.get("attempt"), int) or value["attempt"] < 1:
            return None
        key, attempt = str(value.get("key") or ""), value["attempt"]
        ended = value.get("endedAtMaxTries")
        return cls(
            key,
            attempt,
            value.get("requestId"),
            value.get("externalId"),
            value.get("via"),
            ended if isinstance(ended, int) else None,
        )


class SubmissionJournal:
    """Where a task keeps its :class:`Submission`: the task state store, under one key per operator.

    Without a task state store (Airflow before 3.3, or a bare context) nothing is kept and
    ``last()`` is None: the deterministic ``requestId`` and the tags still find every run again,
    from attempt 1 on.
    """

    def __init__(self, context: Any, state_key: str) -> None:
        self.store = context.get("task_state_store") if hasattr(context, "get") else None
        self.state_key = state_key

    @property
    def keeps_records(self) -> bool:
        """Whether records outlive this try (there is a task state store)."""
        return self.store is not None

    def last(self, key: str | None = None) -> Submission | None:
        """The last record (only if it is for ``key``, when one is given)."""
        if self.store is None:
            return None
        submission = Submission.from_json(self.store.get(self.state_key))
        if submission is None or (key is not None and submission.key != key):
            return None
        return submission

    def record(self, submission: Submission) -> None:
        if self.store is not None:
            self.store.set(self.state_key, submission.as_json())
