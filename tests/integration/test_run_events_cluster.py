"""healthomics_run_events in a real local Airflow: emulator events -> SQS -> asset watcher -> archive + callback."""

from __future__ import annotations

import json
import uuid
from typing import Any

import pytest

from devkit.waiting import wait_until
from local_airflow.deployment import LocalAirflow
from omics_emulator import EmulatorAdmin

from .conftest import EVENTS_BUCKET

# A real Airflow: api-server, scheduler, dag-processor and triggerer as processes.
pytestmark = pytest.mark.cluster

EVENTS_DAG = "healthomics_run_events"


@pytest.fixture(scope="module")
def events_dag(airflow_cluster: LocalAirflow) -> LocalAirflow:
    airflow_cluster.unpause(EVENTS_DAG)
    return airflow_cluster


def test_a_run_s_status_events_are_archived_and_called_back_once_each(
    events_dag: LocalAirflow, realtime: EmulatorAdmin, start_run: Any, omics: Any, s3: Any
) -> None:
    receiver = events_dag.receiver  # type: ignore[attr-defined]
    realtime.configure(events_queue_url=events_dag.run_events_queue_url)  # type: ignore[attr-defined]
    wes_id = f"wes-{uuid.uuid4().hex[:8]}"
    run = start_run(tags={"flowcell": "HXEVENTS1", "sample": "NA12878", "WESRunId": wes_id})

    def mine() -> list[dict[str, Any]]:
        return [c for c in receiver.calls if c["body"].get("wesRunId") == wes_id]

    wait_until(
        lambda: any(c["body"]["status"] == "COMPLETED" for c in mine()),
        timeout=180,
        interval=1,
        what=lambda: f"no COMPLETED callback of {wes_id} (got {[c['body']['status'] for c in mine()]})",
    )
    calls = mine()
    statuses = [c["body"]["status"] for c in calls]
    assert statuses[-1:] == ["COMPLETED"], statuses
    assert len({c["key"] for c in calls}) == len(calls)  # one callback per event
    assert {"PENDING", "RUNNING", "COMPLETED"} <= set(statuses)
    completed = next(c["body"] for c in calls if c["body"]["status"] == "COMPLETED")
    assert completed["runId"] == run["id"] and completed["outputs"]
    keys = [
        o["Key"]
        for o in s3.list_objects_v2(Bucket=EVENTS_BUCKET, Prefix="omics-events/").get("Contents", [])
        if o["Key"].endswith(f"_{completed['eventId']}.json")
    ]
    assert len(keys) == 1
    assert s3.head_object(Bucket=EVENTS_BUCKET, Key=keys[0])["ServerSideEncryption"] == "AES256"
    archived = json.loads(s3.get_object(Bucket=EVENTS_BUCKET, Key=keys[0])["Body"].read())
    assert archived["wesRunId"] == wes_id and archived["flowcellId"] == "HXEVENTS1"
    realtime.configure(events_queue_url=None)
