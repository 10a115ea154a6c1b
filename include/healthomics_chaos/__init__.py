"""The fault suite (``make chaos``): the multi-node deployment under seeded faults, with figures.

Development code, like the benchmark: it drives the local stack and a local Airflow and is
never imported by the runtime package.
"""
