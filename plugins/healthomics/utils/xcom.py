"""Reading what other tasks of the same DAG run left: their states and XComs."""

from __future__ import annotations

import json
from typing import Any


def is_last_try(context: dict[str, Any]) -> bool:
    """No retry follows this try of the task (Airflow retries while ``try_number <= max_tries``)."""
    ti = context["ti"]
    return int(ti.try_number) > int(getattr(ti, "max_tries", 0) or 0)


def task_states(context: dict[str, Any], task_ids: list[str]) -> dict[str, str | None]:
    ti = context["ti"]
    states = ti.get_task_states(dag_id=ti.dag_id, task_ids=task_ids, run_ids=[ti.run_id])
    return dict(states.get(ti.run_id, {}))


def xcom_document(value: Any) -> Any:
    """An XCom value as the task pushed it.

    XComs that a trigger writes when it ends a task (``TaskSuccessEvent(xcoms=...)``) come back
    from Airflow 3.3 JSON-encoded twice: a string holding the document.
    """
    if isinstance(value, str) and value[:1] in "{[":
        try:
            return json.loads(value)
        except ValueError:
            return value
    return value
