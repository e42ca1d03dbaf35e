"""Entry module for ``celery -A pollen_agent.worker_entry worker``: configures the app from the config file."""

from __future__ import annotations

from pollen_agent import runtime
from pollen_agent.celery_app import configure

app = configure(runtime.config())
