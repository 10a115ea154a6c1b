"""HealthOmics list prices for one Region: from the AWS Price List API, or the table shipped here.

The Price List API (``pricing`` client, service code ``AmazonOmics``) lists one product per
omics instance type (``resourceType`` ``omics.m.xlarge`` ..., unit ``Instance-hrs``), ``Run
Storage`` and ``Dynamic Run Storage`` (unit ``GB-Hours`` or ``GB-Mo``), with on-demand terms in
USD. :func:`price_list_table` reads every product of a Region in one paginated call.
``prices.json`` beside this module holds the same for the Regions it lists, with its source and
date: the table used where the Price List API cannot be reached (a private network, no
``pricing:GetProducts`` permission).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from functools import cache
from importlib import resources
from typing import Any

SERVICE_CODE = "AmazonOmics"
STATIC_STORAGE = "Run Storage"
DYNAMIC_STORAGE = "Dynamic Run Storage"
HOURS_PER_MONTH = 730.0  # AWS prices GB-months as 730 hours


class PriceError(ValueError):
    """No usable price table: the Region is unknown, or the Price List answer cannot be read."""


@dataclass(frozen=True)
class PriceTable:
    """USD list prices of one Region: per instance hour, per GiB-hour of run storage, per Ready2Run run."""

    region: str
    source: str
    instances: dict[str, float] = field(default_factory=dict)
    static_storage_gib_hour: float | None = None
    dynamic_storage_gib_hour: float | None = None
    ready2run: dict[str, float] = field(default_factory=dict)

    def instance_hourly(self, instance_type: str) -> float | None:
        return self.instances.get(instance_type)

    def ready2run_price(self, workflow_id: str) -> float | None:
        return self.ready2run.get(workflow_id)


@cache
def _shipped() -> dict[str, Any]:
    text = resources.files("healthomics.cost").joinpath("prices.json").read_text()
    document: dict[str, Any] = json.loads(text)
    return document


def shipped_table(region: str) -> PriceTable:
    """The table shipped with the package for ``region``; PriceError if it has none."""
    document = _shipped()
    regions: dict[str, Any] = document["regions"]
    if region not in regions:
        raise PriceError(f"no shipped HealthOmics price table for {region} (it has {', '.join(sorted(regions))})")
    entry = regions[region]
    return PriceTable(
        region=region,
        source=f"shipped table ({document['source']}, {document['date']})",
        instances={k: float(v) for k, v in entry["instances"].items()},
        static_storage_gib_hour=entry.get("static_storage_gib_hour"),
        dynamic_storage_gib_hour=entry.get("dynamic_storage_gib_hour"),
        ready2run={k: float(v) for k, v in entry.get("ready2run", {}).items()},
    )


def _on_demand_usd(product: dict[str, Any]) -> tuple[float, str] | None:
    for term in product.get("terms", {}).get("OnDemand", {}).values():
        for dimension in term.get("priceDimensions", {}).values():
            usd = dimension.get("pricePerUnit", {}).get("USD")
            if usd is not None:
                return float(usd), str(dimension.get("unit") or "")
    return None


def parse_price_list(region: str, price_list: list[str | dict[str, Any]]) -> PriceTable:
    """A table from GetProducts' ``PriceList`` entries (JSON strings) of one Region."""
    instances: dict[str, float] = {}
    storage: dict[str, float] = {}
    for raw in price_list:
        product = json.loads(raw) if isinstance(raw, str) else raw
        resource_type = str(product.get("product", {}).get("attributes", {}).get("resourceType") or "")
        price = _on_demand_usd(product)
        if not resource_type or price is None:
            continue
        usd, unit = price
        if resource_type.startswith("omics."):
            instances[resource_type] = usd
        elif resource_type in (STATIC_STORAGE, DYNAMIC_STORAGE):
            storage[resource_type] = usd / HOURS_PER_MONTH if "mo" in unit.lower() else usd
    if not instances:
        raise PriceError(f"the Price List API lists no HealthOmics instance prices for {region}")
    return PriceTable(
        region=region,
        source=f"AWS Price List API ({SERVICE_CODE}, {region})",
        instances=instances,
        static_storage_gib_hour=storage.get(STATIC_STORAGE),
        dynamic_storage_gib_hour=storage.get(DYNAMIC_STORAGE),
    )


def price_list_table(pricing_client: Any, region: str) -> PriceTable:
    """Every HealthOmics product of ``region`` from the Price List API (``pricing`` client)."""
    entries: list[str | dict[str, Any]] = []
    paginator = pricing_client.get_paginator("get_products")
    filters = [{"Type": "TERM_MATCH", "Field": "regionCode", "Value": region}]
    for page in paginator.paginate(ServiceCode=SERVICE_CODE, Filters=filters, FormatVersion="aws_v1"):
        entries.extend(page.get("PriceList", []))
    return parse_price_list(region, entries)
