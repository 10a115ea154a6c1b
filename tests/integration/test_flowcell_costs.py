"""What a flowcell cost, in its report and notification: priced from the emulator's task records."""

from __future__ import annotations

from typing import Any
from urllib.parse import unquote

import pytest
from airflow.utils.state import DagRunState, TaskInstanceState

from omics_emulator import EmulatorAdmin

from .airflow_dags import run_dag
from .flowcells import SAMPLES, conf, flowcell_report, inbox, reference_manifest, sample_runs, upload
from .healthomics.helpers import expected_cost


def test_each_sample_and_the_flowcell_cost_what_their_runs_tasks_and_storage_cost(
    flowcell_dag: Any, lab: dict[str, Any], realtime: EmulatorAdmin, omics: Any, s3: Any
) -> None:
    realtime.add_fault(action="fail", match={"name": "NA12891$"}, failureReason="OUT_OF_MEMORY_ERROR")
    uri = upload(s3, lab, reference_manifest(lab))
    states = run_dag(flowcell_dag, run_conf=conf(lab, uri, qc_min_completed_fraction=0.75))
    assert states["costs"].state == TaskInstanceState.SUCCESS

    runs = {r["name"].removeprefix("FC-0001-"): r["id"] for r in sample_runs(omics)}
    [qc] = [r for r in omics.list_runs()["items"] if r["name"] == "FC-0001-qc"]
    cost = flowcell_report(s3, lab)["cost"]
    samples = {s["sample_id"]: s for s in flowcell_report(s3, lab)["samples"]}
    for sample in SAMPLES:
        assert samples[sample]["cost_usd"] == pytest.approx(expected_cost(omics, runs[sample]))
    assert cost["complete"] is True and cost["estimate"] is True
    assert cost["qc_usd"] == pytest.approx(expected_cost(omics, qc["id"]))
    assert cost["total_usd"] == pytest.approx(sum(expected_cost(omics, r) for r in [*runs.values(), qc["id"]]))
    # The failed sample's run stopped halfway: money spent on nothing, and said so.
    assert cost["failed_runs_usd"] == pytest.approx(expected_cost(omics, runs["NA12891"]))
    assert cost["failed_runs_usd"] > 0
    assert "the Price List API failed" in cost["price_source"]  # none on the local stack: the shipped table
    assert len(cost["most_expensive"]) == len(SAMPLES)

    [message] = inbox(lab)
    assert "Cost (estimate at list prices, USD; shipped table (" in message
    assert f"  total {cost['total_usd']:,.2f} = samples" in message

    # One page to open: the report with the timeline of every run in it, and the picture beside it.
    folder = flowcell_report(s3, lab)["report_uri"].removesuffix("report.json")
    bucket, prefix = folder[5:].split("/", 1)
    page = s3.get_object(Bucket=bucket, Key=prefix + "report.html")["Body"].read().decode()
    assert page.startswith("<!doctype html>") and 'src="data:image/png;base64,' in page
    picture = s3.get_object(Bucket=bucket, Key=prefix + "timeline.png")["Body"].read()
    assert picture.startswith(b"\x89PNG")
    links = [
        line.split(": ", 1)[1].strip() for line in message.splitlines() if line.startswith(("Report page", "Timeline"))
    ]
    assert [unquote(link.rsplit("prefix=", 1)[1]) for link in links] == [
        prefix + "report.html",
        prefix + "timeline.png",
    ]


def test_a_run_whose_tasks_cannot_be_listed_keeps_its_status_and_its_cost_is_unknown(
    flowcell_dag: Any, lab: dict[str, Any], realtime: EmulatorAdmin, omics: Any, s3: Any
) -> None:
    realtime.add_fault(action="error", operations=["ListRunTasks"], code="AccessDeniedException", times=1)
    uri = upload(s3, lab, reference_manifest(lab))
    states = run_dag(flowcell_dag, run_conf=conf(lab, uri))
    assert states["dag_run"] == DagRunState.SUCCESS  # cost never decides the flowcell

    report = flowcell_report(s3, lab)
    assert report["status"] == "SUCCESS" and {s["status"] for s in report["samples"]} == {"COMPLETED"}
    cost = report["cost"]
    assert cost["complete"] is False and cost["unknown_runs"] == 1
    [unknown] = cost["unknown"]
    assert "AccessDeniedException" in unknown["reason"]
    assert [s["cost_usd"] for s in report["samples"]].count(None) == 1
    [message] = inbox(lab)
    assert "  total at least " in message and "  unknown for 1 run(s):" in message


def test_a_dry_run_estimates_the_flowcell_from_earlier_runs_of_the_same_workflows(
    flowcell_dag: Any, lab: dict[str, Any], realtime: EmulatorAdmin, omics: Any, s3: Any
) -> None:
    first = upload(s3, lab, reference_manifest(lab))
    none_known = run_dag(flowcell_dag, run_conf=conf(lab, first, dry_run=True))
    assert none_known["dag_run"] == DagRunState.SUCCESS
    [message] = inbox(lab)
    assert "Estimate for 4 samples, USD at list prices: none known (no earlier run of samples, qc)" in message

    # (dry_run=False said: dag.test() keeps the last run's Params as the next one's defaults)
    assert run_dag(flowcell_dag, run_conf=conf(lab, first, dry_run=False))["dag_run"] == DagRunState.SUCCESS
    earlier = sorted(expected_cost(omics, r["id"]) for r in sample_runs(omics))
    [qc] = [r for r in omics.list_runs()["items"] if r["name"] == "FC-0001-qc"]

    # The next flowcell, dry: four samples of the same workflow, priced from the four runs above.
    estimated = run_dag(flowcell_dag, run_conf=conf(lab, first, dry_run=True, flowcell_id="FC-0002"))
    assert estimated["dag_run"] == DagRunState.SUCCESS
    report = flowcell_report(s3, lab, "FC-0002")
    estimate = report["estimate"]
    samples, qc_entry = estimate["workflows"]
    assert samples["earlier_runs"] == 4 and samples["runs"] == 4
    assert earlier[0] <= samples["p10_usd"] <= samples["p50_usd"] <= samples["p90_usd"] <= earlier[-1]
    assert qc_entry["p50_usd"] == pytest.approx(expected_cost(omics, qc["id"]))
    band = estimate["flowcell"]
    assert band["p50_usd"] == pytest.approx(4 * samples["p50_usd"] + qc_entry["p50_usd"])
    [message] = [m for m in inbox(lab) if m.startswith("Flowcell FC-0002")]
    assert f"Estimate for 4 samples, USD at list prices: {band['p10_usd']:,.2f} to {band['p90_usd']:,.2f}" in message
