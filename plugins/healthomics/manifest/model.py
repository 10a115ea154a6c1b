"""One typed model for a flowcell, whatever format its manifest came in."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from healthomics.utils.text import cut

ManifestFormat = Literal["reference", "native", "samplesheet"]
WorkflowType = Literal["PRIVATE", "READY2RUN"]

# The service's own limits (StartRunBatch s3UriSettings; runSettingId; run name).
MAX_SAMPLES = 100_000
MAX_ID_LENGTH = 128
# Largest manifest read (100,000 samples with their parameters fit many times over).
MAX_MANIFEST_BYTES = 128 * 1024 * 1024
# Problems an error message lists (the rest are counted); the XCom and the report keep more.
MAX_PROBLEMS_IN_MESSAGE = 100


class Problem(BaseModel):
    """One thing wrong with a manifest, and where."""

    model_config = ConfigDict(frozen=True)

    location: str  # e.g. "row 7", "flowcellSamples[3]", "samples[2].parameters", "manifest"
    field: str | None = None
    message: str

    @field_validator("location", "field", "message")
    @classmethod
    def _short(cls, value: str | None) -> str | None:
        """A problem echoes input; a 50 MB value must not become a 50 MB message."""
        return cut(value) if value is not None else None

    def __str__(self) -> str:
        where = f"{self.location}, {self.field}" if self.field else self.location
        return f"{where}: {self.message}"


class ManifestError(ValueError):
    """The manifest is unusable; ``problems`` lists every reason, each with where it is."""

    def __init__(self, problems: list[Problem], source: str | None = None) -> None:
        self.problems = problems
        self.source = source
        head = f"Manifest {cut(source, 300)} is invalid" if source else "Manifest is invalid"
        noun = "problem" if len(problems) == 1 else "problems"
        listed = [f"  - {p}" for p in problems[:MAX_PROBLEMS_IN_MESSAGE]]
        if len(problems) > MAX_PROBLEMS_IN_MESSAGE:
            listed.append(f"  ... and {len(problems) - MAX_PROBLEMS_IN_MESSAGE} more")
        super().__init__(f"{head} ({len(problems)} {noun}):\n" + "\n".join(listed))


class RunDefaults(BaseModel):
    """Run settings shared by every sample (StartRun / defaultRunSetting fields)."""

    role_arn: str | None = None
    workflow_type: WorkflowType = "PRIVATE"
    workflow_version_name: str | None = None
    storage_type: Literal["STATIC", "DYNAMIC"] | None = None
    storage_capacity: int | None = None
    cache_id: str | None = None
    cache_behavior: Literal["CACHE_ON_FAILURE", "CACHE_ALWAYS"] | None = None
    run_group_id: str | None = None
    priority: int | None = None
    log_level: Literal["OFF", "FATAL", "ERROR", "ALL"] | None = None
    retention_mode: Literal["RETAIN", "REMOVE"] | None = None
    tags: dict[str, str] = Field(default_factory=dict)

    def run_fields(self) -> dict[str, Any]:
        """These defaults in the API's field names (only what is set)."""
        fields = {
            "roleArn": self.role_arn,
            "workflowType": self.workflow_type,
            "workflowVersionName": self.workflow_version_name,
            "storageType": self.storage_type,
            "storageCapacity": self.storage_capacity,
            "cacheId": self.cache_id,
            "cacheBehavior": self.cache_behavior,
            "runGroupId": self.run_group_id,
            "priority": self.priority,
            "logLevel": self.log_level,
            "retentionMode": self.retention_mode,
        }
        return {k: v for k, v in fields.items() if v is not None}


class Sample(BaseModel):
    """One sample: one run of ``workflow_id`` (with stages: the first stage's run, parameters rendered)."""

    sample_id: str
    workflow_id: str
    output_uri: str
    parameters: dict[str, Any] = Field(default_factory=dict)
    # With stages: the values the stages' templates read ({sample_id} and the sample's parameters).
    fields: dict[str, Any] = Field(default_factory=dict)
    name: str | None = None
    priority: int | None = None
    tags: dict[str, str] = Field(default_factory=dict)
    # Every s3:// input the sample reads (for the optional existence check).
    inputs: list[str] = Field(default_factory=list)


class Stage(BaseModel):
    """One workflow of a per-sample pipeline (see :mod:`healthomics.manifest.pipeline`)."""

    name: str
    # The stages whose runs must have COMPLETED before this one starts, for the same sample.
    needs: list[str] = Field(default_factory=list)
    workflow_id: str
    workflow_type: WorkflowType = "PRIVATE"
    workflow_version_name: str | None = None
    # Templates: {field}, {stages.<stage>.outputs.<key>}, {stages.<stage>.run_output_uri}, ...
    parameters: dict[str, Any] = Field(default_factory=dict)
    output_uri: str
    # Run settings of this stage over the manifest's run_defaults (RunDefaults field names).
    run: dict[str, Any] = Field(default_factory=dict)
    # The keys the workflow writes to outputs.json, when the manifest declares them.
    outputs: list[str] | None = None

    def run_defaults(self, base: RunDefaults) -> RunDefaults:
        """The manifest's run defaults with this stage's settings, workflow type and version over them."""
        version = {"workflow_version_name": self.workflow_version_name} if self.workflow_version_name else {}
        tags = {**base.tags, **self.run.get("tags", {})}
        return RunDefaults(
            **{**base.model_dump(), **self.run, "tags": tags, "workflow_type": self.workflow_type, **version}
        )


class QcPolicy(BaseModel):
    """When the QC workflow may run: at least this fraction of samples COMPLETED (default: all)."""

    min_completed_fraction: float = Field(default=1.0, ge=0.0, le=1.0)


class QcSpec(BaseModel):
    """The cohort QC workflow run after every sample has finished."""

    workflow_id: str
    output_uri: str
    parameters: dict[str, Any] = Field(default_factory=dict)
    # The workflow parameter that receives the completed samples and their outputs.
    samples_parameter: str = "samples"
    policy: QcPolicy = Field(default_factory=QcPolicy)


class Notification(BaseModel):
    """Where the flowcell report goes."""

    sns_topic_arn: str | None = None
    report_uri: str | None = None


class FlowcellManifest(BaseModel):
    """A validated flowcell: its samples, run defaults, QC and notification target."""

    flowcell_id: str
    source_format: ManifestFormat
    source_uri: str | None = None
    # SHA-256 of the manifest bytes: part of every requestId, so an edited manifest is new work.
    sha256: str
    defaults: RunDefaults = Field(default_factory=RunDefaults)
    samples: list[Sample]
    # A per-sample pipeline, in an order where each stage comes after what it needs; empty: one workflow.
    stages: list[Stage] = Field(default_factory=list)
    qc: QcSpec | None = None
    notification: Notification = Field(default_factory=Notification)

    def first_run_defaults(self) -> RunDefaults:
        """The run settings of every sample's first run: the first stage's over the defaults, if stages."""
        return self.stages[0].run_defaults(self.defaults) if self.stages else self.defaults

    def workflows(self) -> list[str]:
        stages = {stage.workflow_id for stage in self.stages}
        samples = {s.workflow_id for s in self.samples}
        return sorted(samples | stages | ({self.qc.workflow_id} if self.qc else set()))
