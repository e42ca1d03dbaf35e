"""Sending work to site agents: write first, then queue on commit; ask io questions with a deadline."""

from __future__ import annotations

import logging
from typing import Any

from celery.exceptions import TimeoutError as CeleryTimeout
from django.conf import settings
from django.db import transaction

from pollen.celery import app
from pollen.core.errors import ApiError, ServiceUnavailable
from pollen_contracts import queues

logger = logging.getLogger(__name__)


def send_on_commit(task_name: str, payload: dict[str, Any], *, queue: str) -> None:
    """Queue a task once the surrounding transaction commits (never before: the row must exist)."""

    def _send() -> None:
        app.send_task(task_name, kwargs={"payload": payload}, queue=queue)

    transaction.on_commit(_send)


def ask_site_agent(
    site_slug: str, task_name: str, payload: dict[str, Any], *, timeout: float | None = None
) -> Any:
    """Ask a site's agent a quick question on its io queue and wait for the answer."""
    result = app.send_task(task_name, kwargs={"payload": payload}, queue=queues.io_queue(site_slug))
    try:
        answer = result.get(timeout=timeout or settings.AGENT_ANSWER_TIMEOUT, propagate=False)
    except CeleryTimeout as exc:
        raise ServiceUnavailable(
            f"The site agent of '{site_slug}' did not answer. It may be offline: ask your site IT to check "
            "that the Pollen agent is running, then try again.",
            code="site_agent_offline",
        ) from exc
    if isinstance(answer, dict) and answer.get("error"):
        err = answer["error"]
        raise ApiError(
            err.get("message", "The site agent refused the request."),
            code=err.get("code", "agent_error"),
        )
    if result.failed():
        logger.error("agent task %s failed: %r", task_name, answer)
        raise ServiceUnavailable(
            "The site agent failed to answer. Try again; if it persists, contact site IT.",
            code="site_agent_error",
        )
    return answer
