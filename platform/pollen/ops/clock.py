"""The clock: the hub's periodic work in one process, off the request path (``manage.py clock``).

Like healthchecks' ``sendalerts``, one loop does what no request should: it queues again the
work whose worker stopped renewing its lease (training jobs, marketplace work; the rules are
``pollen.core.lease``), sends again work nobody claimed and what a site's agent never
confirmed, expires unfinished uploads, and moves cross-site jobs on
(deadlines, lapsed turns, combining a round's updates). Requests only record facts (an agent
was seen, an update arrived, a round is ready); the clock acts on them.

Every step is isolated: one that fails is logged with its site and the others still run. Ticks
never overlap, even with two clocks running (a rollout, a second replica by mistake): each tick
holds a lock shared through the database (PostgreSQL advisory lock) or, for the embedded SQLite
default, a file lock in the state folder (POLLEN_VAR_DIR).
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from functools import partial
from pathlib import Path
from typing import Any

from django.conf import settings
from django.db import close_old_connections, connection
from django.utils import timezone

from pollen.accounts.models import Site

logger = logging.getLogger("pollen.clock")

# Any fixed number shared by every clock of one database ("pollen" in ASCII, truncated).
ADVISORY_LOCK_KEY = 0x706F6C6C656E


@dataclass(frozen=True)
class SiteStep:
    name: str
    run: Callable[[Site, datetime], Any]
    # Taking work back from a dead worker only helps if the site's agent answers: another of
    # its workers takes the work over. A site whose agent is away keeps its work as it was.
    needs_agent: bool = True


@dataclass(frozen=True)
class GlobalStep:
    name: str
    run: Callable[[datetime], Any]


def _jobs_requeue(site: Site, now: datetime) -> Any:
    from pollen.training.services import jobs_requeue_abandoned

    return jobs_requeue_abandoned(site_id=site.pk)


def _jobs_resend(site: Site, now: datetime) -> Any:
    from pollen.training.services import jobs_resend_stale_queued

    return jobs_resend_stale_queued(site_id=site.pk)


def _work_requeue(site: Site, now: datetime) -> Any:
    from pollen.marketplace.work import work_requeue_abandoned

    return work_requeue_abandoned(site_id=site.pk)


def _work_resend(site: Site, now: datetime) -> Any:
    from pollen.marketplace.work import work_resend_unclaimed

    return work_resend_unclaimed(site_id=site.pk)


def _purge_resend(site: Site, now: datetime) -> Any:
    from pollen.datasets.deletion import datasets_purge_resend

    return datasets_purge_resend(site_id=site.pk, now=now)


def _uploads_expire(now: datetime) -> Any:
    from pollen.datasets.uploads import upload_slots_expire

    return upload_slots_expire(now=now)


def _federation(now: datetime) -> Any:
    from pollen.federation.models import Round
    from pollen.federation.services import federation_tick

    federation_tick()  # deadlines, lapsed turns, and combining the rounds that are ready
    done = Round.objects.filter(finished_at__gte=now).order_by("pk")
    return [
        f"job {job_id} round {number}" for job_id, number in done.values_list("job_id", "number")
    ]


SITE_STEPS: tuple[SiteStep, ...] = (
    SiteStep("jobs_requeued", _jobs_requeue),
    SiteStep("jobs_resent", _jobs_resend),
    SiteStep("work_requeued", _work_requeue),
    SiteStep("work_resent", _work_resend),
    SiteStep("purges_resent", _purge_resend),
)
GLOBAL_STEPS: tuple[GlobalStep, ...] = (
    GlobalStep("uploads_expired", _uploads_expire),
    GlobalStep("rounds_combined", _federation),
)


@dataclass
class TickReport:
    """What one tick did: step -> site (or "*") -> result, and the steps that failed."""

    at: datetime
    work: dict[str, dict[str, Any]] = field(default_factory=dict)
    failed: list[dict[str, str]] = field(default_factory=list)

    def record(self, step: str, where: str, result: Any) -> None:
        if result:  # an empty list or 0: nothing to report
            self.work.setdefault(step, {})[where] = result

    def fields(self) -> dict[str, Any]:
        return {"at": self.at.isoformat(), "work": self.work, "failed": self.failed}


def _run_step(report: TickReport, name: str, where: str, call: Callable[[], Any]) -> None:
    try:
        report.record(name, where, call())
    except Exception as exc:  # one failing step never stops the others
        logger.exception(
            "clock step %s failed for %s",
            name,
            where,
            extra={"fields": {"step": name, "site": where}},
        )
        report.failed.append({"step": name, "site": where, "error": repr(exc)[:300]})
        if not connection.in_atomic_block and not connection.is_usable():
            connection.close()  # the database dropped us: the next step reconnects


def _agent_answers(site: Site, now: datetime) -> bool:
    window = settings.CLOCK_AGENT_SEEN_SECONDS
    if window <= 0:
        return True
    seen = site.agent_last_seen_at
    return seen is not None and now - seen <= timedelta(seconds=window)


def clock_steps(now: datetime) -> TickReport:
    """Every maintenance step once, each isolated; callers hold the clock lock (``clock_tick``)."""
    report = TickReport(at=now)
    for site in Site.objects.order_by("pk"):
        answers = _agent_answers(site, now)
        for step in SITE_STEPS:
            if answers or not step.needs_agent:
                _run_step(report, step.name, site.slug, partial(step.run, site, now))
    for global_step in GLOBAL_STEPS:
        _run_step(report, global_step.name, "*", partial(global_step.run, now))
    return report


@contextlib.contextmanager
def clock_lock() -> Iterator[bool]:
    """Yield True when this clock may tick (no other clock is ticking); never waits."""
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_try_advisory_lock(%s)", [ADVISORY_LOCK_KEY])
            held = bool(cursor.fetchone()[0])
        try:
            yield held
        finally:
            if held:
                _pg_unlock()
        return
    path = Path(settings.VAR_DIR) / "clock.lock"
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            yield False
            return
        try:
            yield True
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _pg_unlock() -> None:
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_unlock(%s)", [ADVISORY_LOCK_KEY])
    except Exception:
        connection.close()  # a closed session releases its advisory locks


def clock_tick(*, now: datetime | None = None) -> TickReport | None:
    """One tick of the clock; None when another clock is ticking right now."""
    with clock_lock() as held:
        if not held:
            return None
        return clock_steps(now or timezone.now())


def clock_run(*, interval: float, stop: threading.Event, heartbeat: Path | None = None) -> None:
    """Tick every ``interval`` seconds until ``stop`` is set (the current tick always finishes)."""
    while not stop.is_set():
        started = time.monotonic()
        close_old_connections()
        try:
            report = clock_tick()
        except Exception:  # the database is away, say: log it and try again next tick
            logger.exception("clock tick failed")
            connection.close()
        else:
            _log_tick(report, time.monotonic() - started)
        if heartbeat is not None:
            _touch(heartbeat)
        stop.wait(max(0.0, interval - (time.monotonic() - started)))
    connection.close()


def _log_tick(report: TickReport | None, seconds: float) -> None:
    if report is None:
        logger.info("another clock is ticking; this one waits", extra={"fields": {}})
        return
    fields = {**report.fields(), "seconds": round(seconds, 3)}
    level = logging.INFO if report.work or report.failed else logging.DEBUG
    logger.log(level, "clock tick", extra={"fields": fields})


def _touch(path: Path) -> None:
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.touch()
    except OSError:
        logger.warning("clock: cannot write its heartbeat file %s", path)


def clock_alive(path: Path, *, interval: float, now: float | None = None) -> bool:
    """True when the clock ticked lately (its heartbeat file is fresh): the liveness check."""
    try:
        age = (now if now is not None else time.time()) - path.stat().st_mtime
    except OSError:
        return False
    # Room for a long tick (combining a large model's updates) before it counts as stuck.
    return age <= 3 * interval + 120
