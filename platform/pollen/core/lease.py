"""One lease for every kind of work a site's agent runs.

Training jobs, marketplace work (publication copies, predictions, site evaluations, exports,
held-out checks) and a site's turn in a cross-site round are all taken, kept and given back
by the rules below, written once here. A ``LeaseKind`` says only what differs: the model and
its statuses, how its message is sent, and what else its end state records.

- **Claim** is a compare-and-set that one delivery wins. The delivery that holds the claim may
  claim again (a retry after a lost answer; not a new attempt); another delivery takes over
  only a lease that lapsed, and only while attempts are left. Each new claim is an attempt,
  counted on the row (``attempt``) and shown by the API.
- **Renew**: the holder's heartbeat moves ``lease_expires_at`` on. A lease that lapses belongs
  to a worker that died (killed, out of memory, its machine gone).
- **Re-queue** (the clock, ``leases_requeue_lapsed``): lapsed work waits again and its message
  is sent again, until ``POLLEN_LEASE_MAX_ATTEMPTS`` attempts were made; then it ends in the
  dead-letter state: failed with ``worker_lost`` and a sentence naming the attempts.
- **Resend** (the clock, ``leases_resend_unclaimed``): work that waited unclaimed for
  ``POLLEN_JOB_RESEND_SECONDS`` since its message went out is sent again, since a broker
  restart may have lost it. Only one claim can win, so a duplicate message is harmless.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.db import models, transaction
from django.db.models import F, Q
from django.utils import timezone

logger = logging.getLogger(__name__)

# The error code of work whose workers kept dying: part of the API, like every error code.
WORKER_LOST = "worker_lost"
ATTEMPT_HELP = "Claims by different deliveries so far (each one is an attempt)"


class Leased(models.Model):
    """The columns every leased row carries, under the same names for every kind of work."""

    claim_id = models.CharField(max_length=64, blank=True)  # the delivery that holds it
    # Its host, for site IT. A default in the database too: the release before inserts rows
    # without it while this one rolls out.
    worker = models.CharField(max_length=200, blank=True, default="", db_default="")
    attempt = models.PositiveIntegerField(default=0, help_text=ATTEMPT_HELP)
    lease_expires_at = models.DateTimeField(null=True, blank=True)
    # When its message last went to the site's queue; unclaimed for long, it is sent again.
    last_sent_at = models.DateTimeField(null=True, blank=True, default=timezone.now)

    class Meta:
        abstract = True


def _no_op(item: Any, *args: Any) -> None:
    return None


@dataclass(frozen=True)
class LeaseKind:
    """What one kind of work stores and does; the lease rules are the same for all kinds."""

    noun: str  # how the failure reason names it: "training job", "prediction", ...
    model: type[Leased]
    waiting: Mapping[str, Any]  # field values of work no worker holds: {"status": "queued"}
    held: Mapping[str, Any]  # field values of work a worker holds: {"status": "running"}
    lease_seconds: Callable[[], int]
    send: Callable[[Any], None]  # queue the work's message (again), on commit
    # The end state's fields, given the reason and the time; written by compare-and-set.
    dead: Callable[[str, datetime], dict[str, Any]]
    on_dead: Callable[[Any, str], None] = _no_op  # what else it records (audit, history)
    on_requeue: Callable[[Any], None] = _no_op  # what else a re-queue records (events)
    advice: str = "then try again"  # the end of the reason: what the user does next
    related: tuple[str, ...] = field(default=())  # select_related for the hooks
    # Columns the previous release still reads, written with every claim and renewal until
    # the release after it drops them (docs/operations.md: expand, then contract).
    stamp: Callable[[datetime], dict[str, Any]] = field(default=lambda now: {})

    def held_q(self) -> Q:
        # Held means claimed: a row waiting for its first claim may share the held status
        # (a publication is "pending" throughout) but has no claim_id.
        return Q(**self.held) & ~Q(claim_id="")


@dataclass(frozen=True)
class Claim:
    attempt: int
    new: bool  # False: the delivery that held it claimed again (a retry), not a new attempt


@dataclass
class Lapsed:
    """What ``leases_requeue_lapsed`` did: rows queued again, rows that ended as dead letters."""

    requeued: list[Any] = field(default_factory=list)
    dead: list[Any] = field(default_factory=list)


def _with_related(kind: LeaseKind, rows: Any) -> Any:
    # select_related() with no names would follow every foreign key.
    return rows.select_related(*kind.related) if kind.related else rows


def lease_max_attempts() -> int:
    """``POLLEN_LEASE_MAX_ATTEMPTS``: claims a piece of work gets before it ends with worker_lost."""
    return max(1, int(settings.LEASE_MAX_ATTEMPTS))


def worker_lost_reason(kind: LeaseKind, attempts: int) -> str:
    return (
        f"The site agent stopped {attempts} times while working on this {kind.noun} and never "
        "finished it. Ask your site IT to check the agent's log (it may run out of memory or "
        f"lose its connection to storage), {kind.advice}."
    )


def lease_claim(
    kind: LeaseKind,
    *,
    pk: int,
    claim_id: str,
    worker: str = "",
    scope: Q | None = None,
    now: datetime | None = None,
) -> Claim | None:
    """Claim the row for ``claim_id`` (only one delivery wins); None when it is not to be had."""
    now = now or timezone.now()
    claim_id, worker = claim_id[:64], worker[:200]
    rows = kind.model._default_manager.filter(scope or Q(), pk=pk)
    lease = now + timedelta(seconds=kind.lease_seconds())
    with transaction.atomic():
        if rows.filter(kind.held_q(), claim_id=claim_id).update(
            lease_expires_at=lease, **kind.stamp(now), **({"worker": worker} if worker else {})
        ):
            new = False
        elif rows.filter(
            Q(**kind.waiting)
            | (kind.held_q() & Q(lease_expires_at__lt=now, attempt__lt=lease_max_attempts()))
        ).update(
            **{
                **kind.held,
                "claim_id": claim_id,
                "worker": worker,
                "lease_expires_at": lease,
                "attempt": F("attempt") + 1,
                **kind.stamp(now),
            }
        ):
            new = True
        else:
            return None
        attempt = rows.values_list("attempt", flat=True).get()
    return Claim(attempt=attempt, new=new)


def lease_renew(
    kind: LeaseKind,
    *,
    pk: int,
    claim_id: str | None,
    scope: Q | None = None,
    **fields: Any,
) -> bool:
    """The holder's heartbeat: move the lease on (and write ``fields``); False: not yours now.

    ``claim_id`` None renews whoever holds it, for a caller that does not say which delivery
    it is (a cross-site round's progress report).
    """
    rows = kind.model._default_manager.filter(scope or Q(), kind.held_q(), pk=pk)
    if claim_id is not None:
        rows = rows.filter(claim_id=claim_id)
    now = timezone.now()
    lease = now + timedelta(seconds=kind.lease_seconds())
    return bool(rows.update(lease_expires_at=lease, **kind.stamp(now), **fields))


def leases_requeue_lapsed(
    kind: LeaseKind, *, scope: Q | None = None, now: datetime | None = None
) -> Lapsed:
    """Work whose lease lapsed waits again and is sent again, or, out of attempts, ends.

    Each row moves by compare-and-set on the lapsed claim it was read with, so a renewal, a
    result or a take-over that lands meanwhile wins, and the row is left alone.
    """
    now = now or timezone.now()
    done = Lapsed()
    lapsed = kind.model._default_manager.filter(
        scope or Q(), kind.held_q(), lease_expires_at__lt=now
    )
    for item in _with_related(kind, lapsed):
        still = kind.model._default_manager.filter(
            kind.held_q(), pk=item.pk, claim_id=item.claim_id, lease_expires_at__lt=now
        )
        with transaction.atomic():
            if item.attempt >= lease_max_attempts():
                reason = worker_lost_reason(kind, item.attempt)
                if still.update(**kind.dead(reason, now), lease_expires_at=None):
                    kind.on_dead(item, reason)
                    done.dead.append(item)
                    logger.warning(
                        "%s %s failed: its worker died %s times", kind.noun, item.pk, item.attempt
                    )
            elif still.update(
                **{**kind.waiting, "claim_id": "", "lease_expires_at": None, "last_sent_at": now}
            ):
                kind.on_requeue(item)
                kind.send(item)
                done.requeued.append(item)
                logger.info("%s %s queued again: its worker stopped renewing", kind.noun, item.pk)
    return done


def leases_resend_unclaimed(
    kind: LeaseKind, *, scope: Q | None = None, now: datetime | None = None
) -> list[Any]:
    """Send again the work that nobody claimed since its message went out a while ago."""
    now = now or timezone.now()
    cutoff = now - timedelta(seconds=settings.JOB_RESEND_SECONDS)
    resent = []
    stale = kind.model._default_manager.filter(
        scope or Q(), last_sent_at__lt=cutoff, **kind.waiting
    )
    for item in _with_related(kind, stale):
        with transaction.atomic():
            if kind.model._default_manager.filter(
                pk=item.pk, last_sent_at=item.last_sent_at, **kind.waiting
            ).update(last_sent_at=now):
                kind.send(item)
                resent.append(item)
    return resent
