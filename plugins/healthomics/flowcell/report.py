"""The flowcell report: per-sample table, QC outcome and console/log/output links, as JSON and text."""

from __future__ import annotations

import datetime as dt
from collections import Counter
from typing import Any

from healthomics.exceptions import failure_detail
from healthomics.flowcell.outcomes import SampleOutcome
from healthomics.links.omics import run_links

SUCCESS = "SUCCESS"
FAILED = "FAILED"
DRY_RUN = "DRY_RUN"
INVALID_MANIFEST = "INVALID_MANIFEST"


def build_report(
    *,
    plan: dict[str, Any],
    dag_id: str,
    dag_run_id: str,
    outcomes: list[SampleOutcome],
    qc: dict[str, Any],
    region: str,
    partition: str,
    costs: dict[str, Any] | None = None,
    qc_cost: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """The report as a JSON document.

    :param costs: the ``costs`` task's result (see :mod:`healthomics.flowcell.costs`); None if it
        did not run or failed: the report then says cost is unknown.
    :param qc_cost: the QC run's cost entry, if it ran.
    """
    dry_run = bool(plan.get("dry_run"))
    counts = Counter(o.status for o in outcomes)
    all_completed = bool(outcomes) and counts.get("COMPLETED", 0) == len(outcomes)
    qc_ok = qc.get("status") in ("COMPLETED", "NOT_CONFIGURED")
    status = DRY_RUN if dry_run else (SUCCESS if all_completed and qc_ok else FAILED)
    samples = [_with_links(o.as_dict(), region, partition) for o in outcomes]
    return {
        "flowcell_id": plan["flowcell_id"],
        "status": status,
        "dag_id": dag_id,
        "dag_run_id": dag_run_id,
        "generated_at": dt.datetime.now(dt.UTC).isoformat(),
        "manifest": {
            "uri": plan["manifest"].get("source_uri"),
            "format": plan["manifest"]["source_format"],
            "sha256": plan["manifest"]["sha256"],
        },
        "submission_mode": plan["mode"],
        "counts": dict(sorted(counts.items())),
        "samples": samples,
        # A pipeline: how far the samples got, stage by stage.
        "stage_counts": {
            name: dict(sorted(Counter(s.status for o in outcomes for s in o.stages if s.stage == name).items()))
            for name in dict.fromkeys(s.stage for o in outcomes for s in o.stages)
        },
        "qc": {**qc, "links": run_links(region, partition, qc.get("run_id"), qc.get("run_output_uri"))},
        "cost": None if dry_run else cost_section(costs, samples, qc_cost),
    }


MOST_EXPENSIVE = 5
UNKNOWN_LISTED = 50


def cost_section(
    costs: dict[str, Any] | None, samples: list[dict[str, Any]], qc_cost: dict[str, Any] | None
) -> dict[str, Any]:
    """The report's cost figures (estimates at list prices, USD), and each sample row's ``cost_usd``
    (and each stage's): the flowcell total, samples, QC, money spent on runs that did not complete,
    the most expensive samples, and every run whose cost is unknown, with why."""
    section: dict[str, Any] = {"estimate": True, "currency": "USD"}
    if costs is None or "error" in costs:
        reason = (costs or {}).get("error") or "the costs task did not run or failed (see its log)"
        return {**section, "error": f"cost unknown: {reason}", "total_usd": None}
    runs: dict[str, dict[str, Any]] = costs.get("runs", {})
    # Earlier attempts of a cleared sample or stage (failed runs, paid for), by the run they led to.
    earlier: dict[str, list[tuple[str, dict[str, Any]]]] = {}
    for run_id, entry in runs.items():
        if entry.get("attempt_of"):
            earlier.setdefault(str(entry["attempt_of"]), []).append((run_id, entry))
    unknown: list[dict[str, Any]] = []
    failed_usd = samples_usd = 0.0
    stages_usd: dict[str, float] = {}  # a pipeline's stages, over every sample (what is known)
    for sample in samples:
        parts = sample["stages"] or [sample]
        known = True
        for part in parts:
            run_id = part.get("run_id")
            part["cost_usd"] = None
            if not run_id:
                continue
            # Its run and those of its earlier attempts (a cleared sample or stage paid for them too).
            entry = runs.get(run_id) or {}
            entries = [(run_id, entry, part.get("status"))]
            entries += [(i, e, e.get("status")) for i, e in earlier.get(run_id, [])]
            part_usd: float | None = 0.0
            for priced_id, entry, status in entries:
                usd = entry.get("total_usd")
                if usd is None:
                    part_usd = None
                    reason = entry.get("error") or "not priced"
                    unknown.append({"sample_id": sample["sample_id"], "run_id": priced_id, "reason": reason})
                    continue
                samples_usd += usd
                failed_usd += usd if status != "COMPLETED" else 0.0
                if part is not sample and part.get("stage"):
                    stages_usd[part["stage"]] = stages_usd.get(part["stage"], 0.0) + usd
                part_usd = None if part_usd is None else part_usd + usd
            part["cost_usd"] = part_usd
            known = known and part_usd is not None
        priced = [p["cost_usd"] for p in parts if p.get("cost_usd") is not None]
        sample["cost_usd"] = sum(priced) if known and priced else None
    qc_usd = (qc_cost or {}).get("total_usd")
    if qc_usd is not None and (qc_cost or {}).get("status") != "COMPLETED":
        failed_usd += qc_usd  # a QC run that failed was paid for nothing too
    if qc_cost is not None and qc_usd is None:
        unknown.append({"sample_id": None, "run_id": qc_cost.get("run_id"), "reason": qc_cost.get("error")})
    ranked = sorted((s for s in samples if s.get("cost_usd") is not None), key=lambda s: -s["cost_usd"])
    return {
        **section,
        "price_source": costs.get("price_source"),
        # With unknown runs the totals are what is known: "at least".
        "complete": not unknown,
        "total_usd": samples_usd + (qc_usd or 0.0),
        "samples_usd": samples_usd,
        "stages_usd": stages_usd,
        "qc_usd": qc_usd,
        "failed_runs_usd": failed_usd,
        "most_expensive": [{"sample_id": s["sample_id"], "cost_usd": s["cost_usd"]} for s in ranked[:MOST_EXPENSIVE]],
        "unknown_runs": len(unknown),
        "unknown": unknown[:UNKNOWN_LISTED],
    }


def _usd(value: float | None) -> str:
    return "-" if value is None else f"{value:,.2f}"


def _estimate_lines(estimate: dict[str, Any] | None) -> list[str]:
    """A dry run's estimate band, per workflow and for the flowcell."""
    if not estimate:
        return []
    if estimate.get("error"):
        return ["", f"Estimate: unknown ({estimate['error']})"]
    band = estimate.get("flowcell")
    head = (
        f"{_usd(band['p10_usd'])} to {_usd(band['p90_usd'])} (median {_usd(band['p50_usd'])})"
        if band
        else "none known (no earlier run of " + ", ".join(estimate["unknown"]) + ")"
    )
    lines = ["", f"Estimate for {estimate['samples']} samples, USD at list prices: {head}"]
    for entry in estimate["workflows"]:
        each = (
            f"{_usd(entry['p10_usd'])}-{_usd(entry['p90_usd'])} a run from {entry['earlier_runs']} earlier runs"
            if "p50_usd" in entry
            else "no earlier COMPLETED run"
        )
        version = f" version {entry['version']}" if entry.get("version") else ""
        lines.append(f"  {entry['label']}: workflow {entry['workflow_id']}{version} x {entry['runs']}: {each}")
    return lines


def _cost_lines(cost: dict[str, Any] | None) -> list[str]:
    if not cost:
        return []
    if cost.get("error"):
        return ["", f"Cost: {cost['error']}"]
    at_least = "" if cost["complete"] else "at least "
    lines = [
        "",
        f"Cost (estimate at list prices, USD; {cost['price_source']}):",
        f"  total {at_least}{_usd(cost['total_usd'])} = samples {_usd(cost['samples_usd'])}"
        f" + QC {_usd(cost['qc_usd'])}",
        f"  spent on runs that did not complete: {_usd(cost['failed_runs_usd'])}",
    ]
    if cost.get("stages_usd"):
        lines.append("  per stage: " + ", ".join(f"{name} {_usd(usd)}" for name, usd in cost["stages_usd"].items()))
    if cost["most_expensive"]:
        ranked = ", ".join(f"{s['sample_id']} {_usd(s['cost_usd'])}" for s in cost["most_expensive"])
        lines.append(f"  most expensive: {ranked}")
    if cost["unknown_runs"]:
        lines.append(f"  unknown for {cost['unknown_runs']} run(s):")
        for item in cost["unknown"][:10]:
            lines.append(f"    {item['sample_id'] or 'QC'} run {item['run_id']}: {item['reason']}")
    return lines


def _with_links(sample: dict[str, Any], region: str, partition: str) -> dict[str, Any]:
    """A sample's row (and each of its stages) with the run's console, log and output links."""
    stages = [_with_links(stage, region, partition) for stage in sample.get("stages", [])]
    links = run_links(region, partition, sample.get("run_id"), sample.get("run_output_uri"))
    return {**sample, "stages": stages, "links": links}


def invalid_manifest_report(
    *, flowcell_id: str, manifest_uri: str | None, problems: list[str], dag_id: str, dag_run_id: str
) -> dict[str, Any]:
    """The report of a run whose manifest was refused: what is wrong, and that nothing started."""
    return {
        "flowcell_id": flowcell_id,
        "status": INVALID_MANIFEST,
        "dag_id": dag_id,
        "dag_run_id": dag_run_id,
        "generated_at": dt.datetime.now(dt.UTC).isoformat(),
        "manifest": {"uri": manifest_uri, "format": None, "sha256": None},
        "submission_mode": "none",
        "counts": {},
        "samples": [],
        "problems": problems,
        "qc": {"status": "NOT_RUN", "message": "nothing was submitted"},
    }


def _duration(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    minutes = int(seconds // 60)
    return f"{minutes // 60}h{minutes % 60:02d}m"


def _stage_cell(stage: dict[str, Any]) -> str:
    """One stage of a sample in the text report: name, status, run, duration, cost."""
    run = f" run {stage['run_id']}" if stage.get("run_id") else ""
    duration = f" {_duration(stage['duration_seconds'])}" if stage.get("duration_seconds") is not None else ""
    cost = f" ${stage['cost_usd']:,.2f}" if stage.get("cost_usd") is not None else ""
    return f"{stage['stage']} {stage['status']}{run}{duration}{cost}"


def render_text(report: dict[str, Any]) -> str:
    """A plain-text version for email (SNS) and logs."""
    samples = report["samples"]
    if report["status"] == INVALID_MANIFEST:
        lines = [
            f"Flowcell {report['flowcell_id']}: {report['status']} - nothing was submitted",
            f"DAG run {report['dag_id']} / {report['dag_run_id']}",
            f"Manifest {report['manifest']['uri'] or '(inline)'}",
            "",
            f"{len(report['problems'])} problem(s):",
            *(f"  - {problem}" for problem in report["problems"]),
        ]
        if report.get("report_uri"):
            lines += ["", f"Full report: {report['report_uri']}"]
        return "\n".join(lines) + "\n"
    lines = [
        f"Flowcell {report['flowcell_id']}: {report['status']}",
        f"DAG run {report['dag_id']} / {report['dag_run_id']}  ({report['submission_mode']} submission)",
        f"Manifest {report['manifest']['uri'] or '(inline)'}  sha256 {report['manifest']['sha256'][:12]}",
        "Samples: " + ", ".join(f"{n} {status}" for status, n in report["counts"].items()),
        "",
    ]
    width = max([len("sample"), *(len(s["sample_id"]) for s in samples)])
    lines.append(
        f"{'sample':<{width}}  {'run id':<9}  {'status':<13}  {'duration':>8}  {'cost $':>8}  {'try':>3}  message"
    )
    for s in samples:
        message = failure_detail(s.get("failure_reason"), s.get("message"))
        if s.get("stage") and s["status"] != "COMPLETED":
            message = f"stage {s['stage']}: {message}"
        lines.append(
            f"{s['sample_id']:<{width}}  {s.get('run_id') or '-':<9}  {s['status']:<13}  "
            f"{_duration(s.get('duration_seconds')):>8}  {_usd(s.get('cost_usd')):>8}  "
            f"{s.get('attempt') or '-':>3}  {message[:100]}"
        )
    if report.get("stage_counts"):
        lines += ["", "Stages:"]
        for name, counts in report["stage_counts"].items():
            lines.append(f"  {name}: " + ", ".join(f"{n} {status}" for status, n in counts.items()))
        lines.append("")
        for s in samples:
            lines.append(f"  {s['sample_id']:<{width}}  " + " | ".join(_stage_cell(stage) for stage in s["stages"]))
    qc = report["qc"]
    lines += ["", f"QC: {qc['status']}" + (f" (run {qc['run_id']})" if qc.get("run_id") else "")]
    if qc.get("message"):
        lines.append(f"    {qc['message']}")
    lines += _cost_lines(report.get("cost"))
    lines += _estimate_lines(report.get("estimate"))
    failed_links = [s for s in samples if s["status"] != "COMPLETED" and s.get("links")]
    if failed_links or qc.get("links"):
        lines += ["", "Links:"]
        for s in failed_links[:50]:
            lines.append(f"  {s['sample_id']}: console {s['links']['console']}")
            lines.append(f"  {' ' * len(s['sample_id'])}  logs    {s['links']['logs']}")
        for name, url in qc.get("links", {}).items():
            lines.append(f"  QC {name}: {url}")
    files = report.get("files") or {}
    if files:
        lines += ["", f"Report page: {files['page']}"]
        lines.append(f"Timeline:    {files.get('timeline') or 'no picture (matplotlib is not installed)'}")
    if report.get("report_uri"):
        lines += ["", f"Full report: {report['report_uri']}"]
    return "\n".join(lines) + "\n"
