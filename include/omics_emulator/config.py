"""Emulator settings: time scale, run durations, quotas, limits and side effects.

Every value can be given on the command line (``--config FILE`` takes this
structure as JSON) and changed at run time through ``PATCH /_emulator/config``.
Durations are emulated seconds; rates in ``quotas`` are per real second.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

ACCOUNT_ID = "123456789012"  # moto's default account, so ARNs agree across the stack

# A germline run's tasks, one after another (see tasks.py): memory in GiB, share of RUNNING time.
DEFAULT_TASKS: tuple[dict[str, Any], ...] = (
    {"name": "fastqc", "cpus": 2, "memory": 4, "share": 0.1},
    {"name": "bwa_mem", "cpus": 16, "memory": 32, "share": 0.45},
    {"name": "mark_duplicates", "cpus": 4, "memory": 16, "share": 0.15},
    {"name": "haplotype_caller", "cpus": 8, "memory": 30, "share": 0.3},
)


@dataclass
class RunProfile:
    """How long each phase of a run lasts and what it writes, in emulated seconds."""

    pending_seconds: float = 60.0
    starting_seconds: float = 300.0
    running_seconds: float = 3600.0
    stopping_seconds: float = 120.0
    # Uniform +/- fraction applied to running_seconds, seeded per run.
    jitter: float = 0.1
    # Output name -> path under the run's output URI. {runName} and {runId} are filled in.
    outputs: dict[str, str] = field(default_factory=lambda: {"summary": "out/summary/{runName}.json"})
    # DYNAMIC run storage: the most a run uses (GetRun's storageCapacity once it has finished).
    dynamic_storage_gib: int = 400
    # The run's tasks (ListRunTasks): name, cpus, memory (GiB), optional gpus and image, share.
    tasks: list[dict[str, Any]] = field(default_factory=lambda: [dict(t) for t in DEFAULT_TASKS])

    def phase_seconds(self) -> dict[str, float]:
        return {
            "PENDING": self.pending_seconds,
            "STARTING": self.starting_seconds,
            "RUNNING": self.running_seconds,
            "STOPPING": self.stopping_seconds,
        }


@dataclass
class EmulatorConfig:
    region: str = "us-east-1"
    account_id: str = ACCOUNT_ID
    # Emulated seconds per real second; 0 freezes time (use POST /_emulator/advance).
    time_scale: float = 3600.0
    seed: int = 0
    # Operation -> TPS; None means unlimited. Unlisted operations keep the published default.
    quotas: dict[str, float | None] = field(default_factory=dict)
    # Run profiles by workflow id or workflow name; "default" for the rest.
    profiles: dict[str, RunProfile] = field(default_factory=lambda: {"default": RunProfile()})
    # Account limit on concurrently active (STARTING/RUNNING/STOPPING) runs; None = no limit.
    max_active_runs: int | None = None
    # Run retention quota ("Maximum runs (active or inactive)"); None = no limit.
    max_runs: int | None = None
    # Published default maximum run duration; a run still going then fails RUN_TIMED_OUT.
    max_run_duration_seconds: float = 604_800.0
    # Runs of a batch are released at this rate in *emulated* time; None = the StartRun quota.
    batch_submission_tps: float | None = None
    # CREATING -> PENDING -> SUBMITTING each take this long (asynchronous validation).
    batch_validation_seconds: float = 30.0
    workflow_create_seconds: float = 60.0
    # A DELETED run stays visible this long, then its metadata and id are freed.
    deleted_run_retention_seconds: float = 3600.0
    # Running time of a run whose cache already holds this workflow + parameters.
    cache_hit_factor: float = 0.1
    # Same requestId with different parameters: "conflict" (409) or "return_existing".
    idempotency_mismatch: str = "conflict"
    # Side effects against the local AWS stack (moto); None disables them.
    s3_endpoint_url: str | None = None
    events_queue_url: str | None = None
    # Emit "RunBatch Status Change" events too (the dev guide documents them).
    batch_events: bool = True
    # Write each completed run's outputs and outputs manifest to S3 (needs S3).
    write_outputs: bool = True
    # Fail runs whose s3:// parameters do not exist (INPUT_URI_NOT_FOUND); needs S3.
    check_inputs: bool = True
    # Refuse to send response members the model lacks (catches emulator bugs).
    strict_responses: bool = True

    def profile_for(self, workflow_id: str, workflow_name: str | None) -> RunProfile:
        for key in (workflow_id, workflow_name, "default"):
            if key and key in self.profiles:
                return self.profiles[key]
        return RunProfile()

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def update(self, changes: dict[str, Any]) -> None:
        """Apply a partial update; profiles are merged per key."""
        known = {f.name for f in dataclasses.fields(self)}
        unknown = set(changes) - known
        if unknown:
            raise ValueError(f"unknown settings: {sorted(unknown)}")
        for key, value in changes.items():
            if key == "profiles":
                for name, profile in value.items():
                    base = dataclasses.asdict(self.profiles.get(name, RunProfile()))
                    base.update(profile)
                    self.profiles[name] = RunProfile(**base)
            elif key == "quotas":
                self.quotas.update(value)
            else:
                setattr(self, key, value)
        if self.idempotency_mismatch not in ("conflict", "return_existing"):
            raise ValueError("idempotency_mismatch must be 'conflict' or 'return_existing'")

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> EmulatorConfig:
        config = cls()
        config.update(values)
        return config
