"""Deterministic request ids: same submit, same id; anything that changes the work, a new id."""

from __future__ import annotations

import pytest

from healthomics.utils.idempotency import TAG_ATTEMPT, TAG_KEY, attempt_tags, key_tag, request_id

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
