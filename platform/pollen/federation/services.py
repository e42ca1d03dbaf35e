"""Federated jobs: consent, rounds, updates and aggregation. Every step is a compare-and-set.

State lives in the database, so a hub or worker restart resumes a job where it stood:
``federation_tick`` (run by the clock, ``pollen.ops.clock``) moves each running job forward.
A request only marks a round ready (``running -> aggregating``); the clock combines it, so
averaging weights never holds a web request. An ``Update`` is unique per (round, site) and a
round is recorded by the one caller that wins ``aggregating -> done``.

This module moves jobs forward; the rest lives by what it does: ``lifecycle`` (create and
consent), ``rounds`` (the agent's claims and updates), ``round_dispatch`` (opening a round),
``round_results`` (combining and recording a round) and ``history``.
"""

from __future__ import annotations

import logging
from datetime import timedelta

from django.db import transaction
from django.utils import timezone

from pollen.federation.history import history_add, withdrawn_site_ids
from pollen.federation.models import (
    FederatedJob,
    FederatedStatus,
    Participant,
    ParticipantStatus,
    Round,
    RoundStatus,
    Strategy,
    Update,
    UpdateStatus,
    WorkState,
)
from pollen.federation.round_dispatch import turn_dispatch
from pollen.federation.round_results import round_aggregate
from pollen.federation.turns import turns_requeue_lapsed

logger = logging.getLogger(__name__)


# --- moving jobs forward --------------------------------------------------------------------


def federation_tick(*, site_id: int | None = None) -> list[int]:
    """Move every running job forward (deadlines, lapsed leases, aggregation); safe to call often.

    Called by the clock (``manage.py clock``) and ``manage.py federation_tick``. Rounds that
    are ready are combined here, never in a request. Returns the ids of the jobs looked at.
    """
    jobs = FederatedJob.objects.filter(status=FederatedStatus.RUNNING)
    if site_id is not None:
        jobs = jobs.filter(participants__site_id=site_id).distinct()
    ids = list(jobs.values_list("pk", flat=True))
    for job_id in ids:
        try:
            job = FederatedJob.objects.get(pk=job_id)
            turns_requeue_lapsed(job)  # a turn out of attempts counts as answered below
            federation_advance(job_id=job_id)
            federation_aggregate_ready(job_id=job_id)
        except Exception:  # one broken job must not stop the others
            logger.exception("federation tick failed for job %s", job_id)
    return ids


def federation_aggregate_ready(*, job_id: int) -> bool:
    """Combine the job's current round if it is ready; True when a round was recorded.

    Only the clock calls this (ticks never overlap); ``_record_round``'s compare-and-set still
    records a round once if a clock died mid-aggregation and the next one starts over.
    """
    job = FederatedJob.objects.filter(pk=job_id, status=FederatedStatus.RUNNING).first()
    if job is None:
        return False
    round_ = Round.objects.filter(
        job=job, number=job.current_round, status=RoundStatus.AGGREGATING
    ).first()
    if round_ is None:
        return False
    round_aggregate(job, round_)
    return True


def federation_advance(*, job_id: int) -> None:
    """Close the current round (or relay step) when every answer is in or the deadline passed."""
    job = FederatedJob.objects.filter(pk=job_id, status=FederatedStatus.RUNNING).first()
    if job is None:
        return
    round_ = Round.objects.filter(job=job, number=job.current_round).first()
    if round_ is None:
        return
    now = timezone.now()
    if round_.status != RoundStatus.RUNNING:  # aggregating: the clock combines it
        return
    answered = set(Update.objects.filter(round=round_).values_list("site_id", flat=True))
    answered |= withdrawn_site_ids(job)  # a withdrawal is a dropout: nothing more to wait for
    late = now > round_.deadline_at
    if job.strategy == Strategy.RELAY and round_.number > 0:
        current = round_.expected_sites[round_.relay_position]
        if current not in answered and not late:
            return
        if current not in answered:
            _mark_missed(job, round_, [current])
        if round_.relay_position + 1 < len(round_.expected_sites):
            _relay_next(job, round_)
            return
    else:
        missing = [s for s in round_.expected_sites if s not in answered]
        if missing and not late:
            return
        _mark_missed(job, round_, missing)
    # Ready: the clock combines it (federation_aggregate_ready), off the request path.
    Round.objects.filter(pk=round_.pk, status=RoundStatus.RUNNING).update(
        status=RoundStatus.AGGREGATING, aggregating_since=now
    )


def _mark_missed(job: FederatedJob, round_: Round, site_ids: list[int]) -> None:
    for participant in Participant.objects.filter(
        job=job, site_id__in=site_ids, work_round=round_.number
    ).select_related("site"):
        if Participant.objects.filter(
            pk=participant.pk,
            work_round=round_.number,
            work_state__in=[WorkState.QUEUED, WorkState.TRAINING],
        ).update(work_state=WorkState.MISSED, lease_expires_at=None):
            history_add(
                job.pk,
                f"{participant.site.name} missed the deadline of round {round_.number}; "
                "it is left out of this round.",
                code="deadline_missed",
                site=participant.site.slug,
            )


def _relay_next(job: FederatedJob, round_: Round) -> None:
    position = round_.relay_position + 1
    last = (
        Update.objects.filter(round=round_, status=UpdateStatus.ACCEPTED)
        .order_by("-created_at", "-id")
        .first()
    )
    input_key, input_sha = (
        (last.weights_key, last.weights_sha256) if last else (round_.input_key, round_.input_sha256)
    )
    with transaction.atomic():
        if not Round.objects.filter(
            pk=round_.pk, status=RoundStatus.RUNNING, relay_position=round_.relay_position
        ).update(
            relay_position=position,
            deadline_at=timezone.now() + timedelta(seconds=job.round_deadline_seconds),
        ):
            return
        round_.refresh_from_db()
        participant = Participant.objects.select_related("site").get(
            job=job, site_id=round_.expected_sites[position]
        )
        if participant.status != ParticipantStatus.WITHDRAWN:
            turn_dispatch(job, round_, participant, input_key, input_sha)
            return
    federation_advance(job_id=job.pk)  # the site withdrew: pass the weights on to the next one
