"""The flowcell's timeline picture and HTML page (no servers)."""

from __future__ import annotations

import sys
from typing import Any

import pytest

from healthomics.flowcell.timeline import render_html, render_png, timeline_bars

T0 = "2026-12-01T08:00:00+00:00"


def sample(sample_id: str, status: str, start: str | None, stop: str | None, **extra: Any) -> dict[str, Any]:
    return {
        "sample_id": sample_id,
        "status": status,
        "creation_time": T0,
        "start_time": start,
        "stop_time": stop,
        "stages": [],
        **extra,
    }


REPORT = {
    "flowcell_id": "FC1",
    "status": "FAILED",
    "samples": [
        sample("S1", "COMPLETED", "2026-12-01T08:10:00+00:00", "2026-12-01T11:10:00+00:00", cost_usd=4.5),
        sample(
            "<script>alert(1)</script>",
            "FAILED",
            "2026-12-01T08:20:00+00:00",
            "2026-12-01T09:00:00+00:00",
            message="<b>OOM</b>",
            links={"console": "https://console.aws.amazon.com/omics/home?region=eu-west-1#/runs/2"},
        ),
        {"sample_id": "S3", "status": "NOT_SUBMITTED", "stages": []},  # no run: no bar
        {
            "sample_id": "S4",
            "status": "COMPLETED",
            "stages": [
                {"stage": "align", "status": "COMPLETED", "creation_time": T0, "start_time": T0, "stop_time": T0},
                {"stage": "call", "status": "COMPLETED", "start_time": T0, "stop_time": "2026-12-01T09:00:00+00:00"},
            ],
        },
    ],
    "qc": {"status": "COMPLETED", "creation_time": "2026-12-01T11:20:00+00:00", "start_time": None},
}


def test_every_run_with_times_is_a_bar_each_stage_on_its_samples_row_and_qc_last() -> None:
    bars = timeline_bars(REPORT)
    assert [(b.row, b.label) for b in bars] == [
        ("S1", ""),
        ("<script>alert(1)</script>", ""),
        ("S4", "align"),
        ("S4", "call"),
        ("QC", "qc"),
    ]
    assert bars[3].created == bars[3].started  # no submission time: it starts when it started
    assert bars[-1].started is None  # QC still queued


def test_the_picture_is_a_png() -> None:
    pytest.importorskip("matplotlib", reason="the timeline extra (MWAA's images lack matplotlib)")
    png = render_png(REPORT)
    assert png is not None and png.startswith(b"\x89PNG\r\n\x1a\n") and len(png) > 5000


def test_without_matplotlib_there_is_no_picture_and_the_page_says_so(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # import matplotlib raises ImportError
    assert render_png(REPORT) is None
    assert "No timeline picture: matplotlib is not installed" in render_html(REPORT, "text", None)


def test_the_page_escapes_everything_and_embeds_the_picture() -> None:
    page = render_html(REPORT, "Flowcell FC1: FAILED\n<i>text</i>", b"\x89PNGdata")
    assert "<script>" not in page and "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert "&lt;b&gt;OOM&lt;/b&gt;" in page and "&lt;i&gt;text&lt;/i&gt;" in page
    assert 'src="data:image/png;base64,iVBOR' in page
    assert '<a href="https://console.aws.amazon.com/omics/home?region=eu-west-1#/runs/2">console</a>' in page
    assert "<td>4.50</td>" in page
