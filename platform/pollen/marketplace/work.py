"""Marketplace work on a site's infer queue, seen from the hub: claim, renew, fail, take over.

Publications, predictions, evaluations and exports are claimed by compare-and-set (only one
worker wins). A claim is a lease: the worker renews it while it works
(``WORK_LEASE_SECONDS``), so a claim that stops being renewed belongs to a worker that died
(SIGKILL, out of memory, a machine that went away). The site agent's heartbeat calls
``work_requeue_abandoned``: such work is queued again and another worker takes it over;
work whose worker died ``MAX_WORK_ATTEMPTS`` times ends with a reason instead of looping.
The worker that lost its claim cannot write a result (``finish_claimed`` checks the claim).
"""

from __future__ import annotations

import logging
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.db import transaction
from django.db.models import Case, F, Q, When
from django.utils import timezone

from pollen.accounts.caller import Caller
from pollen.audit.services import audit_record
from pollen.core.dispatch import send_on_commit
from pollen.core.errors import ApiError, NotFound
from pollen.federation.evaluation import held_out_spec
from pollen.federation.models import HeldOutEvaluation
from pollen.marketplace.applying import prediction_spec
from pollen.marketplace.evaluating import evaluation_spec
from pollen.marketplace.exports import export_spec
from pollen.marketplace.models import (
    ModelExport,
    Prediction,
    PublishedVersion,
    SiteEvaluation,
    VersionStatus,
    WorkStatus,
)
from pollen.marketplace.publishing import publication_spec
from pollen.marketplace.versions import finish_claimed
from pollen_contracts import queues, tasks

logger = logging.getLogger(__name__)

MAX_WORK_ATTEMPTS = 3

# The hub's path segment -> how that kind of work is stored, claimed and sent.
WORK_KINDS: dict[str, dict[str, Any]] = {
    "publications": {
        "model": PublishedVersion,
        "site_field": "published_model__site_id",
        "task": tasks.PUBLISH,
        "payload_kind": "publication",
        "noun": "copy of this model to the marketplace",
        "active": {VersionStatus.PENDING},
        "queued": VersionStatus.PENDING,
        "running": VersionStatus.PENDING,
        "failed": VersionStatus.FAILED,
        "spec": publication_spec,
    },
    "predictions": {
        "model": Prediction,
        "site_field": "site_id",
        "task": tasks.PREDICT,
        "payload_kind": "prediction",
        "noun": "prediction",
        "active": {WorkStatus.QUEUED, WorkStatus.RUNNING},
        "queued": WorkStatus.QUEUED,
        "running": WorkStatus.RUNNING,
        "failed": WorkStatus.FAILED,
        "spec": prediction_spec,
    },
    "evaluations": {
        "model": SiteEvaluation,
        "site_field": "site_id",
        "task": tasks.EVALUATE,
        "payload_kind": "evaluation",
        "noun": "evaluation",
        "active": {WorkStatus.QUEUED, WorkStatus.RUNNING},
        "queued": WorkStatus.QUEUED,
        "running": WorkStatus.RUNNING,
        "failed": WorkStatus.FAILED,
        "spec": evaluation_spec,
    },
    "exports": {
        "model": ModelExport,
        "site_field": "site_id",
        "task": tasks.EXPORT,
        "payload_kind": "export",
        "noun": "export",
        "active": {WorkStatus.QUEUED, WorkStatus.RUNNING},
        "queued": WorkStatus.QUEUED,
        "running": WorkStatus.RUNNING,
        "failed": WorkStatus.FAILED,
        "spec": export_spec,
    },
    # A finished cross-site model checked on a site's held-out images (pollen.federation.evaluation).
    "held-out-evaluations": {
        "model": HeldOutEvaluation,
        "site_field": "site_id",
        "task": tasks.FEDERATED_HELD_OUT,
        "payload_kind": "held_out",
        "noun": "check of the cross-site model on held-out images",
        "active": {WorkStatus.QUEUED, WorkStatus.RUNNING},
        "queued": WorkStatus.QUEUED,
        "running": WorkStatus.RUNNING,
        "failed": WorkStatus.FAILED,
        "spec": held_out_spec,
    },
}


def work_lease_seconds() -> int:
    return int(getattr(settings, "WORK_LEASE_SECONDS", 120))


def _lapsed_before() -> Any:
    return timezone.now() - timedelta(seconds=work_lease_seconds())


def agent_work_get(*, caller: Caller, kind: str, pk: int) -> Any:
    """A work item at the agent's own site, else 404."""
    work = WORK_KINDS[kind]
    item = (
        work["model"]
        .objects.filter(pk=pk, **{f"{work['site_field']}__in": caller.site_ids})
        .first()
    )
    if item is None:
        raise NotFound("There is no such work for this agent.", code="not_found")
    return item


def agent_work_claim(*, caller: Caller, kind: str, item: Any, claim_id: str) -> dict[str, Any]:
    """Claim the item (only one worker wins) and hand over its spec with fresh presigned URLs.

    The same delivery may claim again (a retry); another one only once the lease lapsed.
    Every new claim counts as an attempt. A model withdrawn after the work was queued ends
    the work here, with the reason.
    """
    work = WORK_KINDS[kind]
    claim_id = claim_id[:64]
    won = (
        work["model"]
        .objects.filter(pk=item.pk, status__in=work["active"])
        .filter(Q(claim_id="") | Q(claim_id=claim_id) | Q(claimed_at__lt=_lapsed_before()))
        .update(
            status=work["running"],
            claim_id=claim_id,
            claimed_at=timezone.now(),
            attempts=Case(When(claim_id=claim_id, then=F("attempts")), default=F("attempts") + 1),
        )
    )
    if not won:
        return {"claimed": False}
    item.refresh_from_db()
    try:
        spec = work["spec"](item)
    except ApiError as exc:
        agent_work_fail(
            kind=kind, item=item, claim_id=claim_id, code=exc.error_code, message=exc.message
        )
        return {"claimed": False, "failed": exc.error_code}
    return {"claimed": True, "spec": spec, "lease_seconds": work_lease_seconds()}


def agent_work_renew(*, kind: str, item: Any, claim_id: str) -> dict[str, bool]:
    """Keep a claim alive while the worker works; ``renewed`` false means: stop, it is not yours."""
    work = WORK_KINDS[kind]
    renewed = (
        work["model"]
        .objects.filter(pk=item.pk, status=work["running"], claim_id=claim_id)
        .update(claimed_at=timezone.now())
    )
    return {"renewed": bool(renewed)}


def agent_work_fail(*, kind: str, item: Any, claim_id: str, code: str, message: str) -> None:
    work = WORK_KINDS[kind]
    fields: dict[str, Any] = {
        "status": work["failed"],
        "error_code": code[:50],
        "message": message[:2000],
    }
    if kind != "publications":
        fields["finished_at"] = timezone.now()
    with transaction.atomic():
        if finish_claimed(
            work["model"], item.pk, claim_id=claim_id, active=work["active"], **fields
        ):
            _audit_failed(kind, item, {"code": code})


def _audit_failed(kind: str, item: Any, detail: dict[str, Any]) -> None:
    audit_record(
        caller=None,
        action=f"marketplace.{kind[:-1]}_failed",
        site_id=_site_id(kind, item),
        target_type=kind[:-1],
        target_id=item.pk,
        detail=detail,
    )


def _site_id(kind: str, item: Any) -> int:
    return int(item.published_model.site_id if kind == "publications" else item.site_id)


def _abandoned(kind: str, site_id: int) -> Any:
    """Claimed work at a site whose lease lapsed (an in-hub copy has no lease, so never shows)."""
    work = WORK_KINDS[kind]
    return (
        work["model"]
        .objects.filter(
            status=work["running"],
            claimed_at__lt=_lapsed_before(),
            **{work["site_field"]: site_id},
        )
        .exclude(claim_id="")
        .select_related(*(["published_model"] if kind == "publications" else []))
    )


def _update_if_still_lapsed(kind: str, item: Any, **fields: Any) -> bool:
    """Write ``fields`` only if ``item`` is still held by the same lapsed claim (compare-and-set)."""
    work = WORK_KINDS[kind]
    return bool(
        work["model"]
        .objects.filter(
            pk=item.pk,
            status=work["running"],
            claim_id=item.claim_id,
            claimed_at__lt=_lapsed_before(),
        )
        .update(**fields)
    )


def _give_up(kind: str, item: Any) -> bool:
    work = WORK_KINDS[kind]
    message = (
        f"The site agent stopped {item.attempts} times while working on this {work['noun']} "
        "and never finished it. Ask your site IT to check the agent's log (it may run out of "
        "memory on very large images), then try again."
    )
    fields: dict[str, Any] = {
        "status": work["failed"],
        "error_code": "worker_lost",
        "message": message,
    }
    if kind != "publications":
        fields["finished_at"] = timezone.now()
    with transaction.atomic():
        if not _update_if_still_lapsed(kind, item, **fields):
            return False
        _audit_failed(kind, item, {"code": "worker_lost", "attempts": item.attempts})
    return True


def _requeue(kind: str, item: Any, slug: str) -> bool:
    work = WORK_KINDS[kind]
    with transaction.atomic():
        if not _update_if_still_lapsed(
            kind, item, status=work["queued"], claim_id="", claimed_at=None
        ):
            return False  # renewed, finished or taken over meanwhile
        send_on_commit(
            work["task"],
            {"site": slug, "kind": work["payload_kind"], "id": item.pk},
            queue=queues.infer_queue(slug),
        )
    return True


def work_requeue_abandoned(*, site_id: int, site_slug: str) -> list[str]:
    """Queue again the site's work whose worker stopped renewing its claim; returns 'kind:id'."""
    moved = []
    for kind in WORK_KINDS:
        for item in _abandoned(kind, site_id):
            if item.attempts >= MAX_WORK_ATTEMPTS:
                if _give_up(kind, item):
                    logger.warning(
                        "%s %s failed: its worker died %s times", kind, item.pk, item.attempts
                    )
                continue
            if _requeue(kind, item, site_slug):
                logger.info(
                    "%s %s queued again: its worker stopped renewing the claim", kind, item.pk
                )
                moved.append(f"{WORK_KINDS[kind]['payload_kind']}:{item.pk}")
    return moved
