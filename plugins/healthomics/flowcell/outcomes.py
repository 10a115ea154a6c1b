"""What happened to each sample, and whether the QC policy lets the cohort QC run."""

from __future__ import annotations

import datetime as dt
from dataclasses import asdict, dataclass, field, replace
from typing import Any

from healthomics.manifest.model import QcPolicy

COMPLETED = "COMPLETED"
NOT_RUN = "NOT_RUN"  # the sample task never ran (upstream failure, dry run, ...)


@dataclass
class SampleOutcome:
    sample_id: str
    status: str  # COMPLETED, FAILED, CANCELLED, DELETED, NOT_SUBMITTED, NOT_RUN, or RUNNING
    run_id: str | None = None
    arn: str | None = None
    uuid: str | None = None
    run_output_uri: str | None = None
    attempt: int | None = None
    failure_reason: str | None = None
    message: str | None = None
    creation_time: str | None = None  # when it was submitted: queued until start_time
    start_time: str | None = None
    stop_time: str | None = None
    # In a pipeline: the stage the sample stopped at (or its last), and each stage's own outcome.
    stage: str | None = None
    stages: list[SampleOutcome] = field(default_factory=list)

    @property
    def completed(self) -> bool:
        return self.status == COMPLETED

    @property
    def duration_seconds(self) -> float | None:
        if not (self.start_time and self.stop_time):
            return None
        start = dt.datetime.fromisoformat(self.start_time)
        stop = dt.datetime.fromisoformat(self.stop_time)
        return (stop - start).total_seconds()

    def as_dict(self) -> dict[str, Any]:
        document = {**asdict(self), "duration_seconds": self.duration_seconds}
        document["stages"] = [stage.as_dict() for stage in self.stages]
        return document


def collect_outcomes(
    sample_ids: list[str],
    results: list[dict[str, Any] | None],
    failures: list[dict[str, Any] | None],
    task_states: list[str | None],
) -> list[SampleOutcome]:
    """Join, per map index, the sample task's state with its result or failure XCom."""
    outcomes = []
    for index, sample_id in enumerate(sample_ids):
        result = results[index] if index < len(results) else None
        failure = failures[index] if index < len(failures) else None
        state = task_states[index] if index < len(task_states) else None
        if state == "success" and result:
            outcomes.append(
                SampleOutcome(
                    sample_id=sample_id,
                    status=result.get("status", COMPLETED),
                    run_id=result.get("id"),
                    arn=result.get("arn"),
                    uuid=result.get("uuid"),
                    run_output_uri=result.get("runOutputUri"),
                    attempt=result.get("attempt"),
                    creation_time=result.get("creationTime"),
                    start_time=result.get("startTime"),
                    stop_time=result.get("stopTime"),
                )
            )
        elif failure:
            outcomes.append(
                SampleOutcome(
                    sample_id=sample_id,
                    status=failure.get("status") or "FAILED",
                    run_id=failure.get("id"),
                    attempt=failure.get("attempt"),
                    failure_reason=failure.get("failureReason"),
                    message=failure.get("statusMessage"),
                    creation_time=failure.get("creationTime"),
                    start_time=failure.get("startTime"),
                    stop_time=failure.get("stopTime"),
                )
            )
        elif state in ("failed", "up_for_retry"):
            outcomes.append(SampleOutcome(sample_id, "FAILED", message=f"sample task {state} without a run outcome"))
        elif state in ("running", "deferred", "queued", "scheduled", "up_for_reschedule"):
            outcomes.append(SampleOutcome(sample_id, "RUNNING", message=f"sample task still {state}"))
        else:
            outcomes.append(SampleOutcome(sample_id, NOT_RUN, message=f"sample task {state or 'not started'}"))
    return outcomes


def pipeline_outcomes(stage_names: list[str | None], per_stage: list[list[SampleOutcome]]) -> list[SampleOutcome]:
    """Each sample's outcome over its pipeline, from each stage's outcomes (``per_stage[k][i]``: stage
    *k*, sample *i*): the first stage that did not complete decides, the later ones did not run
    because of it; a sample that completed every stage is its last stage's outcome. Its time
    runs from its first stage's start."""
    outcomes = []
    for index in range(len(per_stage[0]) if per_stage else 0):
        stages: list[SampleOutcome] = []
        stopped: SampleOutcome | None = None
        for name, outcomes_of_stage in zip(stage_names, per_stage, strict=True):
            stage = outcomes_of_stage[index]
            stage.stage = name
            if stopped is not None and stage.status == NOT_RUN:
                stage.message = f"stage {stopped.stage} did not complete"
            stages.append(stage)
            if stopped is None and not stage.completed:
                stopped = stage
        # The sample's time runs from its first stage's start to where it stopped.
        final = replace(stopped or stages[-1], start_time=stages[0].start_time, stages=stages)
        outcomes.append(final)
    return outcomes


@dataclass
class PolicyDecision:
    passed: bool
    completed: int
    total: int
    required_fraction: float
    explanation: str


def _describe(outcome: SampleOutcome) -> str:
    why = outcome.failure_reason or outcome.message
    return f"{outcome.sample_id}: {outcome.status}" + (f" ({why})" if why else "")


def evaluate_policy(outcomes: list[SampleOutcome], policy: QcPolicy) -> PolicyDecision:
    """Does the cohort qualify for QC? Default policy: every sample COMPLETED."""
    total = len(outcomes)
    completed = sum(o.completed for o in outcomes)
    fraction = completed / total if total else 0.0
    passed = total > 0 and completed > 0 and fraction + 1e-9 >= policy.min_completed_fraction
    not_completed = [o for o in outcomes if not o.completed]
    detail = "; ".join(_describe(o) for o in not_completed[:20])
    if len(not_completed) > 20:
        detail += f"; ... and {len(not_completed) - 20} more"
    explanation = (
        f"{completed}/{total} samples COMPLETED ({fraction:.0%}); policy requires at least "
        f"{policy.min_completed_fraction:.0%}" + (f". Not completed: {detail}" if not_completed else "")
    )
    return PolicyDecision(passed, completed, total, policy.min_completed_fraction, explanation)
