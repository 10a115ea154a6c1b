"""StartRun, GetRun, ListRuns, CancelRun, DeleteRun and the run lifecycle."""

from __future__ import annotations

import heapq
import json
import random
from typing import Any

from .config import RunProfile
from .errors import OmicsError, conflict, not_found, throttled, validation
from .resources import (
    RUN_FINISHED,
    RUN_TERMINAL,
    Batch,
    Run,
    RunPlan,
    Workflow,
)
from .service_core import DEFAULT_STORAGE_CAPACITY, paginate, request_fingerprint, s3_uris_in
from .sinks import S3Uri
from .workflows import WorkflowService


class RunService(WorkflowService):
    # -- runs -------------------------------------------------------------

    def _check_parameters(self, workflow: Workflow, parameters: dict[str, Any] | None) -> None:
        template = workflow.parameter_template
        if template is None:
            return
        given = set(parameters or {})
        missing = sorted(
            name for name, spec in template.items() if not spec.get("optional", False) and name not in given
        )
        unknown = sorted(given - set(template))
        problems = []
        if missing:
            problems.append(f"missing required parameters: {', '.join(missing)}")
        if unknown:
            problems.append(f"parameters not in the workflow's parameter template: {', '.join(unknown)}")
        if problems:
            raise validation(f"Invalid parameters for workflow {workflow.id}: " + "; ".join(problems))

    def _check_output_uri(self, output_uri: str | None, where: str = "outputUri") -> str:
        if not output_uri:
            raise validation(f"Value null at '{where}' failed to satisfy constraint: Member must not be null")
        try:
            S3Uri.parse(output_uri)
        except ValueError as err:
            raise validation(f"{where} must be an S3 URI (s3://bucket/prefix): {output_uri}") from err
        return output_uri

    def _make_room(self, retention_mode: str) -> None:
        """Enforce the "maximum runs (active or inactive)" retention quota."""
        limit = self.config.max_runs
        if limit is None or len(self.runs) < limit:
            return
        if retention_mode == "REMOVE":
            removable = [r for r in self.runs.values() if r.retention_mode == "REMOVE" and r.status in RUN_TERMINAL]
            if removable:
                self._purge(min(removable, key=lambda r: r.seq))
                return
        raise OmicsError(
            "ServiceQuotaExceededException",
            f"The maximum number of runs ({limit}) has been reached; delete runs or use retentionMode REMOVE",
        )

    def _validate_run_settings(self, settings: dict[str, Any]) -> Workflow:
        """Synchronous checks StartRun applies (a batch applies them per run at submission)."""
        workflow = self._workflow(settings["workflowId"], settings.get("workflowType"))
        if workflow.status != "ACTIVE":
            raise validation(f"Workflow {workflow.id} is not ACTIVE (status {workflow.status})")
        self._check_output_uri(settings.get("outputUri"))
        self._check_parameters(workflow, settings.get("parameters"))
        self._check_tag_count(settings.get("tags") or {})
        if settings.get("cacheBehavior") and not settings.get("cacheId"):
            raise validation("cacheBehavior requires cacheId")
        return workflow

    def start_run(self, params: dict[str, Any]) -> dict[str, Any]:
        with self.lock:
            fingerprint = request_fingerprint(params)
            existing = self._remember_request("run", params["requestId"], fingerprint)
            if existing and existing in self.runs and self.runs[existing].request_id == params["requestId"]:
                return self._started_run(self.runs[existing])
            if any(b.status == "SUBMITTING" for b in self.batches.values()):
                # A submitting batch draws the whole StartRun quota (dev guide, "Gradual submission").
                raise throttled()
            settings = dict(params)
            if params.get("runId"):
                source = self.runs.get(params["runId"])
                if source is None or source.workflow is None:
                    raise not_found("Run", params["runId"])
                settings.setdefault("workflowId", source.workflow.id)
                settings.setdefault("workflowType", source.workflow.type)
                if "parameters" not in settings and source.parameters is not None:
                    settings["parameters"] = source.parameters
            if not settings.get("workflowId"):
                raise validation("Either workflowId or runId is required")
            workflow = self._validate_run_settings(settings)
            self._make_room(settings.get("retentionMode") or "RETAIN")
            run = self._create_run(settings, workflow, self.clock.now())
            self._idempotency[("run", params["requestId"])] = (fingerprint, run.id)
            return self._started_run(run)

    @staticmethod
    def _started_run(run: Run) -> dict[str, Any]:
        return {
            "arn": run.arn,
            "id": run.id,
            "status": run.status,
            "tags": dict(run.tags),
            "uuid": run.uuid,
            "runOutputUri": run.run_output_uri,
            "networkingMode": run.networking_mode,
        }

    def _plan(self, run: Run, profile: RunProfile) -> RunPlan:
        durations = profile.phase_seconds()
        jitter = 1.0 + profile.jitter * (2 * self._random.random() - 1)
        durations["RUNNING"] *= jitter
        plan = RunPlan(durations=durations)
        if run.cache_id and self._cache_key(run) in self._cache_entries:
            plan.cache_hit = True
            durations["RUNNING"] *= self.config.cache_hit_factor
        attributes = {
            "name": run.name,
            "runSettingId": run.run_setting_id,
            "workflowId": run.workflow_id,
            "requestId": run.request_id,
            "tags": run.tags,
        }
        slow = self.faults.pick(("slow",), attributes)
        if slow is not None:
            durations["RUNNING"] *= slow.factor
        rule = self.faults.pick(("fail", "hang"), attributes)
        if rule is not None:
            plan.fate = rule.action
            plan.fail_phase = rule.phase
            plan.failure_reason = rule.failure_reason
            plan.status_message = rule.status_message or f"Run failed: {rule.failure_reason}"
        return plan

    def _cache_key(self, run: Run) -> tuple[str, str, str]:
        return (run.cache_id or "", run.workflow_id, json.dumps(run.parameters or {}, sort_keys=True))

    def _create_run(
        self,
        settings: dict[str, Any],
        workflow: Workflow,
        now: float,
        batch: Batch | None = None,
        run_setting_id: str | None = None,
    ) -> Run:
        run_id = self._new_id(reuse=True)
        storage_type = settings.get("storageType") or workflow.storage_type or "STATIC"
        capacity = settings.get("storageCapacity")
        if storage_type == "STATIC" and capacity is None:
            capacity = workflow.storage_capacity or DEFAULT_STORAGE_CAPACITY
        run = Run(
            id=run_id,
            arn=self._arn("run", run_id),
            uuid=self._new_uuid(),
            seq=next(self._seq),
            request_id=settings.get("requestId"),
            name=settings.get("name"),
            workflow=workflow,
            role_arn=settings["roleArn"],
            output_uri=settings["outputUri"],
            run_output_uri=f"{settings['outputUri'].rstrip('/')}/{run_id}",
            parameters=settings.get("parameters"),
            priority=settings.get("priority"),
            storage_capacity=capacity if storage_type == "STATIC" else None,
            storage_type=storage_type,
            log_level=settings.get("logLevel"),
            retention_mode=settings.get("retentionMode") or "RETAIN",
            cache_id=settings.get("cacheId"),
            cache_behavior=settings.get("cacheBehavior") or ("CACHE_ON_FAILURE" if settings.get("cacheId") else None),
            run_group_id=settings.get("runGroupId"),
            workflow_version_name=settings.get("workflowVersionName"),
            workflow_owner_id=settings.get("workflowOwnerId"),
            networking_mode=settings.get("networkingMode") or "RESTRICTED",
            configuration_name=settings.get("configurationName"),
            batch_id=batch.id if batch else None,
            run_setting_id=run_setting_id,
            rerun_of=settings.get("runId"),
            started_by=f"arn:aws:iam::{self.config.account_id}:root",
            tags=dict(settings.get("tags") or {}),
            status="PENDING",
            creation_time=now,
            log_group_arn=(
                f"arn:aws:logs:{self.config.region}:{self.config.account_id}:log-group:/aws/omics/WorkflowLog"
            ),
        )
        self.runs[run_id] = run
        run.plan = self._plan(run, self.config.profile_for(workflow.id, workflow.name))
        if batch is not None:
            batch.live_runs += 1
        self._emit_run(run, now)
        if self.s3 is not None and self.config.check_inputs:
            uris = sorted(set(s3_uris_in(run.parameters)))
            if uris:
                s3 = self.s3

                def check() -> list[str]:
                    missing = []
                    for uri in uris:
                        try:
                            parsed = S3Uri.parse(uri)
                        except ValueError:
                            missing.append(uri)
                            continue
                        if not s3.exists(parsed):
                            missing.append(uri)
                    return missing

                def checked(missing: list[str] | None, error: BaseException | None) -> None:
                    run.missing_inputs = list(missing or []) if error is None else []

                self._start_io(run, check, checked)
        self._schedule(run, now + run.plan.durations["PENDING"], lambda at: self._run_eligible(run, at))
        return run

    def _set_run_status(self, run: Run, status: str, when: float) -> None:
        run.status = status
        self._emit_run(run, when)

    def _run_eligible(self, run: Run, when: float) -> None:
        limit = self.config.max_active_runs
        if limit is not None and self._active >= limit:
            # Higher priority first (DefaultRunSetting: "higher values ... higher priority"), then FIFO.
            heapq.heappush(self._waiting, (-(run.priority or 0), run.seq, run))
            return
        self._run_starting(run, when)

    def _run_starting(self, run: Run, when: float) -> None:
        assert run.plan is not None
        run.active = True
        self._active += 1
        self._set_run_status(run, "STARTING", when)
        starting = run.plan.durations["STARTING"]
        if run.plan.fate == "fail" and run.plan.fail_phase == "STARTING":
            self._schedule(run, when + starting / 2, lambda at: self._run_failing(run, at))
        else:
            self._schedule(run, when + starting, lambda at: self._run_running(run, at))

    def _run_running(self, run: Run, when: float) -> None:
        assert run.plan is not None
        run.start_time = when
        self._set_run_status(run, "RUNNING", when)
        running = run.plan.durations["RUNNING"]
        limit = self.config.max_run_duration_seconds
        if run.missing_inputs:
            run.plan.failure_reason = "INPUT_URI_NOT_FOUND"
            run.plan.status_message = "Input not found: " + ", ".join(run.missing_inputs)
            self._schedule(run, when + min(60.0, running * 0.02), lambda at: self._run_failing(run, at))
        elif run.plan.fate == "fail":
            self._schedule(run, when + min(running / 2, limit), lambda at: self._run_failing(run, at))
        elif run.plan.fate == "hang" or running > limit:
            self._schedule(run, when + limit, lambda at: self._run_timed_out(run, at))
        else:
            self._schedule(run, when + running, lambda at: self._run_exporting(run, at))

    def _run_timed_out(self, run: Run, when: float) -> None:
        assert run.plan is not None
        run.plan.failure_reason = "RUN_TIMED_OUT"
        run.plan.status_message = f"Run timeout after {int(self.config.max_run_duration_seconds // 60)} minutes"
        self._run_failing(run, when)

    @staticmethod
    def _end_running(run: Run, outcome: str, when: float) -> None:
        """Record how the RUNNING phase ended (the task records follow it); no-op before RUNNING."""
        if run.start_time is not None and run.running_end is None:
            run.running_end, run.running_outcome = when, outcome

    def _run_exporting(self, run: Run, when: float) -> None:
        assert run.plan is not None
        self._end_running(run, "COMPLETED", when)
        self._set_run_status(run, "STOPPING", when)
        if self.s3 is not None and self.config.write_outputs:
            s3, outputs = self.s3, self._outputs_for(run)

            def export() -> None:
                for uri, document in outputs:
                    s3.put_json(S3Uri.parse(uri), document)

            def exported(_: Any, error: BaseException | None) -> None:
                if error is not None:
                    run.export_error = f"Could not write outputs to {run.run_output_uri}: {error}"

            self._start_io(run, export, exported)
        self._schedule(run, when + run.plan.durations["STOPPING"], lambda at: self._run_completed(run, at))

    def _outputs_for(self, run: Run) -> list[tuple[str, Any]]:
        """The files a completed run leaves under its runOutputUri, and its outputs manifest."""
        workflow = run.workflow
        assert workflow is not None
        profile = self.config.profile_for(workflow.id, workflow.name)
        seeded = random.Random(run.uuid)
        files: list[tuple[str, Any]] = []
        manifest: dict[str, str] = {}
        for output_name, template in profile.outputs.items():
            relative = template.format(runName=run.name or run.id, runId=run.id)
            uri = f"{run.run_output_uri}/{relative}"
            manifest[f"{workflow.name or workflow.id}.{output_name}"] = uri
            files.append(
                (
                    uri,
                    {
                        "runId": run.id,
                        "runUuid": run.uuid,
                        "runName": run.name,
                        "workflowId": workflow.id,
                        "parameters": run.parameters,
                        "metrics": {
                            "total_reads": seeded.randint(300_000_000, 900_000_000),
                            "percent_mapped": round(seeded.uniform(95.0, 99.9), 2),
                            "mean_coverage": round(seeded.uniform(28.0, 42.0), 1),
                        },
                    },
                )
            )
        files.append((f"{run.run_output_uri}/logs/outputs.json", manifest))
        return files

    def _run_completed(self, run: Run, when: float) -> None:
        if run.export_error:
            run.failure_reason = "EXPORT_FAILED"
            run.status_message = run.export_error
            self._run_finished(run, "FAILED", when)
            return
        self._run_finished(run, "COMPLETED", when)

    def _run_failing(self, run: Run, when: float) -> None:
        """Failures pass through STOPPING, like the service's lifecycle page says."""
        assert run.plan is not None
        run.failure_reason = run.plan.failure_reason or "RUN_TASK_FAILED"
        run.status_message = run.plan.status_message or "Run failed"
        self._end_running(run, "FAILED", when)
        self._set_run_status(run, "STOPPING", when)
        self._schedule(run, when + run.plan.durations["STOPPING"], lambda at: self._run_finished(run, "FAILED", at))

    def _run_finished(self, run: Run, status: str, when: float) -> None:
        run.stop_time = when
        if run.storage_type == "DYNAMIC" and run.start_time is not None and run.workflow is not None:
            # "After the run completes, storageCapacity is the maximum storage used" (dynamic storage).
            profile = self.config.profile_for(run.workflow.id, run.workflow.name)
            run.storage_capacity = max(
                1, round(profile.dynamic_storage_gib * random.Random(run.uuid).uniform(0.8, 1.2))
            )
        if run.cache_id and (status == "COMPLETED" or run.cache_behavior == "CACHE_ALWAYS" or status == "FAILED"):
            self._cache_entries.add(self._cache_key(run))
        self._leave_active(run, when)
        self._set_run_status(run, status, when)
        if run.batch_id:
            self._on_batch_run_finished(run, when)

    def _leave_active(self, run: Run, when: float) -> None:
        if not run.active:
            return
        run.active = False
        self._active -= 1
        limit = self.config.max_active_runs
        while self._waiting and (limit is None or self._active < limit):
            _, _, waiting = heapq.heappop(self._waiting)
            if waiting.status == "PENDING" and not waiting.cancel_requested:
                self._run_starting(waiting, when)

    def _run(self, run_id: str) -> Run:
        run = self.runs.get(run_id)
        if run is None:
            raise not_found("Run", run_id)
        return run

    def get_run(self, params: dict[str, Any]) -> dict[str, Any]:
        with self.lock:
            return self._run(params["id"]).describe()

    def list_runs(self, params: dict[str, Any]) -> dict[str, Any]:
        with self.lock:
            runs = [
                r
                for r in self.runs.values()
                if (not params.get("name") or r.name == params["name"])
                and (not params.get("status") or r.status == params["status"])
                and (not params.get("batchId") or r.batch_id == params["batchId"])
                and (not params.get("runGroupId") or r.run_group_id == params["runGroupId"])
            ]
            runs.sort(key=lambda r: -r.seq)  # newest first
            page, token = paginate(runs, params.get("startingToken"), params.get("maxResults") or 100)
            return {"items": [r.list_item() for r in page], "nextToken": token}

    def _cancel_run(self, run: Run, when: float) -> bool:
        """Stop a live run; False if it has already finished."""
        if run.status in RUN_TERMINAL or (run.status == "STOPPING" and not run.cancel_requested):
            return False  # finished, or already on its way to COMPLETED/FAILED
        if run.cancel_requested:
            return True
        run.cancel_requested = True
        run.generation += 1  # drop the transitions it had scheduled
        run.parked = None
        stopping = run.plan.durations["STOPPING"] if run.plan and run.active else 1.0
        self._end_running(run, "CANCELLED", when)
        if run.status != "STOPPING":
            self._set_run_status(run, "STOPPING", when)

        def cancelled(at: float) -> None:
            self._run_finished(run, "CANCELLED", at)

        self._schedule(run, when + stopping, cancelled)
        return True

    def cancel_run(self, params: dict[str, Any]) -> None:
        with self.lock:
            run = self._run(params["id"])
            if not self._cancel_run(run, self.clock.now()):
                raise conflict(f"Run {run.id} cannot be cancelled in status {run.status}")

    def _delete_run(self, run: Run, when: float) -> None:
        self._set_run_status(run, "DELETED", when)
        run.generation += 1
        self._schedule(run, when + self.config.deleted_run_retention_seconds, lambda at: self._purge(run))

    def _purge(self, run: Run) -> None:
        if self.runs.get(run.id) is run:
            del self.runs[run.id]
            self._free_run_ids.append(run.id)

    def delete_run(self, params: dict[str, Any]) -> None:
        with self.lock:
            run = self._run(params["id"])
            if run.status not in RUN_FINISHED:
                raise conflict(f"Run {run.id} cannot be deleted in status {run.status}")
            self._delete_run(run, self.clock.now())
