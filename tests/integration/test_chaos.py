"""A reduced, seeded run of the fault suite (``make chaos`` is the full one).

The multi-node deployment (Celery, PostgreSQL, Redis, two workers) runs a 20-sample flowcell
while three manifests land in S3 (one announced twice) and every run's status events are
archived and called back, and the seeded schedule strikes: 5 % of HealthOmics calls fail
with a 500, a throttling storm, a worker and the triggerer SIGKILLed, moto off the network,
the callback receiver down. Every figure must be at its target.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from healthomics_chaos.__main__ import ChaosConfig, passed, render, run
from local_airflow.services import POSTGRES, REDIS, reachable

pytestmark = [
    pytest.mark.cluster,
    pytest.mark.skipif(
        not (reachable(POSTGRES) and reachable(REDIS)),
        reason="needs PostgreSQL on 127.0.0.1:5432 and Redis on 127.0.0.1:6379 (the development machines have both)",
    ),
]


@pytest.mark.timeout(900)
def test_a_reduced_chaos_run_loses_nothing_and_duplicates_nothing(tmp_path: Path) -> None:
    config = ChaosConfig(
        seed=11,
        samples=20,
        manifests=3,
        sample_run_hours=2,
        limit=780,
        landing_gap=10,
        fault_start=30,
        fault_gap=40,
        moto_outage=20,
        receiver_outage=20,
        storm=20,
        kills=("worker-1", "triggerer"),
        workdir=tmp_path / "chaos",
    )
    results = run(config)
    table = render(results)
    assert passed(results), table
    runs = results["runs_per_sample"]
    assert runs["distribution"] == {1: 20 + 3 * 3}, table
    assert results["events"]["emitted"] == results["events"]["archived"] > 0, table
    assert all(f.get("error") is None for f in results["faults"]), table
