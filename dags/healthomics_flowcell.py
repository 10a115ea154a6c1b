"""One sequencing flowcell through AWS HealthOmics: one workflow per sample.

manifest -> validate everything -> submit (a run batch per workflow, or one run per sample)
-> one mapped task per sample (deferred, named by sample id) -> QC gate (after every sample,
whatever its state) -> QC run -> notification (always) -> flowcell outcome.

Trigger it from the UI (the Params form), with ``airflow dags trigger --conf``, or through
the REST API. A manifest with ``stages`` runs in ``healthomics_pipeline``. The logic lives in
``plugins/healthomics``; this file only wires it.
"""

from __future__ import annotations

from airflow.sdk import DAG

from healthomics import settings
from healthomics.flowcell import task_ids
from healthomics.flowcell.dag import SAMPLE_TASK_ARGS, flowcell_dag_args, flowcell_tasks
from healthomics.flowcell.sample import HealthOmicsSampleRunOperator

with DAG(
    dag_id=settings.FLOWCELL_DAG_ID,
    description="Run every sample of a sequencing flowcell on AWS HealthOmics, then QC, then notify",
    tags=["healthomics", "genomics"],
    doc_md=__doc__,
    **flowcell_dag_args(),
) as dag:
    flowcell_tasks(
        lambda entries: HealthOmicsSampleRunOperator.partial(
            task_id=task_ids.SAMPLE_TASK,
            poll_interval=settings.poll_seconds(),
            map_index_template="{{ task.sample['sample_id'] }}",
            **SAMPLE_TASK_ARGS,
        ).expand(sample=entries)
    )
