"""Malformed and refused requests get the service's error codes, never a crash or a 500."""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from botocore.exceptions import ClientError

from local_aws.stack import LocalAWS
from omics_emulator import EmulatorAdmin
from tests.aws_stack import ROLE_ARN


def error_of(call: Any, **kwargs: Any) -> tuple[str, int, str]:
    with pytest.raises(ClientError) as err:
        call(**kwargs)
    response = err.value.response
    return response["Error"]["Code"], response["ResponseMetadata"]["HTTPStatusCode"], response["Error"]["Message"]


@pytest.fixture
def unchecked(local_aws: LocalAWS, emulator: EmulatorAdmin) -> Any:
    """A client that skips botocore's own parameter validation, to send what a buggy caller would."""
    return local_aws.client("omics", retries={"total_max_attempts": 1}, parameter_validation=False)


def test_missing_required_fields(unchecked: Any, workflow: dict[str, Any]) -> None:
    code, status, message = error_of(unchecked.start_run, workflowId=workflow["id"], requestId="r1")
    assert (code, status) == ("ValidationException", 400)
    assert "2 validation errors detected" in message
    assert "Value null at 'roleArn' failed to satisfy constraint: Member must not be null" in message
    assert "Value null at 'outputUri'" in message

    code, _, message = error_of(
        unchecked.start_run_batch,
        requestId="b1",
        defaultRunSetting={"workflowId": workflow["id"]},
        batchRunSettings={"inlineSettings": [{"name": "no id"}]},
    )
    assert code == "ValidationException"
    assert "defaultRunSetting.roleArn" in message
    assert "batchRunSettings.inlineSettings.1.member.runSettingId" in message

    code, _, _ = error_of(unchecked.tag_resource, resourceArn=workflow["arn"])
    assert code == "ValidationException"


@pytest.mark.parametrize(
    ("operation", "kwargs"),
    [
        ("get_run", {"id": "not-a-number"}),
        ("cancel_run", {"id": "12a"}),
        ("delete_run", {"id": "x"}),
        ("get_batch", {"batchId": "abc"}),
        ("list_runs_in_batch", {"batchId": "1" * 19}),
        ("get_workflow", {"id": "wf-1"}),
    ],
)
def test_malformed_ids_are_validation_errors(omics: Any, operation: str, kwargs: dict[str, Any]) -> None:
    code, status, message = error_of(getattr(omics, operation), **kwargs)
    assert (code, status) == ("ValidationException", 400)
    assert "failed to satisfy constraint" in message


@pytest.mark.parametrize(
    ("operation", "kwargs"),
    [
        ("get_run", {"id": "1234567"}),
        ("cancel_run", {"id": "1234567"}),
        ("delete_run", {"id": "1234567"}),
        ("get_batch", {"batchId": "1234567"}),
        ("list_runs_in_batch", {"batchId": "1234567"}),
        ("cancel_run_batch", {"batchId": "1234567"}),
        ("delete_run_batch", {"batchId": "1234567"}),
        ("delete_batch", {"batchId": "1234567"}),
        ("get_workflow", {"id": "1234567"}),
        ("list_tags_for_resource", {"resourceArn": "arn:aws:omics:us-east-1:123456789012:run/1234567"}),
    ],
)
def test_unknown_ids_are_not_found(omics: Any, operation: str, kwargs: dict[str, Any]) -> None:
    code, status, message = error_of(getattr(omics, operation), **kwargs)
    assert (code, status) == ("ResourceNotFoundException", 404)
    assert "not found" in message


def test_out_of_range_and_enum_values(unchecked: Any, workflow: dict[str, Any]) -> None:
    assert error_of(unchecked.list_runs, maxResults=0)[0] == "ValidationException"
    code, _, message = error_of(unchecked.list_runs, maxResults=101)
    assert code == "ValidationException" and "less than or equal to 100" in message
    code, _, message = error_of(unchecked.list_runs, status="DONE")
    assert code == "ValidationException" and "enum value set" in message
    code, _, message = error_of(
        unchecked.start_run,
        workflowId=workflow["id"],
        roleArn="not-an-arn",
        outputUri="s3://b/o",
        requestId="r",
        priority=100001,
    )
    assert code == "ValidationException"
    assert "roleArn" in message and "priority" in message


def test_wrong_json_types_are_serialization_errors(unchecked: Any, workflow: dict[str, Any]) -> None:
    code, status, _ = error_of(
        unchecked.start_run,
        workflowId=workflow["id"],
        roleArn=ROLE_ARN,
        outputUri="s3://b/o",
        requestId="r",
        priority="high",
    )
    assert (code, status) == ("SerializationException", 400)


def test_batch_run_settings_is_a_union(unchecked: Any, workflow: dict[str, Any]) -> None:
    both = {"inlineSettings": [{"runSettingId": "S1"}], "s3UriSettings": "s3://b/k.json"}
    for settings in (both, {}):
        code, _, message = error_of(
            unchecked.start_run_batch,
            requestId=str(uuid.uuid4()),
            defaultRunSetting={"workflowId": workflow["id"], "roleArn": ROLE_ARN},
            batchRunSettings=settings,
        )
        assert code == "ValidationException"
        assert "exactly one of" in message


def test_more_than_100_inline_settings(omics: Any, workflow: dict[str, Any]) -> None:
    # botocore itself does not check list maximums, so this reaches the service.
    code, _, message = error_of(
        omics.start_run_batch,
        requestId=str(uuid.uuid4()),
        defaultRunSetting={"workflowId": workflow["id"], "roleArn": ROLE_ARN, "outputUri": "s3://b/o"},
        batchRunSettings={"inlineSettings": [{"runSettingId": f"S{i}"} for i in range(101)]},
    )
    assert code == "ValidationException"
    assert "Member must have length less than or equal to 100" in message


def test_semantic_validation_of_start_run(omics: Any, start_run: Any, workflow: dict[str, Any]) -> None:
    code, _, message = error_of(start_run, parameters={"fastq": "s3://b/r1.fq"})
    assert code == "ValidationException" and "missing required parameters: sample_id" in message
    code, _, message = error_of(start_run, parameters={"sample_id": "S1", "threads": 8})
    assert code == "ValidationException" and "threads" in message
    code, _, message = error_of(start_run, outputUri="/local/path")
    assert code == "ValidationException" and "S3 URI" in message
    code, _, _ = error_of(start_run, workflowId="7654321")
    assert code == "ResourceNotFoundException"
    code, _, _ = error_of(start_run, tags={f"k{i}": "v" for i in range(51)})
    assert code == "ValidationException"
    code, _, _ = error_of(start_run, cacheBehavior="CACHE_ALWAYS")
    assert code == "ValidationException"


def test_workflow_must_be_active(omics: Any, emulator: EmulatorAdmin, bucket: str) -> None:
    created = omics.create_workflow(name="new", definitionUri="s3://defs/new.zip", requestId=str(uuid.uuid4()))
    assert created["status"] == "CREATING"
    code, _, message = error_of(
        omics.start_run,
        workflowId=created["id"],
        roleArn=ROLE_ARN,
        outputUri=f"s3://{bucket}/o",
        requestId=str(uuid.uuid4()),
    )
    assert code == "ValidationException" and "not ACTIVE" in message


def test_invalid_pagination_token(omics: Any) -> None:
    assert error_of(omics.list_runs, startingToken="garbage!")[0] == "ValidationException"


def test_unsigned_requests_and_unknown_routes(local_aws: LocalAWS, emulator: EmulatorAdmin) -> None:
    from botocore import UNSIGNED

    anonymous = local_aws.client("omics", signature_version=UNSIGNED, retries={"total_max_attempts": 1})
    code, status, _ = error_of(anonymous.list_runs)
    assert (code, status) == ("MissingAuthenticationTokenException", 403)
    # An operation of the service the emulator does not implement.
    code, status, _ = error_of(local_aws.client("omics").list_run_groups)
    assert (code, status) == ("UnknownOperationException", 404)
