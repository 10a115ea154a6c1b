"""The flowcell pipeline's logic (the DAG file only wires these together)."""
