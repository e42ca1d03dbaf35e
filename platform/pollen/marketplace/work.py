"""Marketplace work on a site's infer queue, seen from the hub: claim, renew, fail, take over.

Publications, predictions, evaluations, exports and held-out checks are leases
(``pollen.core.lease``): claimed by compare-and-set (only one worker wins) and renewed while
the worker works (``WORK_LEASE_SECONDS``), so a claim that stops being renewed belongs to a
worker that died (SIGKILL, out of memory, a machine that went away). The clock queues such
work again (``work_requeue_abandoned``) and another worker takes it over; work whose workers
died ``POLLEN_LEASE_MAX_ATTEMPTS`` times ends with ``worker_lost`` and a reason instead of
looping. Work whose message was lost is sent again (``work_resend_unclaimed``). The worker
that lost its claim cannot write a result (``finish_claimed`` checks the claim).
"""

from __future__ import annotations

from datetime import datetime
from functools import partial
from typing import Any

from django.conf import settings
from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from pollen.accounts.caller import Caller
from pollen.accounts.models import Site
from pollen.audit.services import audit_record
from pollen.core.dispatch import send_on_commit
from pollen.core.errors import ApiError, NotFound
from pollen.core.lease import (
    WORKER_LOST,
    LeaseKind,
    lease_claim,
    lease_renew,
    leases_requeue_lapsed,
    leases_resend_unclaimed,
)
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
from pollen.training.weights import HUB_PREFIX
from pollen_contracts import queues, tasks

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
    return int(settings.WORK_LEASE_SECONDS)


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


def agent_work_claim(
    *, caller: Caller, kind: str, item: Any, claim_id: str, worker: str = ""
) -> dict[str, Any]:
    """Claim the item (only one worker wins) and hand over its spec with fresh presigned URLs.

    The same delivery may claim again (a retry); another one only once the lease lapsed.
    Every new claim counts as an attempt. A model withdrawn after the work was queued ends
    the work here, with the reason.
    """
    claim_id = claim_id[:64]
    if lease_claim(LEASES[kind], pk=item.pk, claim_id=claim_id, worker=worker) is None:
        return {"claimed": False}
    item.refresh_from_db()
    try:
        spec = WORK_KINDS[kind]["spec"](item)
    except ApiError as exc:
        agent_work_fail(
            kind=kind, item=item, claim_id=claim_id, code=exc.error_code, message=exc.message
        )
        return {"claimed": False, "failed": exc.error_code}
    return {"claimed": True, "spec": spec.to_dict(), "lease_seconds": work_lease_seconds()}


def agent_work_renew(*, kind: str, item: Any, claim_id: str) -> dict[str, bool]:
    """Keep a claim alive while the worker works; ``renewed`` false means: stop, it is not yours."""
    return {"renewed": lease_renew(LEASES[kind], pk=item.pk, claim_id=claim_id)}


def agent_work_fail(*, kind: str, item: Any, claim_id: str, code: str, message: str) -> None:
    work = WORK_KINDS[kind]
    fields = _failed(kind, code[:50], message[:2000], timezone.now())
    with transaction.atomic():
        if finish_claimed(
            work["model"], item.pk, claim_id=claim_id, active=work["active"], **fields
        ):
            _audit_failed(kind, item, {"code": code})


def _failed(kind: str, code: str, message: str, now: datetime) -> dict[str, Any]:
    fields: dict[str, Any] = {
        "status": WORK_KINDS[kind]["failed"],
        "error_code": code,
        "message": message,
    }
    if kind != "publications":  # a version has no finished_at: it is published or not
        fields["finished_at"] = now
    return fields


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


def _send(kind: str, item: Any) -> None:
    work = WORK_KINDS[kind]
    slug = Site.objects.values_list("slug", flat=True).get(pk=_site_id(kind, item))
    send_on_commit(
        work["task"],
        {"site": slug, "kind": work["payload_kind"], "id": item.pk},
        queue=queues.infer_queue(slug),
    )


def _dead(kind: str, reason: str, now: datetime) -> dict[str, Any]:
    return _failed(kind, WORKER_LOST, reason, now)


def _lost(kind: str, item: Any, reason: str) -> None:
    _audit_failed(kind, item, {"code": WORKER_LOST, "attempts": item.attempt})


def _claimed_at(now: datetime) -> dict[str, Any]:
    # The release before judges a claim by its last renewal; drop with the column.
    return {"claimed_at": now}


def _lease_kind(kind: str) -> LeaseKind:
    work = WORK_KINDS[kind]
    publications = kind == "publications"
    return LeaseKind(
        noun=work["noun"],
        model=work["model"],
        # A version is "pending" from publishing to published: unclaimed while it has no claim.
        waiting={"status": work["queued"], **({"claim_id": ""} if publications else {})},
        held={"status": work["running"]},
        lease_seconds=work_lease_seconds,
        send=partial(_send, kind),
        dead=partial(_dead, kind),
        on_dead=partial(_lost, kind),
        advice="then try again",
        related=("published_model",) if publications else (),
        stamp=_claimed_at,
    )


LEASES: dict[str, LeaseKind] = {kind: _lease_kind(kind) for kind in WORK_KINDS}


def _site_scope(kind: str, site_id: int) -> Q:
    return Q(**{WORK_KINDS[kind]["site_field"]: site_id})


def work_requeue_abandoned(*, site_id: int) -> list[str]:
    """Queue again the site's work whose worker stopped renewing its claim; returns 'kind:id'.

    Work whose workers died ``POLLEN_LEASE_MAX_ATTEMPTS`` times fails with ``worker_lost``.
    """
    moved = []
    for kind, work in WORK_KINDS.items():
        lapsed = leases_requeue_lapsed(LEASES[kind], scope=_site_scope(kind, site_id))
        moved += [f"{work['payload_kind']}:{item.pk}" for item in lapsed.requeued]
    return moved


def work_resend_unclaimed(*, site_id: int) -> list[str]:
    """Send again the site's queued work that nobody claimed: its message may be lost.

    Only at a site whose infer queue is idle (work running there explains a wait); a
    duplicate is harmless, since only one claim can win. Returns 'kind:id'.
    """
    if any(
        LEASES[kind]
        .model._default_manager.filter(LEASES[kind].held_q(), _site_scope(kind, site_id))
        .exists()
        for kind in WORK_KINDS
    ):
        return []
    resent = []
    for kind, work in WORK_KINDS.items():
        scope = _site_scope(kind, site_id)
        if kind == "publications":  # a cross-site model is copied inside the hub, not sent
            scope &= ~Q(model_version__storage_key__startswith=HUB_PREFIX)
        items = leases_resend_unclaimed(LEASES[kind], scope=scope)
        resent += [f"{work['payload_kind']}:{item.pk}" for item in items]
    return resent
