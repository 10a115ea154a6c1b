"""Contract tests of the emulator's task records (ListRunTasks, GetRunTask), through boto3 only."""

from __future__ import annotations

import datetime as dt
import itertools
from typing import Any

import pytest
from botocore.exceptions import ClientError

from omics_emulator import EmulatorAdmin
from omics_emulator.tasks import GPU_INSTANCES, INSTANCE_FAMILIES, INSTANCE_SIZES, instance_type

# Default profile without jitter, emulated seconds: PENDING 60, STARTING 300, RUNNING 3600, STOPPING 120.
NO_JITTER = {"default": {"jitter": 0.0}}
TASKS = ["fastqc", "bwa_mem", "mark_duplicates", "haplotype_caller"]


def tasks_of(omics: Any, run_id: str, **filters: Any) -> list[dict[str, Any]]:
    return [t for page in omics.get_paginator("list_run_tasks").paginate(id=run_id, **filters) for t in page["items"]]


def test_a_completed_runs_tasks_fill_its_running_phase_one_after_another(
    omics: Any, emulator: EmulatorAdmin, start_run: Any
) -> None:
    emulator.configure(profiles=NO_JITTER)
    run_id = start_run()["id"]
    emulator.advance(60 + 300 + 3600 + 120)
    run = omics.get_run(id=run_id)
    assert run["status"] == "COMPLETED"

    pages = list(omics.get_paginator("list_run_tasks").paginate(id=run_id, PaginationConfig={"PageSize": 3}))
    assert [len(p["items"]) for p in pages] == [3, 1]
    tasks = [t for p in pages for t in p["items"]]
    assert [t["name"] for t in tasks] == TASKS
    assert {t["status"] for t in tasks} == {"COMPLETED"}
    # Back to back through RUNNING: from the run's start to the start of its export.
    assert tasks[0]["creationTime"] == run["startTime"]
    for before, after in itertools.pairwise(tasks):
        assert after["creationTime"] == before["stopTime"]
    assert tasks[-1]["stopTime"] == run["startTime"] + dt.timedelta(seconds=3600)
    assert all(t["creationTime"] < t["startTime"] < t["stopTime"] for t in tasks)
    assert [t["instanceType"] for t in tasks] == [
        "omics.c.large",
        "omics.c.4xlarge",
        "omics.m.xlarge",
        "omics.m.2xlarge",
    ]
    assert [(t["cpus"], t["memory"], t["gpus"]) for t in tasks] == [(2, 4, 0), (16, 32, 0), (4, 16, 0), (8, 30, 0)]
    assert not any(t["cacheHit"] for t in tasks)
    assert tasks_of(omics, run_id) == tasks  # the records do not change once the run has ended

    one = omics.get_run_task(id=run_id, taskId=tasks[1]["taskId"])
    assert {k: one[k] for k in tasks[1]} == tasks[1]
    assert one["logStream"].endswith(f":log-group:/aws/omics/WorkflowLog:log-stream:run/{run_id}/task/{one['taskId']}")
    assert one["imageDetails"]["image"]


def test_a_running_run_has_the_tasks_whose_turn_has_come(omics: Any, emulator: EmulatorAdmin, start_run: Any) -> None:
    emulator.configure(profiles=NO_JITTER)
    run_id = start_run()["id"]
    emulator.advance(60)
    assert tasks_of(omics, run_id) == []  # STARTING: no task yet
    emulator.advance(300 + 1200)  # a third of the way through RUNNING
    tasks = tasks_of(omics, run_id)
    assert [t["name"] for t in tasks] == TASKS[:2]  # fastqc's tenth of the time is over, bwa_mem's not
    assert [t["status"] for t in tasks] == ["COMPLETED", "RUNNING"]
    assert "stopTime" not in tasks[1]
    assert [t["name"] for t in tasks_of(omics, run_id, status="RUNNING")] == ["bwa_mem"]


def test_a_run_that_fails_ends_in_a_failed_task_and_creates_no_later_ones(
    omics: Any, emulator: EmulatorAdmin, start_run: Any
) -> None:
    emulator.configure(profiles=NO_JITTER)
    emulator.add_fault(action="fail", match={"name": "^NA12891$"}, failureReason="OUT_OF_MEMORY_ERROR")
    run_id = start_run(name="NA12891")["id"]
    emulator.advance(60 + 300 + 3600 + 120)  # it fails halfway through RUNNING
    run = omics.get_run(id=run_id)
    assert run["status"] == "FAILED"
    tasks = tasks_of(omics, run_id)
    assert [t["name"] for t in tasks] == TASKS[: len(tasks)] and len(tasks) < len(TASKS)
    assert [t["status"] for t in tasks] == ["COMPLETED"] * (len(tasks) - 1) + ["FAILED"]
    failed = omics.get_run_task(id=run_id, taskId=tasks[-1]["taskId"])
    assert failed["failureReason"] == "OUT_OF_MEMORY_ERROR"
    assert failed["creationTime"] < failed["stopTime"] == run["startTime"] + dt.timedelta(seconds=1800)


def test_a_run_cancelled_while_running_cancels_its_current_task(
    omics: Any, emulator: EmulatorAdmin, start_run: Any
) -> None:
    emulator.configure(profiles=NO_JITTER)
    run_id = start_run()["id"]
    emulator.advance(60 + 300 + 3000)
    omics.cancel_run(id=run_id)
    emulator.advance(600)
    assert omics.get_run(id=run_id)["status"] == "CANCELLED"
    tasks = tasks_of(omics, run_id)  # haplotype_caller, the last 30 % of the time, was running
    assert [t["status"] for t in tasks] == ["COMPLETED", "COMPLETED", "COMPLETED", "CANCELLED"]
    assert tasks[-1]["stopTime"] == omics.get_run(id=run_id)["startTime"] + dt.timedelta(seconds=3000)


def test_a_run_cache_hit_marks_every_task(omics: Any, emulator: EmulatorAdmin, start_run: Any) -> None:
    emulator.configure(profiles=NO_JITTER)
    first = start_run(cacheId="1234567", requestId="cache-1")["id"]
    emulator.advance(60 + 300 + 3600 + 120)
    again = start_run(cacheId="1234567", requestId="cache-2")["id"]
    emulator.advance(60 + 300 + 3600 + 120)
    assert not any(t["cacheHit"] for t in tasks_of(omics, first))
    cached = tasks_of(omics, again)
    assert cached and all(t["cacheHit"] and t["cacheS3Uri"].startswith("s3://") for t in cached)


def test_unknown_runs_and_tasks_are_not_found(omics: Any, start_run: Any) -> None:
    run_id = start_run()["id"]
    for call in (lambda: omics.list_run_tasks(id="9999999"), lambda: omics.get_run_task(id=run_id, taskId="1")):
        with pytest.raises(ClientError) as err:
            call()
        assert err.value.response["Error"]["Code"] == "ResourceNotFoundException"


@pytest.mark.parametrize("cpus", [1, 2, 3, 8, 17, 96])
@pytest.mark.parametrize("memory", [1, 4, 15, 64, 200, 768])
def test_each_task_gets_the_smallest_instance_that_fits(cpus: int, memory: int) -> None:
    sizes = dict(INSTANCE_SIZES)
    per_vcpu = dict(INSTANCE_FAMILIES)
    fits = [
        (vcpus, vcpus * per_vcpu[family], f"omics.{family}.{size}")
        for size, vcpus in INSTANCE_SIZES
        for family, _ in INSTANCE_FAMILIES
        if vcpus >= cpus and vcpus * per_vcpu[family] >= memory
    ]
    if not fits:
        with pytest.raises(Exception, match="no instance"):
            instance_type(cpus, memory)
        return
    chosen = instance_type(cpus, memory)
    assert chosen == min(fits)[2]
    assert sizes[chosen.split(".")[2]] >= cpus
    assert instance_type(4, 16, gpus=1) == GPU_INSTANCES[0][0]


def test_a_dynamic_storage_run_reports_the_most_it_used_once_it_has_finished(
    omics: Any, emulator: EmulatorAdmin, start_run: Any
) -> None:
    emulator.configure(profiles={"default": {"jitter": 0.0, "dynamic_storage_gib": 500}})
    run_id = start_run(storageType="DYNAMIC")["id"]
    emulator.advance(60 + 300 + 1000)
    assert "storageCapacity" not in omics.get_run(id=run_id)
    emulator.advance(3600)
    run = omics.get_run(id=run_id)
    assert run["status"] == "COMPLETED" and 400 <= run["storageCapacity"] <= 600
