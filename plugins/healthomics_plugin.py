"""Registers the HealthOmics console/log/output links so the Airflow UI can render them.

With ``[core] lazy_load_plugins = False`` every Airflow component imports this module at
start, and with it the provider layer below (boto3, the amazon provider's hooks, the
operators, triggers and the flowcell DAG's tasks). LocalExecutor workers and Celery pool
processes fork every task from such a process, so a task starts with all of that already
imported instead of importing it again: the imports were about a sixth of a sample task's
time on a worker.
"""

from __future__ import annotations

import importlib

from airflow.plugins_manager import AirflowPlugin

from healthomics.links.omics import (
    HealthOmicsBatchLink,
    HealthOmicsRunLink,
    HealthOmicsRunLogsLink,
    HealthOmicsRunOutputLink,
)

# Preloaded for the tasks forked from this process (see above).
PRELOADED_MODULES = (
    "healthomics.flowcell.load",
    "healthomics.flowcell.qc",
    "healthomics.flowcell.delivery",
    "healthomics.flowcell.sample",
    "healthomics.operators.batch",
    "healthomics.operators.run",
)
for _module in PRELOADED_MODULES:
    importlib.import_module(_module)


class HealthOmicsPlugin(AirflowPlugin):
    name = "healthomics"
    operator_extra_links = [
        HealthOmicsRunLink(),
        HealthOmicsRunLogsLink(),
        HealthOmicsRunOutputLink(),
        HealthOmicsBatchLink(),
    ]
