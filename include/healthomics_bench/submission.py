"""How a pipeline's later stages are best submitted, measured against the service's quotas alone.

The issue of chaining workflows per sample: samples become ready for their next stage one by one,
and the account's StartRun quota (0.1 per second by default, all of it taken by a submitting run
batch) must never fail one of them. Three ways, each in a fresh local stack with the bench's quotas,
with the same three-stage pipeline (stage 1 as one run batch, as the DAG submits it):

* ``paced``: one StartRun per ready sample; a throttled one waits for a turn from one pacer
  (:class:`healthomics.triggers.quota.StartPacer`, the project's way) and tries again.
* ``backoff``: one StartRun per ready sample; a throttled one backs off on its own, doubling from
  10 s (the project before the pacer, and most clients).
* ``microbatch``: every poll interval, the samples that became ready go out as one StartRunBatch
  (chunks of 100), whose run ids are read once it has submitted (GetBatch, ListRunsInBatch).
* ``shipped``: what the stage tasks do: one StartRun; a throttled one goes in a micro batch through
  the package's own trigger (:class:`~healthomics.triggers.micro_batch.HealthOmicsMicroBatchTrigger`),
  its calls counted by the emulator; in a flowcell of ``[healthomics] micro_batch_min_samples`` or
  more, straight in the micro batch without the StartRun.

No Airflow: a driver stands in for the stage tasks, so the figures are the AWS side of each way
(calls, 429s, how long a ready sample waits for its run, the makespan) at 1x time: every wait of
the driver is in emulated seconds. A sample becomes ready for stage 2 once its stage 1 run
COMPLETED and its batch has submitted every run (the sample tasks start then), for stage 3 once
its stage 2 run COMPLETED, as a poll every ``poll_seconds`` sees it.
"""

from __future__ import annotations

import asyncio
import json
import os
import statistics
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from botocore.exceptions import ClientError

from healthomics.settings import micro_batch_min_samples
from healthomics.triggers.base import backoff
from healthomics.triggers.micro_batch import HealthOmicsMicroBatchTrigger
from healthomics.triggers.quota import StartPacer
from healthomics.utils.service_model import as_batch_run
from healthomics_bench.scenario import BUCKET, ROLE_ARN, pipeline_workflows, put_inputs
from local_aws.stack import LocalAWS
from omics_emulator import EmulatorAdmin
from omics_emulator.quotas import DEFAULT_TPS

STRATEGIES = ("paced", "backoff", "microbatch", "shipped")
# What the micro batch trigger calls (beside the driver's own reads of the first batch).
MICRO_BATCH_CALLS = ("StartRunBatch", "ListBatch", "ListRunsInBatch", "GetBatch", "CancelRun")
BATCH_LIMIT = 100  # inline run settings per StartRunBatch
BACKOFF_FIRST_SECONDS = 10.0
PER_RUN = ("name", "outputUri", "parameters")  # what a batch's run setting may set (beside runTags)


@dataclass
class Pipeline:
    """What the driver knows: each sample's runs by stage, and when each later stage became ready."""

    stages: list[str]
    workflows: dict[str, str]
    flowcell_id: str
    samples: int
    runs: dict[tuple[str, str], str] = field(default_factory=dict)  # (sample, stage) -> run id
    ready: dict[tuple[str, str], float] = field(default_factory=dict)  # (sample, stage) -> emulated time
    done: set[str] = field(default_factory=set)  # samples whose last stage COMPLETED

    def request(self, sample: str, stage: str) -> dict[str, Any]:
        return {
            "workflowId": self.workflows[stage],
            "roleArn": ROLE_ARN,
            "outputUri": f"s3://{BUCKET}/outputs/{self.flowcell_id}/",
            "name": f"{self.flowcell_id}-{sample}-{stage}",
            "parameters": {"sample_id": sample, **PREVIOUS_OUTPUT[stage](sample)},
            "tags": {"sample": sample, "stage": stage},
        }


PREVIOUS_OUTPUT: dict[str, Callable[[str], dict[str, str]]] = {
    "call": lambda s: {"bam": f"s3://{BUCKET}/aligned/{s}.bam"},
    "annotate": lambda s: {"vcf": f"s3://{BUCKET}/called/{s}.vcf"},
}


class Driver:
    """The stand-in for the stage tasks of one strategy, on one event loop, in emulated time."""

    def __init__(self, strategy: str, stack: LocalAWS, pipeline: Pipeline, scale: float, poll_seconds: float) -> None:
        self.strategy = strategy
        # One attempt per call: the driver's own waits stand for botocore's, in emulated time.
        self.omics = stack.client("omics", retries={"mode": "standard", "total_max_attempts": 1})
        self.admin = EmulatorAdmin(stack.omics_url)
        self.pipeline = pipeline
        self.scale = scale
        self.poll_seconds = poll_seconds
        self.start_run_tps = DEFAULT_TPS["StartRun"]
        self.ready_queue: list[tuple[str, str]] = []  # microbatch: ready, not yet submitted
        self.batches: dict[str, str] = {}  # microbatch: batch id -> stage, until its runs are known
        self.pending: set[asyncio.Task[None]] = set()
        # The later stages' submission calls (the first batch and the status polls are the same
        # in every strategy) and how many of them were throttled.
        self.calls: Counter[str] = Counter()
        self.throttled = 0
        self.first_stage_calls: Counter[str] = Counter()  # the driver's own calls for the first stage's batch
        if strategy == "shipped":
            os.environ.update(stack.env())  # the trigger's Airflow connection to the local stack

    async def sleep(self, emulated_seconds: float) -> None:
        await asyncio.sleep(max(0.0, emulated_seconds) / self.scale)

    # -- the later stages' submission, per strategy ------------------------------------------

    def became_ready(self, sample: str, stage: str) -> None:
        self.pipeline.ready[(sample, stage)] = self.admin.now()  # the service's clock, as run times are
        if self.strategy == "microbatch":
            self.ready_queue.append((sample, stage))
        else:
            straight = self.strategy == "shipped" and 0 < micro_batch_min_samples() <= self.pipeline.samples
            task = asyncio.ensure_future(
                self.submit_in_micro_batch(sample, stage) if straight else self.start_run(sample, stage)
            )
            self.pending.add(task)
            task.add_done_callback(self.pending.discard)

    async def start_run(self, sample: str, stage: str) -> None:
        pacer = StartPacer.shared("bench", self.start_run_tps * self.scale)  # the quota, in real time
        delay = 0.0
        while True:
            self.calls["StartRun"] += 1
            try:
                started = self.omics.start_run(
                    **self.pipeline.request(sample, stage), requestId=f"{self.pipeline.flowcell_id}/{sample}/{stage}"
                )
            except ClientError as err:
                if err.response["Error"]["Code"] != "ThrottlingException":
                    raise
                self.throttled += 1
                if self.strategy == "shipped":
                    await self.submit_in_micro_batch(sample, stage)
                    return
                if self.strategy == "paced":
                    pacer.throttled()
                    await pacer.turn()
                else:
                    delay = backoff(delay, BACKOFF_FIRST_SECONDS)
                    await self.sleep(delay)
                continue
            self.pipeline.runs[(sample, stage)] = started["id"]
            return

    async def submit_in_micro_batch(self, sample: str, stage: str) -> None:
        """The stage task's way after a throttled StartRun: the package's micro batch trigger."""
        request = self.pipeline.request(sample, stage)
        setting_id = f"{self.pipeline.flowcell_id}/{sample}/{stage}"
        split = as_batch_run(request, setting_id)
        assert split is not None
        default, setting = split
        trigger = HealthOmicsMicroBatchTrigger(
            batch_name=f"{self.pipeline.flowcell_id}-{stage}",
            default_run_setting=default,
            run_setting=setting,
            poll_interval=self.poll_seconds / self.scale,
        )
        event: dict[str, Any] = {}
        async for fired in trigger.run():  # one event, then the trigger ends
            event = dict(fired.payload)
        if event["status"] != "submitted":
            raise RuntimeError(f"{sample} {stage} not submitted: {event}")
        self.pipeline.runs[(sample, stage)] = event["run"]["id"]

    async def submit_micro_batches(self) -> None:
        """Every poll interval: the samples that became ready since, as StartRunBatch calls per stage."""
        while True:
            await self.sleep(self.poll_seconds)
            ready, self.ready_queue = self.ready_queue, []
            for stage in self.pipeline.stages[1:]:
                samples = [s for s, g in ready if g == stage]
                for first in range(0, len(samples), BATCH_LIMIT):
                    chunk = samples[first : first + BATCH_LIMIT]
                    self.calls["StartRunBatch"] += 1
                    try:
                        batch = self.omics.start_run_batch(
                            batchName=f"{self.pipeline.flowcell_id}-{stage}"[:64],
                            requestId=f"{self.pipeline.flowcell_id}/{stage}/{chunk[0]}",
                            defaultRunSetting={"workflowId": self.pipeline.workflows[stage], "roleArn": ROLE_ARN},
                            batchRunSettings={
                                "inlineSettings": [
                                    {
                                        "runSettingId": s,
                                        **{k: v for k, v in self.pipeline.request(s, stage).items() if k in PER_RUN},
                                        "runTags": {"sample": s, "stage": stage},
                                    }
                                    for s in chunk
                                ]
                            },
                        )
                    except ClientError as err:
                        if err.response["Error"]["Code"] != "ThrottlingException":
                            raise
                        self.throttled += 1
                        self.ready_queue.extend((s, stage) for s in chunk)  # the next interval tries again
                        continue
                    self.batches[batch["id"]] = stage
            await self.read_batch_runs()

    async def read_batch_runs(self) -> None:
        """The run ids of every micro batch that has submitted all its runs."""
        for batch_id, stage in list(self.batches.items()):
            self.calls["GetBatch"] += 1
            batch = self.omics.get_batch(batchId=batch_id)
            if batch["status"] in ("CREATING", "PENDING", "SUBMITTING"):
                continue
            if batch["status"] == "FAILED":
                raise RuntimeError(f"micro batch {batch_id} failed: {batch.get('failureReason')}")
            for page in self.omics.get_paginator("list_runs_in_batch").paginate(batchId=batch_id):
                self.calls["ListRunsInBatch"] += 1
                for entry in page["runs"]:
                    self.pipeline.runs[(entry["runSettingId"], stage)] = entry["runId"]
            del self.batches[batch_id]

    # -- the first stage, and watching every run ---------------------------------------------

    def submit_first_stage(self, samples: list[str], s3: Any) -> str:
        """Stage 1 as the DAG submits it: one run batch, its settings in S3 above 100 runs."""
        stage = self.pipeline.stages[0]
        settings = [
            {
                "runSettingId": s,
                "name": f"{self.pipeline.flowcell_id}-{s}-{stage}",
                "outputUri": f"s3://{BUCKET}/outputs/{self.pipeline.flowcell_id}/",
                "parameters": {
                    "sample_id": s,
                    "fastq": f"s3://{BUCKET}/fastq/{self.pipeline.flowcell_id}/{s}.fastq.gz",
                },
                "runTags": {"sample": s, "stage": stage},
            }
            for s in samples
        ]
        key = f"batch-settings/{self.pipeline.flowcell_id}.json"
        self.first_stage_calls["StartRunBatch"] += 1
        s3.put_object(Bucket=BUCKET, Key=key, Body=json.dumps(settings).encode())
        batch = self.omics.start_run_batch(
            batchName=f"{self.pipeline.flowcell_id}-{stage}",
            requestId=f"{self.pipeline.flowcell_id}/{stage}",
            defaultRunSetting={"workflowId": self.pipeline.workflows[stage], "roleArn": ROLE_ARN},
            batchRunSettings={"s3UriSettings": f"s3://{BUCKET}/{key}"},
        )
        return str(batch["id"])

    async def watch(self, samples: list[str], first_batch: str) -> None:
        """Poll every interval: the first batch's runs once it has submitted, then every run's status."""
        stages = self.pipeline.stages
        by_run: dict[str, tuple[str, str]] = {}
        moved: set[tuple[str, str]] = set()  # (sample, stage) whose COMPLETED run was acted on
        batch_done = False
        while len(self.pipeline.done) < len(samples):
            await self.sleep(self.poll_seconds)
            if not batch_done:
                self.first_stage_calls["GetBatch"] += 1
            status = "" if batch_done else self.omics.get_batch(batchId=first_batch)["status"]
            if status == "FAILED":
                raise RuntimeError(f"the first stage's batch {first_batch} failed")
            if status and status not in ("CREATING", "PENDING", "SUBMITTING"):
                batch_done = True
                for page in self.omics.get_paginator("list_runs_in_batch").paginate(batchId=first_batch):
                    self.first_stage_calls["ListRunsInBatch"] += 1
                    for entry in page["runs"]:
                        self.pipeline.runs[(entry["runSettingId"], stages[0])] = entry["runId"]
            by_run.update({run_id: key for key, run_id in self.pipeline.runs.items()})
            for page in self.omics.get_paginator("list_runs").paginate():
                for item in page["items"]:
                    key = by_run.get(item["id"])
                    if key is not None and item["status"] in ("FAILED", "CANCELLED", "DELETED"):
                        raise RuntimeError(f"run {item['id']} of {key} ended {item['status']}")
                    if key is None or key in moved or item["status"] != "COMPLETED":
                        continue
                    if key[1] == stages[0] and not batch_done:
                        continue
                    moved.add(key)
                    sample, stage = key
                    index = stages.index(stage)
                    if index + 1 < len(stages):
                        self.became_ready(sample, stages[index + 1])
                    else:
                        self.pipeline.done.add(sample)

    async def run(self, samples: list[str], s3: Any) -> None:
        first_batch = self.submit_first_stage(samples, s3)
        helpers = [asyncio.ensure_future(self.submit_micro_batches())] if self.strategy == "microbatch" else []
        try:
            await self.watch(samples, first_batch)
        finally:
            for helper in helpers:
                helper.cancel()


def measure(strategy: str, samples: int, stack: LocalAWS, scale: float, poll_seconds: float) -> dict[str, Any]:
    """One strategy on a fresh stack: submission calls and 429s per later-stage run, the wait from
    ready to run, and the makespan against the ideal, in emulated seconds."""
    s3, omics = stack.client("s3"), stack.client("omics")
    flowcell_id = f"FC-SUBMIT-{samples:05d}"
    sample_ids = put_inputs(s3, flowcell_id, samples)
    workflows, _ = pipeline_workflows(omics)
    pipeline = Pipeline(stages=list(workflows), workflows=workflows, flowcell_id=flowcell_id, samples=samples)
    driver = Driver(strategy, stack, pipeline, scale, poll_seconds)
    started = driver.admin.now()
    before = driver.admin.counters()["operations"]
    asyncio.run(driver.run(sample_ids, s3))
    if strategy == "shipped":
        after = driver.admin.counters()["operations"]
        for operation in MICRO_BATCH_CALLS:
            made = after.get(operation, {}).get("calls", 0) - before.get(operation, {}).get("calls", 0)
            if made - driver.first_stage_calls[operation] > 0:
                driver.calls[operation] += made - driver.first_stage_calls[operation]
            throttled = after.get(operation, {}).get("throttled", 0) - before.get(operation, {}).get("throttled", 0)
            driver.throttled += throttled
    runs = {key: omics.get_run(id=run_id) for key, run_id in pipeline.runs.items()}
    waits = sorted(runs[key]["creationTime"].timestamp() - ready for key, ready in pipeline.ready.items())
    finished = max(run["stopTime"].timestamp() for run in runs.values())
    chains = [
        sum((runs[(s, g)]["stopTime"] - runs[(s, g)]["creationTime"]).total_seconds() for g in pipeline.stages)
        for s in sample_ids
    ]
    # The longest chain of one sample's runs, and every run through the StartRun quota.
    ideal = max(chains) + len(pipeline.stages) * samples / DEFAULT_TPS["StartRun"]
    later_runs = len(pipeline.ready)
    return {
        "strategy": strategy,
        "samples": samples,
        "later_stage_runs": later_runs,
        "submission_calls_per_run": sum(driver.calls.values()) / later_runs,
        "calls": dict(driver.calls),
        "throttled_429": driver.throttled,
        "ready_to_run_p50_s": statistics.median(waits),
        "ready_to_run_p95_s": waits[int(0.95 * (len(waits) - 1))],
        "ready_to_run_max_s": waits[-1],
        "makespan_s": finished - started,
        "ideal_s": ideal,
        "makespan_over_ideal": (finished - started) / ideal,
    }


COLUMNS = (
    ("strategy", "way"),
    ("samples", "N"),
    ("submission_calls_per_run", "calls / later-stage run"),
    ("throttled_429", "429s"),
    ("ready_to_run_p50_s", "ready -> run p50 (s)"),
    ("ready_to_run_p95_s", "p95 (s)"),
    ("ready_to_run_max_s", "max (s)"),
    ("makespan_over_ideal", "makespan / ideal"),
)


def render_table(results: list[dict[str, Any]]) -> str:
    """A Markdown table, one row per strategy and N."""

    def cell(value: Any) -> str:
        if not isinstance(value, float):
            return str(value)
        return f"{value:.2f}" if abs(value) < 100 else f"{value:,.0f}"

    lines = ["| " + " | ".join(title for _, title in COLUMNS) + " |", "|" + "---|" * len(COLUMNS)]
    lines += ["| " + " | ".join(cell(r[key]) for key, _ in COLUMNS) + " |" for r in results]
    return "\n".join(lines)
