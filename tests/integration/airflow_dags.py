"""Run DAGs defined in a test through Airflow's own dag.test()."""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Any

from airflow.sdk import DAG

BUNDLE = "dags-folder"


def new_dag(**kwargs: Any) -> DAG:
    """A throwaway DAG with a unique id (no schedule, no retries unless asked)."""
    defaults: dict[str, Any] = {"retries": 0}
    defaults.update(kwargs.pop("default_args", {}))
    return DAG(
        f"test_{uuid.uuid4().hex[:10]}",
        schedule=None,
        start_date=dt.datetime(2026, 1, 1, tzinfo=dt.UTC),
        default_args=defaults,
        **kwargs,
    )


def run_dag(dag: DAG, **test_kwargs: Any) -> dict[str, Any]:
    """Register the DAG like the DAG processor would, run dag.test(), return states by task id.

    dag.test() only runs DAGs that are serialized in the metadata DB, which normally means
    "found in the DAG folder"; a DAG built inside a test is written there first.
    """
    from airflow.dag_processing.bundles.manager import DagBundlesManager
    from airflow.dag_processing.dagbag import DagBag, sync_bag_to_db

    DagBundlesManager().sync_bundles_to_db()
    bag = DagBag(dag_folder="/nonexistent", collect_dags=False)
    bag.bag_dag(dag)
    sync_bag_to_db(bag, BUNDLE, None)
    dag_run = dag.test(**test_kwargs)
    return {"dag_run": dag_run.state, **{ti.task_id: ti for ti in dag_run.get_task_instances()}}
