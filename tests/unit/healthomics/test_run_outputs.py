"""A run's logs/outputs.json, read for later pipeline stages and the run events: the document, or
why not (one GetObject each, through botocore's Stubber)."""

from __future__ import annotations

import io
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from botocore.response import StreamingBody
from botocore.stub import Stubber

from healthomics.utils.s3 import RunOutputs, parse_s3_uri, read_run_outputs

RUN_OUTPUT = "s3://lab-output/FC9/1000001"
KEY = {"Bucket": "lab-output", "Key": "FC9/1000001/logs/outputs.json"}


@pytest.fixture
def s3() -> Iterator[tuple[Any, Stubber]]:
    client = boto3.client("s3", region_name="eu-west-1", aws_access_key_id="x", aws_secret_access_key="x")
    with Stubber(client) as stub:
        yield client, stub
        stub.assert_no_pending_responses()


def body(text: bytes) -> dict[str, Any]:
    return {"Body": StreamingBody(io.BytesIO(text), len(text))}


def test_the_outputs_of_a_completed_run(s3: tuple[Any, Stubber]) -> None:
    client, stub = s3
    stub.add_response("get_object", body(b'{"main.vcf": ["s3://o/a.vcf"], "main.bam": "s3://o/a.bam"}'), KEY)
    found = read_run_outputs(client, RUN_OUTPUT, [parse_s3_uri("s3://lab-output/")])
    assert found == RunOutputs(RUN_OUTPUT, {"main.vcf": ["s3://o/a.vcf"], "main.bam": "s3://o/a.bam"})


@pytest.mark.parametrize(
    ("answer", "error"),
    [
        ("NoSuchKey", "s3://lab-output/FC9/1000001/logs/outputs.json: NoSuchKey"),
        (b"not json", "s3://lab-output/FC9/1000001/logs/outputs.json: not JSON"),
        (b'["a list"]', "s3://lab-output/FC9/1000001/logs/outputs.json: not a JSON object"),
    ],
)
def test_an_outputs_file_that_cannot_be_used_says_why(s3: tuple[Any, Stubber], answer: Any, error: str) -> None:
    client, stub = s3
    if isinstance(answer, bytes):
        stub.add_response("get_object", body(answer), KEY)
    else:
        stub.add_client_error("get_object", answer, http_status_code=404, expected_params=KEY)
    found = read_run_outputs(client, RUN_OUTPUT)
    assert found.location == RUN_OUTPUT and found.outputs is None
    assert found.error is not None and found.error.startswith(error)


def test_outputs_outside_the_allowed_prefixes_or_without_a_location_are_not_read(s3: tuple[Any, Stubber]) -> None:
    client, _ = s3  # no call is stubbed: any call would fail the test
    outside = read_run_outputs(client, RUN_OUTPUT, [parse_s3_uri("s3://lab-results/")])
    assert outside == RunOutputs(None, error=f"{RUN_OUTPUT} is outside the allowed output prefixes; not read")
    nowhere = read_run_outputs(client, None)
    assert nowhere.location is None and nowhere.error is not None
    assert nowhere.error.startswith("the run has no usable output location")
