"""Bring one stage of one sample's pipeline to a COMPLETED run (healthomics_pipeline's stage tasks)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, NoReturn

from airflow.providers.amazon.aws.hooks.s3 import S3Hook
from airflow.providers.common.compat.sdk import AirflowFailException, AirflowSkipException
from airflow.sdk.bases.skipmixin import SkipMixin
from airflow.sdk.exceptions import DownstreamTasksSkipped

from healthomics import settings
from healthomics.flowcell.plan import stage_key, stage_request, stage_run_name
from healthomics.flowcell.sample import STATE_KEY, HealthOmicsSampleRunOperator
from healthomics.flowcell.task_ids import ENTRIES_TASK, PIPELINE_XCOM, stage_inputs_xcom, stage_task_id
from healthomics.manifest.pipeline import StageResult, TemplateError, parse_reference, references
from healthomics.settings import allowed_output_prefixes
from healthomics.utils.idempotency import TAG_KEY, SubmissionJournal, key_tag
from healthomics.utils.s3 import parse_s3_uri, read_run_outputs
from healthomics.utils.xcom import xcom_document

if TYPE_CHECKING:
    from airflow.sdk import Context


# The UI names each stage task "<sample> · <stage>" (its entry lists the sample's stages).
MAP_INDEX_TEMPLATE = "{{ task.stage_label }}"


class HealthOmicsStageRunOperator(HealthOmicsSampleRunOperator, SkipMixin):
    """
    Get one sample's ``stage_number``-th pipeline stage to a COMPLETED HealthOmics run, and wait for it.

    One of ``stage_slots`` tasks per sample in a mapped task group: the task of stage *k* runs
    after the sample's task of stage *k-1* succeeded, so a sample moves on as soon as its own
    previous stage COMPLETED. Stage 1 is the sample task itself (its run came from the run
    batch, or it starts one). A later stage renders its StartRun request from the sample's
    fields and the outputs (``logs/outputs.json``) of the stages it reads, and starts it with a
    deterministic ``requestId`` (key ``<sample key>/stage-<name>``): a retry, a clear or a
    re-run of the DAG run finds the same run, and a COMPLETED one is reused, never paid twice.

    A failed stage fails its task: the sample's later stages are ``upstream_failed``, other
    samples go on. The sample's last stage skips the stage tasks after it (a pipeline shorter
    than the group), which therefore ends on a worker rather than in the triggerer.

    :param stage_number: which stage of the pipeline (1-based, in the manifest's stage order).
    :param stage_slots: how many stage tasks the group has per sample.

    Other parameters as :class:`~healthomics.flowcell.sample.HealthOmicsSampleRunOperator`.
    """

    def __init__(self, *, stage_number: int, stage_slots: int, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.stage_number = stage_number
        self.stage_slots = stage_slots

    @property
    def stages(self) -> list[str]:
        """The sample's stage names, in order (none: a manifest without stages, one stage)."""
        return list(self.sample.get("stages") or [])

    @property
    def stage_name(self) -> str | None:
        return self.stages[self.stage_number - 1] if len(self.stages) >= self.stage_number else None

    @property
    def stage_label(self) -> str:
        """The task's name in the UI (its map index): the sample, and its stage."""
        sample_id = str(self.sample["sample_id"])
        return f"{sample_id} · {self.stage_name}" if self.stage_name else sample_id

    def execute(self, context: Context) -> dict[str, Any]:
        count = max(1, len(self.stages))
        if self.stage_number > count:
            raise AirflowSkipException(f"the pipeline has {count} stage(s)")
        if self._skips_after():
            self.end_from_trigger = False  # the stage tasks after the last are skipped on a worker
        if self.stage_number > 1:
            # Nothing of the first stage's entry (its batch run) is this stage's: it starts its own run.
            self._pipeline = context["ti"].xcom_pull(task_ids=ENTRIES_TASK, key=PIPELINE_XCOM) or {}
            self._inputs = self._stage_inputs(context)
            key = stage_key(str(self._inputs["idempotency_key"]), str(self.stage_name))
            self.sample = {"sample_id": self.sample["sample_id"], "stages": self.stages, "idempotency_key": key}
            self._unused_key = False
            if SubmissionJournal(context, STATE_KEY).last(key) is None:
                reused = self._inputs.get("reuse", {}).get(self.stage_name)
                if reused:  # a backfill found this stage's run COMPLETED (or still going)
                    self.sample["existing_run"] = {"id": reused}
                elif self._inputs.get("first_stage_started_here") and context["ti"].try_number == 1:
                    # This DAG run's batch started the sample: no earlier DAG run can have run this
                    # stage of it, so its first try neither looks for one nor describes its new run.
                    self._unused_key = True
                else:
                    self._follow_earlier_run(key)
        return self._finish(context, super().execute(context))

    def _follow_earlier_run(self, key: str) -> None:
        """With no record of its own (a new DAG run of the manifest, or no task state store), the
        stage follows the newest run of its key, as stage 1 follows its batch's: a new DAG run
        reuses what COMPLETED and, like stage 1, does not pay again for what failed (a clear does)."""
        name = stage_run_name(self._pipeline, self.stage_number, self.sample["sample_id"], self._inputs)
        found = self.hook.find_runs(name, {TAG_KEY: key_tag(key)})
        if found:
            self.log.info(
                "Sample %s, stage %s: following earlier run %s",
                self.sample["sample_id"],
                self.stage_name,
                found[0]["id"],
            )
            self.sample["existing_run"] = {"id": found[0]["id"]}

    def execute_complete(self, context: Context, event: dict[str, Any] | str | None = None) -> dict[str, Any]:
        return self._finish(context, super().execute_complete(context, event))

    def micro_batch_first(self) -> bool:
        """A later stage of a flowcell of ``[healthomics] micro_batch_min_samples`` or more goes in a
        micro batch at once: at that size nearly every first StartRun would be throttled."""
        threshold = settings.micro_batch_min_samples()
        if self.stage_number == 1 or not threshold:
            return False
        return int(self._pipeline.get("sample_count") or 0) >= threshold

    def submitted_in_micro_batch(self, context: Context, event: dict[str, Any] | None = None) -> dict[str, Any]:
        return self._finish(context, super().submitted_in_micro_batch(context, event))

    def labels(self) -> dict[str, Any]:
        return {**super().labels(), "stage": self.stage_name, "stage_number": self.stage_number}

    def _skips_after(self) -> bool:
        """Whether this is the sample's last stage with unused stage tasks after it."""
        return self.stage_number == max(1, len(self.stages)) < self.stage_slots

    def _finish(self, context: Context, result: dict[str, Any]) -> dict[str, Any]:
        """The stage's result; the last stage skips the unused stage tasks after it."""
        if not self._skips_after():
            return result
        # A task that skips others ends by raising: its return value is pushed here.
        ti = context["ti"]
        ti.xcom_push(key="return_value", value=result)
        raise DownstreamTasksSkipped(
            tasks=[(stage_task_id(n), ti.map_index) for n in range(self.stage_number + 1, self.stage_slots + 1)]
        )

    def known_about_run(self, context: Context) -> dict[str, Any]:
        return {**super().known_about_run(context), **self.labels()}

    # -- a later stage's request ---------------------------------------------------------

    def _stage_inputs(self, context: Context) -> dict[str, Any]:
        sample_id, ti = self.sample["sample_id"], context["ti"]
        key = stage_inputs_xcom(ti.map_index or 0)
        inputs = ti.xcom_pull(task_ids=ENTRIES_TASK, key=key) or {}
        if sample_id not in inputs:
            raise AirflowFailException(f"Sample {sample_id}: no stage inputs in XCom {key!r}")
        return dict(inputs[sample_id])

    def _start_fields(self, context: Context) -> dict[str, Any]:
        if self.stage_number == 1:
            return super()._start_fields(context)
        stage = self._pipeline["stages"][self.stage_number - 1]
        try:
            request = stage_request(
                self._pipeline, self.stage_number, self.sample["sample_id"], self._inputs, self._done(context, stage)
            )
        except TemplateError as err:
            self.not_submitted(context, "TEMPLATE_ERROR", f"stage {stage['name']}: {err}")
        return {"request": request, "idempotency_key": self.sample["idempotency_key"], "unused_key": self._unused_key}

    def _done(self, context: Context, stage: dict[str, Any]) -> dict[str, StageResult]:
        """The runs of the stages this stage's templates read (their outputs.json only where read)."""
        names = [s["name"] for s in self._pipeline["stages"]]
        read: dict[str, bool] = {}  # stage -> whether its outputs are read
        for _, text in references(stage.get("parameters", {})):
            reference = parse_reference(text)
            if reference is not None and reference.stage is not None:
                read[reference.stage] = read.get(reference.stage, False) or reference.output is not None
        ti = context["ti"]
        s3 = S3Hook(aws_conn_id=self.aws_conn_id).get_conn() if any(read.values()) else None
        prefixes = [parse_s3_uri(p) for p in allowed_output_prefixes()]
        done: dict[str, StageResult] = {}
        for name, with_outputs in read.items():
            summary = xcom_document(
                ti.xcom_pull(task_ids=stage_task_id(names.index(name) + 1), map_indexes=ti.map_index)
            )
            if not isinstance(summary, dict) or not summary.get("id"):
                self.not_submitted(context, "STAGE_RESULT_MISSING", f"stage {name} left no run result to read")
            result = StageResult(str(summary["id"]), str(summary.get("runOutputUri") or ""))
            if with_outputs:
                outputs = read_run_outputs(s3, summary.get("runOutputUri"), prefixes)
                if outputs.error:
                    self.not_submitted(
                        context, "OUTPUTS_UNREADABLE", f"stage {name} run {result.run_id}: {outputs.error}"
                    )
                result.outputs = dict(outputs.outputs or {})
            done[name] = result
        return done

    def not_submitted(self, context: Context, reason: str, message: str) -> NoReturn:
        """This stage's run cannot be asked for (a template or an earlier run's outputs): fail for good."""
        self.run_failed(context, {"status": "NOT_SUBMITTED", "failureReason": reason}, message)
