"""One sequencing flowcell through AWS HealthOmics: a pipeline of workflows per sample.

As ``healthomics_flowcell``, but each sample is a mapped task group (named by sample id) with
one deferred task per stage of the manifest's ``stages``: a sample's next stage starts as soon
as its own previous stage COMPLETED, a failed stage stops only that sample, and QC runs after
every sample's last stage. The group has ``[healthomics] pipeline_stages`` stage tasks; a
sample's unused ones are skipped. See docs/pipelines.md.
"""

from __future__ import annotations

from typing import Any

from airflow.sdk import DAG, chain, task_group

from healthomics import settings
from healthomics.flowcell import task_ids
from healthomics.flowcell.dag import SAMPLE_TASK_ARGS, flowcell_dag_args, flowcell_tasks
from healthomics.flowcell.stage import MAP_INDEX_TEMPLATE, HealthOmicsStageRunOperator

STAGE_SLOTS = settings.pipeline_stages()


@task_group(group_id=task_ids.PIPELINE_GROUP)
def sample_pipeline(sample: Any) -> None:
    chain(
        *(
            HealthOmicsStageRunOperator(
                task_id=f"stage_{number}",
                stage_number=number,
                stage_slots=STAGE_SLOTS,
                sample=sample,
                poll_interval=settings.poll_seconds(),
                map_index_template=MAP_INDEX_TEMPLATE,
                **SAMPLE_TASK_ARGS,
            )
            for number in range(1, STAGE_SLOTS + 1)
        )
    )


with DAG(
    dag_id=settings.PIPELINE_DAG_ID,
    description="Run a pipeline of HealthOmics workflows per sample of a flowcell, then QC, then notify",
    tags=["healthomics", "genomics", "pipeline"],
    doc_md=__doc__,
    **flowcell_dag_args(),
) as dag:
    flowcell_tasks(lambda entries: sample_pipeline.expand(sample=entries), stage_slots=STAGE_SLOTS)
