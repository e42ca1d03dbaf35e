"""A site's turn in a cross-site round, as a lease (``pollen.core.lease``).

One worker claims the turn; its progress reports renew it. When its worker dies, the clock
(``federation_tick``) queues the turn again and another worker takes it over; a turn whose
message was lost is sent again. After ``POLLEN_LEASE_MAX_ATTEMPTS`` claims whose workers all
died, the site is left out of this round with ``worker_lost``, as if it had reported the
failure itself, and the job goes on without it (it takes part again in the next round).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from django.db import IntegrityError, transaction
from django.db.models import Q

from pollen.core.lease import (
    WORKER_LOST,
    LeaseKind,
    leases_requeue_lapsed,
    leases_resend_unclaimed,
)
from pollen.federation.history import history_add, round_lease_seconds
from pollen.federation.models import (
    FederatedJob,
    Participant,
    Round,
    RoundStatus,
    Update,
    UpdateStatus,
    WorkState,
)
from pollen.federation.round_dispatch import turn_dispatch


def _round(participant: Participant) -> Round:
    assert participant.work_round is not None, "a turn is in a round"
    return Round.objects.get(job_id=participant.job_id, number=participant.work_round)


def _send(participant: Participant) -> None:
    progress = participant.progress
    turn_dispatch(
        participant.job,
        _round(participant),
        participant,
        progress.get("input_key", ""),
        progress.get("input_sha256", ""),
    )


def _requeued(participant: Participant) -> None:
    history_add(
        participant.job_id,
        f"The computer at {participant.site.name} stopped answering; its turn in round "
        f"{participant.work_round} was queued again.",
        site=participant.site.slug,
    )


def _dead(reason: str, now: datetime) -> dict[str, Any]:
    return {"work_state": WorkState.FAILED}


def _lost(participant: Participant, reason: str) -> None:
    try:
        with transaction.atomic():
            Update.objects.create(
                round=_round(participant),
                site_id=participant.site_id,
                status=UpdateStatus.FAILED,
                code=WORKER_LOST,
                reason=reason,
            )
    except IntegrityError:  # the site answered for this round after all
        pass
    history_add(
        participant.job_id,
        f"{participant.site.name} could not finish round {participant.work_round}: {reason}",
        code=WORKER_LOST,
        site=participant.site.slug,
    )


ROUND_TURN = LeaseKind(
    noun="turn in a cross-site round",
    model=Participant,
    waiting={"work_state": WorkState.QUEUED},
    held={"work_state": WorkState.TRAINING},
    lease_seconds=round_lease_seconds,
    send=_send,
    dead=_dead,
    on_dead=_lost,
    on_requeue=_requeued,
    advice="before the next round; this round goes on without this site",
    related=("site", "job"),
)


def turns_requeue_lapsed(job: FederatedJob) -> None:
    """Turns of the job's running round whose worker died (or whose message was lost) are
    sent again; a turn out of attempts leaves its site out of the round."""
    round_ = Round.objects.filter(
        job_id=job.pk, number=job.current_round, status=RoundStatus.RUNNING
    ).first()
    if round_ is None:
        return
    scope = Q(job_id=job.pk, work_round=round_.number)
    leases_requeue_lapsed(ROUND_TURN, scope=scope)
    leases_resend_unclaimed(ROUND_TURN, scope=scope)
