"""Hook for HealthOmics list prices: the AWS Price List API, else the table shipped with the package."""

from __future__ import annotations

import dataclasses
import threading
import time
from typing import Any

from airflow.providers.amazon.aws.hooks.base_aws import AwsBaseHook
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

from healthomics import settings
from healthomics.cost.prices import PriceError, PriceTable, price_list_table, shipped_table
from healthomics.utils.text import cut

# Prices change a few times a year: a process asks the Price List API once a day per Region.
CACHE_SECONDS = 24 * 3600
# Fail fast where the Price List endpoint is not reachable (a private network): the shipped table then.
PRICING_CONFIG = Config(retries={"mode": "standard", "total_max_attempts": 3}, connect_timeout=5, read_timeout=30)

_cache: dict[tuple[str | None, str], tuple[float, PriceTable]] = {}
_cache_lock = threading.Lock()


class HealthOmicsPricingHook(AwsBaseHook):
    """
    HealthOmics list prices of a Region, for run cost estimates.

    With ``[healthomics] price_source = price_list_api`` (the default) prices come from the AWS
    Price List API (``pricing:GetProducts``; its endpoint in ``[healthomics] price_list_region``,
    else in the connection's Region),
    cached for a day per process; where that cannot be reached or read, from the table shipped
    with the package (its source and date travel with every figure). ``shipped`` uses the table
    only.

    Additional arguments (such as ``aws_conn_id``) are passed down to
    :class:`~airflow.providers.amazon.aws.hooks.base_aws.AwsBaseHook`.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs["client_type"] = "pricing"
        kwargs["region_name"] = kwargs.get("region_name") or settings.option("price_list_region")
        kwargs.setdefault("config", PRICING_CONFIG)
        super().__init__(*args, **kwargs)

    def price_table(self, region: str) -> PriceTable:
        """The prices of ``region``; :class:`~healthomics.cost.prices.PriceError` if none are known."""
        if settings.option("price_source") != "price_list_api":
            return shipped_table(region)
        key = (self.aws_conn_id, region)
        with _cache_lock:
            cached = _cache.get(key)
        if cached and time.monotonic() - cached[0] < CACHE_SECONDS:
            return cached[1]
        try:
            table = price_list_table(self.conn, region)
        except (ClientError, BotoCoreError, PriceError) as err:
            reason = cut(" ".join(str(err).split()), 160)  # one line: it goes into the report's heading
            self.log.warning("Prices for %s from the Price List API failed (%s): the shipped table", region, reason)
            shipped = shipped_table(region)
            return dataclasses.replace(shipped, source=f"{shipped.source}; the Price List API failed: {reason}")
        with _cache_lock:
            _cache[key] = (time.monotonic(), table)
        return table
