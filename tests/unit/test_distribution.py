"""The runtime wheel holds the package `healthomics` and nothing of the development code, and it
declares itself to Airflow as a provider."""

from __future__ import annotations

import email
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from healthomics.get_provider_info import get_provider_info
from healthomics.settings import OPTIONS

REPO = Path(__file__).resolve().parents[2]
UV = Path(sys.executable).with_name("uv")


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> zipfile.ZipFile:
    if not UV.exists():
        pytest.skip("building the wheel takes uv (the development virtualenv has it)")
    out = tmp_path_factory.mktemp("dist")
    # What a release does: a wheel from the repository root, in an isolated build environment.
    subprocess.run([str(UV), "build", "--wheel", "--out-dir", str(out), str(REPO)], check=True, capture_output=True)
    [built] = out.glob("healthomics_airflow-*.whl")
    return zipfile.ZipFile(built)


def test_the_wheel_ships_the_runtime_package_with_its_data_and_no_development_code(wheel: zipfile.ZipFile) -> None:
    names = wheel.namelist()
    top_level = {name.split("/")[0] for name in names if not name.split("/")[0].endswith(".dist-info")}
    assert top_level == {"healthomics"}
    assert "healthomics/manifest/schema/flowcell-manifest.schema.json" in names
    assert "healthomics/waiters/omics.json" in names
    assert not [n for n in names if "tests" in n.split("/") or n.endswith(".pyc")]


def test_the_wheel_declares_its_runtime_dependencies_and_its_provider_entry_point(wheel: zipfile.ZipFile) -> None:
    dist_info = next(n.split("/")[0] for n in wheel.namelist() if n.endswith(".dist-info/METADATA"))
    metadata = email.message_from_bytes(wheel.read(f"{dist_info}/METADATA"))
    declared = metadata.get_all("Requires-Dist") or []
    requires = {r.split(">=")[0].split("[")[0]: r for r in declared if "extra ==" not in r}
    # matplotlib (the report's timeline picture) and the OpenLineage provider only with their
    # extras: MWAA's images lack both.
    assert sorted(r for r in declared if "extra ==" in r) == [
        'apache-airflow-providers-openlineage>=2.16; extra == "lineage"',
        'matplotlib>=3.8; extra == "timeline"',
    ]
    assert requires["botocore"] == "botocore>=1.42.74"  # the first model with StartRunBatch
    assert requires["apache-airflow-providers-amazon"].startswith("apache-airflow-providers-amazon[aiobotocore]>=")
    assert {"apache-airflow", "boto3", "pydantic", "jsonschema", "regex"} <= set(requires)
    assert not {"moto", "pytest", "playwright", "matplotlib", "apache-airflow-providers-openlineage"} & set(requires)
    entry_points = wheel.read(f"{dist_info}/entry_points.txt").decode()
    assert "[apache_airflow_provider]\nprovider_info = healthomics.get_provider_info:get_provider_info" in entry_points


def test_the_provider_info_names_real_classes_and_every_option() -> None:
    import importlib

    info = get_provider_info()
    assert info["package-name"] == "healthomics-airflow"
    for path in info["extra-links"]:
        module, _, name = path.rpartition(".")
        assert hasattr(importlib.import_module(module), name), path
    for kind in ("hooks", "operators", "sensors", "triggers"):
        for module in info[kind][0]["python-modules"]:
            importlib.import_module(module)
    options = info["config"]["healthomics"]["options"]
    assert set(options) == set(OPTIONS)
    assert options["poll_seconds"]["default"] == "60"


def test_the_configuration_page_lists_every_option_with_its_default() -> None:
    page = (REPO / "docs" / "configuration.md").read_text()
    for name, option in OPTIONS.items():
        assert f"| `{name}` | {f'`{option.default}`' if option.default else '—'} |" in page, name


def test_airflow_lists_the_provider_and_its_links(tmp_path: Path) -> None:
    env = {"AIRFLOW_HOME": str(tmp_path), "PATH": "/usr/bin:/bin"}
    airflow = [sys.executable, "-m", "airflow"]
    providers = subprocess.run([*airflow, "providers", "list"], env=env, capture_output=True, text=True, timeout=120)
    assert "healthomics-airflow" in providers.stdout, providers.stderr[-2000:]
    links = subprocess.run([*airflow, "providers", "links"], env=env, capture_output=True, text=True, timeout=120)
    assert "healthomics.links.omics.HealthOmicsRunLink" in links.stdout, links.stderr[-2000:]
