"""Run cost estimates against the emulator's task records and the local stack (no Price List API there)."""

from __future__ import annotations

from typing import Any

import pytest

from healthomics.cost.prices import shipped_table
from healthomics.hooks.omics import HealthOmicsHook
from healthomics.hooks.pricing import HealthOmicsPricingHook
from omics_emulator import EmulatorAdmin

from .helpers import REGION, expected_cost

ONE_RUN = 60 + 300 + 3600 + 120  # the default profile's phases, emulated seconds


@pytest.mark.parametrize("storage", ["STATIC", "DYNAMIC"])
def test_a_runs_cost_is_its_tasks_and_storage_at_list_prices(
    airflow_env: dict[str, str], emulator: EmulatorAdmin, omics: Any, start_run: Any, storage: str
) -> None:
    emulator.configure(profiles={"default": {"jitter": 0.1}})
    emulator.add_fault(action="fail", match={"name": "^NA12891$"}, failureReason="OUT_OF_MEMORY_ERROR")
    runs = [start_run(storageType=storage), start_run(name="NA12891", storageType=storage)]
    emulator.advance(ONE_RUN * 2)

    # No Price List API on the local stack: the shipped table, saying why.
    prices = HealthOmicsPricingHook(aws_conn_id="aws_default", region_name=REGION).price_table(REGION)
    assert prices.instances == shipped_table(REGION).instances
    assert "the Price List API failed" in prices.source, prices.source

    hook = HealthOmicsHook(aws_conn_id="aws_default")
    for started in runs:
        run = hook.get_run(started["id"])
        cost = hook.run_cost(run, prices)
        assert cost.unpriced == []
        assert cost.total_usd == pytest.approx(expected_cost(omics, started["id"]))
        assert cost.storage_type == storage
    completed, failed = (hook.run_cost(hook.get_run(r["id"]), prices) for r in runs)
    # The failed run stopped halfway: it ran fewer tasks and cost less, but not nothing.
    assert 0 < failed.total_usd < completed.total_usd  # type: ignore[operator]
    assert failed.tasks < completed.tasks == 4
