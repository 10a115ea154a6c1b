"""The emulator's records of workflows, runs and run batches, and how they render."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

RUN_TERMINAL = frozenset({"COMPLETED", "FAILED", "CANCELLED", "DELETED"})
RUN_FINISHED = frozenset({"COMPLETED", "FAILED", "CANCELLED"})  # may be deleted
BATCH_CANCELLABLE = frozenset({"PENDING", "SUBMITTING", "INPROGRESS"})
BATCH_RUNS_DELETABLE = frozenset({"PROCESSED", "CANCELLED"})
BATCH_DELETABLE = frozenset({"PROCESSED", "FAILED", "CANCELLED", "RUNS_DELETED", "RUNS_DELETE_FAILED"})

# Fields a batch entry may override; everything else is batch-level only (dev guide).
RUN_SETTING_OVERRIDES = (
    "name",
    "outputUri",
    "priority",
    "parameters",
    "outputBucketOwnerId",
    "runTags",
    "engineSettings",
)
MERGED_OVERRIDES = ("parameters", "runTags")  # merged key by key, per-run value wins


@dataclass
class Gated:
    """A record whose next transition may wait for background I/O (S3) to finish."""

    io_pending: int = field(default=0, init=False)
    parked: Callable[[float], None] | None = field(default=None, init=False)
    parked_time: float = field(default=0.0, init=False)
    generation: int = field(default=0, init=False)


@dataclass
class Workflow:
    id: str
    arn: str
    uuid: str
    name: str | None
    type: str
    status: str
    creation_time: float
    seq: int = 0
    engine: str | None = None
    description: str | None = None
    main: str | None = None
    digest: str | None = None
    definition_uri: str | None = None
    parameter_template: dict[str, dict[str, Any]] | None = None
    storage_capacity: int | None = None
    storage_type: str | None = None
    accelerators: str | None = None
    request_id: str | None = None
    tags: dict[str, str] = field(default_factory=dict)

    def describe(self) -> dict[str, Any]:
        return {
            "arn": self.arn,
            "id": self.id,
            "uuid": self.uuid,
            "status": self.status,
            "type": self.type,
            "name": self.name,
            "description": self.description,
            "engine": self.engine,
            "main": self.main,
            "digest": self.digest,
            "definition": self.definition_uri,
            "parameterTemplate": self.parameter_template,
            "storageCapacity": self.storage_capacity,
            "storageType": self.storage_type,
            "accelerators": self.accelerators,
            "creationTime": self.creation_time,
            "tags": dict(self.tags),
        }

    def list_item(self) -> dict[str, Any]:
        return {
            "arn": self.arn,
            "id": self.id,
            "name": self.name,
            "status": self.status,
            "type": self.type,
            "digest": self.digest,
            "creationTime": self.creation_time,
        }


@dataclass
class RunPlan:
    """What will happen to a run, decided when it is created."""

    durations: dict[str, float]
    fate: str = "complete"  # complete | fail | hang
    fail_phase: str = "RUNNING"
    failure_reason: str | None = None
    status_message: str | None = None
    cache_hit: bool = False


@dataclass
class Run(Gated):
    id: str = ""
    arn: str = ""
    uuid: str = ""
    seq: int = 0
    request_id: str | None = None
    name: str | None = None
    workflow: Workflow | None = None
    role_arn: str = ""
    output_uri: str = ""
    run_output_uri: str = ""
    parameters: dict[str, Any] | None = None
    priority: int | None = None
    storage_capacity: int | None = None
    storage_type: str = "STATIC"
    log_level: str | None = None
    retention_mode: str = "RETAIN"
    cache_id: str | None = None
    cache_behavior: str | None = None
    run_group_id: str | None = None
    workflow_version_name: str | None = None
    workflow_owner_id: str | None = None
    networking_mode: str = "RESTRICTED"
    configuration_name: str | None = None
    batch_id: str | None = None
    run_setting_id: str | None = None
    rerun_of: str | None = None
    started_by: str = ""
    tags: dict[str, str] = field(default_factory=dict)
    status: str = "PENDING"
    status_message: str | None = None
    failure_reason: str | None = None
    creation_time: float = 0.0
    start_time: float | None = None
    stop_time: float | None = None
    # When its RUNNING phase ended, and how: COMPLETED (then it exported), FAILED or CANCELLED.
    running_end: float | None = None
    running_outcome: str | None = None
    active: bool = False
    cancel_requested: bool = False
    missing_inputs: list[str] = field(default_factory=list)
    export_error: str | None = None
    plan: RunPlan | None = None
    log_group_arn: str = ""

    @property
    def workflow_id(self) -> str:
        return self.workflow.id if self.workflow else ""

    def log_location(self) -> dict[str, str] | None:
        if self.start_time is None or self.log_level == "OFF":
            return None
        return {
            "engineLogStream": f"{self.log_group_arn}:log-stream:run/{self.id}/engine",
            "runLogStream": f"{self.log_group_arn}:log-stream:run/{self.id}",
        }

    def describe(self) -> dict[str, Any]:
        workflow = self.workflow
        return {
            "arn": self.arn,
            "id": self.id,
            "uuid": self.uuid,
            "status": self.status,
            "statusMessage": self.status_message,
            "failureReason": self.failure_reason,
            "workflowId": workflow.id if workflow else None,
            "workflowType": workflow.type if workflow else None,
            "workflowUuid": workflow.uuid if workflow else None,
            "workflowOwnerId": self.workflow_owner_id,
            "workflowVersionName": self.workflow_version_name,
            "digest": workflow.digest if workflow else None,
            "definition": workflow.definition_uri if workflow else None,
            "runId": self.rerun_of,
            "roleArn": self.role_arn,
            "name": self.name,
            "runGroupId": self.run_group_id,
            "batchId": self.batch_id,
            "priority": self.priority,
            "parameters": self.parameters,
            "storageCapacity": self.storage_capacity,
            "storageType": self.storage_type,
            "outputUri": self.output_uri,
            "runOutputUri": self.run_output_uri,
            "logLevel": self.log_level,
            "retentionMode": self.retention_mode,
            "cacheId": self.cache_id,
            "cacheBehavior": self.cache_behavior,
            "networkingMode": self.networking_mode,
            "startedBy": self.started_by,
            "creationTime": self.creation_time,
            "startTime": self.start_time,
            "stopTime": self.stop_time,
            "logLocation": self.log_location(),
            "tags": dict(self.tags),
        }

    def list_item(self) -> dict[str, Any]:
        return {
            "arn": self.arn,
            "id": self.id,
            "status": self.status,
            "workflowId": self.workflow_id,
            "workflowName": self.workflow.name if self.workflow else None,
            "batchId": self.batch_id,
            "name": self.name,
            "priority": self.priority,
            "storageCapacity": self.storage_capacity,
            "storageType": self.storage_type,
            "workflowVersionName": self.workflow_version_name,
            "creationTime": self.creation_time,
            "startTime": self.start_time,
            "stopTime": self.stop_time,
        }


@dataclass
class BatchEntry:
    run_setting_id: str
    settings: dict[str, Any]
    submission_status: str | None = None  # None until the service has tried to submit it
    run: Run | None = None
    failure_reason: str | None = None
    failure_message: str | None = None

    def list_item(self) -> dict[str, Any]:
        return {
            "runSettingId": self.run_setting_id,
            "runId": self.run.id if self.run else None,
            "runInternalUuid": self.run.uuid if self.run else None,
            "runArn": self.run.arn if self.run else None,
            "submissionStatus": self.submission_status,
            "submissionFailureReason": self.failure_reason,
            "submissionFailureMessage": self.failure_message,
        }


@dataclass
class Batch(Gated):
    id: str = ""
    arn: str = ""
    uuid: str = ""
    seq: int = 0
    name: str | None = None
    request_id: str = ""
    workflow: Workflow | None = None
    default_run_setting: dict[str, Any] = field(default_factory=dict)
    inline_settings: list[dict[str, Any]] | None = None
    s3_uri_settings: str | None = None
    s3_etag: str | None = None
    tags: dict[str, str] = field(default_factory=dict)
    status: str = "CREATING"
    creation_time: float = 0.0
    submitted_time: float | None = None
    processed_time: float | None = None
    failed_time: float | None = None
    failure_reason: str | None = None
    settings_error: str | None = None
    loaded_settings: list[Any] | None = None
    entries: list[BatchEntry] = field(default_factory=list)
    next_entry: int = 0
    live_runs: int = 0
    cancel_success: int = 0
    cancel_failed: int = 0
    delete_success: int = 0
    delete_failed: int = 0

    @property
    def total_runs(self) -> int | None:
        if self.entries:
            return len(self.entries)
        if self.inline_settings is not None:
            return len(self.inline_settings)
        return None

    def submission_summary(self) -> dict[str, int]:
        attempted = [e for e in self.entries if e.submission_status is not None]
        started = sum(1 for e in attempted if e.run is not None)
        failed = sum(1 for e in attempted if e.run is None and e.submission_status == "FAILED")
        pending = 0
        if self.status in ("CREATING", "PENDING", "SUBMITTING"):
            pending = (self.total_runs or 0) - len(attempted)
        return {
            "successfulStartSubmissionCount": started,
            "failedStartSubmissionCount": failed,
            "pendingStartSubmissionCount": pending,
            "successfulCancelSubmissionCount": self.cancel_success,
            "failedCancelSubmissionCount": self.cancel_failed,
            "successfulDeleteSubmissionCount": self.delete_success,
            "failedDeleteSubmissionCount": self.delete_failed,
        }

    def run_summary(self) -> dict[str, int]:
        counts = dict.fromkeys(
            ("PENDING", "STARTING", "RUNNING", "STOPPING", "COMPLETED", "DELETED", "FAILED", "CANCELLED"), 0
        )
        for entry in self.entries:
            if entry.run is not None:
                counts[entry.run.status] += 1
        return {f"{status.lower()}RunCount": n for status, n in counts.items()}

    def describe(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "arn": self.arn,
            "uuid": self.uuid,
            "name": self.name,
            "status": self.status,
            "tags": dict(self.tags),
            "totalRuns": self.total_runs,
            "defaultRunSetting": self.default_run_setting,
            "submissionSummary": self.submission_summary(),
            "runSummary": self.run_summary(),
            "creationTime": self.creation_time,
            "submittedTime": self.submitted_time,
            "processedTime": self.processed_time,
            "failedTime": self.failed_time,
            "failureReason": self.failure_reason,
        }

    def list_item(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "name": self.name,
            "status": self.status,
            "createdAt": self.creation_time,
            "totalRuns": self.total_runs,
            "workflowId": self.workflow.id if self.workflow else None,
        }


def merge_run_settings(default: dict[str, Any], override: dict[str, Any]) -> dict[str, Any]:
    """Batch merge rules: parameters and runTags key by key, other overridables replace."""
    merged = {k: v for k, v in default.items() if v is not None}
    for key in RUN_SETTING_OVERRIDES:
        if override.get(key) is None:
            continue
        if key in MERGED_OVERRIDES and isinstance(merged.get(key), dict):
            merged[key] = {**merged[key], **override[key]}
        else:
            merged[key] = override[key]
    return merged
