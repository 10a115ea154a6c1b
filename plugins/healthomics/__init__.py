"""Airflow provider-style package for AWS HealthOmics (hooks, operators, triggers, ...)."""

__version__ = "0.1.0"
