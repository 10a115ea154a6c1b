"""ListRunTasks and GetRunTask: the task records of a run, consistent with its lifecycle.

A run's tasks come from its workflow's profile (``RunProfile.tasks``: name, cpus, memory in GiB,
gpus, share of the RUNNING time) and run one after another through its RUNNING phase, each
provisioned for a short while before it starts. Each task's instance type is the smallest
HealthOmics instance that fits its cpus and memory (GPU tasks: the smallest GPU instance), as the
service chooses. The records are derived from the run's times when asked, seeded by the run's
uuid, so they agree with GetRun at every moment:

* a run that has not reached RUNNING has no tasks;
* a running run has the tasks whose turn has come, the current one STARTING or RUNNING;
* a run whose RUNNING phase ended normally (it then exported and COMPLETED, or was cancelled
  while STOPPING) has every task COMPLETED, spread over that phase exactly;
* a run that failed or was cancelled while running has its tasks up to then: the one in progress
  FAILED (with the run's failure reason) or CANCELLED, the later ones never created.

A run-cache hit marks every task ``cacheHit`` (the run's RUNNING phase is shortened already).
"""

from __future__ import annotations

import random
import uuid
from typing import Any

from .errors import not_found, validation
from .resources import Run
from .runs import RunService
from .service_core import paginate

# (family, GiB of memory per vCPU), cheapest first for the same vCPUs; sizes by vCPUs.
INSTANCE_FAMILIES = (("c", 2), ("m", 4), ("r", 8))
INSTANCE_SIZES = (
    ("large", 2),
    ("xlarge", 4),
    ("2xlarge", 8),
    ("4xlarge", 16),
    ("8xlarge", 32),
    ("12xlarge", 48),
    ("16xlarge", 64),
    ("24xlarge", 96),
)
# GPU instances: (name, vCPUs, GiB, GPUs), smallest first. The g6 family: the one the package's
# shipped price table prices (g4dn and g5 prices come from the Price List API only).
GPU_INSTANCES = (
    ("omics.g6.xlarge", 4, 16, 1),
    ("omics.g6.4xlarge", 16, 64, 1),
    ("omics.g6.8xlarge", 32, 128, 1),
    ("omics.g6.12xlarge", 48, 192, 4),  # not in the shipped table: unpriced without the Price List API
    ("omics.g6.16xlarge", 64, 256, 1),
)
# Share of a task's slot spent provisioning its instance (CREATED -> startTime), at most a minute.
PROVISION_SHARE = 0.05
PROVISION_MAX_SECONDS = 60.0
TASK_JITTER = 0.1  # +/- per task share, seeded per run


def instance_type(cpus: int, memory_gib: int, gpus: int = 0) -> str:
    """The smallest HealthOmics instance with ``cpus`` vCPUs and ``memory_gib`` GiB (and GPUs)."""
    if gpus:
        for name, vcpus, memory, gpu_count in GPU_INSTANCES:
            if vcpus >= cpus and memory >= memory_gib and gpu_count >= gpus:
                return name
        raise validation(f"no GPU instance has {cpus} vCPUs, {memory_gib} GiB and {gpus} GPUs")
    for size, vcpus in INSTANCE_SIZES:
        if vcpus < cpus:
            continue
        for family, per_vcpu in INSTANCE_FAMILIES:
            if vcpus * per_vcpu >= memory_gib:
                return f"omics.{family}.{size}"
    raise validation(f"no instance has {cpus} vCPUs and {memory_gib} GiB")


class TaskService(RunService):
    # -- task records ---------------------------------------------------------

    def _task_records(self, run: Run, now: float) -> list[dict[str, Any]]:
        if run.start_time is None or run.plan is None or run.workflow is None:
            return []
        profile = self.config.profile_for(run.workflow.id, run.workflow.name)
        seeded = random.Random(run.uuid)
        shares = [
            max(0.0, float(t.get("share", 1.0))) * (1 + TASK_JITTER * (2 * seeded.random() - 1)) for t in profile.tasks
        ]
        total = sum(shares) or 1.0
        ended_normally = run.running_outcome == "COMPLETED"
        # The phase the tasks spread over: as it went when it ended normally, else as planned.
        span = (
            (run.running_end - run.start_time) if ended_normally and run.running_end else run.plan.durations["RUNNING"]
        )
        cut = run.running_end if run.running_end is not None else now
        records = []
        offset, done = run.start_time, 0.0
        last = len(shares) - 1
        for index, (task, share) in enumerate(zip(profile.tasks, shares, strict=True)):
            done += share
            created, stop = offset, run.start_time + span * done / total
            if index == last:  # exactly where the phase ends (no float drift)
                stop = run.running_end if ended_normally and run.running_end is not None else run.start_time + span
            offset = stop
            if created > cut or (created == cut and not ended_normally):
                break
            started = created + min(PROVISION_MAX_SECONDS, (stop - created) * PROVISION_SHARE)
            cpus, memory, gpus = int(task.get("cpus", 2)), int(task.get("memory", 4)), int(task.get("gpus", 0))
            record: dict[str, Any] = {
                "taskId": f"{int(run.id) * 1000 + index + 1}",
                "uuid": str(uuid.UUID(int=seeded.getrandbits(128), version=4)),
                "name": str(task["name"]),
                "cpus": cpus,
                "memory": memory,
                "gpus": gpus,
                "instanceType": instance_type(cpus, memory, gpus),
                "cacheHit": run.plan.cache_hit,
                "creationTime": created,
                "logStream": f"{run.log_group_arn}:log-stream:run/{run.id}/task/{int(run.id) * 1000 + index + 1}",
                "image": str(task.get("image") or f"public.ecr.aws/genomics/{task['name']}:latest"),
            }
            if run.plan.cache_hit and run.cache_id:
                record["cacheS3Uri"] = f"{run.output_uri.rstrip('/')}/cache/{run.cache_id}/{record['uuid']}"
            if ended_normally or stop <= cut:
                record.update(status="COMPLETED", startTime=min(started, stop), stopTime=stop)
            elif run.running_end is None:  # the run is still running: this is its current task
                record["status"] = "RUNNING" if now >= started else "STARTING"
                if now >= started:
                    record["startTime"] = started
            else:  # the run failed or was cancelled during this task
                failed = run.running_outcome == "FAILED"
                record.update(status=run.running_outcome, stopTime=cut)
                if cut >= started:
                    record["startTime"] = started
                if failed:
                    record["failureReason"] = run.failure_reason
                    record["statusMessage"] = run.status_message or "Task failed"
            records.append(record)
        return records

    def _tasks_of(self, run_id: str) -> list[dict[str, Any]]:
        run = self.runs.get(run_id)
        if run is None:
            raise not_found("Run", run_id)
        return self._task_records(run, self.clock.now())

    def list_run_tasks(self, params: dict[str, Any]) -> dict[str, Any]:
        with self.lock:
            tasks = [
                t for t in self._tasks_of(params["id"]) if not params.get("status") or t["status"] == params["status"]
            ]
            page, token = paginate(tasks, params.get("startingToken"), params.get("maxResults") or 100)
            items = [{k: v for k, v in t.items() if k not in LIST_OMITS} for t in page]
            return {"items": items, "nextToken": token}

    def get_run_task(self, params: dict[str, Any]) -> dict[str, Any]:
        with self.lock:
            for task in self._tasks_of(params["id"]):
                if task["taskId"] == params["taskId"]:
                    image = task.pop("image")
                    return {**task, "imageDetails": {"image": image, "sourceImage": image}}
            raise not_found("Task", params["taskId"])


# GetRunTask's members that ListRunTasks' items lack (and the image, rendered as imageDetails).
LIST_OMITS = frozenset({"logStream", "statusMessage", "failureReason", "image"})
