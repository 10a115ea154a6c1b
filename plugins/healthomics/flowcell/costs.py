"""The flowcell DAG's ``costs`` task: what each sample's runs cost, for the report.

It runs once every sample task has finished, beside the QC gate and the QC run, so pricing a
flowcell (a GetRun and a ListRunTasks per run) takes none of the time the flowcell takes to
finish. It never fails a flowcell: each sample's status is already recorded by its own task; a
run that cannot be priced (its tasks cannot be listed, an instance without a price) is reported
as unknown with the reason, and what is not priced within ``COST_BUDGET_SECONDS`` is reported as
not priced in time. The QC run is priced by the report itself (``run_cost_entry``), at the prices
this task's result carries (one Price List read per flowcell).
"""

from __future__ import annotations

import dataclasses
import logging
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from healthomics.cost.estimate import cost_band
from healthomics.cost.prices import PriceError, PriceTable
from healthomics.flowcell.outcomes import SampleOutcome
from healthomics.flowcell.plan import TAG_FLOWCELL
from healthomics.flowcell.qc import plan_of, sample_outcomes
from healthomics.flowcell.task_ids import ENTRIES_TASK
from healthomics.hooks.omics import RUN_TERMINAL_STATES, HealthOmicsHook
from healthomics.hooks.pricing import HealthOmicsPricingHook
from healthomics.manifest import FlowcellManifest
from healthomics.settings import AWS_CONN_ID
from healthomics.utils.idempotency import TAG_KEY
from healthomics.utils.text import cut

log = logging.getLogger(__name__)
# ListRunTasks and GetRun share 10 TPS each with the polls: four threads stay well inside them.
COST_THREADS = 4
COST_BUDGET_SECONDS = 900.0


def runs_of(outcomes: list[SampleOutcome]) -> dict[str, str]:
    """Run id -> the sample it belongs to, every stage of a pipeline's sample included."""
    runs: dict[str, str] = {}
    for outcome in outcomes:
        for part in outcome.stages or [outcome]:
            if part.run_id:
                runs[part.run_id] = outcome.sample_id
    return runs


def retried_runs(outcomes: list[SampleOutcome]) -> list[tuple[str, str, bool]]:
    """The runs of attempts after the first (a sample or stage cleared after a failed run): (run id,
    sample, whether it is the sample's first stage, whose attempt 1 was the run batch's)."""
    return [
        (str(part.run_id), outcome.sample_id, index == 0)
        for outcome in outcomes
        for index, part in enumerate(outcome.stages or [outcome])
        if part.run_id and (part.attempt or 1) > 1
    ]


def earlier_attempts(
    hook: HealthOmicsHook, retried: list[tuple[str, str, bool]], batch_runs: dict[str, str]
) -> tuple[dict[str, str], dict[str, str]]:
    """The runs of the earlier attempts of each retried run (failed ones, paid for): earlier run id ->
    the run it led to; and the runs whose earlier attempts could not be looked up -> why.

    Attempt 1 of a sample's first stage is its run batch's (``batch_runs``: sample -> run id); the
    attempts StartRun started are found by the run's name and idempotency key tag."""

    def one(run_id: str) -> list[str] | str:
        try:
            run = hook.get_run(run_id)
            key = (run.get("tags") or {}).get(TAG_KEY)
            if not key or not run.get("name"):
                return "the run has no name or key tag to find its earlier attempts by"
            return [str(r["id"]) for r in hook.find_runs(str(run["name"]), {TAG_KEY: key}) if r["id"] != run_id]
        except (ClientError, BotoCoreError) as err:
            return cut(f"earlier attempts could not be looked up: {err}", 300)

    earlier: dict[str, str] = {}
    errors: dict[str, str] = {}
    run_ids = [run_id for run_id, _, _ in retried]
    hook.conn  # noqa: B018 - made once, before the threads share it
    with ThreadPoolExecutor(COST_THREADS) as pool:
        for (run_id, sample_id, first_stage), found in zip(retried, pool.map(one, run_ids), strict=True):
            if isinstance(found, str):
                errors[run_id] = found
                continue
            if first_stage and batch_runs.get(sample_id) not in (None, run_id):
                found.append(batch_runs[sample_id])
            earlier.update(dict.fromkeys(found, run_id))
    return earlier, errors


def run_cost_entry(hook: HealthOmicsHook, run_id: str, prices: PriceTable) -> dict[str, Any]:
    """One run's cost as the report keeps it, or ``{"error": why}``: never raises for AWS errors."""
    try:
        run = hook.get_run(run_id)
        if run.get("status") not in RUN_TERMINAL_STATES:
            return {"error": f"run still {run.get('status')}"}
        cost = hook.run_cost(run, prices)
    except (ClientError, BotoCoreError) as err:
        return {"error": cut(f"tasks or run could not be read: {err}", 300)}
    # The table and the estimate label are the flowcell's, said once in the report.
    entry = {k: v for k, v in cost.to_dict().items() if k not in ("price_source", "estimate")}
    entry["status"] = run.get("status")
    if entry["total_usd"] is None:
        entry["error"] = "not priced: " + "; ".join(cost.unpriced)
    return entry


def price_runs(hook: HealthOmicsHook, prices: PriceTable, run_ids: list[str], budget: float) -> dict[str, Any]:
    """The cost entry of each run, four at a time, within ``budget`` seconds."""
    deadline = time.monotonic() + budget

    def one(run_id: str) -> dict[str, Any]:
        if time.monotonic() > deadline:
            return {"error": f"not priced within {budget:.0f} s"}
        return run_cost_entry(hook, run_id, prices)

    hook.conn  # noqa: B018 - made once, before the threads share it (boto3 clients are thread-safe)
    with ThreadPoolExecutor(COST_THREADS) as pool:
        return dict(zip(run_ids, pool.map(one, run_ids), strict=True))


def flowcell_prices(hook: HealthOmicsHook) -> PriceTable:
    """The prices of the Region the runs are in."""
    return HealthOmicsPricingHook(aws_conn_id=AWS_CONN_ID).price_table(hook.conn_region_name)


def price_table_of(costs: dict[str, Any]) -> PriceTable | None:
    """The price table a ``costs`` result was priced with."""
    table = costs.get("prices")
    if not isinstance(table, dict):
        return None
    try:
        return PriceTable(**table)
    except TypeError:  # written by another version of the package (a task cleared after an upgrade)
        return None


def costs(**context: Any) -> dict[str, Any]:
    """Price every sample's runs: ``{"price_source", "prices", "runs": {run id: entry}}`` or
    ``{"error"}``; ``prices`` is the table, for the QC run's price."""
    plan = plan_of(context)
    if plan is None or plan["dry_run"]:
        return {"error": "nothing ran"}
    outcomes = sample_outcomes(plan, context)
    runs = runs_of(outcomes)
    hook = HealthOmicsHook(aws_conn_id=AWS_CONN_ID)
    try:
        prices = flowcell_prices(hook)
    except PriceError as err:
        log.warning("No HealthOmics prices: %s", err)
        return {"error": str(err)}
    # A cleared sample or stage paid for its earlier attempts too: priced with it.
    entries = context["ti"].xcom_pull(task_ids=ENTRIES_TASK) or []
    batch_runs = {
        str(e["sample_id"]): str(e["batch_run"]["id"]) for e in entries if isinstance(e, dict) and e.get("batch_run")
    }
    earlier, lookup_errors = earlier_attempts(hook, retried_runs(outcomes), batch_runs)
    priced = price_runs(hook, prices, [*runs, *(e for e in earlier if e not in runs)], COST_BUDGET_SECONDS)
    for run_id, current in earlier.items():
        priced[run_id] = {**priced[run_id], "attempt_of": current}
    for run_id, error in lookup_errors.items():
        priced[f"{run_id}/earlier"] = {"attempt_of": run_id, "total_usd": None, "error": error}
    unknown = sum(1 for entry in priced.values() if "error" in entry)
    log.info("Priced %d runs of flowcell %s (%d unknown)", len(priced), plan["flowcell_id"], unknown)
    return {"price_source": prices.source, "prices": dataclasses.asdict(prices), "runs": priced}


# A pre-run estimate looks at this many earlier runs of a workflow at most, among the account's
# newest COMPLETED runs (ListRuns pages of 100).
PRIOR_RUNS = 20
PRIOR_RUNS_SCANNED = 2000


def prior_run_costs(hook: HealthOmicsHook, prices: PriceTable, workflow_id: str, version: str | None) -> list[float]:
    """What up to PRIOR_RUNS earlier COMPLETED runs of ``workflow_id`` (at ``version``) that this
    package started for a flowcell (their ``flowcell`` tag) cost, newest first."""
    found: list[float] = []
    for scanned, item in enumerate(hook.iter_runs(status="COMPLETED")):
        if scanned >= PRIOR_RUNS_SCANNED or len(found) >= PRIOR_RUNS:
            break
        if item.get("workflowId") != workflow_id or (version and item.get("workflowVersionName") != version):
            continue
        run = hook.get_run(str(item["id"]))  # its tags: a flowcell's run, started by this package
        if TAG_FLOWCELL not in (run.get("tags") or {}):
            continue
        total = hook.run_cost(run, prices).total_usd
        if total is not None:
            found.append(total)
    return found


def pre_run_estimate(hook: HealthOmicsHook, manifest: FlowcellManifest) -> dict[str, Any]:
    """An estimate band for the flowcell from earlier runs of the same workflows and versions: per
    workflow (each stage's, the samples', the QC's) the 10th-90th percentile of what a run cost,
    times the samples that run it. Says which workflows have no earlier run (then no band)."""
    try:
        prices = flowcell_prices(hook)
    except PriceError as err:
        return {"estimate": True, "error": str(err)}
    per_sample: list[tuple[str, str, str | None, int]] = []  # (label, workflow, version, runs of it)
    if manifest.stages:
        for stage in manifest.stages:
            per_sample.append((stage.name, stage.workflow_id, stage.workflow_version_name, len(manifest.samples)))
    else:
        counts: dict[str, int] = {}
        for sample in manifest.samples:
            counts[sample.workflow_id] = counts.get(sample.workflow_id, 0) + 1
        version = manifest.defaults.workflow_version_name
        per_sample += [("samples", workflow, version, n) for workflow, n in sorted(counts.items())]
    if manifest.qc is not None:
        per_sample.append(("qc", manifest.qc.workflow_id, None, 1))
    workflows, unknown = [], []
    totals = {"p10_usd": 0.0, "p50_usd": 0.0, "p90_usd": 0.0}
    try:
        for label, workflow_id, version, runs in per_sample:
            band = cost_band(prior_run_costs(hook, prices, workflow_id, version))
            entry: dict[str, Any] = {"label": label, "workflow_id": workflow_id, "version": version, "runs": runs}
            if band is None:
                unknown.append(label)
            else:
                entry["earlier_runs"] = band["runs"]
                for key in totals:
                    entry[key] = band[key]
                    totals[key] += float(band[key]) * runs
            workflows.append(entry)
    except (ClientError, BotoCoreError) as err:
        return {"estimate": True, "error": cut(f"earlier runs could not be read: {err}", 300)}
    return {
        "estimate": True,
        "currency": "USD",
        "price_source": prices.source,
        "samples": len(manifest.samples),
        "workflows": workflows,
        # No band where a workflow has no earlier run: a partial sum would look like an answer.
        "flowcell": None if unknown else totals,
        "unknown": unknown,
    }
