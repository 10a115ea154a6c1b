"""What happened to each sample, the QC policy, and the flowcell report built from them."""

from __future__ import annotations

from typing import Any

import pytest

from healthomics.flowcell.outcomes import SampleOutcome, collect_outcomes, evaluate_policy
from healthomics.flowcell.report import build_report, invalid_manifest_report, render_text
from healthomics.manifest.model import QcPolicy

RESULT = {
    "id": "1111111",
    "arn": "arn:aws:omics:eu-west-1:123456789012:run/1111111",
    "uuid": "u-1",
    "status": "COMPLETED",
    "runOutputUri": "s3://lab-out/FC1/1111111",
    "attempt": 1,
    "startTime": "2026-12-01T10:00:00+00:00",
    "stopTime": "2026-12-01T12:30:00+00:00",
}
FAILURE = {
    "id": "2222222",
    "status": "FAILED",
    "failureReason": "OUT_OF_MEMORY_ERROR",
    "statusMessage": "bwa",
    "attempt": 2,
    "startTime": "2026-12-01T10:00:00+00:00",
    "stopTime": "2026-12-01T10:20:00+00:00",
}


def test_each_sample_gets_its_outcome_from_its_task_state_and_xcoms() -> None:
    outcomes = collect_outcomes(
        ["S1", "S2", "S3", "S4", "S5", "S6"],
        [RESULT, None, None, None, None],
        [None, FAILURE, None, None, None],
        ["success", "failed", "failed", "deferred", None],
    )
    assert [(o.sample_id, o.status) for o in outcomes] == [
        ("S1", "COMPLETED"),
        ("S2", "FAILED"),
        ("S3", "FAILED"),
        ("S4", "RUNNING"),
        ("S5", "NOT_RUN"),
        ("S6", "NOT_RUN"),  # the lists end before it: its task never ran
    ]
    completed, failed, lost = outcomes[0], outcomes[1], outcomes[2]
    assert (completed.run_id, completed.run_output_uri, completed.duration_seconds) == (
        "1111111",
        "s3://lab-out/FC1/1111111",
        9000.0,
    )
    assert (failed.run_id, failed.failure_reason, failed.message, failed.attempt, failed.duration_seconds) == (
        "2222222",
        "OUT_OF_MEMORY_ERROR",
        "bwa",
        2,
        1200.0,  # what the failed run took
    )
    assert lost.message == "sample task failed without a run outcome"
    assert outcomes[4].message == "sample task not started"


def test_a_recorded_failure_counts_even_if_the_task_state_says_otherwise() -> None:
    # A refused submission leaves its failure XCom; the task may be cleared and still queued.
    [outcome] = collect_outcomes(["S1"], [None], [{"status": "NOT_SUBMITTED", "failureReason": "Quota"}], ["queued"])
    assert (outcome.status, outcome.failure_reason) == ("NOT_SUBMITTED", "Quota")


def outcome(sample_id: str, status: str = "COMPLETED", **extra: Any) -> SampleOutcome:
    return SampleOutcome(sample_id, status, **extra)


@pytest.mark.parametrize(
    ("completed", "total", "fraction", "passed"),
    [(4, 4, 1.0, True), (3, 4, 1.0, False), (3, 4, 0.75, True), (2, 3, 0.67, False), (0, 4, 0.0, False)],
)
def test_the_policy_is_a_fraction_of_completed_samples_and_never_none(
    completed: int, total: int, fraction: float, passed: bool
) -> None:
    outcomes = [outcome(f"S{i}", "COMPLETED" if i < completed else "FAILED") for i in range(total)]
    decision = evaluate_policy(outcomes, QcPolicy(min_completed_fraction=fraction))
    assert (decision.passed, decision.completed, decision.total) == (passed, completed, total)
    assert decision.explanation.startswith(f"{completed}/{total} samples COMPLETED")


def test_an_empty_cohort_never_passes() -> None:
    assert not evaluate_policy([], QcPolicy(min_completed_fraction=0.0)).passed


def test_the_explanation_names_the_first_twenty_samples_that_did_not_complete_and_counts_the_rest() -> None:
    outcomes = [outcome("OK")] + [outcome(f"S{i:02d}", "FAILED", failure_reason="OOM") for i in range(25)]
    explanation = evaluate_policy(outcomes, QcPolicy()).explanation
    assert "S00: FAILED (OOM); S01: FAILED (OOM)" in explanation
    assert "S19: FAILED (OOM); ... and 5 more" in explanation
    assert "S20" not in explanation


PLAN = {
    "flowcell_id": "FC1",
    "mode": "batch",
    "dry_run": False,
    "manifest": {"source_uri": "s3://lab-in/FC1.json", "source_format": "reference", "sha256": "ab" * 32},
}


def report_of(
    outcomes: list[SampleOutcome],
    qc: dict[str, Any],
    costs: dict[str, Any] | None = None,
    qc_cost: dict[str, Any] | None = None,
    **plan: Any,
) -> dict[str, Any]:
    return build_report(
        plan={**PLAN, **plan},
        dag_id="healthomics_flowcell",
        dag_run_id="manual__1",
        outcomes=outcomes,
        qc=qc,
        region="eu-west-1",
        partition="aws",
        costs=costs,
        qc_cost=qc_cost,
    )


def test_the_report_succeeds_only_if_every_sample_completed_and_qc_passed() -> None:
    good = [outcome("S1", run_id="1111111"), outcome("S2", run_id="1111112")]
    assert report_of(good, {"status": "COMPLETED", "run_id": "3333333"})["status"] == "SUCCESS"
    assert report_of(good, {"status": "NOT_CONFIGURED"})["status"] == "SUCCESS"
    assert report_of(good, {"status": "FAILED"})["status"] == "FAILED"
    assert report_of([*good, outcome("S3", "CANCELLED")], {"status": "NOT_CONFIGURED"})["status"] == "FAILED"
    assert report_of([], {"status": "NOT_CONFIGURED"})["status"] == "FAILED"
    assert report_of(good, {"status": "SKIPPED"}, dry_run=True)["status"] == "DRY_RUN"


def test_the_report_counts_statuses_and_links_each_run() -> None:
    report = report_of(
        [outcome("S1", run_id="1111111", run_output_uri="s3://lab-out/FC1/1111111"), outcome("S2", "FAILED")],
        {"status": "POLICY_FAILED", "message": "1/2 samples COMPLETED"},
    )
    assert report["counts"] == {"COMPLETED": 1, "FAILED": 1}
    first, second = report["samples"]
    assert first["links"]["console"].endswith("/omics/home?region=eu-west-1#/runs/1111111")
    assert set(first["links"]) == {"console", "logs", "outputs"}
    assert second["links"] == {}  # no run, no links
    assert report["qc"]["links"] == {}
    assert report["manifest"] == {"uri": "s3://lab-in/FC1.json", "format": "reference", "sha256": "ab" * 32}


def test_the_text_lists_every_sample_with_what_went_wrong_and_links_only_the_failures() -> None:
    report = report_of(
        [
            outcome("NA12878", run_id="1111111", start_time=RESULT["startTime"], stop_time=RESULT["stopTime"]),
            outcome(
                "NA12891", "FAILED", run_id="2222222", failure_reason="OUT_OF_MEMORY_ERROR", message="bwa", attempt=2
            ),
        ],
        {"status": "NOT_RUN", "message": "QC task upstream_failed"},
    )
    text = render_text({**report, "report_uri": "s3://lab-out/_reports/FC1/manual__1/report.json"})
    lines = text.splitlines()
    assert lines[0] == "Flowcell FC1: FAILED"
    assert "Samples: 1 COMPLETED, 1 FAILED" in lines
    [completed] = [line for line in lines if line.startswith("NA12878")]
    assert "2h30m" in completed and "COMPLETED" in completed
    [failed] = [line for line in lines if line.startswith("NA12891")]
    assert failed.split()[1:5] == ["2222222", "FAILED", "-", "-"] and failed.endswith("2  OUT_OF_MEMORY_ERROR: bwa")
    assert "Cost: cost unknown: the costs task did not run or failed (see its log)" in lines
    assert "  NA12891: console https://console.aws.amazon.com/omics/home?region=eu-west-1#/runs/2222222" in lines
    assert not any("runs/1111111" in line for line in lines)  # a completed run needs no look
    assert "QC: NOT_RUN" in lines and "    QC task upstream_failed" in lines
    assert lines[-1] == "Full report: s3://lab-out/_reports/FC1/manual__1/report.json"


def test_the_report_prices_each_sample_the_qc_and_what_failed_runs_spent_on_nothing() -> None:
    outcomes = [
        outcome("S1", run_id="1111111"),
        outcome("S2", run_id="1111112"),
        outcome("S3", "FAILED", run_id="1111113"),
        outcome("S4", "FAILED", run_id="1111114"),
        outcome("S5", "NOT_SUBMITTED"),  # no run, nothing spent
    ]
    costs = {
        "price_source": "shipped table (test, 2026-12-06)",
        "runs": {
            "1111111": {"total_usd": 4.0},
            "1111112": {"total_usd": 6.5},
            "1111113": {"total_usd": 1.25},
            "1111114": {"total_usd": None, "error": "tasks or run could not be read: AccessDenied"},
        },
    }
    report = report_of(
        outcomes,
        {"status": "FAILED", "run_id": "3333333"},
        costs,
        {"run_id": "3333333", "total_usd": 2.0, "status": "FAILED"},
    )
    cost = report["cost"]
    assert cost["estimate"] is True and cost["currency"] == "USD"
    assert (cost["samples_usd"], cost["qc_usd"], cost["total_usd"]) == (11.75, 2.0, 13.75)
    assert cost["failed_runs_usd"] == 1.25 + 2.0  # S3's run and the failed QC run
    assert [s["sample_id"] for s in cost["most_expensive"]] == ["S2", "S1", "S3"]
    assert cost["complete"] is False and cost["unknown_runs"] == 1
    assert cost["unknown"] == [
        {"sample_id": "S4", "run_id": "1111114", "reason": "tasks or run could not be read: AccessDenied"}
    ]
    assert [s["cost_usd"] for s in report["samples"]] == [4.0, 6.5, 1.25, None, None]
    lines = render_text(report).splitlines()
    assert "Cost (estimate at list prices, USD; shipped table (test, 2026-12-06)):" in lines
    assert "  total at least 13.75 = samples 11.75 + QC 2.00" in lines
    assert "  spent on runs that did not complete: 3.25" in lines
    assert "  most expensive: S2 6.50, S1 4.00, S3 1.25" in lines
    assert "    S4 run 1111114: tasks or run could not be read: AccessDenied" in lines
    [s2] = [line for line in lines if line.startswith("S2 ")]
    assert "    6.50" in s2


def test_a_refused_manifest_reports_its_problems_and_that_nothing_started() -> None:
    report = invalid_manifest_report(
        flowcell_id="FC9",
        manifest_uri=None,
        problems=["sample S1, fastq_1: not an s3:// URI", "sample S2: duplicate sample id"],
        dag_id="healthomics_flowcell",
        dag_run_id="manual__2",
    )
    assert (report["status"], report["samples"], report["qc"]["status"]) == ("INVALID_MANIFEST", [], "NOT_RUN")
    assert render_text(report).splitlines() == [
        "Flowcell FC9: INVALID_MANIFEST - nothing was submitted",
        "DAG run healthomics_flowcell / manual__2",
        "Manifest (inline)",
        "",
        "2 problem(s):",
        "  - sample S1, fastq_1: not an s3:// URI",
        "  - sample S2: duplicate sample id",
    ]


def test_a_cleared_samples_earlier_attempts_are_part_of_its_cost_and_of_what_failed_runs_spent() -> None:
    outcomes = [outcome("S1", run_id="1111111"), outcome("S2", run_id="2222222", attempt=3)]
    costs = {
        "price_source": "shipped table (test, 2026-12-06)",
        "runs": {
            "1111111": {"total_usd": 4.0, "status": "COMPLETED"},
            "2222222": {"total_usd": 5.0, "status": "COMPLETED"},  # attempt 3
            "2222220": {"total_usd": 1.5, "status": "FAILED", "attempt_of": "2222222"},  # attempt 1
            "2222221": {"total_usd": 0.5, "status": "CANCELLED", "attempt_of": "2222222"},  # attempt 2
        },
    }
    cost = report_of(outcomes, {"status": "NOT_CONFIGURED"}, costs)["cost"]
    assert (cost["samples_usd"], cost["failed_runs_usd"], cost["complete"]) == (11.0, 2.0, True)
    assert cost["most_expensive"][0] == {"sample_id": "S2", "cost_usd": 7.0}


def test_earlier_attempts_that_could_not_be_looked_up_leave_the_sample_cost_unknown() -> None:
    costs = {
        "runs": {
            "2222222": {"total_usd": 5.0, "status": "COMPLETED"},
            "2222222/earlier": {"attempt_of": "2222222", "total_usd": None, "error": "earlier attempts could not"},
        }
    }
    report = report_of([outcome("S2", run_id="2222222", attempt=2)], {"status": "NOT_CONFIGURED"}, costs)
    assert report["samples"][0]["cost_usd"] is None
    assert report["cost"]["samples_usd"] == 5.0 and report["cost"]["complete"] is False
    assert report["cost"]["unknown"] == [
        {"sample_id": "S2", "run_id": "2222222/earlier", "reason": "earlier attempts could not"}
    ]


def test_a_pipelines_cost_is_told_per_stage_over_every_sample() -> None:
    def staged(sample_id: str, call_status: str) -> SampleOutcome:
        stages = [
            outcome(sample_id, run_id=f"{sample_id}-align", stage="align"),
            outcome(sample_id, call_status, run_id=f"{sample_id}-call", stage="call"),
        ]
        return outcome(sample_id, call_status, run_id=f"{sample_id}-call", stage="call", stages=stages)

    runs = {"S1-align": 2.0, "S1-call": 1.0, "S2-align": 3.0, "S2-call": 0.25}
    costs = {"price_source": "test", "runs": {k: {"total_usd": v} for k, v in runs.items()}}
    report = report_of([staged("S1", "COMPLETED"), staged("S2", "FAILED")], {"status": "NOT_CONFIGURED"}, costs)
    cost = report["cost"]
    assert cost["stages_usd"] == {"align": 5.0, "call": 1.25}
    assert (cost["samples_usd"], cost["failed_runs_usd"]) == (6.25, 0.25)
    assert [[st["cost_usd"] for st in s["stages"]] for s in report["samples"]] == [[2.0, 1.0], [3.0, 0.25]]
    assert "  per stage: align 5.00, call 1.25" in render_text(report).splitlines()
