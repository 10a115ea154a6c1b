"""Errors that carry what the service said, so a failed task explains itself."""

from __future__ import annotations

from typing import Any

from airflow.providers.common.compat.sdk import AirflowException


def failure_detail(failure_reason: str | None, status_message: str | None) -> str:
    """What the service said about a run that did not complete: ``reason: message`` (either may be missing)."""
    return ": ".join(part for part in (failure_reason, status_message) if part)


class HealthOmicsRunFailedError(AirflowException):
    """A run ended FAILED, CANCELLED or DELETED (anything but COMPLETED)."""

    def __init__(self, run_id: str, status: str, failure_reason: str | None, status_message: str | None) -> None:
        self.run_id = run_id
        self.status = status
        self.failure_reason = failure_reason
        self.status_message = status_message
        detail = failure_detail(failure_reason, status_message)
        super().__init__(f"HealthOmics run {run_id} ended {status}" + (f" ({detail})" if detail else ""))

    @classmethod
    def from_run(cls, run: dict[str, Any]) -> HealthOmicsRunFailedError:
        return cls(str(run["id"]), run["status"], run.get("failureReason"), run.get("statusMessage"))

    @classmethod
    def deleted(cls, run_id: str) -> HealthOmicsRunFailedError:
        return cls(run_id, "DELETED", None, "the run no longer exists (deleted)")


class HealthOmicsSubmissionError(AirflowException):
    """The service refused to start some or all runs."""
