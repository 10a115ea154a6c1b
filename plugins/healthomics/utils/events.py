"""Reading a run trigger's event in ``execute_complete``."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from airflow.providers.amazon.aws.utils import validate_execute_complete_event

from healthomics.hooks.omics import RUN_SUCCESS_STATES, run_summary
from healthomics.links.omics import HealthOmicsRunLink

if TYPE_CHECKING:
    from healthomics.hooks.omics import HealthOmicsHook


def run_event(event: dict[str, Any] | str | None, hook: HealthOmicsHook, context: Any) -> dict[str, Any]:
    """The event as a dict ``{"status", "run", "message"}``.

    A trigger that ends the task itself (``TaskSuccessEvent``/``TaskFailedEvent``) never resumes
    it in a real deployment, but ``dag.test()`` (and so ``airflow dags test``) resumes it anyway
    with just ``"success"`` or ``"failed"``. Then the run is looked up again by the id the task
    stored with its console link before deferring.
    """
    if not isinstance(event, str):
        return validate_execute_complete_event(event)
    ti = context["ti"]
    link = ti.xcom_pull(task_ids=ti.task_id, key=HealthOmicsRunLink.key, map_indexes=ti.map_index)
    run = run_summary(hook.get_run(link["run_id"]))
    ok = run["status"] in RUN_SUCCESS_STATES
    detail = ": ".join(p for p in (run.get("failureReason"), run.get("statusMessage")) if p)
    return {"status": "success" if ok else "failed", "run": run, "message": detail or f"run ended {run['status']}"}
