"""A flowcell's notification emits an asset event per output location, with how the flowcell went."""

from __future__ import annotations

from typing import Any

from airflow.models.asset import AssetAliasModel, AssetEvent
from airflow.utils.session import create_session
from sqlalchemy import select

from healthomics.flowcell.task_ids import OUTPUTS_ASSET_ALIAS
from omics_emulator import EmulatorAdmin

from .airflow_dags import run_dag
from .flowcells import conf, reference_manifest, upload


def test_the_notification_emits_an_asset_event_with_the_flowcell_and_its_outcome(
    flowcell_dag: Any, lab: dict[str, Any], realtime: EmulatorAdmin, omics: Any, s3: Any
) -> None:
    realtime.add_fault(action="fail", match={"name": "NA12891$"}, failureReason="OUT_OF_MEMORY_ERROR")
    uri = upload(s3, lab, reference_manifest(lab))
    states = run_dag(flowcell_dag, run_conf=conf(lab, uri))
    run_id = states["notify"].run_id

    with create_session() as session:
        events = session.scalars(
            select(AssetEvent).where(
                AssetEvent.source_dag_id == flowcell_dag.dag_id, AssetEvent.source_run_id == run_id
            )
        ).all()
        uris = {e.asset.uri for e in events}
        extras = [dict(e.extra) for e in events]
        alias = session.scalar(select(AssetAliasModel).where(AssetAliasModel.name == OUTPUTS_ASSET_ALIAS))
        alias_uris = {a.uri for a in alias.assets} if alias else set()
    assert uris == {f"s3://{lab['bucket']}/outputs"}  # where the manifest sends the samples' outputs
    assert uris <= alias_uris  # through the alias: a DAG scheduled on it runs
    assert {(x["flowcell_id"], x["status"]) for x in extras} == {("FC-0001", "FAILED")}
    assert all(x["report_uri"].endswith("/report.json") and x["dag_run_id"] == run_id for x in extras)
