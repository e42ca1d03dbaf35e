"""Entry module for ``celery -A pollen_agent.worker_entry worker``: configures the app from the config file."""

from __future__ import annotations

from typing import Any

from celery.signals import worker_process_init

from pollen_agent import runtime
from pollen_agent.celery_app import configure
from pollen_agent.threads import apply_torch_threads

app = configure(runtime.config())


@worker_process_init.connect
def _cap_torch_threads(**_: Any) -> None:
    # In each pool process, where tasks run, before any of them touches torch.
    apply_torch_threads()
