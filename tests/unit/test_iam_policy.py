"""include/iam/healthomics-airflow-policy.json allows every AWS action the code calls, and nothing more.

The calls are found in the source: boto3 client methods (named after the services' own
operations in botocore's models), paginators, and the amazon provider's hooks, sensors and
triggers the code uses. Each maps to the IAM action that authorises it.
"""

from __future__ import annotations

import ast
import json
from pathlib import Path
from typing import Any

import botocore.session
import pytest
from botocore import xform_name

REPO = Path(__file__).resolve().parents[2]
POLICY = REPO / "include" / "iam" / "healthomics-airflow-policy.json"
SOURCES = sorted([*(REPO / "plugins").rglob("*.py"), *(REPO / "dags").rglob("*.py")])
# Services the code talks to, in the order a method name shared by two is attributed.
SERVICES = ("omics", "sqs", "s3", "sns", "pricing")

# Provider pieces the code uses -> the API operations they make.
PROVIDER_CALLS = {
    "check_for_key": ["s3:HeadObject"],
    "load_string": ["s3:PutObject"],
    "load_bytes": ["s3:PutObject"],
    "read_key": ["s3:GetObject"],
    "publish_to_target": ["sns:Publish"],
    "S3KeySensor": ["s3:ListObjectsV2", "s3:HeadObject"],
    "SqsSensorTrigger": ["sqs:ReceiveMessage"],
}
# API operations whose IAM action has another name, or needs another one to behave.
IAM_ACTIONS = {
    "s3:ListObjectsV2": ["s3:ListBucket"],
    "s3:HeadObject": ["s3:GetObject", "s3:ListBucket"],  # without ListBucket a missing key is 403, not 404
    "sqs:DeleteMessageBatch": ["sqs:DeleteMessage"],
}
# Actions no single call shows, each with why.
IMPLIED = {
    "iam:PassRole": "StartRun / StartRunBatch pass the run role (roleArn)",
    "omics:TagResource": "runs and batches are tagged when they are created",
    "s3:GetObjectVersion": "a manifest version is read by its VersionId when the bucket is versioned",
}


def _operations() -> dict[str, str]:
    session = botocore.session.get_session()
    names: dict[str, str] = {}
    for service in reversed(SERVICES):  # the first service listed wins a shared name
        model = session.get_service_model(service)
        names.update({xform_name(op): f"{service}:{op}" for op in model.operation_names})
    return names


def called_operations() -> set[str]:
    operations = _operations()
    found: set[str] = set()
    for path in SOURCES:
        for node in ast.walk(ast.parse(path.read_text())):
            if not isinstance(node, ast.Call):
                continue
            name = node.func.attr if isinstance(node.func, ast.Attribute) else getattr(node.func, "id", "")
            if name in operations:
                found.add(operations[name])
            found.update(PROVIDER_CALLS.get(name, []))
            if name == "get_paginator" and node.args and isinstance(node.args[0], ast.Constant):
                found.add(operations[str(node.args[0].value)])
    return found


def required_actions() -> set[str]:
    actions: set[str] = set(IMPLIED)
    for operation in called_operations():
        actions.update(IAM_ACTIONS.get(operation, [operation]))
    return actions


def statements() -> list[dict[str, Any]]:
    return list(json.loads(POLICY.read_text())["Statement"])


def _listed(value: str | list[str]) -> list[str]:
    return [value] if isinstance(value, str) else value


def test_the_scan_finds_the_calls_we_know_of() -> None:
    found = called_operations()
    assert {"omics:StartRunBatch", "omics:ListRuns", "s3:GetObject", "sns:Publish", "sqs:ReceiveMessage"} <= found


def test_the_policy_allows_exactly_what_the_code_calls() -> None:
    allowed = {a for s in statements() if s["Effect"] == "Allow" for a in _listed(s["Action"])}
    required = required_actions()
    assert sorted(required - allowed) == [], "called but not allowed"
    assert sorted(allowed - required) == [], "allowed but never called"


def test_no_wildcard_actions_and_wildcard_resources_only_where_iam_has_no_resource() -> None:
    for statement in statements():
        assert "NotAction" not in statement and "NotResource" not in statement
        for action in _listed(statement["Action"]):
            assert "*" not in action, statement["Sid"]
        if statement["Resource"] == "*":
            # ListRuns, ListBatch and the Price List's GetProducts have no resource type in IAM.
            no_resource = {"omics:ListRuns", "omics:ListBatch", "pricing:GetProducts"}
            assert set(_listed(statement["Action"])) <= no_resource, statement["Sid"]


@pytest.mark.parametrize("statement", statements(), ids=lambda s: s["Sid"])
def test_pass_role_is_for_the_run_role_and_only_to_healthomics(statement: dict[str, Any]) -> None:
    if "iam:PassRole" in _listed(statement["Action"]):
        assert _listed(statement["Resource"]) == ["arn:${Partition}:iam::${AccountId}:role/${RunRoleName}"]
        assert statement["Condition"] == {"StringEquals": {"iam:PassedToService": "omics.amazonaws.com"}}
