"""The emulated HealthOmics service: every resource layer plus tags and dispatch."""

from __future__ import annotations

from typing import Any

from .batches import BatchService
from .errors import not_found
from .resources import (
    Batch,
    Run,
    Workflow,
)
from .tasks import TaskService


class Backend(BatchService, TaskService):
    """All state of one emulated account and Region, answering the API operations."""

    # -- tags ----------------------------------------------------------------

    def _tagged(self, arn: str) -> Workflow | Run | Batch:
        prefix = f"arn:aws:omics:{self.config.region}:{self.config.account_id}:"
        if not arn.startswith(prefix) or "/" not in arn:
            raise not_found("Resource", arn)
        kind, _, resource_id = arn[len(prefix) :].partition("/")
        found: Workflow | Run | Batch | None = {
            "run": self.runs,
            "runBatch": self.batches,
            "workflow": self.workflows,
        }.get(kind, {}).get(resource_id)  # type: ignore[attr-defined]
        if found is None or found.arn != arn:
            raise not_found("Resource", arn)
        return found

    def tag_resource(self, params: dict[str, Any]) -> dict[str, Any]:
        with self.lock:
            resource = self._tagged(params["resourceArn"])
            merged = {**resource.tags, **params["tags"]}
            self._check_tag_count(merged)
            resource.tags = merged
            return {}

    def untag_resource(self, params: dict[str, Any]) -> dict[str, Any]:
        with self.lock:
            resource = self._tagged(params["resourceArn"])
            for key in params["tagKeys"]:
                resource.tags.pop(key, None)
            return {}

    def list_tags_for_resource(self, params: dict[str, Any]) -> dict[str, Any]:
        with self.lock:
            return {"tags": dict(self._tagged(params["resourceArn"]).tags)}

    # -- dispatch ---------------------------------------------------------------

    HANDLERS = {
        "StartRun": "start_run",
        "GetRun": "get_run",
        "ListRuns": "list_runs",
        "ListRunTasks": "list_run_tasks",
        "GetRunTask": "get_run_task",
        "CancelRun": "cancel_run",
        "DeleteRun": "delete_run",
        "StartRunBatch": "start_run_batch",
        "GetBatch": "get_batch",
        "ListBatch": "list_batch",
        "ListRunsInBatch": "list_runs_in_batch",
        "CancelRunBatch": "cancel_run_batch",
        "DeleteRunBatch": "delete_run_batch",
        "DeleteBatch": "delete_batch",
        "CreateWorkflow": "create_workflow",
        "GetWorkflow": "get_workflow",
        "ListWorkflows": "list_workflows",
        "TagResource": "tag_resource",
        "UntagResource": "untag_resource",
        "ListTagsForResource": "list_tags_for_resource",
    }

    def handle(self, operation: str, params: dict[str, Any]) -> dict[str, Any] | None:
        self.advance()
        handler = getattr(self, self.HANDLERS[operation])
        result: dict[str, Any] | None = handler(params)
        return result
