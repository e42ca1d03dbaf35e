"""Prometheus metrics: API latency (middleware), jobs by status, queue depth."""

from __future__ import annotations

import time
from collections.abc import Callable

from django.apps import apps
from django.http import HttpRequest, HttpResponse
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Gauge,
    Histogram,
    generate_latest,
)

REGISTRY = CollectorRegistry(auto_describe=True)
API_LATENCY = Histogram(
    "pollen_api_request_seconds",
    "API request latency",
    ["method", "route", "status"],
    registry=REGISTRY,
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)
JOBS = Gauge("pollen_jobs", "Jobs by kind and status", ["kind", "status"], registry=REGISTRY)


class MetricsMiddleware:
    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        start = time.perf_counter()
        response = self.get_response(request)
        if request.path.startswith("/api/"):
            match = getattr(request, "resolver_match", None)
            route = match.route if match else "unmatched"
            API_LATENCY.labels(request.method, route, str(response.status_code)).observe(
                time.perf_counter() - start
            )
        return response


def _refresh_job_gauges() -> None:
    from django.db.models import Count

    JOBS.clear()
    for model_label, kind in (
        ("training.Job", "training"),
        ("marketplace.Prediction", "prediction"),
    ):
        try:
            model = apps.get_model(model_label)
        except LookupError:
            continue
        for row in model.objects.values("status").annotate(n=Count("id")):
            JOBS.labels(kind, row["status"]).set(row["n"])


def render_metrics() -> tuple[bytes, str]:
    _refresh_job_gauges()
    return generate_latest(REGISTRY), CONTENT_TYPE_LATEST
