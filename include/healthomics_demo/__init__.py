"""The end-to-end demo: a 12-sample flowcell through the healthomics_flowcell DAG on the local stack."""
