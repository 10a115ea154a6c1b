"""Where a sample task finds its StartRun request (in its entry, or in the XCom its entry points to), and
where it resumes (its task state store, or on Airflow 3.2 the run batch's attempt)."""

from __future__ import annotations

from typing import Any

import pytest
from airflow.providers.common.compat.sdk import AirflowFailException, TaskDeferred
from botocore.exceptions import ClientError

from healthomics.flowcell.sample import STATE_KEY, HealthOmicsSampleRunOperator, last_submission
from healthomics.flowcell.stage import HealthOmicsStageRunOperator
from healthomics.triggers.micro_batch import HealthOmicsMicroBatchTrigger
from healthomics.triggers.quota import HealthOmicsStartTurnTrigger
from healthomics.utils.idempotency import Submission, SubmissionJournal, key_tag, run_request_id

from .stores import TaskStateStore

REQUEST = {"workflowId": "1234567", "roleArn": "arn:aws:iam::123456789012:role/run", "name": "FC1-S1"}


class PulledXComs:
    """The one TaskInstance call the lookup makes: ``xcom_pull`` of a task's XCom by key."""

    def __init__(self, xcoms: dict[tuple[str, str], Any]) -> None:
        self.xcoms = xcoms
        self.pulls: list[tuple[str, str]] = []

    def xcom_pull(self, task_ids: str, key: str) -> Any:
        self.pulls.append((task_ids, key))
        return self.xcoms.get((task_ids, key))


def operator(sample: dict[str, Any], **kwargs: Any) -> HealthOmicsSampleRunOperator:
    return HealthOmicsSampleRunOperator(task_id="sample", sample=sample, **kwargs)


def test_an_entry_with_its_request_reads_no_xcom() -> None:
    ti = PulledXComs({})
    entry = {"sample_id": "S1", "request": REQUEST, "idempotency_key": "k/S1"}
    assert operator(entry, start_requests_from=("sample_entries", "start_requests"))._start_fields({"ti": ti}) == entry
    assert ti.pulls == []


def test_a_slim_entry_finds_its_request_in_the_named_xcom() -> None:
    ti = PulledXComs({("sample_entries", "start_requests"): {"S1": {"request": REQUEST, "idempotency_key": "k/S1"}}})
    slim = {"sample_id": "S1", "batch_run": {"id": "1001"}}
    found = operator(slim, start_requests_from=("sample_entries", "start_requests"))._start_fields({"ti": ti})
    assert found == {"request": REQUEST, "idempotency_key": "k/S1"}
    assert ti.pulls == [("sample_entries", "start_requests")]


def test_a_slim_entry_without_a_request_to_find_fails_saying_where_it_looked() -> None:
    slim = {"sample_id": "S2", "batch_run": {"id": "1002"}}
    ti = PulledXComs({("sample_entries", "start_requests"): {"S1": {}}})
    with pytest.raises(
        AirflowFailException, match="S2: no run request in XCom 'start_requests' of task 'sample_entries'"
    ):
        operator(slim, start_requests_from=("sample_entries", "start_requests"))._start_fields({"ti": ti})
    with pytest.raises(AirflowFailException, match="S2: its entry has no run request and no start_requests_from"):
        operator(slim)._start_fields({"ti": ti})


# Where a sample task resumes, with and without Airflow's task state store (3.3 and 3.2).


BATCH_RUN = {"id": "1000001", "batchId": "7"}


def test_the_first_try_resumes_from_nothing_with_or_without_a_store() -> None:
    for context in ({"task_state_store": TaskStateStore()}, {}):
        assert last_submission(SubmissionJournal(context, STATE_KEY), "k/S1", 1, BATCH_RUN, None) is None


def test_with_a_store_a_later_try_resumes_from_what_it_recorded() -> None:
    recorded = Submission("k/S1", 3, "req-3", "1000003")
    journal = SubmissionJournal({"task_state_store": TaskStateStore()}, STATE_KEY)
    journal.record(recorded)
    assert last_submission(journal, "k/S1", 4, BATCH_RUN, None) == recorded


def test_without_a_store_a_later_try_resumes_from_the_batch_attempt() -> None:
    """Airflow 3.2: a cleared sample whose batch run failed goes on to attempt 2 (not the old run again)."""
    journal = SubmissionJournal({}, STATE_KEY)
    assert not journal.keeps_records
    assert last_submission(journal, "k/S1", 2, BATCH_RUN, None) == Submission("k/S1", 1, external_id="1000001")
    refused = {"reason": "ValidationException", "message": "bad input"}
    assert last_submission(journal, "k/S1", 2, None, refused) == Submission("k/S1", 1)
    # Without a batch (per-sample submission) attempt 1 is the task's own: found again by its requestId.
    assert last_submission(journal, "k/S1", 2, None, None) is None


# A StartRun that stays throttled (the account's 0.1-1 TPS, shared with run batches) waits, never fails.


class ThrottledHook:
    """A hook whose StartRun answers ThrottlingException, as after botocore's own retries."""

    def __init__(self) -> None:
        self.starts = 0

    def start_run_idempotently(self, *args: Any, **kwargs: Any) -> Any:
        self.starts += 1
        raise ClientError(
            {
                "Error": {"Code": "ThrottlingException", "Message": "Rate exceeded"},
                "ResponseMetadata": {"HTTPStatusCode": 429},
            },
            "StartRun",
        )


class FirstTry:
    try_number = 1
    dag_id, run_id, task_id, map_index = "d", "r", "sample", 0


def test_a_throttled_start_waits_in_the_triggerer_for_a_turn_then_submits_again() -> None:
    entry = {"sample_id": "S1", "request": REQUEST, "idempotency_key": "k/S1"}
    task = operator(entry, deferrable=True)
    task.__dict__["hook"] = hook = ThrottledHook()
    with pytest.raises(TaskDeferred) as first:
        task.execute({"ti": FirstTry()})  # type: ignore[arg-type]
    trigger = first.value.trigger
    assert isinstance(trigger, HealthOmicsStartTurnTrigger)
    assert (trigger.start_run_tps, trigger.throttled, trigger.aws_conn_id) == (0.1, True, "aws_default")
    assert first.value.method_name == "start_after_throttling"
    with pytest.raises(TaskDeferred) as second:
        task.start_after_throttling({"ti": FirstTry()}, None)  # type: ignore[arg-type]
    assert isinstance(second.value.trigger, HealthOmicsStartTurnTrigger)
    assert hook.starts == 2


def test_without_deferral_a_throttled_start_is_left_to_the_task_retries() -> None:
    task = operator({"sample_id": "S1", "request": REQUEST, "idempotency_key": "k/S1"}, deferrable=False)
    task.__dict__["hook"] = ThrottledHook()
    with pytest.raises(ClientError, match="ThrottlingException"):
        task.execute({"ti": FirstTry()})  # type: ignore[arg-type]


# With a task state store (Airflow 3.3), a throttled run goes in the triggerer's next micro batch.


class JournalingThrottledHook(ThrottledHook):
    """As the real hook does before its StartRun: the attempt and its requestId are recorded first."""

    conn_region_name, conn_partition = "us-east-1", "aws"  # what the run links read

    def __init__(self) -> None:
        super().__init__()
        self.found: list[dict[str, Any]] = []  # what find_runs answers
        self.searches: list[tuple[str, dict[str, str]]] = []

    def start_run_idempotently(self, request: dict[str, Any], key: str, **kwargs: Any) -> Any:
        kwargs["journal"].record(Submission(key, kwargs["first_attempt"], f"hoa-token-a{kwargs['first_attempt']}"))
        return super().start_run_idempotently(request, key, **kwargs)

    def find_runs(self, name: str, tags: dict[str, str]) -> list[dict[str, Any]]:
        self.searches.append((name, tags))
        return self.found


class PushingTry(FirstTry):
    def __init__(self) -> None:
        self.pushed: dict[str, Any] = {}

    def xcom_push(self, key: str, value: Any) -> None:
        self.pushed[key] = value


class Context(dict[str, Any]):
    def __init__(self) -> None:
        super().__init__(ti=PushingTry(), task_state_store=TaskStateStore())


def test_with_a_store_a_throttled_start_goes_in_a_micro_batch_and_a_retry_never_starts_it_again() -> None:
    entry = {"sample_id": "S1", "request": {**REQUEST, "tags": {"flowcell": "FC1"}}, "idempotency_key": "k/S1"}
    task = operator(entry, deferrable=True)
    task.__dict__["hook"] = hook = JournalingThrottledHook()
    context = Context()
    with pytest.raises(TaskDeferred) as deferred:
        task.execute(context)  # type: ignore[arg-type]
    trigger = deferred.value.trigger
    assert isinstance(trigger, HealthOmicsMicroBatchTrigger)
    assert deferred.value.method_name == "submitted_in_micro_batch"
    assert trigger.batch_name == "FC1-1234567"
    assert trigger.default_run_setting == {"workflowId": "1234567", "roleArn": REQUEST["roleArn"]}
    setting = trigger.run_setting
    assert (setting["runSettingId"], setting["name"]) == ("hoa-token-a1", "FC1-S1")
    assert setting["runTags"]["healthomics:attempt"] == "1" and setting["runTags"]["flowcell"] == "FC1"
    journal = SubmissionJournal(context, STATE_KEY)
    assert journal.last() == Submission("k/S1", 1, "hoa-token-a1", None, "micro_batch")

    # The worker died while the task was deferred: its next try looks for the run (by its name and
    # attempt tags), and, none made yet, in the micro batch again.
    retry = operator(entry, deferrable=True)
    retry.__dict__["hook"] = hook
    with pytest.raises(TaskDeferred) as again:
        retry.execute(context)  # type: ignore[arg-type]
    assert isinstance(again.value.trigger, HealthOmicsMicroBatchTrigger)
    assert again.value.trigger.run_setting == setting
    assert hook.searches == [("FC1-S1", {"healthomics:key": key_tag("k/S1"), "healthomics:attempt": "1"})]
    assert hook.starts == 1

    # Back with its run: recorded, then waited for like any other.
    back = operator(entry, deferrable=True)
    back.__dict__["hook"] = hook
    run = {"id": "2000001", "batchId": "9", "status": "PENDING", "name": "FC1-S1", "workflowId": "1234567"}
    with pytest.raises(TaskDeferred) as waiting:
        back.submitted_in_micro_batch(context, {"status": "submitted", "run": run})  # type: ignore[arg-type]
    assert waiting.value.trigger.run_id == "2000001"
    assert journal.last() == Submission("k/S1", 1, "hoa-token-a1", "2000001", "micro_batch")


def test_a_retry_finds_the_run_its_micro_batch_made_and_waits_for_it() -> None:
    """Airflow's stale executor event after a deferral that resumed at once marks the try for
    retry (apache/airflow#72716): the retry follows the run instead of asking the batcher again."""
    entry = {"sample_id": "S1", "request": {**REQUEST, "tags": {"flowcell": "FC1"}}, "idempotency_key": "k/S1"}
    context = Context()
    SubmissionJournal(context, STATE_KEY).record(Submission("k/S1", 1, "hoa-token-a1", None, "micro_batch"))
    task = operator(entry, deferrable=True)
    task.__dict__["hook"] = hook = JournalingThrottledHook()
    hook.found = [{"id": "2000001", "batchId": "9", "status": "RUNNING", "name": "FC1-S1", "workflowId": "1234567"}]
    with pytest.raises(TaskDeferred) as waiting:
        task.execute(context)  # type: ignore[arg-type]
    assert waiting.value.trigger.run_id == "2000001" and waiting.value.method_name == "execute_complete"
    journal = SubmissionJournal(context, STATE_KEY)
    assert journal.last() == Submission("k/S1", 1, "hoa-token-a1", "2000001", "micro_batch")
    assert hook.starts == 0


def test_a_run_its_micro_batch_refused_fails_as_not_submitted() -> None:
    entry = {"sample_id": "S1", "request": REQUEST, "idempotency_key": "k/S1"}
    context = Context()
    event = {"status": "not_submitted", "reason": "ValidationException", "message": "bad parameter"}
    with pytest.raises(AirflowFailException, match="its micro batch did not submit it: ValidationException"):
        operator(entry, deferrable=True).submitted_in_micro_batch(context, event)  # type: ignore[arg-type]


# A task that failed for good is retried by Airflow only through a race (a stale executor event after a
# deferral resumed at once, apache/airflow#72716): that pays for nothing; a clear (max_tries raised) does.


class FailedRunHook(JournalingThrottledHook):
    def get_run(self, run_id: str) -> dict[str, Any]:
        return {"id": run_id, "status": "FAILED", "failureReason": "SERVICE_ERROR", "statusMessage": "boom"}


class SecondTry(PushingTry):
    try_number = 2

    def __init__(self, max_tries: int) -> None:
        super().__init__()
        self.max_tries = max_tries


def test_a_retry_of_a_task_that_failed_for_good_fails_again_and_a_clear_starts_the_next_attempt() -> None:
    entry = {"sample_id": "S1", "request": REQUEST, "idempotency_key": "k/S1", "batch_run": {"id": "1000001"}}
    store = TaskStateStore()
    SubmissionJournal({"task_state_store": store}, STATE_KEY).record(
        Submission("k/S1", 1, None, "1000001", ended_at_max_tries=2)
    )
    task = operator(entry, deferrable=True)
    task.__dict__["hook"] = hook = FailedRunHook()
    with pytest.raises(AirflowFailException, match="1000001 ended FAILED"):
        task.execute({"ti": SecondTry(max_tries=2), "task_state_store": store})  # type: ignore[arg-type]
    assert hook.starts == 0

    cleared = operator(entry, deferrable=True)
    cleared.__dict__["hook"] = hook
    with pytest.raises(TaskDeferred):  # attempt 2 throttled here: into a micro batch
        cleared.execute({"ti": SecondTry(max_tries=3), "task_state_store": store})  # type: ignore[arg-type]
    assert hook.starts == 1
    assert SubmissionJournal({"task_state_store": store}, STATE_KEY).last().attempt == 2  # type: ignore[union-attr]


def test_failing_for_good_records_the_max_tries_it_failed_under() -> None:
    context = {"ti": SecondTry(max_tries=4), "task_state_store": TaskStateStore()}
    journal = SubmissionJournal(context, STATE_KEY)
    journal.record(Submission("k/S1", 1, "req-1", "1000001"))
    with pytest.raises(AirflowFailException):
        operator({"sample_id": "S1"}).run_failed(context, {"id": "1000001", "status": "FAILED"}, None)  # type: ignore[arg-type]
    assert journal.last() == Submission("k/S1", 1, "req-1", "1000001", ended_at_max_tries=4)


class RecordingHook(JournalingThrottledHook):
    def __init__(self) -> None:
        super().__init__()
        self.first_attempts: list[int] = []

    def start_run_idempotently(self, request: dict[str, Any], key: str, **kwargs: Any) -> Any:
        self.first_attempts.append(kwargs["first_attempt"])
        return super().start_run_idempotently(request, key, **kwargs)


def test_an_attempt_an_earlier_try_may_have_started_never_goes_in_a_micro_batch() -> None:
    """The worker died after a StartRun whose answer never came: the run may exist, and a batch
    does not know StartRun's requestId. Throttled now, the task waits for a turn and repeats it."""
    entry = {"sample_id": "S1", "request": REQUEST, "idempotency_key": "k/S1"}
    store = TaskStateStore()
    SubmissionJournal({"task_state_store": store}, STATE_KEY).record(Submission("k/S1", 1, "hoa-token-a1"))
    task = operator(entry, deferrable=True)
    task.__dict__["hook"] = hook = RecordingHook()
    with pytest.raises(TaskDeferred) as deferred:
        task.execute({"ti": SecondTry(max_tries=2), "task_state_store": store})  # type: ignore[arg-type]
    assert isinstance(deferred.value.trigger, HealthOmicsStartTurnTrigger)
    assert hook.first_attempts == [1]


def test_a_clear_after_a_micro_batch_refused_the_run_starts_the_next_attempt() -> None:
    entry = {"sample_id": "S1", "request": REQUEST, "idempotency_key": "k/S1"}
    store = TaskStateStore()
    refused = Submission("k/S1", 1, "hoa-token-a1", None, "micro_batch", ended_at_max_tries=2)
    SubmissionJournal({"task_state_store": store}, STATE_KEY).record(refused)
    task = operator(entry, deferrable=True)
    task.__dict__["hook"] = hook = RecordingHook()
    with pytest.raises(TaskDeferred) as deferred:
        task.execute({"ti": SecondTry(max_tries=3), "task_state_store": store})  # type: ignore[arg-type]
    assert hook.first_attempts == [2]
    assert deferred.value.trigger.run_setting["runSettingId"] == "hoa-token-a2"


# A large flowcell's later stages go in a micro batch without a first StartRun (nearly all would be throttled).


class MicroBatchFirst(HealthOmicsSampleRunOperator):
    def micro_batch_first(self) -> bool:
        return True


def test_a_run_sent_straight_to_a_micro_batch_records_its_request_id_and_calls_no_start_run() -> None:
    entry = {"sample_id": "S1", "request": {**REQUEST, "tags": {"flowcell": "FC1"}}, "idempotency_key": "k/S1"}
    task = MicroBatchFirst(task_id="sample", sample=entry, deferrable=True)
    task.__dict__["hook"] = hook = RecordingHook()
    context = Context()
    with pytest.raises(TaskDeferred) as deferred:
        task.execute(context)  # type: ignore[arg-type]
    assert hook.first_attempts == []
    # The requestId StartRun would have used (provenance tags are not part of it).
    token = run_request_id("k/S1", REQUEST, 1)
    assert deferred.value.trigger.run_setting["runSettingId"] == token
    assert SubmissionJournal(context, STATE_KEY).last() == Submission("k/S1", 1, token, None, "micro_batch")


def test_without_a_store_a_run_meant_for_a_micro_batch_tries_start_run() -> None:
    task = MicroBatchFirst(task_id="sample", sample={"sample_id": "S1", "request": REQUEST, "idempotency_key": "k/S1"})
    task.deferrable = True
    task.__dict__["hook"] = hook = RecordingHook()
    with pytest.raises(TaskDeferred) as deferred:
        task.execute({"ti": PushingTry()})  # type: ignore[arg-type]
    assert hook.first_attempts == [1]
    assert isinstance(deferred.value.trigger, HealthOmicsStartTurnTrigger)


@pytest.mark.parametrize(
    ("stage_number", "samples", "threshold", "expected"),
    [(2, 100, "100", True), (2, 99, "100", False), (1, 1000, "100", False), (3, 1000, "0", False)],
)
def test_later_stages_of_large_flowcells_go_to_micro_batches_first(
    monkeypatch: pytest.MonkeyPatch, stage_number: int, samples: int, threshold: str, expected: bool
) -> None:
    monkeypatch.setenv("AIRFLOW__HEALTHOMICS__MICRO_BATCH_MIN_SAMPLES", threshold)
    task = HealthOmicsStageRunOperator(task_id="stage", stage_number=stage_number, stage_slots=3, sample={})
    task._pipeline = {"sample_count": samples}
    assert task.micro_batch_first() is expected
