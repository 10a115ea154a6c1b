"""docker-compose.yaml cannot be started here (no Docker engine); keep it honest instead."""

from __future__ import annotations

import re
from pathlib import Path

import yaml

from omics_emulator.__main__ import parse_args

REPO = Path(__file__).resolve().parents[2]


def compose() -> dict:  # type: ignore[type-arg]
    return dict(yaml.safe_load((REPO / "docker-compose.yaml").read_text()))


def pinned(package: str) -> str:
    match = re.search(rf"^{re.escape(package)}==([^\s;]+)", (REPO / "constraints.txt").read_text(), re.M)
    assert match, f"{package} is not pinned in constraints.txt"
    return match.group(1)


def test_moto_image_matches_the_pinned_moto() -> None:
    assert compose()["services"]["moto"]["image"] == f"motoserver/moto:{pinned('moto')}"


def test_emulator_command_line_is_one_the_emulator_accepts() -> None:
    command = compose()["services"]["omics-emulator"]["command"][-1]
    emulator_part = command.split("python -m omics_emulator", 1)[1].split()
    args = parse_args(emulator_part)
    assert (args.host, args.port, args.s3_endpoint_url) == ("0.0.0.0", 9100, "http://moto:5000")
    assert "-c constraints.txt" in command  # same pinned versions as everywhere else


AIRFLOW_SERVICES = {
    "airflow-apiserver": "api-server",
    "airflow-scheduler": "scheduler",
    "airflow-dag-processor": "dag-processor",
    "airflow-worker": "celery worker",
    "airflow-triggerer": "triggerer",
}


def test_the_airflow_services_of_the_official_shape_are_all_there() -> None:
    services = compose()["services"]
    assert set(services) == {*AIRFLOW_SERVICES, "airflow-init", "postgres", "redis", "moto", "omics-emulator"}
    for name, command in AIRFLOW_SERVICES.items():
        assert services[name]["command"] == command
        assert services[name]["depends_on"]["airflow-init"] == {"condition": "service_completed_successfully"}


def test_the_image_is_the_pinned_airflow_with_the_projects_requirements() -> None:
    common = compose()["x-airflow-common"]
    dockerfile = common["build"]["dockerfile_inline"]
    assert dockerfile.startswith(f"FROM apache/airflow:{pinned('apache-airflow')}-python3.11\n")
    assert "pip install --no-cache-dir -r /opt/healthomics-airflow/requirements.txt" in dockerfile
    assert "-c /opt/healthomics-airflow/constraints.txt" in dockerfile
    assert {"./dags:/opt/airflow/dags", "./plugins:/opt/airflow/plugins", "./include:/opt/airflow/include"} <= set(
        common["volumes"]
    )


def test_celery_postgres_redis_and_no_secrets_in_the_file() -> None:
    env = compose()["x-airflow-common"]["environment"]
    assert env["AIRFLOW__CORE__EXECUTOR"] == "CeleryExecutor"
    assert env["AIRFLOW__CELERY__BROKER_URL"] == "redis://redis:6379/0"
    assert env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"].startswith("postgresql+psycopg2://airflow:${POSTGRES_PASSWORD:?")
    assert env["AIRFLOW__API_AUTH__JWT_SECRET"].startswith("${AIRFLOW_JWT_SECRET:?")
    assert compose()["services"]["postgres"]["environment"]["POSTGRES_PASSWORD"].startswith("${POSTGRES_PASSWORD:?")
    # Every secret-like setting comes from the environment (moto's fake "testing" keys aside).
    text = (REPO / "docker-compose.yaml").read_text()
    settings = re.findall(r"^\s*([A-Z_]*(?:SECRET|PASSWORD|FERNET)[A-Z_]*):\s*(\S+)", text, re.M)
    assert settings and all(value.startswith("${") or value == "testing" for _, value in settings), settings
    # The connection points at the local stack by the services' names, with moto's fake keys.
    connection = env["AIRFLOW_CONN_AWS_DEFAULT"]
    assert '"endpoint_url": "http://moto:5000"' in connection and "http://omics-emulator:9100" in connection
