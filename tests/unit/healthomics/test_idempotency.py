"""Deterministic request ids: same submit, same id; anything that changes the work, a new id."""

from __future__ import annotations

import pytest

from healthomics.utils.idempotency import (
    TAG_ATTEMPT,
    TAG_KEY,
    VIA_MICRO_BATCH,
    Submission,
    attempt_tags,
    key_tag,
    request_id,
    run_request_id,
)

REQUEST = {"workflowId": "1234567", "parameters": {"sample_id": "S1", "fastq": "s3://b/S1.fq"}}


def test_same_submit_same_request_id() -> None:
    assert request_id("FC1/S1", REQUEST) == request_id("FC1/S1", dict(reversed(list(REQUEST.items()))))
    assert request_id("FC1/S1", {**REQUEST, "requestId": "ignored"}) == request_id("FC1/S1", REQUEST)


@pytest.mark.parametrize(
    ("key", "submitted", "attempt"),
    [
        ("FC1/S2", REQUEST, 1),
        ("FC1/S1", {**REQUEST, "parameters": {"sample_id": "S1", "fastq": "s3://b/S1-v2.fq"}}, 1),
        ("FC1/S1", REQUEST, 2),
    ],
    ids=["other-sample", "changed-input", "next-attempt"],
)
def test_anything_that_changes_the_work_changes_the_id(key: str, submitted: dict, attempt: int) -> None:  # type: ignore[type-arg]
    assert request_id(key, submitted, attempt) != request_id("FC1/S1", REQUEST, 1)


def test_request_ids_fit_the_service_limit() -> None:
    token = request_id("x" * 10_000, REQUEST, attempt=99)
    assert len(token) <= 128
    assert token.endswith("-a99")
    with pytest.raises(ValueError, match="start at 1"):
        request_id("k", REQUEST, attempt=0)


def test_attempt_tags() -> None:
    tags = attempt_tags("FC1/S1", 3)
    assert tags[TAG_KEY] == key_tag("FC1/S1") and len(tags[TAG_KEY]) == 32
    assert tags[TAG_ATTEMPT] == "3"


@pytest.mark.parametrize(
    ("record", "waits_in_micro_batch", "sent_unanswered"),
    [
        (Submission("k", 1, "req-1"), False, True),  # StartRun sent, the worker died before its answer
        (Submission("k", 1, "req-1", "100"), False, False),  # answered
        (Submission("k", 1, "req-1", None, VIA_MICRO_BATCH), True, False),  # in a micro batch, not back yet
        (Submission("k", 1, "req-1", "100", VIA_MICRO_BATCH), False, False),  # back with its run
        (Submission("k", 1, "req-1", None, VIA_MICRO_BATCH, ended_at_max_tries=2), False, False),  # refused
        (Submission("k", 1), False, False),  # the batch did not submit it
    ],
)
def test_a_record_says_where_its_unanswered_attempt_is_to_be_found(
    record: Submission, waits_in_micro_batch: bool, sent_unanswered: bool
) -> None:
    assert (record.waits_in_micro_batch, record.sent_unanswered) == (waits_in_micro_batch, sent_unanswered)


def test_a_start_run_request_id_leaves_its_tags_out() -> None:
    tagged = {**REQUEST, "tags": {"healthomics:dag_run_id": "manual__2"}}
    assert run_request_id("FC1/S1", tagged, 2) == run_request_id("FC1/S1", REQUEST, 2)
    assert run_request_id("FC1/S1", REQUEST, 2) == request_id("FC1/S1", REQUEST, 2)
