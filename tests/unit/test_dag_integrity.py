"""Every DAG imports with no AWS access, and nothing account-specific is hard-coded."""

from __future__ import annotations

import importlib.util
import re
from pathlib import Path
from typing import Any

import botocore.client
import pytest

REPO = Path(__file__).resolve().parents[2]
SOURCES = sorted([*(REPO / "dags").rglob("*.py"), *(REPO / "plugins").rglob("*.py")])

# What must never be spelled out in dags/ or plugins/: account ids in ARNs, Region names,
# bucket names in s3:// URIs.
HARD_CODED = {
    "ARN with an account id": re.compile(r"arn:aws[\w-]*:[a-z0-9-]+:[a-z0-9-]*:\d{12}:"),
    "AWS Region": re.compile(
        r"\b(?:us|eu|ap|sa|ca|me|af|il|mx)-(?:east|west|north|south|central|northeast|southeast)-\d\b"
    ),
    "S3 bucket": re.compile(r"s3://[a-z0-9][a-z0-9.-]{2,}"),
}


@pytest.fixture
def no_aws_calls(monkeypatch: pytest.MonkeyPatch) -> None:
    """Any botocore API call while the DAGs are parsed is an error (the scheduler parses them constantly)."""

    def refuse(self: object, operation_name: str, api_params: dict[str, object]) -> None:
        raise AssertionError(f"AWS call {operation_name} at DAG parse time")

    monkeypatch.setattr(botocore.client.BaseClient, "_make_api_call", refuse)
    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:9")  # nothing listens there


def parse(path: Path) -> Any:
    """Import a DAG file the way the DAG processor does (a fresh module each time)."""
    spec = importlib.util.spec_from_file_location(f"dagfile_{path.stem}", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


# The benchmark's baseline DAG is held to the same bar (it runs in a real Airflow too).
DAG_FILES = sorted([*(REPO / "dags").glob("*.py"), *(REPO / "include" / "healthomics_bench" / "dags").glob("*.py")])


@pytest.mark.parametrize("path", DAG_FILES, ids=lambda p: p.name)
def test_every_dag_imports_without_aws(no_aws_calls: None, path: Path) -> None:
    from airflow.sdk import DAG

    dags = [v for v in vars(parse(path)).values() if isinstance(v, DAG)]
    assert dags, f"{path.name} defines no DAG"
    for dag in dags:
        dag.validate()
        assert dag.tasks


def test_the_flowcell_dag_shape(no_aws_calls: None) -> None:
    dag = parse(REPO / "dags" / "healthomics_flowcell.py").dag
    assert dag.dag_id == "healthomics_flowcell"
    tasks = {t.task_id: t for t in dag.tasks}
    assert tasks["qc_gate"].trigger_rule == "all_done"  # after every sample, whatever its state
    assert tasks["notify"].trigger_rule == "all_done"
    assert tasks["flowcell_outcome"].trigger_rule == "all_done"
    assert tasks["sample"].upstream_task_ids == {"sample_entries"}
    assert "sample" in tasks["qc_gate"].upstream_task_ids
    # The outcome is the samples' and QC's: pricing and the notification never delay it.
    assert {"costs", "notify"}.isdisjoint(tasks["flowcell_outcome"].get_flat_relative_ids(upstream=True))
    assert set(dag.params) >= {"manifest_uri", "manifest", "flowcell_id", "submission_mode", "dry_run"}


@pytest.mark.parametrize("path", SOURCES, ids=lambda p: str(p.relative_to(REPO)))
def test_nothing_account_specific_is_hard_coded(path: Path) -> None:
    text = path.read_text()
    found = [f"{what}: {m.group(0)}" for what, pattern in HARD_CODED.items() for m in pattern.finditer(text)]
    assert not found, f"{path.relative_to(REPO)} hard-codes {found}"


def test_the_plugin_loads_its_preloads_and_registers_every_link(no_aws_calls: None) -> None:
    """What Airflow's plugin manager does with plugins/healthomics_plugin.py at component start:
    import the file from the plugins folder."""
    spec = importlib.util.spec_from_file_location("healthomics_plugin", REPO / "plugins" / "healthomics_plugin.py")
    assert spec is not None and spec.loader is not None
    plugin = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(plugin)
    for module in plugin.PRELOADED_MODULES:
        assert importlib.util.find_spec(module) is not None, module
    links = {type(link).__name__ for link in plugin.HealthOmicsPlugin.operator_extra_links}
    assert links == {"HealthOmicsRunLink", "HealthOmicsRunLogsLink", "HealthOmicsRunOutputLink", "HealthOmicsBatchLink"}
