"""Workflows (create, get, list, idempotency) and tags on every taggable resource."""

from __future__ import annotations

import base64
import uuid
from typing import Any

import pytest
from botocore.exceptions import ClientError

from omics_emulator import EmulatorAdmin


def test_create_workflow_lifecycle_and_idempotency(omics: Any, emulator: EmulatorAdmin) -> None:
    request = {
        "name": "qc",
        "engine": "NEXTFLOW",
        "definitionZip": base64.b64decode(base64.b64encode(b"PK\x03\x04 fake zip")),
        "parameterTemplate": {"samples": {"description": "Sample outputs", "optional": False}},
        "tags": {"team": "genomics"},
        "requestId": "create-qc-v1",
    }
    created = omics.create_workflow(**request)
    assert created["status"] == "CREATING"
    assert omics.create_workflow(**request)["id"] == created["id"]
    emulator.advance(60)
    described = omics.get_workflow(id=created["id"])
    assert described["status"] == "ACTIVE"
    assert described["type"] == "PRIVATE"
    assert described["engine"] == "NEXTFLOW"
    assert described["digest"].startswith("sha256:")
    assert described["parameterTemplate"] == request["parameterTemplate"]
    assert described["tags"] == {"team": "genomics"}

    with pytest.raises(ClientError) as err:
        omics.create_workflow(
            name="other", definitionUri="s3://d/x.zip", requestId=str(uuid.uuid4()), engine="WDL", parameterTemplate={}
        )
    assert err.value.response["Error"]["Code"] == "ValidationException"  # template needs >= 1 entry
    with pytest.raises(ClientError) as err:
        omics.create_workflow(name="no-definition", requestId=str(uuid.uuid4()))
    assert err.value.response["Error"]["Code"] == "ValidationException"


def test_list_workflows_by_type_and_name(omics: Any, emulator: EmulatorAdmin) -> None:
    for name in ("alpha", "beta", "gamma"):
        omics.create_workflow(name=name, definitionUri=f"s3://d/{name}.zip", requestId=str(uuid.uuid4()))
    pages = list(omics.get_paginator("list_workflows").paginate(PaginationConfig={"PageSize": 2}))
    assert [w["name"] for p in pages for w in p["items"]] == ["gamma", "beta", "alpha"]
    assert [w["name"] for w in omics.list_workflows(name="beta")["items"]] == ["beta"]
    ready2run = omics.list_workflows(type="READY2RUN")["items"]
    assert ready2run and all(w["type"] == "READY2RUN" for w in ready2run)
    with pytest.raises(ClientError) as err:
        omics.get_workflow(id=ready2run[0]["id"])  # a Ready2Run workflow needs type=READY2RUN
    assert err.value.response["Error"]["Code"] == "ResourceNotFoundException"


def test_tags_on_runs_batches_and_workflows(
    omics: Any, emulator: EmulatorAdmin, workflow: dict[str, Any], start_run: Any, bucket: str
) -> None:
    run = start_run(tags={"flowcell": "FC1"})
    batch = omics.start_run_batch(
        requestId=str(uuid.uuid4()),
        defaultRunSetting={
            "workflowId": workflow["id"],
            "roleArn": "arn:aws:iam::123456789012:role/r",
            "outputUri": f"s3://{bucket}/o",
        },
        batchRunSettings={"inlineSettings": [{"runSettingId": "S1", "parameters": {"sample_id": "S1"}}]},
        tags={"flowcell": "FC1"},
    )
    for arn in (run["arn"], batch["arn"], workflow["arn"]):
        omics.tag_resource(resourceArn=arn, tags={"dag_run": "manual__1", "flowcell": "FC2"})
        assert omics.list_tags_for_resource(resourceArn=arn)["tags"]["flowcell"] == "FC2"
        omics.untag_resource(resourceArn=arn, tagKeys=["dag_run", "not-there"])
        assert "dag_run" not in omics.list_tags_for_resource(resourceArn=arn)["tags"]
    assert omics.get_run(id=run["id"])["tags"] == {"flowcell": "FC2"}

    with pytest.raises(ClientError) as err:
        omics.tag_resource(resourceArn=run["arn"], tags={f"k{i}": "v" for i in range(50)})
    assert err.value.response["Error"]["Code"] == "ValidationException"  # 51 with the existing tag
    for arn in ("arn:aws:omics:us-east-1:123456789012:run/1111111", "arn:aws:s3:::bucket"):
        with pytest.raises(ClientError) as err:
            omics.list_tags_for_resource(resourceArn=arn)
        assert err.value.response["Error"]["Code"] == "ResourceNotFoundException"
