"""The benchmark's table (stdout) and chart (PNG)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

COLUMNS: list[tuple[str, str]] = [
    ("variant", "variant"),
    ("samples", "N"),
    ("makespan_overhead", "makespan/ideal"),
    ("makespan_overhead_1x", "makespan/ideal at 1x"),
    ("added_real_s", "added (real s)"),
    ("calls/sample", "calls/sample"),
    ("monitoring_calls_per_poll", "watch calls/poll"),
    ("throttled_429", "429s"),
    ("task_failures", "failed tasks"),
    ("detect_p50", "detect p50 (emu s)"),
    ("detect_p95", "detect p95 (emu s)"),
    ("critical_path_real_s", "last run->QC (s)"),
    ("fan_out_real_s", "fan-out (s)"),
    ("cpu_triggerer", "triggerer CPU s"),
    ("cpu_scheduler", "scheduler CPU s"),
    ("cpu_api_server", "api-server CPU s"),
    ("cpu_workers", "task CPU s"),
    ("cpu_per_sample_task", "task CPU s/sample"),
    ("rss_triggerer", "triggerer MiB"),
    ("rss_scheduler", "scheduler+workers MiB"),
    ("worker_slots_while_waiting", "slots held"),
]


def _cells(result: dict[str, Any]) -> dict[str, Any]:
    if "error" in result:
        return {"variant": result["variant"], "samples": result["samples"], "makespan_overhead": "ERROR"}
    if "incomplete" in result:
        done = result["sample_tasks_waiting_or_done"]
        return {
            "variant": result["variant"],
            "samples": result["samples"],
            "makespan_overhead": "timed out",
            "throttled_429": result["throttled_429"],
            "fan_out_real_s": f"{done}/{result['samples']} in {result['timeout_s']:.0f}",
        }
    latency = result["detection_latency_emulated_s"]
    cpu = result["cpu_seconds"]
    ideal = result["ideal_emulated_s"]
    return {
        **result,
        # The same real seconds of Airflow added to a flowcell whose AWS side runs in real time
        # (an upper bound: then the fan-out overlaps hours of batch release instead of a minute).
        "makespan_overhead_1x": (ideal + result["added_real_s"]) / ideal,
        "cpu_per_sample_task": (cpu.get("scheduler_children") or 0.0) / result["samples"],
        "calls/sample": sum(result["calls_per_sample"].values()),
        "detect_p50": latency["median"],
        "detect_p95": latency["p95"],
        # The triggerer with its trigger-runner child; the scheduler alone; the tasks it forked.
        "cpu_triggerer": cpu.get("triggerer", 0.0) + cpu.get("triggerer_children", 0.0),
        "cpu_scheduler": cpu.get("scheduler"),
        "cpu_api_server": (cpu["api-server"] + cpu.get("api-server_children", 0.0)) if "api-server" in cpu else None,
        "cpu_workers": cpu.get("scheduler_children"),
        "rss_triggerer": result["peak_rss_mib"].get("triggerer"),
        "rss_scheduler": result["peak_rss_mib"].get("scheduler"),
    }


def _format(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.2f}" if abs(value) < 100 else f"{value:.0f}"
    return str(value)


def render_table(results: list[dict[str, Any]]) -> str:
    """A Markdown table, one row per variant and N."""
    rows = [[_format(_cells(r).get(key)) for key, _ in COLUMNS] for r in results]
    header = [title for _, title in COLUMNS]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)


def render_chart(results: list[dict[str, Any]], path: Path) -> None:
    """Makespan overhead, API calls per sample and last-run-to-QC time against N, per variant."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    good = [r for r in results if "error" not in r and "incomplete" not in r]
    panels = [
        ("makespan / ideal (emulated time)", lambda r: r["makespan_overhead"]),
        ("HealthOmics API calls per sample", lambda r: sum(r["calls_per_sample"].values())),
        ("last sample run -> QC task start (real s)", lambda r: r["critical_path_real_s"]),
    ]
    figure, axes = plt.subplots(1, len(panels), figsize=(15, 4.2))
    for axis, (title, value) in zip(axes, panels, strict=True):
        for variant in sorted({r["variant"] for r in good}):
            points = sorted((r["samples"], value(r)) for r in good if r["variant"] == variant)
            axis.plot([n for n, _ in points], [v for _, v in points], marker="o", label=variant)
        axis.set_xscale("log")
        axis.set_xlabel("samples in the flowcell")
        axis.set_title(title)
        axis.grid(True, alpha=0.3)
    axes[0].legend()
    figure.tight_layout()
    figure.savefig(path, dpi=110)
