"""Run cost estimates: the billing rules, the Price List API's answer, the shipped table (Stubber, no servers)."""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
from typing import Any

import pytest
from botocore.stub import Stubber
from hypothesis import given
from hypothesis import strategies as st

from healthomics.cost.estimate import billed_static_gib, run_cost, task_cost
from healthomics.cost.prices import PriceError, PriceTable, parse_price_list, shipped_table
from healthomics.flowcell.costs import price_table_of
from healthomics.hooks import pricing as pricing_module
from healthomics.hooks.pricing import HealthOmicsPricingHook

START = dt.datetime(2026, 12, 1, 8, 0, tzinfo=dt.UTC)
PRICES = PriceTable(
    region="us-east-1",
    source="test",
    instances={"omics.c.large": 0.1, "omics.m.2xlarge": 0.5},
    static_storage_gib_hour=0.0002,
    dynamic_storage_gib_hour=0.0004,
    ready2run={"9500764": 10.0},
)


def task(name: str, instance: str, seconds: float | None, **extra: Any) -> dict[str, Any]:
    record: dict[str, Any] = {"name": name, "instanceType": instance, "cacheHit": False, **extra}
    if seconds is not None:
        record.update(startTime=START, stopTime=START + dt.timedelta(seconds=seconds))
    return record


def run(hours: float, **extra: Any) -> dict[str, Any]:
    return {"id": "1234567", "startTime": START, "stopTime": START + dt.timedelta(hours=hours), **extra}


def test_tasks_are_billed_by_the_second_a_minute_at_least_and_cache_hits_cost_nothing() -> None:
    tasks = [
        task("fastqc", "omics.c.large", 30),  # billed as 60 s
        task("bwa", "omics.m.2xlarge", 7200),
        task("cached", "omics.m.2xlarge", 7200, cacheHit=True),
        task("never_started", "omics.m.2xlarge", None),
    ]
    cost = run_cost(run(3, storageType="STATIC", storageCapacity=1000), tasks, PRICES)
    assert cost.compute_usd == pytest.approx(0.1 * 60 / 3600 + 0.5 * 2)
    # STATIC storage: 1,000 GiB requested is billed as 1,200, for the run's three hours.
    assert (cost.billed_storage_gib, cost.storage_hours) == (1200, 3)
    assert cost.storage_usd == pytest.approx(1200 * 3 * 0.0002)
    assert cost.total_usd == pytest.approx(cost.compute_usd + cost.storage_usd)
    assert cost.tasks == 4 and cost.unpriced == []
    assert list(cost.top_tasks) == ["bwa", "fastqc"]  # what cost something, costliest first
    as_dict = cost.to_dict()
    assert as_dict["estimate"] is True and as_dict["total_usd"] == cost.total_usd
    assert json.loads(json.dumps(as_dict)) == as_dict


def test_dynamic_storage_is_billed_at_what_the_run_used_and_unknown_without_it() -> None:
    used = run_cost(run(2, storageType="DYNAMIC", storageCapacity=350), [], PRICES)
    assert used.storage_usd == pytest.approx(350 * 2 * 0.0004)
    unknown = run_cost(run(2, storageType="DYNAMIC"), [], PRICES)
    assert unknown.storage_usd is None and unknown.total_usd is None
    assert unknown.unpriced == ["dynamic run storage (the run did not report what it used)"]


def test_an_instance_without_a_price_leaves_compute_unknown_and_says_which() -> None:
    cost = run_cost(run(1, storageCapacity=1200), [task("gpu", "omics.g5.xlarge", 600)], PRICES)
    assert cost.compute_usd is None and cost.total_usd is None
    assert cost.unpriced == ["instance type omics.g5.xlarge (task gpu)"]
    assert task_cost(task("gpu", "omics.g5.xlarge", 600), PRICES) is None


def test_a_ready2run_run_costs_its_fixed_price_when_the_table_has_it() -> None:
    priced = run_cost(run(5, workflowType="READY2RUN", workflowId="9500764"), [], PRICES)
    assert (priced.total_usd, priced.storage_type) == (10.0, "READY2RUN")
    unknown = run_cost(run(5, workflowType="READY2RUN", workflowId="1"), [], PRICES)
    assert unknown.total_usd is None and "Ready2Run workflow 1" in unknown.unpriced[0]


@given(st.integers(min_value=0, max_value=100_000))
def test_static_storage_is_billed_in_whole_steps_of_1200_gib(capacity: int) -> None:
    billed = billed_static_gib(capacity)
    assert billed % 1200 == 0 and billed >= max(capacity, 1200) and billed < max(capacity, 1) + 1200


def product(resource_type: str, usd: str, unit: str) -> str:
    dimension = {"unit": unit, "pricePerUnit": {"USD": usd}}
    return json.dumps(
        {
            "product": {"productFamily": "Compute", "attributes": {"resourceType": resource_type}},
            "terms": {"OnDemand": {"SKU.A": {"priceDimensions": {"SKU.A.B": dimension}}}},
        }
    )


PRICE_LIST = [
    product("omics.m.xlarge", "0.2592000000", "Instance-hrs"),
    product("Run Storage", "0.1400140000", "GB-Mo"),
    product("Dynamic Run Storage", "0.0004110000", "GB-Hours"),
    product("Ephemeral Storage", "0.01", "GB-Hours"),  # not a run's: ignored
]


def test_the_price_list_answer_becomes_a_table_with_hourly_storage_prices() -> None:
    table = parse_price_list("us-east-1", PRICE_LIST)
    assert table.instances == {"omics.m.xlarge": 0.2592}
    assert table.static_storage_gib_hour == pytest.approx(0.140014 / 730)
    assert table.dynamic_storage_gib_hour == pytest.approx(0.000411)
    assert table.source == "AWS Price List API (AmazonOmics, us-east-1)"
    with pytest.raises(PriceError, match="no HealthOmics instance prices for eu-west-3"):
        parse_price_list("eu-west-3", [product("Run Storage", "0.1", "GB-Mo")])


def test_the_shipped_table_has_its_source_and_date_and_refuses_unknown_regions() -> None:
    table = shipped_table("us-east-1")
    assert table.source.startswith("shipped table (") and "2026" in table.source
    assert {"omics.c.large", "omics.m.xlarge", "omics.r.8xlarge"} <= set(table.instances)
    assert table.static_storage_gib_hour and table.dynamic_storage_gib_hour
    with pytest.raises(PriceError, match="no shipped HealthOmics price table for mars-1"):
        shipped_table("mars-1")


@pytest.fixture
def pricing_hook(monkeypatch: pytest.MonkeyPatch) -> HealthOmicsPricingHook:
    monkeypatch.setenv(
        "AIRFLOW_CONN_PRICING_UNIT",
        json.dumps({"conn_type": "aws", "login": "testing", "password": "testing"}),
    )
    monkeypatch.setenv("AIRFLOW__HEALTHOMICS__PRICE_LIST_REGION", "us-east-1")
    monkeypatch.setattr(pricing_module, "_cache", {})
    return HealthOmicsPricingHook(aws_conn_id="pricing_unit")


GET_PRODUCTS = {
    "ServiceCode": "AmazonOmics",
    "Filters": [{"Type": "TERM_MATCH", "Field": "regionCode", "Value": "us-east-1"}],
    "FormatVersion": "aws_v1",
}


def test_prices_come_from_the_price_list_api_once_a_day(pricing_hook: HealthOmicsPricingHook) -> None:
    assert pricing_hook.conn.meta.region_name == "us-east-1"  # [healthomics] price_list_region
    with Stubber(pricing_hook.conn) as stub:
        stub.add_response("get_products", {"PriceList": PRICE_LIST, "FormatVersion": "aws_v1"}, GET_PRODUCTS)
        first = pricing_hook.price_table("us-east-1")
        again = pricing_hook.price_table("us-east-1")  # cached: no second call
        stub.assert_no_pending_responses()
    assert first is again and first.instances == {"omics.m.xlarge": 0.2592}


def test_without_the_price_list_api_the_shipped_table_says_why(pricing_hook: HealthOmicsPricingHook) -> None:
    with Stubber(pricing_hook.conn) as stub:
        stub.add_client_error("get_products", "AccessDeniedException", "not authorized to perform pricing:GetProducts")
        table = pricing_hook.price_table("us-east-1")
    assert table.instances == shipped_table("us-east-1").instances
    assert "the Price List API failed" in table.source and "AccessDeniedException" in table.source


def test_price_source_shipped_never_calls_the_api(
    pricing_hook: HealthOmicsPricingHook, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AIRFLOW__HEALTHOMICS__PRICE_SOURCE", "shipped")
    with Stubber(pricing_hook.conn):  # any call would fail: nothing is stubbed
        assert pricing_hook.price_table("us-east-1").source.startswith("shipped table")


def test_the_costs_result_carries_its_price_table_for_the_qc_run() -> None:
    table = shipped_table("us-east-1")
    carried = json.loads(json.dumps({"prices": dataclasses.asdict(table)}))  # through XCom
    assert price_table_of(carried) == table
    assert price_table_of({"runs": {}}) is None  # a result without it: the report fetches prices
    assert price_table_of({"prices": {**carried["prices"], "renamed": 1}}) is None  # another version's


def test_the_notification_prices_qc_at_the_carried_table_without_reading_prices_again(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from healthomics.flowcell import delivery
    from healthomics.hooks.omics import HealthOmicsHook

    monkeypatch.setenv("AIRFLOW_CONN_OMICS_UNIT", json.dumps({"conn_type": "aws", "login": "t", "password": "t"}))
    monkeypatch.setattr(delivery, "flowcell_prices", lambda hook: pytest.fail("read prices again"))
    carried = PriceTable(region="us-east-1", source="carried", instances={"omics.c.large": 10.0})
    t0 = dt.datetime(2026, 12, 1, 8, tzinfo=dt.UTC)
    run = {
        "id": "42",
        "status": "COMPLETED",
        "storageType": "DYNAMIC",
        "startTime": t0,
        "stopTime": t0 + dt.timedelta(hours=1),
    }
    task = {"taskId": "1", "status": "COMPLETED", "instanceType": "omics.c.large", "cpus": 2, "memory": 4}
    task |= {"startTime": t0, "stopTime": t0 + dt.timedelta(minutes=30)}
    hook = HealthOmicsHook(aws_conn_id="omics_unit", region_name="us-east-1")
    with Stubber(hook.conn) as stub:
        stub.add_response("get_run", run, {"id": "42"})
        stub.add_response("list_run_tasks", {"items": [task]}, {"id": "42"})
        entry = delivery._qc_cost(hook, {"run_id": "42"}, {"prices": dataclasses.asdict(carried)})
    assert entry is not None and entry["compute_usd"] == pytest.approx(5.0)  # half an hour at 10.0
