"""``make bench``: the ``healthomics_flowcell`` DAG against the per-run polling baseline.

Both run in a real local Airflow against the HealthOmics emulator, one after the other, on
the same machine, for flowcells of several sizes; the results are ratios of the two.
See ``python -m healthomics_bench --help`` and docs/benchmarks.md.
"""
