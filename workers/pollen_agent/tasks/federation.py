"""Agent tasks for federation (site queues)."""
