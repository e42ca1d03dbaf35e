"""The agent's side of a round: claim (compare-and-set), progress (renews the lease), the
site's update (checked before it is accepted) and a reported failure.
"""

from __future__ import annotations

from typing import Any

from django.db import IntegrityError, transaction
from django.db.models import Q

from pollen.accounts.caller import Caller
from pollen.core.errors import ApiError, Conflict, NotFound
from pollen.core.lease import lease_claim, lease_renew
from pollen.core.model_store import model_store, sha256_bytes
from pollen.federation import aggregation
from pollen.federation.history import (
    accepted_key,
    history_add,
    round_lease_seconds,
    score_words,
    update_key,
)
from pollen.federation.models import (
    FederatedJob,
    FederatedStatus,
    Participant,
    ParticipantStatus,
    Round,
    RoundStatus,
    Update,
    UpdateStatus,
    WorkState,
)
from pollen.federation.round_dispatch import round_spec
from pollen.federation.services import federation_advance
from pollen.federation.turns import ROUND_TURN


def round_claim(
    *, caller: Caller, job: FederatedJob, number: int, claim_id: str, worker: str
) -> dict[str, Any]:
    """This site's turn in a round: one worker wins it (or takes over one whose lease lapsed)."""
    participant = _agent_participant(caller, job)
    round_ = Round.objects.filter(job=job, number=number, status=RoundStatus.RUNNING).first()
    if job.status != FederatedStatus.RUNNING or round_ is None:
        return {"claimed": False, "reason": "This round is closed."}
    claim = lease_claim(
        ROUND_TURN,
        pk=participant.pk,
        claim_id=claim_id,
        worker=worker,
        scope=Q(work_round=number),
    )
    if claim is None:
        return {"claimed": False, "reason": "Another worker has this turn, or it has ended."}
    participant.refresh_from_db()
    if claim.new:  # the same delivery claiming again (a retry) is no news
        history_add(  # the worker's host name is for site IT (the round's progress), not here
            job.pk,
            (
                f"{participant.site.name} started round {number}"
                if number
                else f"{participant.site.name} started preparing the common starting model"
            )
            + (f" (attempt {claim.attempt})" if claim.attempt > 1 else "")
            + ".",
            site=participant.site.slug,
        )
    spec = round_spec(job, round_, participant, lease_seconds=round_lease_seconds())
    return {"claimed": True, "spec": spec.to_dict()}


def round_progress(
    *,
    caller: Caller,
    job: FederatedJob,
    number: int,
    progress: dict[str, Any],
    claim_id: str | None = None,
) -> dict[str, Any]:
    """Record a site's progress and renew its lease; tell it to stop if its turn is over.

    Only the delivery that holds the turn renews it; a report that names no delivery (from an
    agent older than ``claim_id``) renews whoever holds it.
    """
    participant = _agent_participant(caller, job)
    renewed = lease_renew(
        ROUND_TURN,
        pk=participant.pk,
        claim_id=claim_id,
        scope=Q(work_round=number),
        progress={**participant.progress, **progress},
    )
    return {"stop": not renewed}


def _agent_participant(caller: Caller, job: FederatedJob) -> Participant:
    participant = (
        # A site that withdrew still reaches its turn, so its worker hears "stop" and a late
        # update is refused as closed, rather than a bare "not found".
        Participant.objects.filter(
            job=job,
            site_id__in=caller.site_ids,
            status__in=[ParticipantStatus.ACCEPTED, ParticipantStatus.WITHDRAWN],
        )
        .select_related("site")
        .first()
    )
    if participant is None or caller.job_id is not None:
        raise NotFound(
            "There is no such federated job for this agent.", code="federated_job_not_found"
        )
    return participant


def _refuse(
    job: FederatedJob, round_: Round, participant: Participant, body: dict[str, Any], exc: Any
) -> None:
    """Record a refused update (its own transaction, so the refusal outlives the error answer)."""
    slug = participant.site.slug
    with transaction.atomic():
        try:
            with transaction.atomic():
                Update.objects.create(
                    round=round_,
                    site_id=participant.site_id,
                    status=UpdateStatus.REJECTED,
                    sample_count=max(0, int(body.get("sample_count", 0))),
                    metrics=body.get("metrics") or {},
                    code=exc.code,
                    reason=exc.message,
                )
        except IntegrityError:
            pass
        Participant.objects.filter(pk=participant.pk, work_round=round_.number).update(
            work_state=WorkState.FAILED, lease_expires_at=None
        )
        history_add(
            job.pk,
            f"The trained model from {participant.site.name} for round {round_.number} was "
            f"refused: {exc.message}",
            code=exc.code,
            site=slug,
        )


def round_update_submit(
    *, caller: Caller, job: FederatedJob, number: int, body: dict[str, Any]
) -> Update:
    """A site's weights for a round (already uploaded to the hub's model store) and its numbers.

    Refused, with a reason logged in the job's history: a second update for the same round,
    a round that has closed, a checksum mismatch, tensors that do not fit the global model,
    NaN or infinite values, or more samples than the site's dataset holds.
    """
    participant = _agent_participant(caller, job)
    slug = participant.site.slug
    round_ = Round.objects.filter(job=job, number=number).first()
    if round_ is None:
        raise NotFound("There is no such round.", code="round_not_found")
    if Update.objects.filter(round=round_, site_id=participant.site_id).exists():
        message = (
            f"{slug} already sent its update for round {number}; a site sends each round once."
        )
        history_add(
            job.pk,
            f"A second trained model from {participant.site.name} for round {number} was refused.",
            code="update_duplicate",
            site=slug,
        )
        raise Conflict(message, code="update_duplicate")
    if (
        job.status != FederatedStatus.RUNNING
        or round_.status != RoundStatus.RUNNING
        or participant.work_round != number
        or participant.work_state not in {WorkState.QUEUED, WorkState.TRAINING}
    ):
        history_add(
            job.pk,
            f"A late trained model from {participant.site.name} for round {number} was refused: "
            "the round had closed.",
            code="round_closed",
            site=slug,
        )
        raise Conflict(
            f"Round {number} has closed for {slug} (deadline passed or job ended).",
            code="round_closed",
        )
    try:
        tensors, data = _checked_update(job, participant, number, body)
    except aggregation.UpdateRefused as exc:
        _refuse(job, round_, participant, body, exc)
        raise ApiError(exc.message, code=exc.code) from exc
    key = accepted_key(job.pk, number, slug)
    model_store().put_bytes(key, data)
    try:
        with transaction.atomic():
            update = Update.objects.create(
                round=round_,
                site_id=participant.site_id,
                status=UpdateStatus.ACCEPTED,
                sample_count=body["sample_count"],
                metrics=body.get("metrics") or {},
                weights_key=key,
                weights_sha256=body["weights_sha256"],
                inference=body.get("inference") or {},
            )
            Participant.objects.filter(pk=participant.pk).update(
                work_state=WorkState.SENT, lease_expires_at=None
            )
            if number == 0:
                model = body.get("model") or {}
                FederatedJob.objects.filter(pk=job.pk).update(
                    tensor_layout=aggregation.describe(tensors),
                    mean=model.get("mean", []),
                    std=model.get("std", []),
                )
            history_add(
                job.pk,
                (
                    f"{participant.site.name} sent round {number}: "
                    f"{body['sample_count']} training images"
                    if number
                    else f"{participant.site.name} prepared the common starting model"
                )
                + score_words(body.get("metrics") or {})
                + ".",
                site=slug,
            )
    except IntegrityError:
        raise Conflict(
            f"{slug} already sent its update for round {number}.", code="update_duplicate"
        ) from None
    transaction.on_commit(lambda: federation_advance(job_id=job.pk))
    return update


def _checked_update(
    job: FederatedJob, participant: Participant, number: int, body: dict[str, Any]
) -> tuple[aggregation.Tensors, bytes]:
    store = model_store()
    key = update_key(job.pk, number, participant.site.slug)
    if not store.exists(key):
        raise aggregation.UpdateRefused(
            "The weights were not uploaded; upload them to the URL the hub gave, then report.",
            code="update_missing",
        )
    data = store.get_bytes(key)
    if sha256_bytes(data) != body["weights_sha256"]:
        raise aggregation.UpdateRefused(
            "The uploaded weights do not match the checksum reported with them.",
            code="update_checksum",
        )
    tensors = aggregation.read_tensors(data)
    if number > 0:
        aggregation.check_shapes(tensors, {k: (v[0], v[1]) for k, v in job.tensor_layout.items()})
        if not 1 <= body["sample_count"] <= participant.train_count:
            raise aggregation.UpdateRefused(
                f"The update claims {body['sample_count']} training images; the site's dataset has "
                f"{participant.train_count}.",
                code="update_sample_count",
            )
    aggregation.check_finite(tensors)
    return tensors, data


def round_fail_report(
    *, caller: Caller, job: FederatedJob, number: int, code: str, message: str
) -> None:
    """A site could not finish its round: it is left out of this round; the job goes on."""
    participant = _agent_participant(caller, job)
    round_ = Round.objects.filter(job=job, number=number).first()
    if round_ is None:
        raise NotFound("There is no such round.", code="round_not_found")
    slug = participant.site.slug
    try:
        with transaction.atomic():
            Update.objects.create(
                round=round_,
                site_id=participant.site_id,
                status=UpdateStatus.FAILED,
                code=code,
                reason=message,
            )
            Participant.objects.filter(pk=participant.pk, work_round=number).update(
                work_state=WorkState.FAILED, lease_expires_at=None
            )
            history_add(
                job.pk,
                f"{participant.site.name} could not finish round {number}: {message}",
                code=code,
                site=slug,
            )
    except IntegrityError:
        raise Conflict(
            f"{slug} already reported round {number}.", code="update_duplicate"
        ) from None
    transaction.on_commit(lambda: federation_advance(job_id=job.pk))
