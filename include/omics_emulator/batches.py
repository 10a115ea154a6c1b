"""StartRunBatch, GetBatch, ListBatch, ListRunsInBatch, CancelRunBatch, DeleteRunBatch, DeleteBatch."""

from __future__ import annotations

import json
from typing import Any

from .errors import OmicsError, conflict, not_found, validation
from .model import structure_shape, validate_shape
from .resources import (
    BATCH_CANCELLABLE,
    BATCH_DELETABLE,
    BATCH_RUNS_DELETABLE,
    RUN_FINISHED,
    Batch,
    BatchEntry,
    Run,
    merge_run_settings,
)
from .runs import RunService
from .service_core import MAX_BATCH_RUNS, paginate, request_fingerprint
from .sinks import S3Uri

INLINE_SETTING_SHAPE = structure_shape("InlineSetting")


class BatchService(RunService):
    # -- run batches ---------------------------------------------------------

    def _batch(self, batch_id: str) -> Batch:
        batch = self.batches.get(batch_id)
        if batch is None:
            raise not_found("Batch", batch_id)
        return batch

    def start_run_batch(self, params: dict[str, Any]) -> dict[str, Any]:
        fingerprint = request_fingerprint(params)
        with self.lock:
            existing = self._remember_request("batch", params["requestId"], fingerprint)
            if existing and existing in self.batches:
                return self._started_batch(self.batches[existing])
            default = params["defaultRunSetting"]
            workflow = self._workflow(default["workflowId"], default.get("workflowType"))
            if workflow.type == "READY2RUN":
                raise validation("Ready2Run workflows are not supported in run batches")
            if workflow.status != "ACTIVE":
                raise validation(f"Workflow {workflow.id} is not ACTIVE (status {workflow.status})")
            if default.get("outputUri"):
                self._check_output_uri(default["outputUri"], "defaultRunSetting.outputUri")
            self._check_tag_count(params.get("tags") or {})
        settings = params["batchRunSettings"]
        etag = None
        if settings.get("s3UriSettings"):
            # The service checks it can read the file, and records its ETag, synchronously.
            uri = settings["s3UriSettings"]
            try:
                parsed = S3Uri.parse(uri)
            except ValueError as err:
                raise validation(f"s3UriSettings must be an S3 URI: {uri}") from err
            etag = self.s3.etag(parsed) if self.s3 is not None else None
            if etag is None:
                raise validation(f"Unable to access s3UriSettings {uri}")
        with self.lock:
            existing = self._remember_request("batch", params["requestId"], fingerprint)
            if existing and existing in self.batches:
                return self._started_batch(self.batches[existing])
            now = self.clock.now()
            batch_id = self._new_id()
            batch = Batch(
                id=batch_id,
                arn=self._arn("runBatch", batch_id),
                uuid=self._new_uuid(),
                seq=next(self._seq),
                name=params.get("batchName"),
                request_id=params["requestId"],
                workflow=workflow,
                default_run_setting=default,
                inline_settings=settings.get("inlineSettings"),
                s3_uri_settings=settings.get("s3UriSettings"),
                s3_etag=etag,
                tags=dict(params.get("tags") or {}),
                creation_time=now,
            )
            self.batches[batch_id] = batch
            self._idempotency[("batch", params["requestId"])] = (fingerprint, batch_id)
            self._emit_batch(batch, now)
            step = self.config.batch_validation_seconds
            self._schedule(batch, now + step * 0.2, lambda at: self._batch_pending(batch, at))
            return self._started_batch(batch)

    @staticmethod
    def _started_batch(batch: Batch) -> dict[str, Any]:
        return {"id": batch.id, "arn": batch.arn, "status": batch.status, "uuid": batch.uuid, "tags": dict(batch.tags)}

    def _batch_pending(self, batch: Batch, when: float) -> None:
        batch.status = "PENDING"
        self._emit_batch(batch, when)
        if batch.s3_uri_settings is not None and self.s3 is not None:
            s3, uri = self.s3, S3Uri.parse(batch.s3_uri_settings)

            def read() -> tuple[bytes, str]:
                return s3.read(uri)

            def loaded(result: tuple[bytes, str] | None, error: BaseException | None) -> None:
                if error is not None or result is None:
                    batch.settings_error = f"Unable to read s3UriSettings {batch.s3_uri_settings}: {error}"
                    return
                body, etag = result
                if etag != batch.s3_etag:
                    batch.settings_error = (
                        f"Expected s3UriConfigs etag: {batch.s3_etag} but was: {etag}. "
                        "s3UriConfigs have changed since calling StartRunBatch"
                    )
                    return
                try:
                    batch.loaded_settings = json.loads(body)
                except ValueError:
                    batch.settings_error = "Invalid JSON format in run configurations"

            self._start_io(batch, read, loaded)
        else:
            batch.loaded_settings = batch.inline_settings
        rest = self.config.batch_validation_seconds * 0.8
        self._schedule(batch, when + rest, lambda at: self._batch_validated(batch, at))

    def _settings_problem(self, settings: Any) -> str | None:
        """Asynchronous validation of the run configurations, as the service does it."""
        if not isinstance(settings, list) or not settings:
            return "Invalid JSON format in run configurations"
        if len(settings) > MAX_BATCH_RUNS:
            return f"Batch has {len(settings)} runs but {MAX_BATCH_RUNS} runs is the max."
        for index, entry in enumerate(settings):
            if not isinstance(entry, dict):
                return f"Invalid JSON format in run configurations: entry {index} is not an object"
            problems: list[str] = []
            validate_shape(INLINE_SETTING_SHAPE, entry, f"[{index}]", problems)
            unknown = set(entry) - set(INLINE_SETTING_SHAPE.members)
            if unknown:
                problems.append(f"[{index}] has fields that cannot be set per run: {', '.join(sorted(unknown))}")
            if problems:
                return "Invalid JSON format in run configurations: " + "; ".join(problems[:5])
        unique = len({entry["runSettingId"] for entry in settings})
        if unique != len(settings):
            return f"Expected {len(settings)} unique runSettingIds but there were {unique}"
        return None

    def _batch_validated(self, batch: Batch, when: float) -> None:
        problem = batch.settings_error or self._settings_problem(batch.loaded_settings)
        if problem:
            batch.status = "FAILED"
            batch.failure_reason = problem
            batch.failed_time = when
            self._emit_batch(batch, when)
            return
        assert batch.loaded_settings is not None
        batch.entries = [BatchEntry(e["runSettingId"], e) for e in batch.loaded_settings]
        batch.loaded_settings = None
        batch.status = "SUBMITTING"
        self._emit_batch(batch, when)
        self._schedule(batch, self._release_slot(when), lambda at: self._batch_submit_next(batch, at))

    def _submission_interval(self) -> float:
        rate = self.config.batch_submission_tps or self.quotas.rate("StartRun")
        return 1.0 / rate if rate else 0.0

    def _release_slot(self, earliest: float) -> float:
        """When the next run of a submitting batch is released: batches share the account's StartRun
        rate, so the runs of batches submitting at once are released in turn, not each at the rate."""
        slot = max(earliest, self._release_free_at)
        self._release_free_at = slot + self._submission_interval()
        return slot

    def _batch_submit_next(self, batch: Batch, when: float) -> None:
        if batch.status != "SUBMITTING":
            return
        entry = batch.entries[batch.next_entry]
        batch.next_entry += 1
        self._submit_entry(batch, entry, when)
        if batch.next_entry < len(batch.entries):
            self._schedule(batch, self._release_slot(when), lambda at: self._batch_submit_next(batch, at))
            return
        batch.status = "INPROGRESS"
        batch.submitted_time = when
        self._emit_batch(batch, when)
        self._check_batch_done(batch, when)

    def _submit_entry(self, batch: Batch, entry: BatchEntry, when: float) -> None:
        settings = merge_run_settings(batch.default_run_setting, entry.settings)
        settings["tags"] = settings.pop("runTags", None) or {}
        rule = self.faults.pick(
            ("fail_submission",),
            {"name": settings.get("name"), "runSettingId": entry.run_setting_id, "workflowId": settings["workflowId"]},
        )
        try:
            if rule is not None:
                raise OmicsError(rule.code, rule.message or f"Injected submission failure ({rule.code})")
            workflow = self._validate_run_settings(settings)
            self._make_room(settings.get("retentionMode") or "RETAIN")
        except OmicsError as err:
            entry.submission_status = "FAILED"
            entry.failure_reason = err.code
            entry.failure_message = err.message
            return
        entry.run = self._create_run(settings, workflow, when, batch=batch, run_setting_id=entry.run_setting_id)
        entry.submission_status = "SUCCESS"

    def _on_batch_run_finished(self, run: Run, when: float) -> None:
        batch = self.batches.get(run.batch_id or "")
        if batch is not None:
            batch.live_runs -= 1
            self._check_batch_done(batch, when)

    def _check_batch_done(self, batch: Batch, when: float) -> None:
        if batch.live_runs > 0:
            return
        if batch.status == "INPROGRESS":
            batch.status = "PROCESSED"
            batch.processed_time = when
            self._emit_batch(batch, when)
        elif batch.status == "STOPPING":
            batch.status = "CANCELLED"
            self._emit_batch(batch, when)

    def get_batch(self, params: dict[str, Any]) -> dict[str, Any]:
        with self.lock:
            return self._batch(params["batchId"]).describe()

    def list_batch(self, params: dict[str, Any]) -> dict[str, Any]:
        with self.lock:
            filters = [k for k in ("status", "name", "runGroupId") if params.get(k)]
            if len(filters) > 1:
                raise validation(f"Only one filter per call is supported; got {', '.join(filters)}")
            batches = [
                b
                for b in self.batches.values()
                if (not params.get("status") or b.status == params["status"])
                and (not params.get("name") or b.name == params["name"])
                and (not params.get("runGroupId") or b.default_run_setting.get("runGroupId") == params["runGroupId"])
            ]
            batches.sort(key=lambda b: -b.seq)
            page, token = paginate(batches, params.get("startingToken"), params.get("maxItems") or 100)
            return {"items": [b.list_item() for b in page], "nextToken": token}

    def list_runs_in_batch(self, params: dict[str, Any]) -> dict[str, Any]:
        with self.lock:
            batch = self._batch(params["batchId"])
            filters = [k for k in ("submissionStatus", "runSettingId", "runId") if params.get(k)]
            if len(filters) > 1:
                raise validation(f"Only one filter per call is supported; got {', '.join(filters)}")
            entries = [
                e
                for e in batch.entries
                if e.submission_status is not None
                and (not params.get("submissionStatus") or e.submission_status == params["submissionStatus"])
                and (not params.get("runSettingId") or e.run_setting_id == params["runSettingId"])
                and (not params.get("runId") or (e.run is not None and e.run.id == params["runId"]))
            ]
            page, token = paginate(entries, params.get("startingToken"), params.get("maxItems") or 100)
            return {"runs": [e.list_item() for e in page], "nextToken": token}

    def cancel_run_batch(self, params: dict[str, Any]) -> dict[str, Any]:
        with self.lock:
            batch = self._batch(params["batchId"])
            if batch.status in ("STOPPING", "RUNS_DELETING"):
                raise conflict(f"Batch {batch.id} already has a cancel or delete operation in progress")
            if batch.status not in BATCH_CANCELLABLE:
                raise conflict(f"Batch {batch.id} cannot be cancelled in status {batch.status}")
            now = self.clock.now()
            batch.generation += 1  # stop submitting and validating
            batch.parked = None
            batch.status = "STOPPING"
            self._emit_batch(batch, now)
            for entry in batch.entries:
                if entry.run is None or entry.submission_status != "SUCCESS":
                    continue
                if self._cancel_run(entry.run, now):
                    entry.submission_status = "CANCEL_SUCCESS"
                    batch.cancel_success += 1
            self._check_batch_done(batch, now)
            return {}

    def delete_run_batch(self, params: dict[str, Any]) -> dict[str, Any]:
        with self.lock:
            batch = self._batch(params["batchId"])
            if batch.status in ("STOPPING", "RUNS_DELETING"):
                raise conflict(f"Batch {batch.id} already has a cancel or delete operation in progress")
            if batch.status not in BATCH_RUNS_DELETABLE:
                raise conflict(f"Runs of batch {batch.id} cannot be deleted in status {batch.status}")
            now = self.clock.now()
            batch.status = "RUNS_DELETING"
            self._emit_batch(batch, now)

            def delete_all(at: float) -> None:
                for entry in batch.entries:
                    run = entry.run
                    if run is None:
                        continue
                    if run.status in RUN_FINISHED and self.runs.get(run.id) is run:
                        self._delete_run(run, at)
                        entry.submission_status = "DELETE_SUCCESS"
                        batch.delete_success += 1
                    elif run.status != "DELETED":
                        entry.submission_status = "DELETE_FAILED"
                        entry.failure_reason = "ConflictException"
                        entry.failure_message = f"Run {run.id} cannot be deleted in status {run.status}"
                        batch.delete_failed += 1
                batch.status = "RUNS_DELETE_FAILED" if batch.delete_failed else "RUNS_DELETED"
                self._emit_batch(batch, at)

            self._schedule(batch, now + self.config.batch_validation_seconds * 0.2, delete_all)
            return {}

    def delete_batch(self, params: dict[str, Any]) -> None:
        with self.lock:
            batch = self._batch(params["batchId"])
            if batch.status not in BATCH_DELETABLE:
                raise conflict(f"Batch {batch.id} cannot be deleted in status {batch.status}")
            batch.generation += 1
            del self.batches[batch.id]
