"""A DAG run after every flowcell: scheduled on the flowcell DAGs' output asset alias, as docs/flowcell.md shows."""

from __future__ import annotations

import datetime as dt
from typing import Any

from airflow.sdk import AssetAlias, dag, task

from healthomics.flowcell.task_ids import OUTPUTS_ASSET_ALIAS

FLOWCELL_OUTPUTS = AssetAlias(OUTPUTS_ASSET_ALIAS)


@dag(
    dag_id="healthomics_after_flowcell",
    schedule=FLOWCELL_OUTPUTS,
    start_date=dt.datetime(2026, 1, 1, tzinfo=dt.UTC),
    catchup=False,
)
def after_flowcell() -> None:
    @task
    def finished_flowcells(**context: Any) -> list[dict[str, Any]]:
        """What a downstream DAG learns of the flowcells that triggered it (each event is listed
        under its asset and under the alias: read it by the alias, once)."""
        return [
            {"uri": event.asset.uri, **event.extra} for event in context["triggering_asset_events"][FLOWCELL_OUTPUTS]
        ]

    finished_flowcells()


after_flowcell()
