"""The emulator's wire layer against botocore's own serializer and parser (no server)."""

from __future__ import annotations

import datetime as dt
import json
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from botocore.parsers import create_parser
from botocore.serialize import create_serializer

from omics_emulator.errors import ERROR_STATUS
from omics_emulator.model import (
    OPERATIONS,
    SERVICE_MODEL,
    ProtocolError,
    Router,
    parse_request,
    serialize_response,
    validate_request,
)

ROLE = "arn:aws:iam::123456789012:role/run"
SAMPLE_INPUTS: dict[str, dict[str, Any]] = {
    "StartRun": {
        "workflowId": "1234567",
        "roleArn": ROLE,
        "outputUri": "s3://bucket/out",
        "requestId": "req-1",
        "parameters": {"sample_id": "S1", "nested": {"a": [1, 2]}},
        "priority": 5,
        "tags": {"flowcell": "FC1"},
    },
    "GetRun": {"id": "1234567", "export": ["DEFINITION"]},
    "ListRuns": {"name": "S1", "status": "RUNNING", "maxResults": 50, "batchId": "42"},
    "ListRunTasks": {"id": "1234567", "status": "COMPLETED", "maxResults": 20, "startingToken": "abc"},
    "GetRunTask": {"id": "1234567", "taskId": "1234567001"},
    "CancelRun": {"id": "1234567"},
    "DeleteRun": {"id": "1234567"},
    "StartRunBatch": {
        "batchName": "FC1",
        "requestId": "req-2",
        "defaultRunSetting": {"workflowId": "1234567", "roleArn": ROLE, "runTags": {"a": "b"}},
        "batchRunSettings": {"inlineSettings": [{"runSettingId": "S1", "parameters": {"x": 1}}]},
    },
    "GetBatch": {"batchId": "7654321"},
    "ListBatch": {"maxItems": 10, "status": "PROCESSED"},
    "ListRunsInBatch": {"batchId": "7654321", "submissionStatus": "FAILED", "maxItems": 100},
    "CancelRunBatch": {"batchId": "7654321"},
    "DeleteRunBatch": {"batchId": "7654321"},
    "DeleteBatch": {"batchId": "7654321"},
    "CreateWorkflow": {"name": "wf", "definitionZip": b"PK\x03\x04", "requestId": "req-3", "engine": "WDL"},
    "GetWorkflow": {"id": "1234567", "type": "PRIVATE"},
    "ListWorkflows": {"type": "READY2RUN", "maxResults": 5},
    "TagResource": {"resourceArn": "arn:aws:omics:us-east-1:123456789012:run/1234567", "tags": {"k": "v"}},
    "UntagResource": {"resourceArn": "arn:aws:omics:us-east-1:123456789012:run/1234567", "tagKeys": ["a", "b"]},
    "ListTagsForResource": {"resourceArn": "arn:aws:omics:us-east-1:123456789012:runBatch/7654321"},
}


def wire_request(operation_name: str, params: dict[str, Any]) -> tuple[str, str, dict[str, list[str]], bytes]:
    """What boto3 would put on the wire for this call."""
    operation = SERVICE_MODEL.operation_model(operation_name)
    request = create_serializer("rest-json").serialize_to_request(params, operation)
    url = urlsplit(request["url_path"])
    query = {k: v if isinstance(v, list) else [v] for k, v in request["query_string"].items()}
    query.update(parse_qs(url.query))
    body = request["body"] if isinstance(request["body"], bytes) else request["body"].encode()
    return request["method"], url.path, {k: [str(x) for x in v] for k, v in query.items()}, body


def test_every_operation_is_covered_by_a_sample() -> None:
    assert set(SAMPLE_INPUTS) == set(OPERATIONS)


@pytest.mark.parametrize("operation_name", OPERATIONS)
def test_routing_and_parsing_round_trip_botocore_serialization(operation_name: str) -> None:
    params = SAMPLE_INPUTS[operation_name]
    method, path, query, body = wire_request(operation_name, params)
    operation, path_params = Router().match(method, path)
    assert operation.name == operation_name
    parsed = parse_request(operation, path_params, query, body)
    assert parsed == params
    validate_request(operation, parsed)


def test_literal_routes_win_over_labels() -> None:
    router = Router()
    assert router.match("POST", "/runBatch/cancel")[0].name == "CancelRunBatch"
    assert router.match("POST", "/runBatch/delete")[0].name == "DeleteRunBatch"
    assert router.match("GET", "/runBatch/123")[0].name == "GetBatch"
    with pytest.raises(ProtocolError) as err:
        router.match("PUT", "/run")
    assert err.value.code == "UnknownOperationException"


def test_responses_parse_with_botocore() -> None:
    operation = SERVICE_MODEL.operation_model("GetRun")
    created = dt.datetime(2026, 11, 25, 8, 30, tzinfo=dt.UTC).timestamp()
    status, body = serialize_response(
        operation,
        {
            "id": "1234567",
            "status": "COMPLETED",
            "creationTime": created,
            "parameters": {"x": [1, {"y": True}]},
            "logLocation": {"runLogStream": "arn:aws:logs:us-east-1:123456789012:log-group:g:log-stream:run/1"},
            "tags": {"a": "b"},
            "statusMessage": None,
        },
    )
    assert status == 200
    parsed = create_parser("rest-json").parse(
        {"status_code": status, "headers": {}, "body": body}, operation.output_shape
    )
    assert parsed["creationTime"] == dt.datetime(2026, 11, 25, 8, 30, tzinfo=dt.UTC)
    assert parsed["parameters"] == {"x": [1, {"y": True}]}
    assert "statusMessage" not in parsed


def test_strict_responses_refuse_members_the_model_lacks() -> None:
    operation = SERVICE_MODEL.operation_model("GetRun")
    with pytest.raises(TypeError, match="notAField"):
        serialize_response(operation, {"id": "1", "notAField": 1})
    _, body = serialize_response(operation, {"id": "1", "notAField": 1}, strict=False)
    assert json.loads(body) == {"id": "1"}


def test_operations_without_output_have_empty_bodies() -> None:
    assert serialize_response(SERVICE_MODEL.operation_model("CancelRun"), None) == (202, b"")
    assert serialize_response(SERVICE_MODEL.operation_model("DeleteBatch"), None) == (202, b"")


def test_no_content_answers_have_no_body_even_with_an_output_shape() -> None:
    # TagResource's output shape is an empty structure, but its status is 204: a "{}" body
    # would be read as the start of the next response on the same connection.
    for name in ("TagResource", "UntagResource"):
        assert serialize_response(SERVICE_MODEL.operation_model(name), {}) == (204, b"")


def test_validation_lists_every_problem_like_aws() -> None:
    operation = SERVICE_MODEL.operation_model("StartRun")
    with pytest.raises(ProtocolError) as err:
        validate_request(operation, {"workflowId": "abc", "priority": -1, "logLevel": "LOUD"})
    message = err.value.message
    assert message.startswith("6 validation errors detected: ")
    assert "Value null at 'roleArn' failed to satisfy constraint: Member must not be null" in message
    assert (
        "Value 'abc' at 'workflowId' failed to satisfy constraint: Member must satisfy regular expression pattern"
        in message
    )
    assert (
        "Value -1 at 'priority' failed to satisfy constraint: Member must have value greater than or equal to 0"
        in message
    )
    assert "Member must satisfy enum value set: [OFF, FATAL, ERROR, ALL]" in message


def test_unicode_class_patterns_accept_names_and_reject_control_characters() -> None:
    operation = SERVICE_MODEL.operation_model("ListRuns")
    validate_request(operation, {"name": "Sample 12 — tumour/normal (rerun #2)"})
    with pytest.raises(ProtocolError):
        validate_request(operation, {"name": "bad\x00name"})


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b"{not json", "not valid JSON"),
        (b"[1, 2]", "must be a JSON object"),
        (b'{"requestId": 5}', "Expected a string at 'requestId'"),
        (b'{"priority": true}', "Expected an integer at 'priority'"),
        (b'{"tags": ["a"]}', "Expected an object at 'tags'"),
    ],
)
def test_malformed_bodies_are_serialization_errors(body: bytes, message: str) -> None:
    with pytest.raises(ProtocolError) as err:
        parse_request(SERVICE_MODEL.operation_model("StartRun"), {}, {}, body)
    assert err.value.code == "SerializationException"
    assert message in err.value.message


def test_error_statuses_come_from_the_model() -> None:
    assert ERROR_STATUS["ThrottlingException"] == 429
    assert ERROR_STATUS["ServiceQuotaExceededException"] == 402
    assert ERROR_STATUS["ConflictException"] == 409
    assert ERROR_STATUS["ValidationException"] == 400
