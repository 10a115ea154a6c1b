"""Settings every test process needs before Airflow or boto3 are imported."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]

# A throwaway AIRFLOW_HOME so tests never read or write ~/airflow.
os.environ.setdefault("AIRFLOW_HOME", tempfile.mkdtemp(prefix="healthomics-airflow-home-"))
os.environ.setdefault("AIRFLOW__CORE__LOAD_EXAMPLES", "False")
os.environ.setdefault("AIRFLOW__CORE__DAGS_FOLDER", str(REPO / "dags"))
os.environ.setdefault("AIRFLOW__CORE__PLUGINS_FOLDER", str(REPO / "plugins"))

# Never reach real AWS from a test: fake credentials, no profiles, no instance metadata.
os.environ["AWS_ACCESS_KEY_ID"] = "testing"
os.environ["AWS_SECRET_ACCESS_KEY"] = "testing"
os.environ["AWS_DEFAULT_REGION"] = "us-east-1"
os.environ["AWS_CONFIG_FILE"] = os.devnull
os.environ["AWS_SHARED_CREDENTIALS_FILE"] = os.devnull
os.environ["AWS_EC2_METADATA_DISABLED"] = "true"
for variable in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_ENDPOINT_URL"):
    os.environ.pop(variable, None)


# The local AWS stack's fixtures (servers start only for the tests that ask for them).
pytest_plugins = ["tests.aws_stack"]

# Each test is in one tier (pyproject.toml lists them; make unit/emulator/integration/cluster/browser
# runs one). A module may name its own (cluster, browser); otherwise its folder decides.
TIERS = ("unit", "emulator", "integration", "cluster", "browser")


def pytest_collection_modifyitems(config: object, items: list[object]) -> None:
    import pytest

    for item in items:
        if any(item.get_closest_marker(tier) for tier in TIERS):  # type: ignore[attr-defined]
            continue
        folders = Path(str(getattr(item, "path", ""))).relative_to(REPO / "tests").parts[:-1]
        tier = folders[0] if folders and folders[0] in TIERS else "integration"
        item.add_marker(getattr(pytest.mark, tier))  # type: ignore[attr-defined]
