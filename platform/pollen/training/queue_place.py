"""Where a queued job stands in its site's line, and what it waits for, in plain words.

A site's agent runs one full training at a time on its gpu worker and one quick model at a
time on its quick worker, so each kind has its own line. Jobs are taken in the order they were
queued.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from django.utils import timezone

from pollen.training.models import Job, JobStatus, Recipe

# An agent sends a heartbeat every 30 s; this long without one, it is probably not running.
AGENT_QUIET = timedelta(minutes=5)


def _lane(recipe: str) -> str:
    return "quick" if recipe == Recipe.QUICK else "training"


@dataclass(frozen=True)
class _Line:
    queued: list[int]  # job ids, first in line first
    running: list[str]  # names of what the worker is busy with


def ordinal(n: int) -> str:
    """1st, 2nd, 3rd, 4th, ... 11th, 12th, 13th, ... 21st."""
    suffix = "th" if 10 <= n % 100 <= 20 else {1: "st", 2: "nd", 3: "rd"}.get(n % 10, "th")
    return f"{n}{suffix}"


def _runs(n: int) -> str:
    return f"{n} run{'' if n == 1 else 's'} queued before it"


def _waiting_for(running: list[str], ahead: int) -> str:
    names = " and ".join(f"'{name}'" for name in running)
    if running and ahead:
        return f"waiting for {names} to finish and for {_runs(ahead)}"
    if running:
        return f"waiting for {names} to finish"
    if ahead:
        return f"waiting for {_runs(ahead)}"
    return "waiting for your site's computer to start it"


def place_text(position: int, running: list[str], ahead: int, *, agent_quiet: bool) -> str:
    """'2nd in line; waiting for 'Chest X-ray model' to finish and for 1 run queued before it.'"""
    where = "Next in line" if position == 1 else f"{ordinal(position)} in line"
    text = f"{where}; {_waiting_for(running, ahead)}."
    if agent_quiet:
        text += (
            " Your site's computer has not been in touch for a while: ask your site IT to check "
            "that the Pollen agent is running."
        )
    return text


def _running_rounds(site_ids: set[int]) -> dict[int, list[str]]:
    """Cross-site rounds training at these sites: they hold the same worker as full training."""
    from pollen.federation.models import Participant, WorkState

    rounds: dict[int, list[str]] = {}
    for site_id, name in Participant.objects.filter(
        site_id__in=site_ids, work_state=WorkState.TRAINING
    ).values_list("site_id", "job__name"):
        rounds.setdefault(site_id, []).append(f"{name} (cross-site training)")
    return rounds


def _lines(site_ids: set[int]) -> dict[tuple[int, str], _Line]:
    lines: dict[tuple[int, str], _Line] = {}
    rows = (
        Job.objects.filter(site_id__in=site_ids, status__in=[JobStatus.QUEUED, JobStatus.RUNNING])
        .order_by("created_at", "id")
        .values_list("id", "site_id", "recipe", "status", "name")
    )
    for job_id, site_id, recipe, status, name in rows:
        line = lines.setdefault((site_id, _lane(recipe)), _Line([], []))
        if status == JobStatus.QUEUED:
            line.queued.append(job_id)
        else:
            line.running.append(name or f"Run #{job_id}")
    training_sites = {site_id for site_id, lane in lines if lane == "training"}
    for site_id, names in _running_rounds(training_sites).items():
        lines.setdefault((site_id, "training"), _Line([], [])).running.extend(names)
    return lines


def queue_places(jobs: Iterable[Job]) -> dict[int, dict[str, Any]]:
    """The place of each queued job among ``jobs`` (a few queries, whatever their number)."""
    queued = [job for job in jobs if job.status == JobStatus.QUEUED]
    if not queued:
        return {}
    lines = _lines({job.site_id for job in queued})
    cutoff = timezone.now() - AGENT_QUIET
    places = {}
    for job in queued:
        seen = job.site.agent_last_seen_at  # selected with the job
        line = lines.get((job.site_id, _lane(job.recipe)), _Line([job.pk], []))
        # A job that started meanwhile is no longer in the line read a moment ago.
        position = (line.queued.index(job.pk) if job.pk in line.queued else len(line.queued)) + 1
        places[job.pk] = {
            "position": position,
            "jobs_ahead": position - 1,
            "running": line.running,
            "text": place_text(
                position, line.running, position - 1, agent_quiet=seen is None or seen < cutoff
            ),
        }
    return places
