"""HealthOmics status events (EventBridge via SQS): archive, enrich, forward; wake waiting triggers."""
