"""Federated jobs: consent, rounds, updates and aggregation. Every step is a compare-and-set.

State lives in the database, so a hub or worker restart resumes a job where it stood:
``federation_tick`` (run by the clock, ``pollen.ops.clock``) moves each running job forward.
A request only marks a round ready (``running -> aggregating``); the clock combines it, so
averaging weights never holds a web request. An ``Update`` is unique per (round, site) and a
round is recorded by the one caller that wins ``aggregating -> done``.
"""

from __future__ import annotations

import json
import logging
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import Q
from django.utils import timezone

from pollen.accounts.caller import Caller
from pollen.accounts.models import Site
from pollen.audit.services import audit_record
from pollen.core.advanced import advanced_check
from pollen.core.dispatch import send_on_commit
from pollen.core.errors import ApiError, Conflict, Forbidden, NotFound
from pollen.core.model_store import model_store, sha256_bytes
from pollen.datasets.models import Dataset, DatasetStatus, ImageStatus
from pollen.datasets.positive_class import positive_class_for
from pollen.federation import aggregation
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
from pollen.training.models import ModelVersion
from pollen.training.services import dataset_readiness
from pollen.training.weights import HUB_PREFIX  # one definition of the hub-store key prefix
from pollen.zoo.models import WeightSource, ZooEntry
from pollen_contracts import queues, tasks

logger = logging.getLogger(__name__)

ADVANCED_LIMITS = {
    "batch_size": (2, 512),
    "input_size": (16, 1024),
    "learning_rate": (1e-6, 1.0),
    "seed": (0, 2**31 - 1),
}
URL_MARGIN_SECONDS = 900
# How a clinician reads each strategy in the job's history.
STRATEGY_WORDS: dict[str, str] = {
    Strategy.FEDAVG: "at all hospitals at once",
    Strategy.RELAY: "at one hospital after another",
}
METRIC_NAMES = ("val_auc", "val_accuracy", "val_balanced_accuracy", "val_loss", "train_loss")


def _lease_seconds() -> int:
    return int(getattr(settings, "JOB_LEASE_SECONDS", 120))


def _now_text() -> str:
    return timezone.now().isoformat(timespec="seconds")


def history_add(job_id: int, text: str, **detail: Any) -> None:
    """Append to the job's history (rows locked, so concurrent sites never lose an entry).

    ``text`` is what a clinician reads: hospital names, never slugs or training jargon.
    ``detail`` keeps machine-readable keys (``site`` is the slug, ``code`` a stable code).
    """
    with transaction.atomic():
        job = FederatedJob.objects.select_for_update().get(pk=job_id)
        job.events = [*job.events, {"at": _now_text(), "text": text, **detail}]
        job.save(update_fields=["events"])


def round_folder(job_id: int, number: int) -> str:
    return f"federated/{job_id}/round-{number}"


def update_key(job_id: int, number: int, slug: str) -> str:
    """Where a site uploads its update (through a presigned PUT URL)."""
    return f"{round_folder(job_id, number)}/uploads/{slug}.safetensors"


def _accepted_key(job_id: int, number: int, slug: str) -> str:
    # A copy the site holds no URL for: re-uploading cannot change an accepted update.
    return f"{round_folder(job_id, number)}/accepted/{slug}.safetensors"


# --- creating a job and consent -------------------------------------------------------------


def _ready_labels(dataset: Dataset) -> list[str]:
    if dataset.status != DatasetStatus.ACTIVE:
        raise Conflict("This dataset is being deleted.", code="dataset_deleting")
    labels, problems = dataset_readiness(dataset)
    if problems:
        raise ApiError(" ".join(problems), code="dataset_not_ready", fields={"dataset": problems})
    return labels


def _train_count(dataset: Dataset, labels: list[str]) -> int:
    return dataset.images.filter(
        status=ImageStatus.ACCEPTED, split="train", label__in=labels
    ).count()


def federated_job_create(
    *,
    caller: Caller,
    dataset: Dataset,
    sites: list[Site],
    strategy: str,
    rounds: int,
    local_epochs: int,
    min_participants: int,
    round_deadline_seconds: int,
    starting_point: ZooEntry | None = None,
    start_version: ModelVersion | None = None,
    name: str = "",
    advanced: dict[str, Any] | None = None,
) -> FederatedJob:
    """Invite other sites to train one model on their own data; nothing runs before they accept."""
    caller.require_clinical()
    if dataset.site_id not in caller.site_ids:
        raise NotFound("There is no such dataset at your sites.", code="dataset_not_found")
    others = [s for s in sites if s.pk != dataset.site_id]
    if not others or len({s.pk for s in others}) != len(others):
        raise ApiError(
            "Name at least one other site, each once: a federated job trains across sites.",
            code="invalid_sites",
            fields={"sites": "At least one other site, no repeats."},
        )
    if not 1 <= min_participants <= len(others) + 1:
        raise ApiError(
            f"The minimum number of sites must be between 1 and {len(others) + 1} (the sites named).",
            code="invalid",
            fields={"min_participants": f"Between 1 and {len(others) + 1}."},
        )
    if (starting_point is None) == (start_version is None):
        raise ApiError(
            "Choose one starting point: a zoo entry or a model version.",
            code="invalid_starting_point",
        )
    if start_version is not None and start_version.site_id != dataset.site_id:
        raise ApiError(
            "Start from a model version of the site whose dataset you chose.",
            code="invalid_starting_point",
        )
    config = advanced_check(advanced or {}, limits=ADVANCED_LIMITS)
    labels = _ready_labels(dataset)
    # The finding is the initiator's dataset's; kept with the job so every site's numbers are
    # about the same label.
    config["positive_class"] = positive_class_for(labels, dataset.positive_class)
    source = starting_point or start_version
    assert source is not None
    with transaction.atomic():
        job = FederatedJob.objects.create(
            initiator_site_id=dataset.site_id,
            name=name or f"Cross-site: {dataset.name} - {timezone.now():%d %b %H:%M}",
            strategy=strategy,
            rounds=rounds,
            local_epochs=local_epochs,
            min_participants=min_participants,
            round_deadline_seconds=round_deadline_seconds,
            starting_point=starting_point,
            start_version=start_version,
            architecture=source.architecture,
            input_size=int(config.pop("input_size", source.input_size)),
            label_names=labels,
            licence=source.licence,
            config=config,
            created_by_id=caller.user_id if caller.token is None else None,
            events=[
                {
                    "at": _now_text(),
                    "text": f"{caller.username} proposed training {STRATEGY_WORDS[strategy]} across "
                    f"{', '.join([dataset.site.name] + [s.name for s in others])}.",
                }
            ],
        )
        initiator_accepts = caller.is_admin_of(dataset.site_id)
        Participant.objects.create(
            job=job,
            site_id=dataset.site_id,
            dataset=dataset,
            order=0,
            train_count=_train_count(dataset, labels),
            status=ParticipantStatus.ACCEPTED if initiator_accepts else ParticipantStatus.INVITED,
            responded_by_id=caller.user_id if initiator_accepts else None,
            responded_at=timezone.now() if initiator_accepts else None,
        )
        Participant.objects.bulk_create(
            Participant(job=job, site=site, order=i) for i, site in enumerate(others, start=1)
        )
        audit_record(
            caller=caller,
            action="federated_job.create",
            site_id=dataset.site_id,
            target_type="federated_job",
            target_id=job.pk,
            detail={"sites": [s.slug for s in others], "strategy": strategy},
        )
    return job


def participant_respond(
    *, caller: Caller, job: FederatedJob, site_id: int, accept: bool, dataset: Dataset | None = None
) -> FederatedJob:
    """A participating site's administrator accepts (with one of the site's datasets) or declines."""
    caller.require_clinical()
    caller.require_admin(site_id)
    participant = Participant.objects.filter(job=job, site_id=site_id).first()
    if participant is None:
        raise NotFound(
            "Your site is not part of this federated job.", code="federated_job_not_found"
        )
    if job.status != FederatedStatus.PENDING or participant.status != ParticipantStatus.INVITED:
        raise Conflict(
            "Your site has already answered, or the job has already started or ended.",
            code="already_answered",
        )
    slug, name = caller.slugs[site_id], participant.site.name
    if accept:
        dataset = dataset or participant.dataset
        if dataset is None or dataset.site_id != site_id:
            raise ApiError(
                f"Choose one of {name}'s datasets to train on.",
                code="dataset_required",
                fields={"dataset": "A dataset of your site."},
            )
        labels = _ready_labels(dataset)
        if sorted(labels) != sorted(job.label_names):
            message = (
                f"The labels of {name}'s dataset '{dataset.name}' ({', '.join(labels)}) differ from the "
                f"job's ({', '.join(job.label_names)}). Every site must train on the same labels; choose a "
                "dataset with exactly these labels."
            )
            history_add(
                job.pk, f"{name} could not accept: {message}", code="label_mismatch", site=slug
            )
            raise ApiError(message, code="label_mismatch", fields={"dataset": message})
    with transaction.atomic():
        changed = Participant.objects.filter(
            pk=participant.pk, status=ParticipantStatus.INVITED
        ).update(
            status=ParticipantStatus.ACCEPTED if accept else ParticipantStatus.DECLINED,
            dataset=dataset if accept else participant.dataset,
            train_count=_train_count(dataset, job.label_names) if accept and dataset else 0,
            responded_by_id=caller.user_id,
            responded_at=timezone.now(),
        )
        if not changed:
            raise Conflict("Your site has already answered.", code="already_answered")
        verb = "accepted" if accept else "declined"
        history_add(job.pk, f"{name} {verb}." + ("" if accept else " It takes no part."), site=slug)
        audit_record(
            caller=caller,
            action=f"federated_job.{verb}",
            site_id=site_id,
            target_type="federated_job",
            target_id=job.pk,
        )
        _maybe_start(job.pk)
    job.refresh_from_db()
    return job


def _maybe_start(job_id: int) -> None:
    """Once every site has answered: start if enough accepted, else fail with the reason."""
    participants = list(Participant.objects.filter(job_id=job_id))
    if any(p.status == ParticipantStatus.INVITED for p in participants):
        return
    accepted = [p for p in participants if p.status == ParticipantStatus.ACCEPTED]
    job = FederatedJob.objects.get(pk=job_id)
    if len(accepted) < job.min_participants:
        _finish(
            job,
            FederatedStatus.FAILED,
            "not_enough_sites",
            f"Only {len(accepted)} hospital(s) accepted; this training needs at least "
            f"{job.min_participants}.",
        )
        return
    if not FederatedJob.objects.filter(pk=job_id, status=FederatedStatus.PENDING).update(
        status=FederatedStatus.RUNNING, started_at=timezone.now()
    ):
        return
    first = accepted[0]
    history_add(
        job_id, f"Every hospital answered; {first.site.name} prepares the common starting model."
    )
    _open_round(job, 0, [first])


def federated_job_cancel(*, caller: Caller, job: FederatedJob) -> FederatedJob:
    """An administrator of the initiating site stops the whole job, for every site.

    Other sites never stop it: their consent covers their own part only, so an invited site
    declines and a site that accepted withdraws (``participant_withdraw``). Otherwise a site
    that was merely invited could end another hospital's training.
    """
    caller.require_clinical()
    if not caller.is_admin_of(job.initiator_site_id):
        raise Forbidden(
            "Only an administrator of the hospital that started this training can stop it for "
            "everyone. To take your own hospital out, decline the invitation or withdraw.",
            code="initiator_admin_required",
        )
    with transaction.atomic():
        if not _finish(
            job, FederatedStatus.CANCELLED, "cancelled", f"Cancelled by {caller.username}."
        ):
            raise Conflict("This federated job has already ended.", code="job_finished")
        audit_record(
            caller=caller,
            action="federated_job.cancel",
            site_id=job.initiator_site_id,
            target_type="federated_job",
            target_id=job.pk,
        )
    job.refresh_from_db()
    return job


def participant_withdraw(*, caller: Caller, job: FederatedJob, site_id: int) -> FederatedJob:
    """A site that accepted takes its own part back; the others go on without it (a dropout).

    Its current turn ends at once (its worker is told to stop, a late update is refused) and
    the round closes with the sites that answered, without waiting for the deadline.
    """
    caller.require_clinical()
    caller.require_admin(site_id)
    participant = Participant.objects.filter(job=job, site_id=site_id).first()
    if participant is None:
        raise NotFound(
            "Your site is not part of this federated job.", code="federated_job_not_found"
        )
    if site_id == job.initiator_site_id:
        raise Conflict(
            "The hospital that started this training cannot withdraw from it; stop it instead.",
            code="initiator_cannot_withdraw",
        )
    slug = caller.slugs[site_id]
    with transaction.atomic():
        changed = Participant.objects.filter(
            pk=participant.pk,
            status=ParticipantStatus.ACCEPTED,
            job__status__in=[FederatedStatus.PENDING, FederatedStatus.RUNNING],
        ).update(
            status=ParticipantStatus.WITHDRAWN,
            work_state=WorkState.IDLE,
            lease_expires_at=None,
            responded_by_id=caller.user_id,
            responded_at=timezone.now(),
        )
        if not changed:
            raise Conflict(
                f"{slug} is not taking part in this training now: it has not accepted (decline "
                "the invitation instead), has already withdrawn, or the training has ended.",
                code="not_accepted",
            )
        history_add(
            job.pk,
            f"{participant.site.name} withdrew; the other hospitals go on without it.",
            site=slug,
        )
        audit_record(
            caller=caller,
            action="federated_job.withdraw",
            site_id=site_id,
            target_type="federated_job",
            target_id=job.pk,
        )
        if job.status == FederatedStatus.PENDING:
            _maybe_start(job.pk)  # the others may all have answered: start, or fail with why
    federation_advance(job_id=job.pk)
    job.refresh_from_db()
    return job


def _withdrawn_site_ids(job: FederatedJob) -> set[int]:
    return set(
        Participant.objects.filter(job=job, status=ParticipantStatus.WITHDRAWN).values_list(
            "site_id", flat=True
        )
    )


def _finish(job: FederatedJob, status: str, code: str, message: str) -> bool:
    with transaction.atomic():
        if not FederatedJob.objects.filter(
            pk=job.pk, status__in=[FederatedStatus.PENDING, FederatedStatus.RUNNING]
        ).update(
            status=status,
            finished_at=timezone.now(),
            error_code="" if status == FederatedStatus.SUCCEEDED else code,
            message=message if status != FederatedStatus.SUCCEEDED else "",
        ):
            return False
        Round.objects.filter(
            job_id=job.pk, status__in=[RoundStatus.RUNNING, RoundStatus.AGGREGATING]
        ).update(
            status=RoundStatus.CANCELLED
            if status == FederatedStatus.CANCELLED
            else RoundStatus.FAILED,
            finished_at=timezone.now(),
        )
        Participant.objects.filter(
            job_id=job.pk, work_state__in=[WorkState.QUEUED, WorkState.TRAINING]
        ).update(work_state=WorkState.IDLE, lease_expires_at=None)
        history_add(job.pk, message, code=code)
    return True


# --- rounds ---------------------------------------------------------------------------------


def _open_round(job: FederatedJob, number: int, participants: list[Participant]) -> Round:
    previous = Round.objects.filter(job_id=job.pk, number=number - 1).first() if number else None
    round_ = Round.objects.create(
        job=job,
        number=number,
        expected_sites=[p.site_id for p in participants],
        deadline_at=timezone.now() + timedelta(seconds=job.round_deadline_seconds),
        input_key=previous.weights_key if previous else "",
        input_sha256=previous.weights_sha256 if previous else "",
    )
    FederatedJob.objects.filter(pk=job.pk).update(current_round=number)
    targets = participants[:1] if job.strategy == Strategy.RELAY or number == 0 else participants
    for participant in targets:
        _dispatch(job, round_, participant, round_.input_key, round_.input_sha256)
    return round_


def _dispatch(
    job: FederatedJob, round_: Round, participant: Participant, input_key: str, input_sha: str
) -> None:
    Participant.objects.filter(pk=participant.pk).update(
        work_round=round_.number,
        work_state=WorkState.QUEUED,
        claim_id="",
        dispatched_at=timezone.now(),
        lease_expires_at=None,
        progress={"input_key": input_key, "input_sha256": input_sha},
    )
    slug = participant.site.slug
    urls = _urls(job, round_, slug, input_key)
    send_on_commit(
        tasks.FEDERATED_ROUND,
        {
            "site": slug,
            "federated_job_id": job.pk,
            "round": round_.number,
            "weights_url": urls["weights_url"],
            "weights_sha256": input_sha,
            "update_url": urls["update_url"],
        },
        queue=queues.gpu_queue(slug),
    )


def _urls(job: FederatedJob, round_: Round, slug: str, input_key: str) -> dict[str, Any]:
    expires = (
        max(60, int((round_.deadline_at - timezone.now()).total_seconds())) + URL_MARGIN_SECONDS
    )
    store = model_store()
    return {
        "weights_url": store.presign_get(input_key, expires_in=expires) if input_key else None,
        "update_url": store.presign_put(
            update_key(job.pk, round_.number, slug), expires_in=expires
        ),
    }


def _start_weights(job: FederatedJob) -> dict[str, Any]:
    entry, version = job.starting_point, job.start_version
    if version is not None:
        return {"kind": "site_model", "key": version.storage_key, "sha256": version.weights_sha256}
    assert entry is not None
    weights: dict[str, Any] = {"kind": entry.source}
    if entry.source == WeightSource.FILE:
        weights.update(
            url=model_store().presign_get(entry.weights_key, expires_in=3600),
            sha256=entry.weights_sha256,
            suffix=entry.weights_key.rsplit(".", 1)[-1],
        )
    return weights


def round_claim(
    *, caller: Caller, job: FederatedJob, number: int, claim_id: str, worker: str
) -> dict[str, Any]:
    """This site's turn in a round: one worker wins it (or takes over one whose lease lapsed)."""
    participant = _agent_participant(caller, job)
    round_ = Round.objects.filter(job=job, number=number, status=RoundStatus.RUNNING).first()
    if job.status != FederatedStatus.RUNNING or round_ is None:
        return {"claimed": False, "reason": "This round is closed."}
    now = timezone.now()
    base = Participant.objects.filter(pk=participant.pk, work_round=number)
    won = False
    for candidate in (
        base.filter(work_state=WorkState.QUEUED),
        base.filter(work_state=WorkState.TRAINING, claim_id=claim_id),
        base.filter(work_state=WorkState.TRAINING, lease_expires_at__lt=now),
    ):
        if candidate.update(
            work_state=WorkState.TRAINING,
            claim_id=claim_id,
            worker=worker[:200],
            lease_expires_at=now + timedelta(seconds=_lease_seconds()),
        ):
            won = True
            break
    if not won:
        return {"claimed": False, "reason": "Another worker has this turn, or it has ended."}
    participant.refresh_from_db()
    Participant.objects.filter(pk=participant.pk).update(attempt=participant.attempt + 1)
    slug = participant.site.slug
    input_key = participant.progress.get("input_key", "")
    history_add(  # the worker's host name is for site IT (the round's progress), not for this
        job.pk,
        (
            f"{participant.site.name} started round {number}"
            if number
            else f"{participant.site.name} started preparing the common starting model"
        )
        + (f" (attempt {participant.attempt + 1})" if participant.attempt else "")
        + ".",
        site=slug,
    )
    spec = {
        "federated_job_id": job.pk,
        "round": number,
        "rounds": job.rounds,
        "site": slug,
        "dataset_id": participant.dataset_id,
        "label_names": job.label_names,
        "positive_class": federated_positive_class(job),
        "architecture": job.architecture,
        "input_size": job.input_size,
        "local_epochs": job.local_epochs,
        "batch_size": int(job.config.get("batch_size", 32)),
        "learning_rate": _round_lr(job, number),
        "seed": int(job.config.get("seed", 0)),
        "weights_sha256": participant.progress.get("input_sha256", ""),
        "checkpoint_key": f"federated/{job.storage_name}/round-{number}/checkpoint.pt",
        "lease_seconds": _lease_seconds(),
        **_urls(job, round_, slug, input_key),
    }
    if number == 0:
        spec["weights"] = _start_weights(job)
    return {"claimed": True, "spec": spec}


def _round_lr(job: FederatedJob, number: int) -> float:
    import math

    base = float(job.config.get("learning_rate", 1e-3))
    if job.rounds <= 1 or number < 1:
        return base
    progress = (number - 1) / (job.rounds - 1)
    return base * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * progress)))


def round_progress(
    *, caller: Caller, job: FederatedJob, number: int, progress: dict[str, Any]
) -> dict[str, Any]:
    """Record a site's progress and renew its lease; tell it to stop if its turn is over."""
    participant = _agent_participant(caller, job)
    lease = timezone.now() + timedelta(seconds=_lease_seconds())
    updated = Participant.objects.filter(
        pk=participant.pk, work_round=number, work_state=WorkState.TRAINING
    ).update(progress={**participant.progress, **progress}, lease_expires_at=lease)
    return {"stop": not updated}


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
    key = _accepted_key(job.pk, number, slug)
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
            auc = (body.get("metrics") or {}).get("val_auc")
            history_add(
                job.pk,
                (
                    f"{participant.site.name} sent round {number}: "
                    f"{body['sample_count']} training images"
                    if number
                    else f"{participant.site.name} prepared the common starting model"
                )
                + (f", AUC {auc:.3f} on tuning images" if isinstance(auc, float) else "")
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
            _requeue_lapsed(job_id)
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
    _aggregate(job, round_)
    return True


def _requeue_lapsed(job_id: int) -> None:
    now = timezone.now()
    stale_queue = now - timedelta(seconds=max(60, 3 * _lease_seconds()))
    lapsed = Participant.objects.filter(job_id=job_id).filter(
        Q(work_state=WorkState.TRAINING, lease_expires_at__lt=now)
        | Q(work_state=WorkState.QUEUED, dispatched_at__lt=stale_queue)
    )
    for participant in lapsed.select_related("site", "job"):
        if participant.work_round is None:
            continue
        round_ = Round.objects.filter(
            job_id=job_id, number=participant.work_round, status=RoundStatus.RUNNING
        ).first()
        if round_ is None:
            continue
        with transaction.atomic():
            if Participant.objects.filter(
                pk=participant.pk,
                work_state=participant.work_state,
                lease_expires_at=participant.lease_expires_at,
                dispatched_at=participant.dispatched_at,
            ).update(work_state=WorkState.QUEUED, dispatched_at=now):
                history_add(
                    job_id,
                    f"The computer at {participant.site.name} stopped answering; its turn in round "
                    f"{round_.number} was queued again.",
                    site=participant.site.slug,
                )
                _dispatch(
                    participant.job,
                    round_,
                    participant,
                    participant.progress.get("input_key", ""),
                    participant.progress.get("input_sha256", ""),
                )


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
    answered |= _withdrawn_site_ids(job)  # a withdrawal is a dropout: nothing more to wait for
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
            _dispatch(job, round_, participant, input_key, input_sha)
            return
    federation_advance(job_id=job.pk)  # the site withdrew: pass the weights on to the next one


def _aggregate(job: FederatedJob, round_: Round) -> None:
    """Combine the accepted updates of a round; only the caller that wins ``aggregating -> done`` records it."""
    accepted = list(
        Update.objects.filter(round=round_, status=UpdateStatus.ACCEPTED).select_related("site")
    )
    order = {site_id: i for i, site_id in enumerate(round_.expected_sites)}
    accepted.sort(key=lambda u: order.get(u.site_id, len(order)))
    needed = 1 if round_.number == 0 else job.min_participants
    if len(accepted) < needed:
        names = ", ".join(u.site.name for u in accepted) or "none"
        _finish(
            job,
            FederatedStatus.FAILED,
            "not_enough_updates" if round_.number else "prepare_failed",
            (
                f"Round {round_.number} ended with trained models from {len(accepted)} hospital(s) "
                f"({names}); this training needs at least {job.min_participants}. Ask the "
                "hospitals' IT to check their Pollen computers, then try again."
                if round_.number
                else "The common starting model could not be prepared at the hospital that "
                "started this training; see the history."
            ),
        )
        return
    store = model_store()
    updates = []
    for update in accepted:
        data = store.get_bytes(update.weights_key)
        if sha256_bytes(data) != update.weights_sha256:
            raise RuntimeError(f"accepted update {update.pk} changed in the model store")
        updates.append((aggregation.read_tensors(data), max(1, update.sample_count)))
    if round_.number == 0 or job.strategy == Strategy.RELAY:
        combined = aggregation.relay(updates)
    else:
        combined = aggregation.fedavg(updates)
    data = aggregation.to_bytes(combined)
    sha = sha256_bytes(data)
    folder = round_folder(job.pk, round_.number)
    store.put_bytes(f"{folder}/weights.safetensors", data)
    metrics = _round_metrics(accepted)
    if round_.number > 0:
        store.put_bytes(f"{folder}/manifest.json", _manifest(job, round_, sha, metrics))
    _record_round(job, round_, f"{folder}/weights.safetensors", sha, metrics)


def _round_metrics(accepted: list[Update]) -> dict[str, Any]:
    """Sample-weighted means of the sites' validation numbers, and each site's own."""
    total = sum(u.sample_count for u in accepted) or 1
    out: dict[str, Any] = {
        "sites": len(accepted),
        "training_images": sum(u.sample_count for u in accepted),
    }
    for name in METRIC_NAMES:
        values = [(u.metrics.get(name), u.sample_count) for u in accepted]
        values = [(v, n) for v, n in values if isinstance(v, int | float)]
        if values:
            weight = sum(n for _, n in values) or total
            out[name] = sum(v * n for v, n in values) / weight
    out["per_site"] = {
        u.site.slug: {"sample_count": u.sample_count, **{k: u.metrics.get(k) for k in METRIC_NAMES}}
        for u in accepted
    }
    return out


def federated_positive_class(job: FederatedJob) -> str:
    """The finding a cross-site model looks for (jobs from before it was kept: by name)."""
    return positive_class_for(job.label_names, str(job.config.get("positive_class") or ""))


def _manifest(job: FederatedJob, round_: Round, sha: str, metrics: dict[str, Any]) -> bytes:
    """A model folder manifest in the agent's format (``pollen_agent.ml.manifest``, version 1)."""
    manifest = {
        "architecture": job.architecture,
        "label_names": job.label_names,
        "positive_class": federated_positive_class(job) or None,
        "input_size": job.input_size,
        "mean": job.mean,
        "std": job.std,
        "weights_sha256": sha,
        "licence": job.licence,
        "created_at": _now_text(),
        "parent": _parent_info(job, round_),
        "training_summary": _summary(job, round_, metrics),
        "metrics": {k: metrics.get(k) for k in ("val_auc", "val_accuracy")},
        "format_version": 1,
    }
    return (json.dumps(manifest, indent=2, sort_keys=True) + "\n").encode()


def _previous_version(job: FederatedJob, round_: Round) -> ModelVersion | None:
    if round_.number <= 1:
        return job.start_version
    previous = Round.objects.filter(job=job, number=round_.number - 1).first()
    return previous.model_version if previous else None


def _parent_info(job: FederatedJob, round_: Round) -> dict[str, Any] | None:
    parent = _previous_version(job, round_)
    if parent is None:
        return None
    return {
        "model_version_id": parent.pk,
        "weights_sha256": parent.weights_sha256,
        "site": parent.site.slug,
    }


def _summary(job: FederatedJob, round_: Round, metrics: dict[str, Any]) -> dict[str, Any]:
    return {
        "federated": {
            "job": job.pk,
            "strategy": job.strategy,
            "round": round_.number,
            "rounds": job.rounds,
            "local_epochs": job.local_epochs,
            "training_images_per_site": {
                slug: site["sample_count"] for slug, site in metrics.get("per_site", {}).items()
            },
        },
        "starting_point": job.starting_point.slug if job.starting_point else None,
    }


def _record_round(
    job: FederatedJob, round_: Round, key: str, sha: str, metrics: dict[str, Any]
) -> None:
    with transaction.atomic():
        if not Round.objects.filter(pk=round_.pk, status=RoundStatus.AGGREGATING).update(
            status=RoundStatus.DONE,
            weights_key=key,
            weights_sha256=sha,
            metrics=metrics,
            finished_at=timezone.now(),
        ):
            return  # another process recorded this round: aggregate exactly once
        round_.refresh_from_db()
        version = None
        if round_.number > 0:
            version = ModelVersion.objects.create(
                site_id=job.initiator_site_id,
                name=f"{job.name} - round {round_.number}",
                architecture=job.architecture,
                label_names=job.label_names,
                positive_class=federated_positive_class(job),
                input_size=job.input_size,
                mean=job.mean,
                std=job.std,
                weights_sha256=sha,
                storage_key=HUB_PREFIX + round_folder(job.pk, round_.number) + "/",
                parent=_previous_version(job, round_),
                starting_point=job.starting_point,
                licence=job.licence,
                training_summary=_summary(job, round_, metrics),
                metrics={k: v for k, v in metrics.items() if k != "per_site"},
            )
            Round.objects.filter(pk=round_.pk).update(model_version=version)
        auc = metrics.get("val_auc")
        history_add(
            job.pk,
            f"Round {round_.number}: the models of {metrics['sites']} hospital(s) were combined "
            "into one"
            + (f"; AUC {auc:.3f} on tuning images" if isinstance(auc, float) else "")
            + ".",
        )
        job.refresh_from_db()
        if job.status != FederatedStatus.RUNNING:
            return
        if round_.number >= job.rounds:
            FederatedJob.objects.filter(pk=job.pk, status=FederatedStatus.RUNNING).update(
                final_version=version
            )
            _finish(
                job, FederatedStatus.SUCCEEDED, "", "Finished: the final model is ready to publish."
            )
            from pollen.federation.evaluation import held_out_dispatch  # it imports this module

            held_out_dispatch(job)
            audit_record(
                caller=None,
                action="federated_job.succeeded",
                site_id=job.initiator_site_id,
                target_type="federated_job",
                target_id=job.pk,
                detail={"model_version": version.pk if version else None, "weights_sha256": sha},
            )
            return
        participants = list(
            Participant.objects.filter(job=job, status=ParticipantStatus.ACCEPTED).select_related(
                "site"
            )
        )
        _open_round(job, round_.number + 1, participants)
