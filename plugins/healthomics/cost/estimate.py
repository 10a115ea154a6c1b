"""What a finished HealthOmics run cost, estimated from its tasks and its run storage.

The HealthOmics API has no cost field. A private workflow run is billed for

* **compute**: each task by the second on the omics instance it ran on, at least a minute
  (``max(60 s, stopTime - startTime)`` at the instance's hourly price); a task the run cache
  answered (``cacheHit``) ran no instance and costs nothing;
* **run storage**, for the run's duration (``startTime`` to ``stopTime``): STATIC storage at its
  provisioned capacity, which the service rounds up to a multiple of 1,200 GiB (1,200 at least);
  DYNAMIC storage at what the run used, which GetRun reports as ``storageCapacity`` (the most it
  used) once the run has finished, so the figure is an upper bound.

These are the rules the service's own Run Analyzer (``aws-healthomics-tools``) applies. A
Ready2Run run is billed a fixed price per run instead: it is priced when the table has that
workflow, else reported as not priced. Every figure is an estimate at list prices (no discounts,
savings plans or free tier) and says which price table it used.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import Any

from healthomics.cost.prices import PriceTable

MIN_TASK_SECONDS = 60.0
STATIC_STORAGE_STEP_GIB = 1200
SECONDS_PER_HOUR = 3600.0


@dataclass
class RunCost:
    """One run's estimated cost in USD (``None`` where it could not be priced, with the reason)."""

    run_id: str
    compute_usd: float | None
    storage_usd: float | None
    tasks: int = 0
    storage_type: str | None = None
    billed_storage_gib: float | None = None
    storage_hours: float = 0.0
    price_source: str = ""
    # What could not be priced (an instance type missing from the table, a Ready2Run workflow ...)
    unpriced: list[str] = field(default_factory=list)
    # The costliest tasks, name -> USD (at most TOP_TASKS), for the report.
    top_tasks: dict[str, float] = field(default_factory=dict)

    @property
    def total_usd(self) -> float | None:
        if self.compute_usd is None or self.storage_usd is None:
            return None
        return self.compute_usd + self.storage_usd

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "total_usd": self.total_usd, "estimate": True}


TOP_TASKS = 3


def billed_static_gib(capacity: int | None) -> int:
    """STATIC run storage as billed: rounded up to a multiple of 1,200 GiB, 1,200 at least."""
    requested = max(int(capacity or 0), 1)
    return math.ceil(requested / STATIC_STORAGE_STEP_GIB) * STATIC_STORAGE_STEP_GIB


def _seconds(start: Any, stop: Any) -> float:
    if not isinstance(start, datetime) or not isinstance(stop, datetime):
        return 0.0
    return max(0.0, (stop - start).total_seconds())


def task_cost(task: dict[str, Any], prices: PriceTable) -> float | None:
    """One task's compute (ListRunTasks item): None if its instance type has no price."""
    if task.get("cacheHit") or not isinstance(task.get("startTime"), datetime):
        return 0.0  # answered by the run cache, or never started: no instance ran
    hourly = prices.instance_hourly(str(task.get("instanceType") or ""))
    if hourly is None:
        return None
    seconds = max(MIN_TASK_SECONDS, _seconds(task["startTime"], task.get("stopTime")))
    return hourly * seconds / SECONDS_PER_HOUR


def run_cost(run: dict[str, Any], tasks: list[dict[str, Any]], prices: PriceTable) -> RunCost:
    """The estimated cost of ``run`` (GetRun, finished) from its ``tasks`` (ListRunTasks items)."""
    cost = RunCost(run_id=str(run["id"]), compute_usd=0.0, storage_usd=0.0, price_source=prices.source)
    hours = _seconds(run.get("startTime"), run.get("stopTime")) / SECONDS_PER_HOUR
    cost.storage_hours = hours
    if run.get("workflowType") == "READY2RUN":
        flat = prices.ready2run_price(str(run.get("workflowId") or ""))
        cost.compute_usd, cost.storage_usd, cost.storage_type = flat, 0.0, "READY2RUN"
        if flat is None:
            cost.unpriced.append(f"Ready2Run workflow {run.get('workflowId')} (a fixed price per run)")
        return cost

    per_task: list[tuple[float, str]] = []
    for task in tasks:
        usd = task_cost(task, prices)
        if usd is None:
            cost.unpriced.append(f"instance type {task.get('instanceType')} (task {task.get('name')})")
            continue
        per_task.append((usd, str(task.get("name") or task.get("taskId"))))
    cost.tasks = len(tasks)
    cost.compute_usd = None if cost.unpriced else sum(usd for usd, _ in per_task)
    costly = sorted((t for t in per_task if t[0] > 0), reverse=True)[:TOP_TASKS]
    cost.top_tasks = {name: round(usd, 6) for usd, name in costly}

    storage_type = str(run.get("storageType") or "STATIC")
    cost.storage_type = storage_type
    if storage_type == "DYNAMIC":
        used = run.get("storageCapacity")
        if used is None:
            cost.storage_usd = None
            cost.unpriced.append("dynamic run storage (the run did not report what it used)")
            return cost
        cost.billed_storage_gib = float(used)
        per_gib_hour = prices.dynamic_storage_gib_hour
    else:
        cost.billed_storage_gib = float(billed_static_gib(run.get("storageCapacity")))
        per_gib_hour = prices.static_storage_gib_hour
    if per_gib_hour is None:
        cost.storage_usd = None
        cost.unpriced.append(f"{storage_type.lower()} run storage")
    else:
        cost.storage_usd = cost.billed_storage_gib * hours * per_gib_hour
    return cost


def cost_band(per_run: list[float]) -> dict[str, float | int] | None:
    """The 10th, 50th and 90th percentiles of earlier runs' costs (None without any)."""
    if not per_run:
        return None
    ordered = sorted(per_run)

    def at(fraction: float) -> float:
        position = fraction * (len(ordered) - 1)
        low = math.floor(position)
        high = min(low + 1, len(ordered) - 1)
        return ordered[low] + (ordered[high] - ordered[low]) * (position - low)

    return {"runs": len(ordered), "p10_usd": at(0.1), "p50_usd": at(0.5), "p90_usd": at(0.9)}
