"""Health, readiness and Prometheus metrics for operators."""

from __future__ import annotations

from django.conf import settings
from django.db import connection
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.views.decorators.http import require_GET

from pollen.ops.access import metrics_refusal
from pollen.ops.metrics import render_metrics


@require_GET
def healthz(request: HttpRequest) -> JsonResponse:
    """Liveness: the process answers. No dependencies checked."""
    return JsonResponse({"status": "ok"})


def _check_database() -> str | None:
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
    except Exception as exc:
        return f"database: {exc.__class__.__name__}"
    return None


def _check_broker() -> str | None:
    url = settings.CELERY_BROKER_URL or ""
    if not url.startswith("redis"):
        return None
    try:
        import redis

        redis.Redis.from_url(url, socket_connect_timeout=2).ping()
    except Exception as exc:
        return f"broker: {exc.__class__.__name__}"
    return None


@require_GET
def readyz(request: HttpRequest) -> JsonResponse:
    """Readiness: the database and broker answer."""
    problems = [p for p in (_check_database(), _check_broker()) if p]
    return JsonResponse(
        {"status": "ok" if not problems else "unavailable", "problems": problems},
        status=200 if not problems else 503,
    )


@require_GET
def metrics(request: HttpRequest) -> HttpResponse:
    """Prometheus text format, for the operations token or an allowed scraper only."""
    refusal = metrics_refusal(request)
    if refusal is not None:
        return refusal
    body, content_type = render_metrics()
    return HttpResponse(body, content_type=content_type)
