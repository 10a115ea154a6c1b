"""The benchmark's arithmetic: clock mapping, percentiles and the metrics of one run."""

from __future__ import annotations

import os
import sqlite3
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psutil
import pytest

from healthomics_bench.measure import (
    Clock,
    Sampler,
    derive,
    derive_pipeline,
    fan_out_progress,
    percentile,
    tree_cpu_seconds,
)
from healthomics_bench.report import render_table

SCALE = 10.0
CLOCK = Clock(wall=1_000.0, emulated=50_000.0, scale=SCALE)


def iso(wall: float) -> str:
    return datetime.fromtimestamp(wall, UTC).isoformat()


def emulated(wall: float) -> datetime:
    return datetime.fromtimestamp(CLOCK.emulated + (wall - CLOCK.wall) * SCALE, UTC)


def run(name: str, created_wall: float, stopped_wall: float) -> dict[str, Any]:
    return {"name": name, "creationTime": emulated(created_wall), "stopTime": emulated(stopped_wall)}


def test_clock_maps_emulated_time_back_to_the_wall() -> None:
    assert CLOCK.to_wall(50_000.0) == 1_000.0
    assert CLOCK.to_wall(50_100.0) == 1_010.0


def test_percentile_is_nearest_rank() -> None:
    values = [float(v) for v in range(1, 101)]
    assert percentile(values, 0.95) == 95.0
    assert percentile(values, 0.5) == 50.0
    assert percentile([3.0], 0.95) == 3.0
    assert percentile([], 0.5) is None


def test_cpu_seconds_of_a_process_tree_grow_with_work() -> None:
    me = psutil.Process(os.getpid())
    own, children = tree_cpu_seconds(me)
    sum(i * i for i in range(2_000_000))
    assert tree_cpu_seconds(me)[0] > own
    assert tree_cpu_seconds(me)[1] >= children


def test_derive_one_flowcell() -> None:
    # Triggered at wall 1000; 4 samples run 1010 -> 1100..1130; QC 1140 -> 1160; notified at 1170.
    runs = [run(f"FC-S{i}", 1_010.0, 1_100.0 + 10 * i) for i in range(4)] + [run("FC-qc", 1_140.0, 1_160.0)]
    tis = [
        {"task_id": "sample_entries", "map_index": -1, "end_date": iso(1_005.0), "state": "success"},
        *(
            {
                "task_id": "sample",
                "map_index": i,
                "rendered_map_index": f"S{i}",
                "end_date": iso(1_100.0 + 10 * i + (1 + i)),  # detected 1, 2, 3, 4 s after the run ended
                "state": "success",
                "try_number": 1,
            }
            for i in range(4)
        ),
        {"task_id": "qc", "map_index": -1, "start_date": iso(1_136.0), "state": "success"},
        {"task_id": "notify", "map_index": -1, "end_date": iso(1_170.0), "state": "success"},
    ]
    sampler = Sampler(database_url="sqlite:///unused", dag_id="d", components={})
    sampler.timeline = [
        (1_006.0, {"scheduled": 4}),
        (1_008.0, {"running": 2, "deferred": 2}),
        (1_012.0, {"deferred": 4}),  # fan-out complete 7 s after the entries task ended
        (1_050.0, {"deferred": 4}),
        (1_101.0, {"deferred": 3, "success": 1}),
    ]
    counters = {
        "operations": {
            "StartRunBatch": {"calls": 1, "statuses": {"200": 1}},
            "ListRuns": {"calls": 36, "statuses": {"200": 34, "429": 2}},
            "GetRun": {"calls": 4, "statuses": {"200": 4}},
        }
    }
    result = derive(
        samples=4,
        clock=CLOCK,
        triggered_at=1_000.0,
        task_instances=tis,
        runs=runs,
        counters=counters,
        sampler=sampler,
        poll_seconds=5.0,
        start_run_tps=0.1,
        # S3 deferred only after its run had ended: its delay is fan-out's, not detection's.
        deferred_at={0: 1_006.0, 1: 1_007.0, 2: 1_008.0, 3: 1_140.0},
    )
    ideal = (120.0 + 20.0) * SCALE + 4 / 0.1  # longest sample run + QC run (emulated) + release
    assert result["ideal_emulated_s"] == pytest.approx(ideal)
    assert result["makespan_emulated_s"] == pytest.approx(170.0 * SCALE)
    assert result["makespan_overhead"] == pytest.approx(1_700.0 / ideal)
    assert result["added_real_s"] == pytest.approx(170.0 - ideal / SCALE)
    assert result["detection_latency_real_s"] == {"median": pytest.approx(2.0), "p95": pytest.approx(3.0)}
    assert result["detection_latency_emulated_s"]["p95"] == pytest.approx(30.0)
    assert result["runs_ended_before_their_task_waited"] == 1
    assert result["critical_path_real_s"] == pytest.approx(1_136.0 - 1_130.0)
    assert result["fan_out_real_s"] == pytest.approx(7.0)
    assert result["throttled_429"] == 2
    assert result["monitoring_calls_per_poll"] == pytest.approx(40 / (170.0 / 5.0))
    assert result["worker_slots_while_waiting"] == 0
    assert result["worker_slot_seconds_per_sample"] == pytest.approx(2 * 4.0 / 4)
    assert result["task_failures"] == 0
    # The table adds what the same real seconds of Airflow would cost a flowcell at 1x time.
    row = render_table([{**result, "variant": "project"}]).splitlines()[-1].split(" | ")
    assert row[2:4] == [f"{1_700.0 / ideal:.2f}", f"{(ideal + 170.0 - ideal / SCALE) / ideal:.2f}"]


def test_a_flowcell_that_timed_out_reports_how_far_its_fan_out_came() -> None:
    sampler = Sampler(database_url="sqlite:///unused", dag_id="d", components={})
    # 100 s budget: 10 tasks/s in the first tenth, slowing to 2 tasks/s in the last.
    sampler.timeline = [
        (1_000.0, {"scheduled": 500}),
        (1_009.0, {"scheduled": 410, "deferred": 90}),
        (1_090.0, {"scheduled": 300, "deferred": 180, "success": 20}),
        (1_099.0, {"scheduled": 282, "deferred": 198, "success": 20}),
    ]
    counters = {"operations": {"ListRuns": {"calls": 7, "statuses": {"200": 6, "429": 1}}}}
    result = fan_out_progress(samples=500, triggered_at=1_000.0, sampler=sampler, counters=counters, timeout=100.0)
    assert result["sample_tasks_waiting_or_done"] == 218
    assert result["fan_out_tasks_per_s_by_tenth"][0] == pytest.approx(10.0)
    assert result["fan_out_tasks_per_s_by_tenth"][9] == pytest.approx(2.0)
    assert result["fan_out_tasks_per_s_by_tenth"][1:9] == [None] * 8
    assert (result["calls"], result["throttled_429"]) == ({"ListRuns": 7}, 1)
    row = render_table([{**result, "variant": "project"}]).splitlines()[-1]
    assert "timed out" in row
    assert "218/500 in 100" in row


def test_deferral_times_come_from_the_first_attempts_log(tmp_path: Path) -> None:
    from healthomics_bench.measure import deferral_times

    folder = tmp_path / "dag_id=d" / "run_id=r" / "task_id=sample" / "map_index=3"
    folder.mkdir(parents=True)
    lines = [
        '{"timestamp":"2026-11-26T01:38:08.217Z","event":"::endgroup::"}',
        '{"timestamp":"2026-11-26T01:38:14.414Z","event":"Pausing task as DEFERRED. "}',
    ]
    (folder / "attempt=1.log").write_text("\n".join(lines) + "\n")
    (folder.parent / "map_index=4").mkdir()  # a task that never deferred
    found = deferral_times(tmp_path, "d", "r")
    assert found == {3: datetime(2026, 11, 26, 1, 38, 14, 414000, tzinfo=UTC).timestamp()}


def test_the_sampler_sees_the_dag_run_end_in_the_metadata_database(tmp_path: Path) -> None:
    database = tmp_path / "airflow.db"
    with sqlite3.connect(database) as db:
        db.execute("CREATE TABLE dag_run (dag_id TEXT, run_id TEXT, state TEXT)")
        db.execute("CREATE TABLE task_instance (dag_id TEXT, run_id TEXT, task_id TEXT, state TEXT)")
        db.execute("INSERT INTO dag_run VALUES ('d', 'r', 'running')")
        db.executemany("INSERT INTO task_instance VALUES ('d', 'r', 'sample', ?)", [("deferred",), ("running",)])
    sampler = Sampler(database_url=f"sqlite:///{database}", dag_id="d", components={}, interval=0.05, run_id="r")
    sampler.start()
    try:
        with pytest.raises(TimeoutError, match=r"d/r did not finish within 0\.3s"):
            sampler.wait_for_dag_run(timeout=0.3)
        with sqlite3.connect(database) as db:
            db.execute("UPDATE dag_run SET state = 'failed'")
        sampler.wait_for_dag_run(timeout=30)
    finally:
        sampler.stop()
    assert sampler.dag_run_state == "failed"
    assert sampler.timeline[-1][1] == {"deferred": 1, "running": 1}


def test_derive_a_pipeline_against_its_longest_chain_and_the_quota_for_every_stage_run() -> None:
    # Two samples, two stages each: S0 10 + 20 wall s, S1 10 + 40 wall s (the longest chain: 50 wall
    # s = 500 emulated); QC 1200 -> 1210; triggered at 1000, notified at 1220.
    runs = [
        run("FC-S0-align", 1_010.0, 1_020.0),
        run("FC-S0-call", 1_030.0, 1_050.0),
        run("FC-S1-align", 1_010.0, 1_020.0),
        run("FC-S1-call", 1_100.0, 1_140.0),
        run("FC-qc", 1_200.0, 1_210.0),
    ]
    sampler = Sampler("sqlite:///unused.db", "d", {})
    result = derive_pipeline(
        samples=2,
        stages=["align", "call"],
        clock=CLOCK,
        triggered_at=1_000.0,
        finished_at=1_220.0,
        qc_started_at=1_195.0,
        runs=runs,
        run_name=lambda sample, stage: f"FC-{sample}-{stage}",
        sample_ids=["S0", "S1"],
        task_instances=[
            {"task_id": "sample.stage_1", "state": "success"},
            {"task_id": "sample.stage_2", "state": "failed"},
            {"task_id": "qc", "state": "success"},
        ],
        counters={"operations": {"StartRun": {"calls": 2, "statuses": {"429": 1}}, "GetRun": {"calls": 6}}},
        sampler=sampler,
        start_run_tps=0.1,
    )
    release = 2 * 2 / 0.1  # every stage run of every sample through the StartRun quota
    assert result["longest_chain_emulated_s"] == 500.0
    # Stage by stage, each stage waits for its slowest sample: 100 + 400, then QC and the quota.
    assert result["stage_by_stage_bound_emulated_s"] == 100.0 + 400.0 + 100.0 + release
    assert result["ideal_emulated_s"] == 500.0 + 100.0 + release
    assert result["makespan_overhead"] == pytest.approx(2_200.0 / (600.0 + release))
    assert result["calls_per_sample"] == {"GetRun": 1.5, "StartRun": 0.5}  # per sample and stage
    assert result["throttled_429"] == 1 and result["task_failures"] == 1
    assert result["critical_path_real_s"] == pytest.approx(55.0)  # last call ended at 1140, QC at 1195
    assert "| 2 |" in render_table([{"variant": "pipeline", **result}])
