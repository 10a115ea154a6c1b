"""HealthOmicsHook: client configuration from the connection, and each call against botocore's model (Stubber)."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterator
from typing import Any

import pytest
from botocore.stub import ANY, Stubber

from healthomics.exceptions import HealthOmicsRunFailedError
from healthomics.hooks.omics import HealthOmicsHook, run_summary
from healthomics.utils.idempotency import TAG_ATTEMPT, Submission, SubmissionJournal, request_id

ROLE = "arn:aws:iam::123456789012:role/run"
NOW = dt.datetime(2026, 11, 25, 12, 0, tzinfo=dt.UTC)


def connection(monkeypatch: pytest.MonkeyPatch, conn_id: str, extra: dict[str, Any]) -> None:
    monkeypatch.setenv(
        f"AIRFLOW_CONN_{conn_id.upper()}",
        json.dumps({"conn_type": "aws", "login": "testing", "password": "testing", "extra": extra}),
    )


@pytest.fixture
def hook(monkeypatch: pytest.MonkeyPatch) -> HealthOmicsHook:
    connection(monkeypatch, "ho_unit", {"region_name": "eu-west-1"})
    return HealthOmicsHook(aws_conn_id="ho_unit")


@pytest.fixture
def stub(hook: HealthOmicsHook) -> Iterator[Stubber]:
    with Stubber(hook.conn) as stubber:
        yield stubber
        stubber.assert_no_pending_responses()


def test_real_aws_endpoint_keeps_host_prefix_and_gets_retries(hook: HealthOmicsHook) -> None:
    client = hook.conn
    assert client.meta.endpoint_url == "https://omics.eu-west-1.amazonaws.com"
    assert client.meta.config.inject_host_prefix is True
    assert client.meta.config.retries == {"mode": "standard", "total_max_attempts": 10}


def test_local_endpoint_turns_off_host_prefix_without_the_caller_asking(monkeypatch: pytest.MonkeyPatch) -> None:
    connection(
        monkeypatch,
        "ho_local",
        {"region_name": "us-east-1", "service_config": {"omics": {"endpoint_url": "http://127.0.0.1:9100"}}},
    )
    client = HealthOmicsHook(aws_conn_id="ho_local").conn
    assert client.meta.endpoint_url == "http://127.0.0.1:9100"
    assert client.meta.config.inject_host_prefix is False


def test_connection_config_kwargs_survive_an_explicit_botocore_config(monkeypatch: pytest.MonkeyPatch) -> None:
    """AwsBaseHook alone drops the connection's config_kwargs when a config is passed; this hook merges."""
    connection(
        monkeypatch,
        "ho_merge",
        {
            "region_name": "us-east-1",
            "endpoint_url": "http://127.0.0.1:5000",
            "config_kwargs": {"inject_host_prefix": False, "connect_timeout": 7},
        },
    )
    hook = HealthOmicsHook(aws_conn_id="ho_merge", config={"retries": {"mode": "adaptive", "max_attempts": 3}})
    config = hook.conn.meta.config
    assert config.inject_host_prefix is False
    assert config.connect_timeout == 7
    assert config.retries == {"mode": "adaptive", "total_max_attempts": 4}  # botocore counts the first call


class _SampleOperator:
    def __init__(self, hook: HealthOmicsHook) -> None:
        self.hook = hook

    def execute(self) -> str:
        return str(self.hook.conn.meta.config.user_agent_extra)


def test_the_user_agent_names_the_calling_operator_without_reading_source(
    hook: HealthOmicsHook, monkeypatch: pytest.MonkeyPatch
) -> None:
    import inspect

    def no_stack(*_: Any, **__: Any) -> Any:
        raise AssertionError("inspect.stack() reads the source of every frame; the hook must not need it")

    monkeypatch.setattr(inspect, "stack", no_stack)
    assert "Caller/_SampleOperator" in _SampleOperator(hook).execute()
    assert hook._get_caller() == "Unknown"  # no operator on the stack


def test_start_run_refuses_to_let_boto3_invent_a_request_id(hook: HealthOmicsHook) -> None:
    with pytest.raises(ValueError, match="deterministic requestId"):
        hook.start_run(workflowId="1", roleArn=ROLE, outputUri="s3://b/o")


def test_cancel_run_of_a_finished_run_is_not_an_error(hook: HealthOmicsHook, stub: Stubber) -> None:
    stub.add_response("cancel_run", {}, {"id": "1111111"})
    stub.add_client_error("cancel_run", "ConflictException", "finished", 409, expected_params={"id": "2222222"})
    assert hook.cancel_run("1111111") is True
    assert hook.cancel_run("2222222") is False


def get_run(run_id: str, status: str, **extra: Any) -> dict[str, Any]:
    return {
        "id": run_id,
        "arn": f"arn:aws:omics:eu-west-1:123456789012:run/{run_id}",
        "uuid": f"uuid-{run_id}",
        "status": status,
        "creationTime": NOW,
        **extra,
    }


@pytest.mark.parametrize(
    ("status", "reason", "message"),
    [
        ("FAILED", "OUT_OF_MEMORY_ERROR", "Task bwa ran out of memory"),
        ("CANCELLED", None, "Cancelled by user"),
        ("DELETED", None, None),
    ],
)
def test_wait_for_run_fails_on_every_unsuccessful_end(
    hook: HealthOmicsHook, stub: Stubber, status: str, reason: str | None, message: str | None
) -> None:
    extra = {k: v for k, v in (("failureReason", reason), ("statusMessage", message)) if v}
    stub.add_response("get_run", get_run("1", "RUNNING"), {"id": "1"})
    stub.add_response("get_run", get_run("1", status, **extra), {"id": "1"})
    with pytest.raises(HealthOmicsRunFailedError) as err:
        hook.wait_for_run("1", poll_interval=0)
    assert err.value.status == status
    assert str(err.value).startswith(f"HealthOmics run 1 ended {status}")
    for part in (reason, message):
        if part:
            assert part in str(err.value)


def test_wait_for_run_rides_out_throttling(hook: HealthOmicsHook, stub: Stubber) -> None:
    stub.add_client_error("get_run", "ThrottlingException", "Rate exceeded", 429)
    stub.add_response("get_run", get_run("1", "COMPLETED"), {"id": "1"})
    stub.add_response("get_run", get_run("1", "COMPLETED"), {"id": "1"})  # the run the wait returns
    assert hook.wait_for_run("1", poll_interval=0)["status"] == "COMPLETED"


def test_a_vanished_run_counts_as_deleted(hook: HealthOmicsHook, stub: Stubber) -> None:
    stub.add_client_error("get_run", "ResourceNotFoundException", "not found", 404)
    with pytest.raises(HealthOmicsRunFailedError, match="ended DELETED"):
        hook.wait_for_run("1", poll_interval=0)


def test_idempotent_start_moves_past_failed_attempts(hook: HealthOmicsHook, stub: Stubber) -> None:
    request = {"workflowId": "1234567", "roleArn": ROLE, "outputUri": "s3://b/o", "name": "S1", "tags": {"s": "S1"}}
    identity = {k: v for k, v in request.items() if k != "tags"}
    store = TaskStateStore()
    journal = SubmissionJournal({"task_state_store": store}, "healthomics_run")
    for attempt, run_id, status in ((1, "1000001", "FAILED"), (2, "1000002", "RUNNING")):
        stub.add_response(
            "start_run",
            {"id": run_id, "arn": "arn:aws:omics:eu-west-1:123456789012:run/" + run_id, "status": "PENDING"},
            {
                **identity,
                "tags": {"s": "S1", "healthomics:key": ANY, TAG_ATTEMPT: str(attempt)},
                "requestId": request_id("FC1/S1", identity, attempt),
            },
        )
        stub.add_response("get_run", get_run(run_id, status), {"id": run_id})
    run, attempt = hook.start_run_idempotently(request, "FC1/S1", journal=journal)
    assert (run["id"], attempt) == ("1000002", 2)
    # Each attempt was recorded before its submit (its requestId) and after it (its run).
    assert [w["attempt"] for w in store.writes] == [1, 1, 2, 2]
    assert [w["externalId"] for w in store.writes] == [None, "1000001", None, "1000002"]
    assert store.writes[0]["requestId"] == request_id("FC1/S1", identity, 1) != store.writes[2]["requestId"]
    assert journal.last("FC1/S1") == Submission("FC1/S1", 2, request_id("FC1/S1", identity, 2), "1000002")
    assert journal.last("another key") is None


class TaskStateStore:
    """The two calls of Airflow's task state store the journal makes, kept in a dict."""

    def __init__(self) -> None:
        self.values: dict[str, Any] = {}
        self.writes: list[dict[str, Any]] = []

    def get(self, key: str) -> Any:
        return self.values.get(key)

    def set(self, key: str, value: Any) -> None:
        self.values[key] = value
        self.writes.append(value)


def test_idempotent_start_reuses_a_completed_run_unless_told_not_to(hook: HealthOmicsHook, stub: Stubber) -> None:
    request = {"workflowId": "1234567", "roleArn": ROLE, "outputUri": "s3://b/o", "name": "S1"}
    stub.add_response("start_run", {"id": "1000001"}, None)
    stub.add_response("get_run", get_run("1000001", "COMPLETED"), {"id": "1000001"})
    assert hook.start_run_idempotently(request, "k")[0]["id"] == "1000001"
    stub.add_response("start_run", {"id": "1000001"}, None)
    stub.add_response("get_run", get_run("1000001", "COMPLETED"), {"id": "1000001"})
    stub.add_response("start_run", {"id": "1000002"}, None)
    stub.add_response("get_run", get_run("1000002", "PENDING"), {"id": "1000002"})
    assert hook.start_run_idempotently(request, "k", reuse_completed=False)[0]["id"] == "1000002"


def test_run_summary_is_json_safe() -> None:
    summary = run_summary(get_run("1", "COMPLETED", stopTime=NOW, tags={"a": "b"}, definition="x"))
    assert json.loads(json.dumps(summary)) == summary
    assert summary["creationTime"] == "2026-11-25T12:00:00+00:00"
    assert "definition" not in summary
