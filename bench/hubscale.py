"""Hub scale: list and stats endpoints with 100,000 images and 1,000 jobs, and their queries.

Runs in-process with Django's test client against a throwaway PostgreSQL database that is
created, migrated and dropped here. The baseline of each endpoint is the bare ORM work the
same page needs (the selector's queryset: one COUNT and one page of rows), so the ratio is
the cost the API layer (auth, tenancy, filters, serializers, JSON) adds on top.
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Callable
from typing import Any

from bench import fixtures
from bench.checks import check_same_count
from bench.report import REPO, row
from bench.stats import paired_ratios, percentile, summarize

NAME = "hub scale"
BENCH_DB = "pollen_bench"
PAGE = 50


def _setup_django(base_url: str) -> None:
    os.environ["DATABASE_URL"] = fixtures.database_url(base_url, BENCH_DB)
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "pollen.settings")
    for folder in ("platform", "workers"):
        path = str(REPO / folder)
        if path not in sys.path:
            sys.path.insert(0, path)
    import django
    from django.core.management import call_command

    django.setup()
    call_command("migrate", verbosity=0, interactive=False)


def _seed(n_images: int, n_jobs: int, n_datasets: int) -> dict[str, Any]:
    from pollen.accounts.services import membership_add, site_create
    from pollen.datasets.models import Dataset, Image, ImageStatus
    from pollen.datasets.splits import split_for
    from pollen.training.models import Job, JobStatus

    site = site_create(slug="site-a", name="St Anne's Hospital")
    other = site_create(slug="site-b", name="Borough General")
    user = membership_add(
        caller=None, site=site, username="bench-clinician", role="clinician", password="x" * 20
    ).user
    datasets = []
    for d in range(n_datasets):
        owner = site if d % 4 else other  # a quarter belong to another site: tenancy filters them
        datasets.append(
            Dataset.objects.create(site=owner, name=f"Set {d}", label_names=["normal", "pneumonia"])
        )
    big = datasets[1]
    statuses = [ImageStatus.ACCEPTED] * 8 + [ImageStatus.REJECTED, ImageStatus.PENDING]
    rows, made = [], 0
    sizes = {big.pk: n_images // 2}
    rest = [d for d in datasets if d.pk != big.pk]
    for d in rest:
        sizes[d.pk] = (n_images - sizes[big.pk]) // len(rest)
    sizes[big.pk] += n_images - sum(sizes.values())
    for dataset in datasets:
        for i in range(sizes[dataset.pk]):
            key = f"datasets/{dataset.pk}/images/{i}.png"
            patient = f"P{i % 5000}"
            rows.append(
                Image(
                    dataset=dataset,
                    filename=f"img{i}.png",
                    storage_key=key,
                    status=statuses[i % len(statuses)],
                    label="normal" if i % 3 else "pneumonia",
                    patient_id=patient,
                    width=256 + i % 300,
                    height=256,
                    sha256=f"{made:064x}",
                    split=split_for(seed=dataset.split_seed, patient_id=patient, fallback_key=key),
                )
            )
            made += 1
            if len(rows) >= 10_000:
                Image.objects.bulk_create(rows, batch_size=5000)
                rows = []
    Image.objects.bulk_create(rows, batch_size=5000)
    job_statuses = [JobStatus.SUCCEEDED, JobStatus.FAILED, JobStatus.QUEUED, JobStatus.RUNNING]
    Job.objects.bulk_create(
        [
            Job(
                site=datasets[j % n_datasets].site,
                dataset=datasets[j % n_datasets],
                name=f"job {j}",
                label_names=["normal", "pneumonia"],
                status=job_statuses[j % len(job_statuses)],
                history=[{"epoch": e, "train_loss": 0.5} for e in range(10)],
                progress={"phase": "training", "fraction": 0.5},
            )
            for j in range(n_jobs)
        ],
        batch_size=1000,
    )
    check_same_count(Image.objects.count(), n_images, what="seeded image rows")
    check_same_count(Job.objects.count(), n_jobs, what="seeded job rows")
    return {"user": user, "big": big}


def _time(call: Callable[[], Any], n: int) -> tuple[list[float], Any]:
    times, result = [], None
    for _ in range(n):
        started = time.perf_counter()
        result = call()
        times.append((time.perf_counter() - started) * 1000)
    return times, result


def _endpoints(seed: dict[str, Any]) -> list[tuple[str, str, Callable[[], tuple[int, int]]]]:
    """(label, URL, bare ORM baseline returning (count, rows on the page))."""
    from django.db.models import Count

    from pollen.accounts.caller import caller_for_user
    from pollen.datasets import selectors as dsel
    from pollen.datasets.models import Image
    from pollen.training import selectors as tsel

    caller = caller_for_user(seed["user"])
    big = seed["big"]
    filtered = {"label": "normal", "split": "train", "status": "accepted"}
    deep = dsel.image_list(dataset=big).filter(**filtered).count() // PAGE  # last full page
    images = dsel.image_list(dataset=big).order_by("id")

    def page(qs: Any, number: int) -> tuple[int, int]:
        return qs.count(), len(list(qs[(number - 1) * PAGE : number * PAGE]))

    def stats() -> tuple[int, int]:
        groups = list(
            Image.objects.filter(dataset=big)
            .values("label", "split", "status")
            .annotate(n=Count("id"))
        )
        return sum(g["n"] for g in groups), len(groups)

    base = f"/api/v1/datasets/{big.pk}"
    query = "&".join(f"{k}={v}" for k, v in filtered.items())
    return [
        ("dataset list", "/api/v1/datasets/", lambda: page(dsel.dataset_list(caller=caller), 1)),
        ("image list, page 1", f"{base}/images/", lambda: page(images, 1)),
        (
            f"image list, page {deep}, filtered label+split+status",
            f"{base}/images/?{query}&page={deep}",
            lambda: page(images.filter(**filtered), deep),
        ),
        ("dataset stats", f"{base}/stats/", stats),
        (
            "job list",
            "/api/v1/jobs/",
            lambda: page(tsel.job_list(caller=caller).order_by("-id"), 1),
        ),
    ]


def run(quick: bool, repeat: int) -> list[dict[str, Any]]:
    base_url = os.environ.get("DATABASE_URL", "")
    if not base_url.startswith("postgres"):
        raise RuntimeError(
            "hub scale needs DATABASE_URL pointing at PostgreSQL (make bench sets it)"
        )
    n_images, n_jobs = (20_000, 200) if quick else (100_000, 1_000)
    requests = 10 if quick else 30
    fixtures.recreate_database(base_url, BENCH_DB)
    try:
        _setup_django(base_url)
        started = time.perf_counter()
        seed = _seed(n_images, n_jobs, n_datasets=20)
        seed_seconds = time.perf_counter() - started
        return _measure(seed, n_images, n_jobs, requests, repeat, seed_seconds)
    finally:
        from django.db import connections

        connections.close_all()
        fixtures.drop_database(base_url, BENCH_DB)


def _measure(
    seed: dict[str, Any], n_images: int, n_jobs: int, requests: int, repeat: int, seed_s: float
) -> list[dict[str, Any]]:
    from django.db import connection
    from django.test import Client
    from django.test.utils import CaptureQueriesContext

    client = Client()
    client.force_login(seed["user"])
    rows = []
    setting_base = (
        f"PostgreSQL, {n_images:,} images in 20 datasets, {n_jobs:,} jobs "
        f"(seeded in {seed_s:.0f} s), {requests} requests x {repeat} reps"
    )
    for label, url, baseline in _endpoints(seed):
        medians, p95s, base_medians, base_p95s = [], [], [], []
        for _ in range(repeat):
            client.get(url)  # warm caches and the session
            api_times, response = _time(lambda u=url: client.get(u), requests)
            orm_times, (count, page_rows) = _time(baseline, requests)
            if response.status_code != 200:
                raise AssertionError(
                    f"{url} answered {response.status_code}: {response.content[:200]!r}"
                )
            body = response.json()
            if "results" in body:
                check_same_count(body["count"], count, what=f"{label}: total count vs ORM")
                check_same_count(len(body["results"]), page_rows, what=f"{label}: page rows vs ORM")
            medians.append(percentile(api_times, 50))
            p95s.append(percentile(api_times, 95))
            base_medians.append(percentile(orm_times, 50))
            base_p95s.append(percentile(orm_times, 95))
        with CaptureQueriesContext(connection) as api_queries:
            client.get(url)
        with CaptureQueriesContext(connection) as orm_queries:
            baseline()
        setting = f"{label}: GET {url.split('?')[0]}; {setting_base}"
        for metric, ours, theirs in (
            ("median ms", medians, base_medians),
            ("p95 ms", p95s, base_p95s),
        ):
            rows.append(
                row(
                    NAME,
                    setting,
                    f"{metric} (endpoint vs bare ORM page)",
                    summarize(ours).text(),
                    summarize(theirs).text(),
                    paired_ratios(ours, theirs).text(),
                )
            )
        rows.append(
            row(
                NAME,
                setting,
                "SQL queries per request (incl. session + auth)",
                len(api_queries.captured_queries),
                len(orm_queries.captured_queries),
                "",
            )
        )
    return rows
