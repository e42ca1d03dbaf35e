"""The hub's Celery app. The hub only sends tasks (by name) to site queues."""

from __future__ import annotations

import os

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "pollen.settings")

app = Celery("pollen-hub")


def _configure() -> None:
    from django.conf import settings

    transport_options: dict[str, object] = {
        "visibility_timeout": settings.CELERY_VISIBILITY_TIMEOUT
    }
    broker = settings.CELERY_BROKER_URL
    if broker and broker.startswith("sqla+"):
        # kombu hands these straight to SQLAlchemy's create_engine.
        transport_options = {"connect_args": {"timeout": 30}}
        os.makedirs(settings.VAR_DIR, exist_ok=True)
    backend = settings.CELERY_RESULT_BACKEND
    if backend and backend.startswith("file://"):
        os.makedirs(backend[len("file://") :], exist_ok=True)
    app.conf.update(
        broker_url=broker,
        result_backend=backend,
        broker_transport_options=transport_options,
        result_backend_transport_options=(
            {"visibility_timeout": settings.CELERY_VISIBILITY_TIMEOUT}
            if (backend or "").startswith("redis")
            else {}
        ),
        task_serializer="json",
        accept_content=["json"],
        result_serializer="json",
        result_expires=3600,
        task_default_queue="hub.default",
        broker_connection_retry_on_startup=True,
    )


_configure()
