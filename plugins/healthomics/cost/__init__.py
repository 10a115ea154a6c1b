"""Run cost estimates: HealthOmics list prices and what a run's tasks and storage cost (no AWS calls)."""
