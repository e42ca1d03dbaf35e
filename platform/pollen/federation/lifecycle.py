"""A federated job's life before and around its rounds: create, accept, decline, withdraw,
cancel, and starting round 1 once enough sites accepted.
"""

from __future__ import annotations

from typing import Any

from django.db import transaction
from django.utils import timezone

from pollen.accounts.caller import Caller
from pollen.accounts.models import Site
from pollen.audit.services import audit_record
from pollen.core.advanced import advanced_check
from pollen.core.errors import ApiError, Conflict, Forbidden, NotFound
from pollen.core.task_flows import require_flow
from pollen.datasets.models import Dataset, DatasetStatus, ImageStatus, Task
from pollen.datasets.positive_class import positive_class_for
from pollen.federation.history import STRATEGY_WORDS, history_add, job_finish, now_text
from pollen.federation.models import (
    FederatedJob,
    FederatedStatus,
    Participant,
    ParticipantStatus,
    WorkState,
)
from pollen.federation.round_dispatch import round_open
from pollen.federation.services import federation_advance
from pollen.training.models import ModelVersion
from pollen.training.services import dataset_readiness
from pollen.zoo.models import ZooEntry

ADVANCED_LIMITS = {
    "batch_size": (2, 512),
    "input_size": (16, 1024),
    "learning_rate": (1e-6, 1.0),
    "seed": (0, 2**31 - 1),
}


# --- creating a job and consent -------------------------------------------------------------


def _own_participant(caller: Caller, job: FederatedJob, site_id: int) -> Participant:
    """The caller's site's place in ``job``; only that site's administrators may act on it."""
    caller.require_clinical()
    caller.require_admin(site_id)
    participant = Participant.objects.filter(job=job, site_id=site_id).first()
    if participant is None:
        raise NotFound(
            "Your site is not part of this federated job.", code="federated_job_not_found"
        )
    return participant


def _ready_labels(dataset: Dataset) -> list[str]:
    if dataset.status != DatasetStatus.ACTIVE:
        raise Conflict("This dataset is being deleted.", code="dataset_deleting")
    labels, problems = dataset_readiness(dataset)
    if problems:
        raise ApiError(" ".join(problems), code="dataset_not_ready", fields={"dataset": problems})
    return labels


def _train_count(dataset: Dataset, labels: list[str]) -> int:
    """The training images a site may say it trained on: labelled ones, or ones with a mask."""
    images = dataset.images.filter(status=ImageStatus.ACCEPTED, split="train")
    if dataset.task == Task.SEGMENTATION:
        return images.filter(masks__status=ImageStatus.ACCEPTED).distinct().count()
    return images.filter(label__in=labels).count()


def _dataset_mismatch(job: FederatedJob, dataset: Dataset, site_name: str) -> tuple[str, str]:
    """(code, words) when ``dataset`` cannot train this job's model, else ("", "")."""
    what = f"{site_name}'s dataset '{dataset.name}'"
    if dataset.task != job.task:
        return "task_mismatch", (
            f"{what} is labelled for {dataset.task}, but this training "
            f"makes a {job.task} model. Choose a {job.task} dataset."
        )
    labels = _ready_labels(dataset)
    if job.task == Task.SEGMENTATION:
        # A mask's values index the classes: the same classes in the same order, or the
        # sites would teach the model different things under one value.
        if labels != list(job.label_names):
            return "mask_classes_mismatch", (
                f"The masks of {what} mark {', '.join(labels[1:])}; this training's masks mark "
                f"{', '.join(job.label_names[1:])}, in that order. Every site must outline the "
                "same classes; choose a dataset with exactly these mask classes."
            )
    elif sorted(labels) != sorted(job.label_names):
        return "label_mismatch", (
            f"The labels of {what} ({', '.join(labels)}) differ from the job's "
            f"({', '.join(job.label_names)}). Every site must train on the same labels; choose "
            "a dataset with exactly these labels."
        )
    return "", ""


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
    require_flow(dataset.task, "federated")
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
    source = starting_point or start_version
    assert source is not None
    if source.task != dataset.task:
        raise ApiError(
            f"This starting point makes a {source.task} model, but the dataset is labelled for "
            f"{dataset.task}. Choose a starting point for {dataset.task}.",
            code="task_mismatch",
        )
    config = advanced_check(advanced or {}, limits=ADVANCED_LIMITS)
    labels = _ready_labels(dataset)
    # The finding is the initiator's dataset's; kept with the job so every site's numbers are
    # about the same label. An outline has no single finding.
    config["positive_class"] = (
        ""
        if dataset.task == Task.SEGMENTATION
        else positive_class_for(labels, dataset.positive_class)
    )
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
            task=dataset.task,
            label_names=labels,
            licence=source.licence,
            config=config,
            created_by_id=caller.user_id if caller.token is None else None,
            events=[
                {
                    "at": now_text(),
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
    participant = _own_participant(caller, job, site_id)
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
        code, message = _dataset_mismatch(job, dataset, name)
        if code:
            history_add(job.pk, f"{name} could not accept: {message}", code=code, site=slug)
            raise ApiError(message, code=code, fields={"dataset": message})
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
        job_finish(
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
    round_open(job, 0, [first])


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
        if not job_finish(
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
    participant = _own_participant(caller, job, site_id)
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
