"""The agent's Celery app: consumes only its own sites' queues, built for long GPU jobs.

- late acknowledgement, prefetch of one, and redelivery when a worker dies;
- JSON messages only;
- a visibility timeout longer than the longest job;
- a soft time limit plus a hard one.
"""

from __future__ import annotations

import os
from typing import Any

from celery import Celery

from pollen_agent.config import AgentConfig

# No fixups: Celery would otherwise set up Django whenever DJANGO_SETTINGS_MODULE is in the environment.
app = Celery("pollen-agent", fixups=[])


def _transport_options(config: AgentConfig) -> dict[str, Any]:
    options: dict[str, Any] = {"visibility_timeout": config.visibility_timeout}
    if config.broker_url.startswith("sqla+"):
        # kombu hands these straight to SQLAlchemy's create_engine.
        return {"connect_args": {"timeout": 30}}
    return options


def configure(config: AgentConfig) -> Celery:
    backend = config.result_backend
    if backend.startswith("file://"):
        os.makedirs(backend[len("file://") :], exist_ok=True)
    app.conf.update(
        broker_url=config.broker_url,
        result_backend=backend or None,
        broker_transport_options=_transport_options(config),
        result_backend_transport_options=(
            {"visibility_timeout": config.visibility_timeout} if backend.startswith("redis") else {}
        ),
        task_serializer="json",
        result_serializer="json",
        accept_content=["json"],
        task_acks_late=True,
        task_reject_on_worker_lost=True,
        worker_prefetch_multiplier=1,
        task_soft_time_limit=config.job_soft_time_limit,
        task_time_limit=config.job_time_limit,
        result_expires=3600,
        broker_connection_retry_on_startup=True,
        worker_hijack_root_logger=False,
        task_default_queue=config.io_queues()[0],
    )
    import pollen_agent.tasks.federation
    import pollen_agent.tasks.gpu
    import pollen_agent.tasks.io
    import pollen_agent.tasks.marketplace  # noqa: F401 - registers the tasks

    return app
