"""Registers the HealthOmics console/log/output links so the Airflow UI can render them."""

from __future__ import annotations

from airflow.plugins_manager import AirflowPlugin

from healthomics.links.omics import (
    HealthOmicsBatchLink,
    HealthOmicsRunLink,
    HealthOmicsRunLogsLink,
    HealthOmicsRunOutputLink,
)


class HealthOmicsPlugin(AirflowPlugin):
    name = "healthomics"
    operator_extra_links = [
        HealthOmicsRunLink(),
        HealthOmicsRunLogsLink(),
        HealthOmicsRunOutputLink(),
        HealthOmicsBatchLink(),
    ]
