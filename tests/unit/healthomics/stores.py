"""Airflow's task state store as a task sees it (Airflow 3.3): two calls, kept in a dict."""

from __future__ import annotations

from typing import Any


class TaskStateStore:
    """The two calls of the task state store the journal makes; every write kept in order."""

    def __init__(self) -> None:
        self.values: dict[str, Any] = {}
        self.writes: list[dict[str, Any]] = []

    def get(self, key: str) -> Any:
        return self.values.get(key)

    def set(self, key: str, value: Any) -> None:
        self.values[key] = value
        self.writes.append(value)
