"""Agent tasks for marketplace (site queues)."""
