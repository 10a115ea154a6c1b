"""The flowcell DAG on Airflow's distributed setup: CeleryExecutor, PostgreSQL, Redis, two workers.

Separate processes as in production: api-server, scheduler, dag-processor, triggerer and two
Celery workers, PostgreSQL as the metadata database and Redis as the broker (the services on
127.0.0.1; skipped with the reason when they are not there). A 50-sample flowcell is triggered
through the REST API; its samples run on both workers and wait in the triggerer; one worker
and the triggerer are killed mid-run and started again; the run still succeeds, with exactly
one HealthOmics run per sample.
"""

from __future__ import annotations

import shutil
import time
from collections.abc import Iterator
from typing import Any

import pytest

from devkit.waiting import wait_until
from local_airflow.deployment import LocalAirflow
from local_airflow.services import POSTGRES, REDIS, fresh_postgres_database, fresh_redis_broker, reachable
from local_aws.stack import LocalAWS
from omics_emulator import EmulatorAdmin

from .conftest import REPO, ROLE_ARN
from .flowcells import lab_flowcell

DAG_ID = "healthomics_flowcell"
SAMPLES = [f"S{i:03d}" for i in range(50)]
pytestmark = [
    pytest.mark.cluster,
    pytest.mark.skipif(
        not (reachable(POSTGRES) and reachable(REDIS)),
        reason="needs PostgreSQL on 127.0.0.1:5432 and Redis on 127.0.0.1:6379 (the development machines have both)",
    ),
]


@pytest.fixture(scope="module")
def database() -> Iterator[str]:
    with fresh_postgres_database("airflow_multinode") as url:
        yield url


@pytest.fixture(scope="module")
def broker() -> Iterator[str]:
    with fresh_redis_broker(11) as url:
        yield url


@pytest.fixture(scope="module")
def cluster(
    local_aws: LocalAWS, database: str, broker: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[LocalAirflow]:
    home = tmp_path_factory.mktemp("multinode")
    dags = home / "dags"
    dags.mkdir()
    for source in (REPO / "dags").glob("*.py"):
        shutil.copy(source, dags)
    env = {
        **local_aws.env(),
        "AIRFLOW__HEALTHOMICS__POLL_SECONDS": "2",
        "AIRFLOW_VAR_HEALTHOMICS_RUN_ROLE_ARN": ROLE_ARN,
        # Notice a task whose worker died within a minute, not five.
        "AIRFLOW__SCHEDULER__TASK_INSTANCE_HEARTBEAT_TIMEOUT": "60",
        # A task the killed worker had taken from the broker but not started stays "queued"
        # (Redis redelivers it only after the visibility timeout, a day by default): the
        # scheduler sends it again after two minutes instead of ten. (The same setting is the
        # lifetime of a queued task's token, so not much shorter.)
        "AIRFLOW__SCHEDULER__TASK_QUEUED_TIMEOUT": "120",
        "AIRFLOW__SCHEDULER__TASK_QUEUED_TIMEOUT_CHECK_INTERVAL": "15",
    }
    with LocalAirflow(
        workdir=home,
        dags_folder=dags,
        env=env,
        database_url=database,
        executor="CeleryExecutor",
        celery_workers=2,
        broker_url=broker,
    ) as airflow:
        airflow.unpause(DAG_ID)
        yield airflow


@pytest.fixture
def flowcell(emulator: EmulatorAdmin, omics: Any, s3: Any) -> dict[str, Any]:
    # Sample runs last about four minutes of real time (60x): on a busy 2-core machine, 50 sample
    # tasks take a minute and a half to defer, and half of them must be waiting at once.
    emulator.configure(
        time_scale=60,
        profiles={"default": {"running_seconds": 14400, "jitter": 0.1}, "cohort-qc": {"running_seconds": 300}},
    )
    uri = lab_flowcell(omics, s3, "FC-MULTI", SAMPLES)
    time.sleep(1)  # the workflows become ACTIVE in emulated time
    return {"manifest_uri": uri}


def sample_tis(airflow: LocalAirflow, run_id: str) -> list[dict[str, Any]]:
    return [ti for ti in airflow.task_instances(DAG_ID, run_id) if ti["task_id"] == "sample"]


@pytest.mark.timeout(1200)
def test_a_flowcell_survives_losing_a_worker_and_the_triggerer(
    cluster: LocalAirflow, flowcell: dict[str, Any], omics: Any
) -> None:
    run_id = cluster.trigger(DAG_ID, conf=flowcell)

    # Wait until most samples are deferred: their waits are held in the triggerer, not in worker slots.
    def deferred() -> int:
        return sum(ti["state"] == "deferred" for ti in sample_tis(cluster, run_id))

    wait_until(
        lambda: deferred() >= len(SAMPLES) // 2,
        timeout=300,
        interval=2,
        what=lambda: f"only {deferred()} sample tasks deferred",
    )

    # Lose a worker and the triggerer without warning, then bring them back.
    cluster.kill_component("worker-1")
    cluster.kill_component("triggerer")
    time.sleep(5)
    cluster.start_component("triggerer")
    cluster.start_component("worker-1")

    finished = cluster.wait_for_dag_run(DAG_ID, run_id, timeout=900)
    tis = sample_tis(cluster, run_id)
    assert finished["state"] == "success", {ti["rendered_map_index"]: ti["state"] for ti in tis}
    assert sorted(ti["rendered_map_index"] for ti in tis) == SAMPLES
    # Both workers ran samples (each reports its own loopback address as host name).
    hosts = {ti["hostname"] for ti in tis}
    assert {"127.0.0.2", "127.0.0.3"} <= hosts, hosts

    # Exactly one HealthOmics run per sample, and one QC run: nothing was submitted twice.
    runs = [r for page in omics.get_paginator("list_runs").paginate() for r in page["items"]]
    names = sorted(r["name"] for r in runs if r["name"].startswith("FC-MULTI-"))
    assert names == sorted([*(f"FC-MULTI-{s}" for s in SAMPLES), "FC-MULTI-qc"])
