"""The flowcell at a glance: a timeline of every run (PNG) and the whole report as one HTML page.

The timeline is a Gantt chart, one row per sample (its stages one after another on the row) and
the QC run last: from submission to start the run was queued (light), from start to stop it ran
(coloured by how it ended). It is drawn with matplotlib, which Amazon MWAA's images do not carry:
install the ``timeline`` extra (``healthomics-airflow[timeline]``) for it; without it the report
says there is no picture, and everything else is written as before.

The HTML page is static: every value from the manifest or the service is escaped, the picture is
embedded (a ``data:`` URI), so a person opens one object and sees the flowcell.
"""

from __future__ import annotations

import base64
import datetime as dt
import html
import io
from dataclasses import dataclass
from typing import Any

# Rows drawn at most (the rest are counted in the title): a picture of 10,000 rows shows nothing.
MAX_ROWS = 2000
COLOURS = {"COMPLETED": "#2e7d32", "FAILED": "#c62828", "CANCELLED": "#9e9e9e", "DELETED": "#9e9e9e"}
RUNNING_COLOUR = "#1565c0"
QUEUED_COLOUR = "#cfd8dc"


@dataclass(frozen=True)
class Bar:
    row: str
    label: str
    created: dt.datetime
    started: dt.datetime | None
    stopped: dt.datetime | None
    status: str


def _time(value: Any) -> dt.datetime | None:
    if not value:
        return None
    try:
        return dt.datetime.fromisoformat(str(value))
    except ValueError:
        return None


def _bar(row: str, label: str, part: dict[str, Any]) -> Bar | None:
    started, stopped = _time(part.get("start_time")), _time(part.get("stop_time"))
    created = _time(part.get("creation_time")) or started
    if created is None:
        return None  # never submitted, or its times are unknown
    return Bar(row, label, created, started, stopped, str(part.get("status") or ""))


def timeline_bars(report: dict[str, Any]) -> list[Bar]:
    """Every run of the report with its times: the samples' (each stage's), then the QC run."""
    bars = []
    for sample in report["samples"]:
        for part in sample.get("stages") or [sample]:
            bar = _bar(str(sample["sample_id"]), str(part.get("stage") or ""), part)
            if bar is not None:
                bars.append(bar)
    qc = _bar("QC", "qc", report.get("qc") or {})
    return [*bars, qc] if qc is not None else bars


def render_png(report: dict[str, Any]) -> bytes | None:
    """The timeline as a PNG; None without matplotlib or without a run that has times."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
        from matplotlib.patches import Patch
    except ImportError:
        return None
    bars = timeline_bars(report)
    if not bars:
        return None
    rows = list(dict.fromkeys(bar.row for bar in bars))
    drawn = rows[:MAX_ROWS] + (["QC"] if "QC" in rows[MAX_ROWS:] else [])
    position = {row: index for index, row in enumerate(drawn)}
    origin = min(bar.created for bar in bars)
    now = max((b.stopped or b.started or b.created) for b in bars)

    def hours(moment: dt.datetime) -> float:
        return (moment - origin).total_seconds() / 3600

    height = min(max(2.5, 0.22 * len(drawn) + 1.5), 60.0)
    figure, axes = plt.subplots(figsize=(11, height))
    thin = len(drawn) > 200
    for bar in bars:
        if bar.row not in position:
            continue
        y = position[bar.row]
        started = bar.started or bar.stopped or now
        axes.barh(y, hours(started) - hours(bar.created), left=hours(bar.created), color=QUEUED_COLOUR, height=0.8)
        if bar.started is not None:
            end = bar.stopped or now
            colour = COLOURS.get(bar.status, RUNNING_COLOUR)
            edge = None if thin else "white"
            axes.barh(y, hours(end) - hours(started), left=hours(started), color=colour, height=0.8, edgecolor=edge)
    axes.set_yticks(range(len(drawn)), drawn if not thin else [""] * len(drawn), fontsize=7)
    axes.invert_yaxis()
    axes.set_xlabel(f"hours since the first submission ({origin:%Y-%m-%d %H:%M} UTC)")
    left_out = len(rows) - len(drawn)
    title = f"Flowcell {report['flowcell_id']}: {report['status']} ({len(rows)} rows"
    axes.set_title(title + (f", the first {MAX_ROWS} drawn, {left_out} not)" if left_out else ")"), fontsize=10)
    legend = [Patch(color=QUEUED_COLOUR, label="queued")]
    legend += [Patch(color=c, label=s.lower()) for s, c in COLOURS.items() if s != "DELETED"]
    legend.append(Patch(color=RUNNING_COLOUR, label="still running"))
    # Beside the chart, not on it: the bars reach every corner (QC ends bottom right).
    axes.legend(handles=legend, loc="upper left", bbox_to_anchor=(1.005, 1.0), fontsize=7, frameon=False)
    axes.grid(axis="x", alpha=0.3)
    figure.tight_layout()
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=100)
    plt.close(figure)
    return buffer.getvalue()


def _cell(value: Any) -> str:
    return html.escape("-" if value is None or value == "" else str(value))


def _link(url: str | None, text: str) -> str:
    if not url:
        return ""
    return f'<a href="{html.escape(url, quote=True)}">{html.escape(text)}</a>'


def render_html(report: dict[str, Any], text: str, png: bytes | None) -> str:
    """The report as one static page: headline, the timeline, the sample table, the whole text."""
    picture = (
        f'<img alt="timeline of every run" src="data:image/png;base64,{base64.b64encode(png).decode()}">'
        if png
        else "<p>No timeline picture: matplotlib is not installed (healthomics-airflow[timeline]).</p>"
    )
    rows = []
    for sample in report["samples"]:
        cost = sample.get("cost_usd")
        rows.append(
            "<tr>"
            f"<td>{_cell(sample['sample_id'])}</td><td>{_cell(sample.get('status'))}</td>"
            f"<td>{_cell(sample.get('stage'))}</td><td>{_cell(sample.get('run_id'))}</td>"
            f"<td>{_cell(None if cost is None else f'{cost:,.2f}')}</td>"
            f"<td>{_cell(sample.get('failure_reason'))} {_cell(sample.get('message'))}</td>"
            f"<td>{_link((sample.get('links') or {}).get('console'), 'console')}</td>"
            "</tr>"
        )
    title = html.escape(f"Flowcell {report['flowcell_id']}: {report['status']}")
    return (
        "<!doctype html>\n<html><head><meta charset='utf-8'>"
        f"<title>{title}</title>"
        "<style>body{font-family:sans-serif;margin:2em}table{border-collapse:collapse}"
        "td,th{border:1px solid #ccc;padding:2px 6px;font-size:13px}img{max-width:100%}</style>"
        f"</head><body><h1>{title}</h1>{picture}"
        "<h2>Samples</h2><table><tr><th>sample</th><th>status</th><th>stage</th><th>run</th>"
        "<th>cost $ (estimate)</th><th>message</th><th>links</th></tr>"
        + "".join(rows)
        + f"</table><h2>Report</h2><pre>{html.escape(text)}</pre></body></html>\n"
    )
