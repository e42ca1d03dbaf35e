"""The clock (``manage.py clock``): the hub's periodic work, off the request path (issue 17).

It queues again work whose lease lapsed (while the site's agent answers), moves cross-site jobs
on, keeps going when one step fails, and never ticks twice at once. Stopped, it leaves stale
work where it is; back again, it picks that work up.
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from django.db import connection
from django.utils import timezone

from pollen.accounts.models import Site
from pollen.datasets.models import Dataset
from pollen.ops import clock
from pollen.ops.clock import clock_alive, clock_tick
from pollen.training.models import Job, JobStatus
from tests.support.agent import wait_until

REPO = Path(__file__).resolve().parents[3]


def _lapsed_job(site: Site) -> Job:
    dataset = Dataset.objects.create(site=site, name="squares", label_names=["left", "right"])
    return Job.objects.create(
        site=site,
        dataset=dataset,
        status=JobStatus.RUNNING,
        claim_id="dead-worker",
        attempt=1,
        lease_expires_at=timezone.now() - timedelta(seconds=1),
    )


def _seen(site: Site, ago: float = 0) -> None:
    Site.objects.filter(pk=site.pk).update(
        agent_last_seen_at=timezone.now() - timedelta(seconds=ago)
    )


@pytest.mark.django_db
def test_a_lapsed_job_is_queued_again_only_while_its_sites_agent_answers(site_a, settings):
    job = _lapsed_job(site_a)
    _seen(site_a, ago=settings.CLOCK_AGENT_SEEN_SECONDS + 60)
    report = clock_tick()
    assert report is not None and "jobs_requeued" not in report.work
    assert Job.objects.get(pk=job.pk).status == JobStatus.RUNNING, "nobody there to take it"

    _seen(site_a)
    report = clock_tick()
    assert report is not None and report.work["jobs_requeued"] == {"site-a": [job.pk]}
    job.refresh_from_db()
    assert (job.status, job.claim_id) == (JobStatus.QUEUED, "")


@pytest.mark.django_db
def test_with_the_agent_check_off_lapsed_work_is_queued_again_anyway(site_a, settings):
    settings.CLOCK_AGENT_SEEN_SECONDS = 0
    job = _lapsed_job(site_a)
    report = clock_tick()
    assert report is not None and report.work["jobs_requeued"] == {"site-a": [job.pk]}
    assert report.failed == [], "every step ran (each finds its service where it lives now)"


@pytest.mark.django_db
def test_a_failing_step_is_logged_with_its_site_and_the_others_still_run(
    site_a, site_b, monkeypatch, caplog
):
    jobs = {site.slug: _lapsed_job(site) for site in (site_a, site_b)}
    _seen(site_a), _seen(site_b)

    def broken(site: Site, now: Any) -> Any:
        if site.slug == "site-a":
            raise RuntimeError("storage is on fire")
        return ["ok"]

    steps = (clock.SiteStep("broken", broken), *clock.SITE_STEPS)
    monkeypatch.setattr(clock, "SITE_STEPS", steps)
    report = clock_tick()
    assert report is not None
    assert [(f["step"], f["site"]) for f in report.failed] == [("broken", "site-a")]
    assert report.work["broken"] == {"site-b": ["ok"]}
    assert report.work["jobs_requeued"] == {s: [j.pk] for s, j in jobs.items()}
    assert any("broken failed for site-a" in r.getMessage() for r in caplog.records)


@pytest.mark.django_db(transaction=True)
def test_two_clocks_never_tick_at_once(site_a, monkeypatch):
    inside, release = threading.Event(), threading.Event()
    ticks: list[Any] = []

    def slow(now: Any) -> Any:
        inside.set()
        assert release.wait(30)
        return None

    monkeypatch.setattr(clock, "GLOBAL_STEPS", (clock.GlobalStep("slow", slow),))

    def first() -> None:
        try:
            ticks.append(clock_tick())
        finally:
            connection.close()

    thread = threading.Thread(target=first)
    thread.start()
    try:
        assert inside.wait(30), "the first clock is ticking"
        assert clock_tick() is None, "a second clock waits while the first ticks"
    finally:
        release.set()
        thread.join(30)
    assert ticks and ticks[0] is not None
    assert clock_tick() is not None, "once the first tick is over, the next one may run"


def test_the_liveness_check_reads_the_heartbeat_file(tmp_path):
    beat = tmp_path / "clock.alive"
    assert not clock_alive(beat, interval=10)
    beat.touch()
    assert clock_alive(beat, interval=10)
    assert not clock_alive(beat, interval=10, now=beat.stat().st_mtime + 3600)


def _database_url() -> str:
    db = connection.settings_dict
    if connection.vendor != "postgresql":
        pytest.skip("the clock process needs a database it can share with the test (PostgreSQL)")
    return f"postgres://{db['USER']}:{db['PASSWORD']}@{db['HOST']}:{db['PORT']}/{db['NAME']}"


def _start_clock(tmp_path: Path) -> subprocess.Popen[bytes]:
    env = {
        **os.environ,
        "DATABASE_URL": _database_url(),
        "POLLEN_CLOCK_HEARTBEAT_PATH": str(tmp_path / "clock.alive"),
    }
    return subprocess.Popen(
        [sys.executable, "manage.py", "clock", "--interval", "0.2"],
        cwd=REPO,
        env=env,
        stdout=(tmp_path / "clock.log").open("ab"),
        stderr=subprocess.STDOUT,
    )


@pytest.mark.django_db(transaction=True)
def test_stale_work_waits_while_the_clock_is_down_and_is_queued_again_when_it_returns(
    site_a, tmp_path
):
    log = tmp_path / "clock.log"
    process = _start_clock(tmp_path)
    try:
        wait_until(lambda: (tmp_path / "clock.alive").exists(), timeout=60, what="a first tick")
        process.terminate()  # SIGTERM: the tick in hand finishes, then it stops
        assert process.wait(timeout=30) == 0
        assert "clock stopped" in log.read_text()

        job = _lapsed_job(site_a)
        _seen(site_a)
        (tmp_path / "clock.alive").unlink()
        assert Job.objects.get(pk=job.pk).status == JobStatus.RUNNING, "nothing moves it now"

        process = _start_clock(tmp_path)
        wait_until(  # each tick's work is one JSON log line
            lambda: f'"jobs_requeued": {{"site-a": [{job.pk}]}}' in log.read_text(),
            timeout=60,
            what="the clock, back, to queue the job again and say so",
        )
        assert Job.objects.get(pk=job.pk).status == JobStatus.QUEUED
    finally:
        process.terminate()
        process.wait(timeout=30)
