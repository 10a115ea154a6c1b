"""The run-status event processor against moto (S3), the emulator (events, tags, outputs) and a real HTTP receiver."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest

from healthomics.run_events.processor import EventProcessor, ProcessorSettings
from local_aws.receiver import Receiver
from omics_emulator import EmulatorAdmin

CALLBACK_CONN = "healthomics_callback_test"


@pytest.fixture
def receiver(airflow_env: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> Iterator[Receiver]:
    server = Receiver()
    monkeypatch.setenv(f"AIRFLOW_CONN_{CALLBACK_CONN.upper()}", server.url)
    yield server
    server.close()


@pytest.fixture
def processor(local_aws: Any, bucket: str, receiver: Receiver, omics: Any) -> EventProcessor:
    settings = ProcessorSettings(
        archive_uri=f"s3://{bucket}/omics-events",
        callback_conn_id=CALLBACK_CONN,
        callback_attempts=3,
        callback_backoff=0.05,
        callback_timeout=2.0,
    )
    return EventProcessor(settings, s3_client=local_aws.client("s3"), omics_client=omics)


@pytest.fixture
def completed_run_events(
    realtime: EmulatorAdmin, drain_events: Any, start_run: Any, omics: Any
) -> list[dict[str, Any]]:
    """The events of one run that COMPLETED (tagged like a flowcell sample, with an external WES id)."""
    run = start_run(tags={"flowcell": "HX7Y2DSX3", "sample": "NA12878", "WESRunId": "wes-0042"})
    realtime.advance(24 * 3600)
    assert omics.get_run(id=run["id"])["status"] == "COMPLETED"
    return [e for e in drain_events() if e["detail-type"] == "Run Status Change"]


def archived(s3: Any, bucket: str) -> list[str]:
    return [o["Key"] for o in s3.list_objects_v2(Bucket=bucket, Prefix="omics-events/").get("Contents", [])]


def test_a_completed_run_gives_one_archived_encrypted_enriched_event_and_one_callback(
    processor: EventProcessor, completed_run_events: list[dict[str, Any]], receiver: Receiver, s3: Any, bucket: str
) -> None:
    [completed] = [e for e in completed_run_events if e["detail"]["status"] == "COMPLETED"]
    outcome = processor.process(json.dumps(completed), "m-1")
    assert outcome["status"] == "archived" and outcome["callback"] == "sent"
    key = outcome["key"]
    stamp = completed["time"].replace("-", "").replace(":", "").replace("T", "_").rstrip("Z")
    assert key.rsplit("/", 1)[-1] == f"event_{stamp}_{completed['id']}.json"
    assert s3.head_object(Bucket=bucket, Key=key)["ServerSideEncryption"] == "AES256"
    document = json.loads(s3.get_object(Bucket=bucket, Key=key)["Body"].read())
    assert document["eventId"] == completed["id"] and document["status"] == "COMPLETED"
    assert document["runId"] == completed["detail"]["runId"]
    assert (document["flowcellId"], document["sampleId"], document["wesRunId"]) == ("HX7Y2DSX3", "NA12878", "wes-0042")
    assert document["links"]["console"].startswith("https://console.aws.amazon.com/omics/home?region=")
    assert "logs" in document["links"] and "outputs" in document["links"]
    # The run's outputs.json: output name -> where it is.
    assert document["outputs"] and all(
        uri.startswith(completed["detail"]["runOutputUri"] + "/") for uri in document["outputs"].values()
    )
    [call] = receiver.calls
    assert call["path"] == "/internal/callbacks/omics-state-change"
    assert call["key"] == completed["id"] and call["body"]["wesRunId"] == "wes-0042"


def test_the_same_event_twice_is_archived_once_and_called_back_once(
    processor: EventProcessor, completed_run_events: list[dict[str, Any]], receiver: Receiver, s3: Any, bucket: str
) -> None:
    events = completed_run_events
    for event in [*events, *events]:  # every event delivered twice
        processor.process(json.dumps(event))
    names = [k for k in archived(s3, bucket) if "/event_" in k]
    assert len(names) == len(events) == len({e["id"] for e in events})
    assert sorted(c["key"] for c in receiver.calls) == sorted(e["id"] for e in events)
    again = processor.process(json.dumps(events[-1]))
    assert (again["status"], again["callback"]) == ("duplicate", "already_sent")


def test_an_unreachable_receiver_is_retried_then_dead_lettered_and_nothing_is_lost(
    processor: EventProcessor,
    completed_run_events: list[dict[str, Any]],
    receiver: Receiver,
    s3: Any,
    bucket: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    [completed] = [e for e in completed_run_events if e["detail"]["status"] == "COMPLETED"]
    receiver.status = 503
    outcome = processor.process(json.dumps(completed))
    assert outcome["callback"] == "dead_letter"
    assert len(receiver.calls) == 3  # every attempt reached it
    dead = json.loads(
        s3.get_object(Bucket=bucket, Key=f"omics-events/dead-letter/callback/{completed['id']}.json")["Body"].read()
    )
    assert dead["reason"].startswith("HTTP 503") and dead["tries"] == 3
    assert dead["item"]["event"]["eventId"] == completed["id"]
    assert s3.head_object(Bucket=bucket, Key=outcome["key"])  # the event itself is archived

    # The receiver is gone altogether: connection errors are retried, then dead-lettered too.
    [running] = [e for e in completed_run_events if e["detail"]["status"] == "RUNNING"]
    receiver.close()
    outcome = processor.process(json.dumps(running))
    assert outcome["callback"] == "dead_letter"
    dead = json.loads(
        s3.get_object(Bucket=bucket, Key=f"omics-events/dead-letter/callback/{running['id']}.json")["Body"].read()
    )
    assert "ConnectionError" in dead["reason"] and dead["tries"] == 3


def test_a_malformed_event_is_dead_lettered_and_the_next_good_one_still_processed(
    processor: EventProcessor, completed_run_events: list[dict[str, Any]], receiver: Receiver, s3: Any, bucket: str
) -> None:
    bad = [
        "not json at all",
        json.dumps({"Records": [{"eventName": "ObjectCreated:Put"}]}),
        json.dumps({**completed_run_events[0], "source": "aws.s3"}),
        json.dumps({**completed_run_events[0], "detail": {"omicsVersion": "1.0.0"}}),
    ]
    outcomes = [processor.process(body) for body in bad]
    assert [o["status"] for o in outcomes] == ["dead_letter"] * 4
    assert [o["reason"] for o in outcomes] == [
        "not valid JSON: Expecting value: line 1 column 1 (char 0)",
        "not an EventBridge event: missing id, detail-type, source, time, detail",
        "not a HealthOmics event: source 'aws.s3'",
        "the event's detail has no status",
    ]
    letters = [k for k in archived(s3, bucket) if "/dead-letter/malformed/" in k]
    assert len(letters) == 4
    assert json.loads(s3.get_object(Bucket=bucket, Key=letters[0])["Body"].read())["reason"]
    good = processor.process(json.dumps(completed_run_events[0]))
    assert good["status"] == "archived" and good["callback"] == "sent"


def test_a_crafted_event_cannot_make_the_processor_read_another_bucket(
    processor: EventProcessor, completed_run_events: list[dict[str, Any]], s3: Any, bucket: str
) -> None:
    """Where a run's outputs are comes from GetRun, not from the event's body."""
    s3.create_bucket(Bucket="other-team")
    s3.put_object(Bucket="other-team", Key="secrets/logs/outputs.json", Body=b'{"secret": "s3://other-team/x"}')
    [completed] = [e for e in completed_run_events if e["detail"]["status"] == "COMPLETED"]
    crafted = {
        **completed,
        "id": "../../../x",
        "detail": {**completed["detail"], "runOutputUri": "s3://other-team/secrets"},
    }
    outcome = processor.process(json.dumps(crafted), "m-crafted")
    assert outcome["status"] == "archived"
    assert outcome["key"].startswith("omics-events/event_") and ".." not in outcome["key"]
    document = json.loads(s3.get_object(Bucket=bucket, Key=outcome["key"])["Body"].read())
    assert "secret" not in document["outputs"]
    assert all(uri.startswith(completed["detail"]["runOutputUri"] + "/") for uri in document["outputs"].values())
    assert "other-team" not in document["links"]["outputs"]
    assert document["runOutputUri"] == "s3://other-team/secrets"  # archived as received, used for nothing


def test_outputs_outside_the_allowed_prefixes_are_not_read(
    local_aws: Any, bucket: str, omics: Any, completed_run_events: list[dict[str, Any]], s3: Any
) -> None:
    settings = ProcessorSettings(archive_uri=f"s3://{bucket}/omics-events", allowed_output_prefixes=("s3://lab-only",))
    processor = EventProcessor(settings, s3_client=local_aws.client("s3"), omics_client=omics)
    [completed] = [e for e in completed_run_events if e["detail"]["status"] == "COMPLETED"]
    outcome = processor.process(json.dumps(completed), "m-2")
    document = json.loads(s3.get_object(Bucket=bucket, Key=outcome["key"])["Body"].read())
    assert "outputs" not in document
    assert document["outputsError"].endswith("is outside the allowed output prefixes; not read")


def test_a_message_that_keeps_failing_is_dead_lettered_after_its_last_try(
    processor: EventProcessor, s3: Any, bucket: str
) -> None:
    error = RuntimeError("S3 said no")
    tries = [processor.failed("{}", "m-poison", error) for _ in range(5)]
    assert tries == [False, False, False, False, True]
    [letter] = [k for k in archived(s3, bucket) if "/dead-letter/processing/" in k]
    dead = json.loads(s3.get_object(Bucket=bucket, Key=letter)["Body"].read())
    assert dead["tries"] == 5 and dead["reason"].startswith("RuntimeError: S3 said no")
    assert dead["item"] == {"messageId": "m-poison", "body": "{}"}
    assert processor.failed("{}", "m-poison", error)  # and it stays dead-lettered
