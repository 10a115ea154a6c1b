"""CreateWorkflow, GetWorkflow, ListWorkflows."""

from __future__ import annotations

import hashlib
from typing import Any

from .errors import not_found, validation
from .resources import (
    Workflow,
)
from .service_core import ServiceCore, paginate, request_fingerprint


class WorkflowService(ServiceCore):
    # -- workflows -------------------------------------------------------------

    def _workflow(self, workflow_id: str, workflow_type: str | None) -> Workflow:
        workflow = self.workflows.get(workflow_id)
        if workflow is None or workflow.status == "DELETED":
            raise not_found("Workflow", workflow_id)
        if (workflow_type or "PRIVATE") != workflow.type:
            raise not_found("Workflow", workflow_id)
        return workflow

    def create_workflow(self, params: dict[str, Any]) -> dict[str, Any]:
        with self.lock:
            fingerprint = request_fingerprint({k: v for k, v in params.items() if k != "definitionZip"})
            existing = self._remember_request("workflow", params["requestId"], fingerprint)
            if existing and existing in self.workflows:
                return self._created_workflow(self.workflows[existing])
            definition: bytes | str | None = params.get("definitionZip") or params.get("definitionUri")
            if definition is None and not params.get("definitionRepository"):
                raise validation("One of definitionZip, definitionUri or definitionRepository is required")
            now = self.clock.now()
            workflow_id = self._new_id()
            raw = definition if isinstance(definition, bytes) else str(definition or workflow_id).encode()
            workflow = Workflow(
                id=workflow_id,
                arn=self._arn("workflow", workflow_id),
                uuid=self._new_uuid(),
                name=params.get("name"),
                type="PRIVATE",
                status="CREATING",
                creation_time=now,
                seq=next(self._seq),
                engine=params.get("engine") or "WDL",
                description=params.get("description"),
                main=params.get("main"),
                digest="sha256:" + hashlib.sha256(raw).hexdigest(),
                definition_uri=params.get("definitionUri"),
                parameter_template=params.get("parameterTemplate"),
                storage_capacity=params.get("storageCapacity"),
                storage_type=params.get("storageType"),
                accelerators=params.get("accelerators"),
                request_id=params["requestId"],
                tags=dict(params.get("tags") or {}),
            )
            self._check_tag_count(workflow.tags)
            self.workflows[workflow_id] = workflow
            self._idempotency[("workflow", params["requestId"])] = (fingerprint, workflow_id)

            def activate(_: float) -> None:
                if workflow.status == "CREATING":
                    workflow.status = "ACTIVE"

            self._at(now + self.config.workflow_create_seconds, activate)
            return self._created_workflow(workflow)

    @staticmethod
    def _created_workflow(workflow: Workflow) -> dict[str, Any]:
        return {
            "arn": workflow.arn,
            "id": workflow.id,
            "status": workflow.status,
            "tags": dict(workflow.tags),
            "uuid": workflow.uuid,
        }

    def get_workflow(self, params: dict[str, Any]) -> dict[str, Any]:
        with self.lock:
            return self._workflow(params["id"], params.get("type")).describe()

    def list_workflows(self, params: dict[str, Any]) -> dict[str, Any]:
        with self.lock:
            wanted_type = params.get("type") or "PRIVATE"
            items = [
                w
                for w in self.workflows.values()
                if w.type == wanted_type
                and w.status != "DELETED"
                and (not params.get("name") or w.name == params["name"])
            ]
            items.sort(key=lambda w: -w.seq)  # newest first
            page, token = paginate(items, params.get("startingToken"), params.get("maxResults") or 100)
            return {"items": [w.list_item() for w in page], "nextToken": token}
