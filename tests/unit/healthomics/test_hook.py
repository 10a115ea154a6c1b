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
from healthomics.utils.idempotency import TAG_ATTEMPT, Submission, SubmissionJournal, key_tag, request_id

from .stores import TaskStateStore

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


def test_start_run_can_give_up_on_throttling_sooner_than_other_calls(
    hook: HealthOmicsHook, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert hook._start_run_client is hook.conn
    connection(monkeypatch, "ho_deferrable", {"region_name": "eu-west-1"})
    deferrable = HealthOmicsHook(aws_conn_id="ho_deferrable", start_run_attempts=3)
    client = deferrable._start_run_client
    assert client.meta.config.retries == {"mode": "standard", "total_max_attempts": 3}
    assert client.meta.endpoint_url == deferrable.conn.meta.endpoint_url
    assert deferrable.conn.meta.config.retries == {"mode": "standard", "total_max_attempts": 10}


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
    stub.add_response("get_run", get_run("1", status, **extra), {"id": "1"})  # the failure's details
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
    stub.add_client_error("get_run", "ResourceNotFoundException", "not found", 404)  # looked up again
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


def test_a_new_run_of_an_unused_key_costs_one_call(hook: HealthOmicsHook, stub: Stubber) -> None:
    """With ``unused_key`` StartRun's answer is the run (no GetRun queued: the Stubber would refuse
    one); an answer that says the run has ended is still looked up."""
    request = {"workflowId": "1234567", "roleArn": ROLE, "outputUri": "s3://b/o", "name": "S1-call"}
    answer = {"id": "1000001", "arn": "arn:aws:omics:eu-west-1:123456789012:run/1000001", "status": "PENDING"}
    stub.add_response("start_run", {**answer, "runOutputUri": "s3://b/o/1000001"}, None)
    run, attempt = hook.start_run_idempotently(request, "k", unused_key=True)
    assert attempt == 1
    expected = {"id": "1000001", "status": "PENDING", "name": "S1-call", "runOutputUri": "s3://b/o/1000001"}
    assert {k: run.get(k) for k in expected} == expected
    stub.assert_no_pending_responses()
    stub.add_response("start_run", {**answer, "status": "COMPLETED"}, None)
    stub.add_response("get_run", get_run("1000001", "COMPLETED"), {"id": "1000001"})
    assert hook.start_run_idempotently(request, "k", unused_key=True)[0]["status"] == "COMPLETED"


def test_run_summary_is_json_safe() -> None:
    summary = run_summary(get_run("1", "COMPLETED", stopTime=NOW, tags={"a": "b"}, definition="x"))
    assert json.loads(json.dumps(summary)) == summary
    assert summary["creationTime"] == "2026-11-25T12:00:00+00:00"
    assert "definition" not in summary


def test_the_waiters_know_every_status_the_service_model_has() -> None:
    """Each RunStatus / BatchStatus of the installed botocore's model is an acceptor of the package's
    waiters, once, with the meaning the hook's state sets give it (a status left out would wait until
    the end). Older models know fewer statuses (RUNS_DELETE_FAILED came later): those may be extra."""
    import botocore.session

    from healthomics.hooks.omics import (
        BATCH_SUBMISSION_DONE_STATES,
        RUN_ACTIVE_STATES,
        RUN_FAILURE_STATES,
        RUN_SUCCESS_STATES,
        WAITERS,
    )

    model = botocore.session.get_session().get_service_model("omics")
    waiters = json.loads(WAITERS.read_text())["waiters"]

    def acceptors(name: str) -> dict[str, str]:
        paths = [a for a in waiters[name]["acceptors"] if a["matcher"] == "path"]
        assert len({a["expected"] for a in paths}) == len(paths), "a status listed twice"
        return {a["expected"]: a["state"] for a in paths}

    run = acceptors("run_ended")
    assert set(run) >= set(model.shape_for("RunStatus").enum)
    assert {s for s, state in run.items() if state == "success"} == RUN_SUCCESS_STATES
    assert {s for s, state in run.items() if state == "failure"} == RUN_FAILURE_STATES
    assert {s for s, state in run.items() if state == "retry"} == RUN_ACTIVE_STATES
    assert {"matcher": "error", "argument": "", "expected": "ResourceNotFoundException", "state": "failure"} in (
        waiters["run_ended"]["acceptors"]
    )
    batch = acceptors("batch_submitted")
    assert set(batch) >= set(model.shape_for("BatchStatus").enum)
    assert {s for s, state in batch.items() if state == "success"} == BATCH_SUBMISSION_DONE_STATES
    assert waiters["run_ended"]["operation"] == "GetRun" and waiters["batch_submitted"]["operation"] == "GetBatch"


def get_batch(batch_id: str, status: str, **extra: Any) -> dict[str, Any]:
    return {
        "id": batch_id,
        "arn": f"arn:aws:omics:eu-west-1:123456789012:runBatch/{batch_id}",
        "status": status,
        **extra,
    }


def test_a_batch_that_failed_moves_on_to_the_next_attempt_and_big_batches_go_through_s3(
    hook: HealthOmicsHook, stub: Stubber
) -> None:
    settings = [{"runSettingId": f"S{i:03d}"} for i in range(101)]
    default = {"workflowId": "1234567", "roleArn": ROLE, "outputUri": "s3://b/o"}
    identity = {"defaultRunSetting": default, "runSettings": settings, "name": "FC1"}
    files: list[str] = []
    for attempt, batch_id, status in ((1, "7000001", "FAILED"), (2, "7000002", "SUBMITTING")):
        token = request_id("FC1", identity, attempt)
        stub.add_response(
            "start_run_batch",
            {"id": batch_id, "arn": get_batch(batch_id, "PENDING")["arn"], "status": "PENDING"},
            {
                "batchName": "FC1",
                "requestId": token,
                "defaultRunSetting": default,
                "batchRunSettings": {"s3UriSettings": f"s3://b/settings/{token}.json"},
                "tags": {"flowcell": "FC1", "healthomics:key": ANY, TAG_ATTEMPT: str(attempt)},
            },
        )
        stub.add_response("get_batch", get_batch(batch_id, status), {"batchId": batch_id})

    def settings_file(token: str) -> str:
        files.append(token)
        return f"s3://b/settings/{token}.json"

    batch, attempt = hook.start_run_batch_idempotently(
        batch_name="FC1",
        default_run_setting=default,
        run_settings=settings,
        idempotency_key="FC1",
        tags={"flowcell": "FC1"},
        settings_file=settings_file,
    )
    assert (batch["id"], attempt) == ("7000002", 2)
    assert files == [request_id("FC1", identity, 1), request_id("FC1", identity, 2)]


def test_a_batch_submitted_by_another_dag_run_is_found_by_its_tags(hook: HealthOmicsHook, stub: Stubber) -> None:
    default = {"workflowId": "1234567", "roleArn": ROLE, "outputUri": "s3://b/o"}
    stub.add_client_error("start_run_batch", "ConflictException", "requestId used with other tags", 409)
    stub.add_response("list_batch", {"items": [{"id": "7000009", "name": "FC1"}, {"id": "7000001", "name": "FC1"}]})
    stub.add_response("get_batch", get_batch("7000009", "INPROGRESS", tags={TAG_ATTEMPT: "3"}), {"batchId": "7000009"})
    stub.add_response(
        "get_batch",
        get_batch("7000001", "INPROGRESS", tags={"healthomics:key": key_tag("FC1"), TAG_ATTEMPT: "1"}),
        {"batchId": "7000001"},
    )
    batch, attempt = hook.start_run_batch_idempotently(
        batch_name="FC1", default_run_setting=default, run_settings=[{"runSettingId": "S1"}], idempotency_key="FC1"
    )
    assert (batch["id"], attempt) == ("7000001", 1)
