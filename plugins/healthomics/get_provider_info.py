"""The provider metadata Airflow reads through the ``apache_airflow_provider`` entry point.

With it, ``airflow providers list`` shows the package, its extra links are registered without
the plugin file, and ``airflow config list`` shows the ``[healthomics]`` options with their
defaults.
"""

from __future__ import annotations

from typing import Any

from healthomics import __version__
from healthomics.settings import OPTIONS, SECTION

INTEGRATION = "AWS HealthOmics"


def get_provider_info() -> dict[str, Any]:
    return {
        "package-name": "healthomics-airflow",
        "name": "AWS HealthOmics",
        "description": "Runs AWS HealthOmics workflows for whole sequencing flowcells and cohorts: run batches, "
        "deferrable waits that share one poll per batch, QC, reports, S3-sensed runs and re-runs.",
        "versions": [__version__],
        "integrations": [
            {
                "integration-name": INTEGRATION,
                "external-doc-url": "https://aws.amazon.com/healthomics/",
                "tags": ["aws"],
            }
        ],
        "hooks": [
            {
                "integration-name": INTEGRATION,
                "python-modules": ["healthomics.hooks.omics", "healthomics.hooks.pricing"],
            }
        ],
        "operators": [
            {
                "integration-name": INTEGRATION,
                "python-modules": ["healthomics.operators.run", "healthomics.operators.batch"],
            }
        ],
        "sensors": [{"integration-name": INTEGRATION, "python-modules": ["healthomics.sensors.run"]}],
        "triggers": [
            {
                "integration-name": INTEGRATION,
                "python-modules": [
                    "healthomics.triggers.run",
                    "healthomics.triggers.batch",
                    "healthomics.triggers.quota",
                    "healthomics.triggers.micro_batch",
                ],
            }
        ],
        "extra-links": [
            "healthomics.links.omics.HealthOmicsRunLink",
            "healthomics.links.omics.HealthOmicsRunLogsLink",
            "healthomics.links.omics.HealthOmicsRunOutputLink",
            "healthomics.links.omics.HealthOmicsBatchLink",
        ],
        # The package uses the amazon provider's "aws" connection type (aws_default) and, for run
        # event callbacks, the http provider's "http" type; it defines none of its own.
        "connection-types": [],
        "config": {
            SECTION: {
                "description": "AWS HealthOmics: what the package's DAG files are built from when parsed "
                "(Variables hold what tasks read when they run; see docs/configuration.md).",
                "options": {
                    name: {
                        "description": option.description,
                        "version_added": "0.1.0",
                        "type": option.type,
                        "example": option.example,
                        "default": option.default,
                    }
                    for name, option in OPTIONS.items()
                },
            }
        },
    }
