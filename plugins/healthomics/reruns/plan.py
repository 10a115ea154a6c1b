"""What a backfill does to each sample of a past flowcell, decided from the runs it already has."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from healthomics.hooks.omics import RUN_ACTIVE_STATES, RUN_FAILURE_STATES, RUN_SUCCESS_STATES

# What to run again.
MISSING = "missing"  # samples with no COMPLETED run of this workflow version and parameters (the default)
FAILED = "failed"  # only samples whose latest run FAILED / was CANCELLED / DELETED
ALL = "all"  # every sample, completed or not
RERUN_MODES = (MISSING, FAILED, ALL)

RUN = "run"  # submit a new run
REUSE = "reuse"  # take an existing run (COMPLETED, or still going) as the sample's run
LEAVE = "leave"  # not part of this backfill


@dataclass(frozen=True)
class SampleDecision:
    sample_id: str
    action: str
    reason: str
    run_id: str | None = None  # the run reused, or the latest one seen
    status: str | None = None
    # A pipeline's sample: the stage runs it reuses (stage -> run id), the stages before the one it runs from.
    stage_runs: dict[str, str] | None = None

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def same_request(run: dict[str, Any], request: dict[str, Any]) -> bool:
    """Did ``run`` (GetRun) do what ``request`` (StartRun) asks now: same workflow, version and parameters?

    A new workflow version, or new parameters (a reference update in the manifest), is new work.
    """
    return (
        str(run.get("workflowId")) == str(request["workflowId"])
        and (run.get("workflowVersionName") or None) == (request.get("workflowVersionName") or None)
        and (run.get("parameters") or {}) == (request.get("parameters") or {})
    )


def decide(sample_id: str, runs: list[dict[str, Any]], mode: str) -> SampleDecision:
    """What to do with one sample, given its earlier runs of this workflow version (any order).

    A live run is always reused: a second paid run of the same sample is never started while
    one is still going.
    """
    if mode not in RERUN_MODES:
        raise ValueError(f"unknown rerun mode {mode!r}; expected one of {', '.join(RERUN_MODES)}")
    newest = sorted(runs, key=lambda r: str(r.get("creationTime") or ""), reverse=True)
    live = next((r for r in newest if r.get("status") in RUN_ACTIVE_STATES - {"STOPPING"}), None)
    if live is not None:
        return SampleDecision(sample_id, REUSE, "a run is still going", live["id"], live["status"])
    completed = next((r for r in newest if r.get("status") in RUN_SUCCESS_STATES), None)
    latest = newest[0] if newest else None
    if mode == ALL:
        return SampleDecision(
            sample_id,
            RUN,
            "everything is run again",
            latest["id"] if latest else None,
            latest.get("status") if latest else None,
        )
    if completed is not None:
        return SampleDecision(sample_id, REUSE, "already COMPLETED", completed["id"], completed["status"])
    if latest is None:
        if mode == FAILED:
            return SampleDecision(sample_id, LEAVE, "never run (rerun mode 'failed' takes failed runs only)")
        return SampleDecision(sample_id, RUN, "never run")
    if latest.get("status") in RUN_FAILURE_STATES:
        return SampleDecision(sample_id, RUN, f"latest run {latest['status']}", latest["id"], latest["status"])
    return SampleDecision(sample_id, RUN, f"no COMPLETED run (latest {latest.get('status')})", latest["id"])


def flowcell_conf(
    manifest_uri: str, decisions: list[SampleDecision], rerun_key: str, extra: dict[str, Any] | None = None
) -> dict[str, Any] | None:
    """The flowcell DAG's conf that carries the decisions out; None when there is nothing to run."""
    if not any(d.action == RUN for d in decisions):
        return None
    conf: dict[str, Any] = {
        **(extra or {}),
        "manifest_uri": manifest_uri,
        "rerun_key": rerun_key,
        "reuse_runs": {
            d.sample_id: d.stage_runs if d.stage_runs is not None else d.run_id
            for d in decisions
            if (d.action == REUSE or d.stage_runs) and (d.stage_runs or d.run_id)
        },
    }
    if any(d.action == LEAVE for d in decisions):
        conf["samples"] = [d.sample_id for d in decisions if d.action != LEAVE]
    return conf


def pipeline_decision(sample_id: str, stages: list[tuple[str, SampleDecision]]) -> SampleDecision:
    """One pipeline sample's decision from its stages' (in order, up to the first that is not a
    COMPLETED run to reuse): reuse every stage, leave the sample, or run it from that stage on,
    reusing the ones before (a live run of that stage is followed, not started again)."""
    reused = {stage: str(d.run_id) for stage, d in stages if d.action == REUSE and d.run_id}
    stage, last = stages[-1]
    if last.action == REUSE and last.status in RUN_SUCCESS_STATES and len(reused) == len(stages):
        return SampleDecision(sample_id, REUSE, "every stage COMPLETED", last.run_id, last.status, reused)
    if last.action == LEAVE:
        return SampleDecision(sample_id, LEAVE, f"stage {stage}: {last.reason}", last.run_id, last.status)
    verb = "follows its run" if last.action == REUSE else "runs again"
    return SampleDecision(
        sample_id, RUN, f"from stage {stage} ({verb}: {last.reason})", last.run_id, last.status, reused
    )
