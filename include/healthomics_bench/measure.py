"""What one benchmark run records while it runs, and the metrics it derives afterwards."""

from __future__ import annotations

import json
import math
import statistics
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import psutil
import sqlalchemy

from devkit.waiting import wait_until
from local_airflow.deployment import TERMINAL_DAG_RUN_STATES

# Calls that only watch runs (the rest submit, read inputs or tag).
MONITORING_OPERATIONS = ("GetRun", "ListRuns", "GetBatch", "ListRunsInBatch")
WAITING_STATES = frozenset({"deferred", "success", "failed", "up_for_retry", "skipped"})


def tree_cpu_seconds(root: psutil.Process) -> tuple[float, float]:
    """CPU seconds of a process itself, and of its descendants (live ones and those already reaped).

    Each live process counts its own time plus its reaped children's; nothing is counted twice.
    """
    own = children = 0.0
    for process in [root, *root.children(recursive=True)]:
        try:
            times = process.cpu_times()
        except psutil.Error:
            continue
        if process.pid == root.pid:
            own = times.user + times.system
            children += times.children_user + times.children_system
        else:
            children += times.user + times.system + times.children_user + times.children_system
    return own, children


def tree_pss_bytes(root: psutil.Process) -> int:
    """Proportional set size of a process tree: shared (forked) pages are counted once in all."""
    total = 0
    for process in [root, *root.children(recursive=True)]:
        try:
            total += process.memory_full_info().pss
        except (psutil.Error, AttributeError):
            continue
    return total


@dataclass
class Sampler:
    """Every ``interval`` seconds: the sample tasks' states, the DAG run's (metadata DB) and component cost.

    The sample tasks are ``sample`` (healthomics_flowcell) or the stage tasks of the ``sample``
    group (healthomics_pipeline). Reads the metadata database directly (SQLAlchemy URL; SQLite is opened read-only), so
    watching costs the API server nothing: the REST API's DAG run answer lists the run's DAG
    versions, which loads every task instance of the run (at 10,000 samples, polling it once a
    second took a quarter of the api-server's time).
    """

    database_url: str
    dag_id: str
    components: dict[str, int]  # name -> pid
    interval: float = 0.5
    run_id: str | None = None
    dag_run_state: str | None = None
    timeline: list[tuple[float, dict[str, int]]] = field(default_factory=list)
    cpu_seconds: dict[str, float] = field(default_factory=dict)
    peak_rss: dict[str, int] = field(default_factory=dict)
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def start(self) -> None:
        self._cpu_origin = {name: tree_cpu_seconds(psutil.Process(pid)) for name, pid in self.components.items()}
        self._thread = threading.Thread(target=self._loop, name="bench-sampler", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(30)
        self._sample_processes(memory=True)

    def _loop(self) -> None:
        url = self.database_url
        if url.startswith("sqlite:///"):
            url = f"sqlite:///file:{url.removeprefix('sqlite:///').split('?')[0]}?mode=ro&uri=true"
        engine = sqlalchemy.create_engine(url)
        query = sqlalchemy.text(
            "SELECT state, COUNT(*) FROM task_instance WHERE dag_id = :dag_id AND run_id = :run_id "
            "AND (task_id = 'sample' OR task_id LIKE 'sample.%') GROUP BY state"
        )
        run_query = sqlalchemy.text("SELECT state FROM dag_run WHERE dag_id = :dag_id AND run_id = :run_id")
        ticks = 0
        try:
            while not self._stop.wait(self.interval):
                ticks += 1
                if self.run_id is not None:
                    names = {"dag_id": self.dag_id, "run_id": self.run_id}
                    try:
                        with engine.connect() as db:
                            rows = db.execute(query, names).fetchall()
                            run_state = db.execute(run_query, names).scalar()
                    except sqlalchemy.exc.OperationalError:
                        continue  # locked by a writer: next tick
                    if names["run_id"] == self.run_id:  # not a run it stopped following meanwhile
                        self.dag_run_state = run_state
                    self.timeline.append((time.time(), {str(state): count for state, count in rows}))
                # Reading every process's memory map is slow: every 10th tick.
                self._sample_processes(memory=ticks % 10 == 0)
        finally:
            engine.dispose()

    def follow(self, run_id: str) -> None:
        """Watch ``run_id`` from now on (a flowcell of several DAG runs, one after another)."""
        self.run_id, self.dag_run_state = run_id, None

    def wait_for_dag_run(self, timeout: float) -> None:
        """Until the DAG run's state is terminal; TimeoutError after ``timeout`` seconds."""

        def finished() -> bool:
            if self._stop.is_set():
                raise TimeoutError(f"DAG run {self.dag_id}/{self.run_id}: the sampler stopped first")
            return self.dag_run_state in TERMINAL_DAG_RUN_STATES

        wait_until(
            finished,
            timeout=timeout,
            interval=self.interval,
            what=f"DAG run {self.dag_id}/{self.run_id} did not finish",
        )

    def _sample_processes(self, memory: bool) -> None:
        for name, pid in self.components.items():
            try:
                root = psutil.Process(pid)
                own, children = tree_cpu_seconds(root)
                pss = tree_pss_bytes(root) if memory else 0
            except psutil.Error:
                continue
            origin_own, origin_children = self._cpu_origin[name]
            # The component itself, and what it forked (the scheduler's LocalExecutor workers run the tasks).
            self.cpu_seconds[name] = max(self.cpu_seconds.get(name, 0.0), own - origin_own)
            self.cpu_seconds[f"{name}_children"] = max(
                self.cpu_seconds.get(f"{name}_children", 0.0), children - origin_children
            )
            self.peak_rss[name] = max(self.peak_rss.get(name, 0), pss)


def deferral_times(logs: Path, dag_id: str, run_id: str) -> dict[int, float]:
    """Map index -> when each sample task handed its wait to the triggerer (from its first attempt's log)."""
    found: dict[int, float] = {}
    folder = logs / f"dag_id={dag_id}" / f"run_id={run_id}" / "task_id=sample"
    for log in folder.glob("map_index=*/attempt=1.log"):
        for line in log.read_text(errors="replace").splitlines():
            if "Pausing task as DEFERRED" in line:
                moment = epoch(json.loads(line)["timestamp"])
                if moment is not None:
                    found[int(log.parent.name.removeprefix("map_index="))] = moment
                break
    return found


def epoch(timestamp: str | datetime | None) -> float | None:
    if timestamp is None:
        return None
    if isinstance(timestamp, str):
        timestamp = datetime.fromisoformat(timestamp.replace("Z", "+00:00"))
    return timestamp.timestamp()


def percentile(values: list[float], fraction: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, math.ceil(fraction * len(ordered)) - 1)]


@dataclass(frozen=True)
class Clock:
    """Emulated epoch seconds <-> this machine's wall clock (one reading of both, and the scale)."""

    wall: float
    emulated: float
    scale: float

    def to_wall(self, emulated: float) -> float:
        return self.wall + (emulated - self.emulated) / self.scale


def api_calls(counters: dict[str, Any]) -> tuple[dict[str, int], dict[str, int]]:
    """Calls and 429s per operation, from the emulator's counters."""
    operations = counters.get("operations", {})
    calls = {op: int(c.get("calls", 0)) for op, c in sorted(operations.items()) if c.get("calls")}
    throttled = {op: int(c.get("statuses", {}).get("429", 0)) for op, c in operations.items()}
    return calls, throttled


def derive(
    *,
    samples: int,
    clock: Clock,
    triggered_at: float,
    task_instances: list[dict[str, Any]],
    runs: list[dict[str, Any]],
    counters: dict[str, Any],
    sampler: Sampler,
    poll_seconds: float,
    start_run_tps: float,
    deferred_at: dict[int, float] | None = None,
) -> dict[str, Any]:
    """The issue's metrics from what one run left behind (see docs/benchmarks.md)."""
    scale = clock.scale
    by_task: dict[str, list[dict[str, Any]]] = {}
    for ti in task_instances:
        by_task.setdefault(ti["task_id"], []).append(ti)
    sample_tis = by_task.get("sample", [])
    qc_ti = by_task["qc"][0]
    notify_ti = by_task["notify"][0]
    entries_ti = by_task["sample_entries"][0]

    qc_run = next(r for r in runs if r["name"].endswith("-qc"))
    sample_runs = {r["name"]: r for r in runs if not r["name"].endswith("-qc")}
    # A sample's run is named after it, or after it with a prefix ("<flowcell>-<sample>"):
    # one lookup table for both, built once (a scan per sample is quadratic at 10,000 samples).
    run_of_sample: dict[str, dict[str, Any]] = {}
    for run_name, named_run in sample_runs.items():
        for at in [i for i, c in enumerate(run_name) if c == "-"]:
            run_of_sample.setdefault(run_name[at + 1 :], named_run)
    run_of_sample.update(sample_runs)

    def duration(run: dict[str, Any]) -> float:
        return float(epoch(run["stopTime"]) - epoch(run["creationTime"]))  # type: ignore[operator]

    release = samples / start_run_tps
    ideal = max(duration(r) for r in sample_runs.values()) + duration(qc_run) + release
    finished = epoch(notify_ti["end_date"])
    assert finished is not None
    makespan_real = finished - triggered_at

    # Detection latency: run reached its terminal state -> its task finished, for runs that ended
    # while their task waited (a run that ended before its task existed is fan-out's delay).
    latencies: list[float] = []
    ended_before_waiting = 0
    for ti in sample_tis:
        name = str(ti.get("rendered_map_index") or "")
        run = run_of_sample.get(name)
        end = epoch(ti.get("end_date"))
        if run is None or end is None or not run.get("stopTime"):
            continue
        stopped = clock.to_wall(epoch(run["stopTime"]))  # type: ignore[arg-type]
        waiting_since = (deferred_at or {}).get(int(ti["map_index"]))
        if deferred_at is not None and (waiting_since is None or waiting_since > stopped):
            ended_before_waiting += 1
            continue
        latencies.append(end - stopped)
    last_sample_end = max(clock.to_wall(epoch(r["stopTime"])) for r in sample_runs.values())  # type: ignore[arg-type]

    # Fan-out: the sample tasks exist (their input task ended) -> every one waits (or is done).
    expanded = epoch(entries_ti["end_date"]) or triggered_at
    all_waiting = next(
        (t for t, states in sampler.timeline if sum(c for s, c in states.items() if s in WAITING_STATES) >= samples),
        None,
    )
    first_done = next((t for t, states in sampler.timeline if states.get("success", 0) + states.get("failed", 0)), None)
    waiting_phase = [
        states.get("running", 0)
        for t, states in sampler.timeline
        if all_waiting and first_done and all_waiting <= t < first_done
    ]
    # Worker slots held by sample tasks: what each reading saw, until the next reading.
    slot_seconds = sum(
        states.get("running", 0) * (following - t)
        for (t, states), (following, _) in zip(sampler.timeline, sampler.timeline[1:], strict=False)
    )

    calls, throttled = api_calls(counters)
    monitoring = sum(calls.get(op, 0) for op in MONITORING_OPERATIONS)
    polls = max(1.0, makespan_real / poll_seconds)

    states = [ti["state"] for ti in sample_tis]
    return {
        "samples": samples,
        "sample_tasks": len(sample_tis),
        "makespan_emulated_s": makespan_real * scale,
        "ideal_emulated_s": ideal,
        "makespan_overhead": makespan_real * scale / ideal,
        # Real seconds the DAG added to the ideal: what a flowcell waits for Airflow at any time scale.
        "added_real_s": makespan_real - ideal / scale,
        "release_emulated_s": release,
        "calls": calls,
        "calls_per_sample": {op: n / samples for op, n in calls.items()},
        "throttled_429": sum(throttled.values()),
        "throttled_by_operation": {op: n for op, n in throttled.items() if n},
        "monitoring_calls_per_poll": monitoring / polls,
        "monitoring_calls_per_poll_target": math.ceil(samples / 100) + 5,
        "detection_latency_emulated_s": {
            "median": statistics.median(latencies) * scale if latencies else None,
            "p95": (percentile(latencies, 0.95) or 0.0) * scale if latencies else None,
        },
        "detection_latency_real_s": {
            "median": statistics.median(latencies) if latencies else None,
            "p95": percentile(latencies, 0.95),
        },
        "runs_ended_before_their_task_waited": ended_before_waiting,
        "critical_path_real_s": (epoch(qc_ti["start_date"]) or 0.0) - last_sample_end,
        "fan_out_real_s": (all_waiting - expanded) if all_waiting else None,
        "cpu_seconds": dict(sampler.cpu_seconds),
        # Proportional set size of each component with its children (shared pages counted once).
        "peak_rss_mib": {name: rss / 2**20 for name, rss in sampler.peak_rss.items()},
        "worker_slots_while_waiting": max(waiting_phase, default=0),
        "worker_slot_seconds_per_sample": slot_seconds / samples,
        "task_failures": states.count("failed"),
        "task_retries": sum(1 for ti in sample_tis if int(ti.get("try_number") or 1) > 1),
        "sample_states": {s: states.count(s) for s in sorted(set(states))},
        "poll_seconds_real": poll_seconds,
        "time_scale": scale,
    }


def fan_out_progress(
    *, samples: int, triggered_at: float, sampler: Sampler, counters: dict[str, Any], timeout: float
) -> dict[str, Any]:
    """What a flowcell that did not finish within ``timeout`` got done: how far its fan-out came, how fast.

    The fan-out rate is read per tenth of the time, so a rate that falls as the mapped task
    instances pile up shows as such (the scheduler's per-loop cost grows with them).
    """
    readings = [
        (t - triggered_at, sum(c for s, c in states.items() if s in WAITING_STATES)) for t, states in sampler.timeline
    ]
    tenths: list[float | None] = []
    for tenth in range(10):
        start, end = timeout * tenth / 10, timeout * (tenth + 1) / 10
        inside = [(t, n) for t, n in readings if start <= t < end]
        tenths.append((inside[-1][1] - inside[0][1]) / (inside[-1][0] - inside[0][0]) if len(inside) > 1 else None)
    waiting = readings[-1][1] if readings else 0
    calls, throttled = api_calls(counters)
    return {
        "samples": samples,
        "incomplete": f"did not finish within {timeout:.0f} s",
        "timeout_s": timeout,
        "sample_tasks_waiting_or_done": waiting,
        "sample_states_at_timeout": dict(sampler.timeline[-1][1]) if sampler.timeline else {},
        # Sample tasks per second that reached the triggerer (or ended), per tenth of the time.
        "fan_out_tasks_per_s_by_tenth": tenths,
        "calls": calls,
        "throttled_429": sum(throttled.values()),
        "cpu_seconds": dict(sampler.cpu_seconds),
        "peak_rss_mib": {name: rss / 2**20 for name, rss in sampler.peak_rss.items()},
    }


def derive_pipeline(
    *,
    samples: int,
    stages: list[str],
    clock: Clock,
    triggered_at: float,
    finished_at: float,
    qc_started_at: float | None,
    runs: list[dict[str, Any]],
    run_name: Callable[[str, str], str],
    sample_ids: list[str],
    task_instances: list[dict[str, Any]],
    counters: dict[str, Any],
    sampler: Sampler,
    start_run_tps: float,
) -> dict[str, Any]:
    """A multi-stage flowcell's figures: makespan against the ideal (the longest per-sample chain of
    stage runs, the QC run, and every stage run through the shared StartRun quota), calls per sample
    and stage, throttling, task failures, CPU and memory (see docs/benchmarks.md)."""
    scale = clock.scale
    by_name = {r["name"]: r for r in runs}

    def duration(run: dict[str, Any]) -> float:
        return float(epoch(run["stopTime"]) - epoch(run["creationTime"]))  # type: ignore[operator]

    chains = [sum(duration(by_name[run_name(s, stage)]) for stage in stages) for s in sample_ids]
    # What running the stages flowcell-wide one after another costs at best with these same runs:
    # each stage waits for its slowest sample.
    slowest = [max(duration(by_name[run_name(s, stage)]) for s in sample_ids) for stage in stages]
    qc_run = next(r for r in runs if r["name"].endswith("-qc"))
    # Every stage run of every sample goes through the StartRun quota (a batch's releases too).
    release = samples * len(stages) / start_run_tps
    ideal = max(chains) + duration(qc_run) + release
    makespan_real = finished_at - triggered_at
    last_stage_end = max(clock.to_wall(epoch(by_name[run_name(s, stages[-1])]["stopTime"])) for s in sample_ids)  # type: ignore[arg-type]
    calls, throttled = api_calls(counters)
    states = [ti["state"] for ti in task_instances if str(ti["task_id"]).startswith("sample")]
    return {
        "samples": samples,
        "stages": len(stages),
        "sample_tasks": len(states),
        "makespan_emulated_s": makespan_real * scale,
        "ideal_emulated_s": ideal,
        "makespan_overhead": makespan_real * scale / ideal,
        "added_real_s": makespan_real - ideal / scale,
        "release_emulated_s": release,
        "longest_chain_emulated_s": max(chains),
        "stage_by_stage_bound_emulated_s": sum(slowest) + duration(qc_run) + release,
        "calls": calls,
        # Per sample and stage: what one stage of one sample costs, comparable with one-stage flowcells.
        "calls_per_sample": {op: n / (samples * len(stages)) for op, n in calls.items()},
        "throttled_429": sum(throttled.values()),
        "throttled_by_operation": {op: n for op, n in throttled.items() if n},
        "detection_latency_emulated_s": {"median": None, "p95": None},
        "critical_path_real_s": (qc_started_at - last_stage_end) if qc_started_at else None,
        "fan_out_real_s": None,
        "cpu_seconds": dict(sampler.cpu_seconds),
        "peak_rss_mib": {name: rss / 2**20 for name, rss in sampler.peak_rss.items()},
        "task_failures": states.count("failed"),
        "sample_states": {s: states.count(s) for s in sorted(set(states))},
        "time_scale": scale,
    }
