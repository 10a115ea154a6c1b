"""Re-run past flowcells: pick them, decide per sample what to run again, trigger the flowcell DAG."""
