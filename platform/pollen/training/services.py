"""Job lifecycle. Every status change is a compare-and-set that only one caller can win.

This module creates, cancels and re-queues jobs; the agent's side is in ``claims`` (claim and
spec), ``progress`` (epochs as they run) and ``finishing`` (the result or the failure).
"""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Any

from django.conf import settings
from django.db import transaction
from django.db.models import Count, Q
from django.utils import timezone

from pollen.accounts.caller import Caller
from pollen.accounts.models import Site
from pollen.accounts.services import job_tokens_revoke
from pollen.audit.services import audit_record
from pollen.core.advanced import advanced_check
from pollen.core.dispatch import send_on_commit
from pollen.core.errors import ApiError, Conflict
from pollen.core.lease import (
    WORKER_LOST,
    LeaseKind,
    leases_requeue_lapsed,
    leases_resend_unclaimed,
)
from pollen.datasets.masks import model_label_names
from pollen.datasets.models import Dataset, DatasetStatus, ImageStatus, Task
from pollen.datasets.positive_class import positive_class_for
from pollen.training.models import Job, JobStatus, ModelVersion, Recipe
from pollen.zoo.models import WeightSource, ZooEntry
from pollen_contracts import queues, tasks

if TYPE_CHECKING:
    from pollen.marketplace.models import PublishedVersion


ADVANCED_LIMITS = {
    "epochs": (1, 200),
    "batch_size": (2, 512),
    "input_size": (16, 1024),
    "seed": (0, 2**31 - 1),
    "learning_rate": (1e-6, 1.0),
    "max_minutes": (1, 24 * 60),
    "freeze_encoder": (False, True),  # a switch; segmentation: the decoder only
}
MIN_IMAGES_PER_LABEL = {"train": 2, "val": 1}
# BatchNorm trains on batches of two or more; the test check needs one image.
MIN_MASKED_IMAGES = {"train": 2, "val": 1, "test": 1}


def dataset_readiness(dataset: Dataset) -> tuple[list[str], list[str]]:
    """The labels to train on, and the problems that would stop training, in plain words."""
    if dataset.task == Task.SEGMENTATION:
        return segmentation_readiness(dataset)
    counts: dict[str, dict[str, int]] = {}
    rows = (
        dataset.images.filter(status=ImageStatus.ACCEPTED)
        .exclude(label="")
        .values("label", "split")
        .annotate(n=Count("id"))
    )
    for row in rows:
        counts.setdefault(row["label"], {"train": 0, "val": 0, "test": 0})[row["split"]] = row["n"]
    labels = [name for name in dataset.label_names if name in counts]
    problems = []
    if len(labels) < 2:
        problems.append(
            "The dataset needs accepted images of at least two labels to learn to tell them apart."
        )
    for label in labels:
        for split, minimum in MIN_IMAGES_PER_LABEL.items():
            if counts[label][split] < minimum:
                word = "training" if split == "train" else "validation"
                problems.append(
                    f"The label '{label}' has too few images in the {word} set ({counts[label][split]}). "
                    "Add images of this label from more patients, or, if it has images from "
                    "three patients or more, press 'Draw the split again' on the dataset page."
                )
    return labels, problems


def segmentation_readiness(dataset: Dataset) -> tuple[list[str], list[str]]:
    """A segmentation model learns from masks: enough masked images in training and validation."""
    counts = dict(
        dataset.images.filter(status=ImageStatus.ACCEPTED, masks__status=ImageStatus.ACCEPTED)
        .values("split")
        .annotate(n=Count("id", distinct=True))
        .values_list("split", "n")
    )
    problems = []
    for split, minimum in MIN_MASKED_IMAGES.items():
        if counts.get(split, 0) < minimum:
            word = {"train": "training", "val": "validation", "test": "test"}[split]
            problems.append(
                f"The {word} set has {counts.get(split, 0)} images with a mask; it needs at least "
                f"{minimum}. Add more images with masks, or press 'Draw the split again' on the "
                "dataset page."
            )
    return model_label_names(dataset), problems


def job_create(
    *,
    caller: Caller,
    dataset: Dataset,
    starting_point: ZooEntry | None = None,
    parent_version: ModelVersion | None = None,
    published_version: PublishedVersion | None = None,
    recipe: str = Recipe.FULL,
    name: str = "",
    advanced: dict[str, Any] | None = None,
) -> Job:
    """Check the dataset can be trained on, create the job, and queue it at the dataset's site."""
    caller.require_clinical()
    if dataset.status != DatasetStatus.ACTIVE:
        raise Conflict("This dataset is being deleted.", code="dataset_deleting")
    if [starting_point, parent_version, published_version].count(None) != 2:
        raise ApiError(
            "Choose one starting point: a zoo entry, a model version or a published version.",
            code="invalid_starting_point",
        )
    if published_version is not None:
        # Fine-tuning another site's model goes through the marketplace: weights come from the
        # hub's model store, and the child's parent is the published model version.
        from pollen.marketplace.versions import require_usable

        require_usable(published_version)
        parent_version = published_version.model_version
    elif parent_version is not None and parent_version.site_id != dataset.site_id:
        raise ApiError(
            "To fine-tune another site's model, start from its published version in the marketplace.",
            code="invalid_starting_point",
        )
    starting_task = _starting_task(starting_point, parent_version)
    if starting_task != dataset.task:
        raise ApiError(
            f"This starting point makes a {starting_task} model, but the dataset is labelled for "
            f"{dataset.task}. Choose a starting point for {dataset.task}.",
            code="task_mismatch",
        )
    if recipe == Recipe.QUICK and dataset.task == Task.SEGMENTATION:
        raise ApiError(
            "The quick model labels whole images. For a first outline model in minutes, choose "
            "'train the decoder only' (advanced: freeze_encoder) instead.",
            code="invalid_starting_point",
        )
    if recipe == Recipe.QUICK and (
        starting_point is None
        or starting_point.source != WeightSource.IMAGENET
        or not starting_point.architecture.startswith("efficientnet_lite")
    ):
        raise ApiError(
            "The quick model needs an ImageNet EfficientNet-Lite starting point.",
            code="invalid_starting_point",
        )
    config = advanced_check(advanced or {}, limits=ADVANCED_LIMITS)
    if config.get("freeze_encoder") and dataset.task != Task.SEGMENTATION:
        raise ApiError(
            "Only an outlining (segmentation) model has an encoder to freeze.",
            code="invalid_value",
            fields={"advanced": {"freeze_encoder": "Segmentation only."}},
        )
    if published_version is not None:
        config["published_version"] = published_version.pk
    labels, problems = dataset_readiness(dataset)
    if problems:
        raise ApiError(" ".join(problems), code="dataset_not_ready", fields={"dataset": problems})
    with transaction.atomic():
        job = Job.objects.create(
            site_id=dataset.site_id,
            dataset=dataset,
            recipe=recipe,
            starting_point=starting_point,
            parent_version=parent_version,
            config=config,
            task=dataset.task,
            label_names=labels,
            positive_class=positive_class_for(labels, dataset.positive_class),
            name=name or f"{dataset.name} - {timezone.now():%d %b %H:%M}",
            created_by_id=caller.user_id if caller.token is None else None,
        )
        audit_record(
            caller=caller,
            action="job.create",
            site_id=dataset.site_id,
            target_type="job",
            target_id=job.pk,
            detail={"dataset": dataset.pk, "recipe": recipe},
        )
        _queue(job)
    return job


def job_queue_name(*, recipe: str, slug: str) -> str:
    """The site queue a job of ``recipe`` goes to: quick models have their own worker, so they
    never wait behind a long training run."""
    return queues.quick_queue(slug) if recipe == Recipe.QUICK else queues.gpu_queue(slug)


def _queue(job: Job) -> None:
    Job.objects.filter(pk=job.pk).update(last_sent_at=timezone.now())
    slug = Site.objects.values_list("slug", flat=True).get(pk=job.site_id)
    send_on_commit(
        tasks.TRAIN,
        {"site": slug, "job_id": job.pk},
        queue=job_queue_name(recipe=job.recipe, slug=slug),
    )


def job_event(job: Job, text: str) -> dict[str, Any]:
    return {"at": timezone.now().isoformat(timespec="seconds"), "text": text}


def job_cancel(*, caller: Caller, job: Job) -> Job:
    """A queued job is cancelled at once; a running one stops at its next batch."""
    caller.require_clinical()
    with transaction.atomic():
        now = timezone.now()
        if Job.objects.filter(pk=job.pk, status=JobStatus.QUEUED).update(
            status=JobStatus.CANCELLED, finished_at=now, message="Cancelled before it started."
        ):
            pass
        elif not Job.objects.filter(pk=job.pk, status=JobStatus.RUNNING).update(
            cancel_requested=True
        ):
            raise Conflict("This job has already finished.", code="job_finished")
        audit_record(
            caller=caller,
            action="job.cancel",
            site_id=job.site_id,
            target_type="job",
            target_id=job.pk,
        )
    job.refresh_from_db()
    return job


def job_lease_seconds() -> int:
    return int(settings.JOB_LEASE_SECONDS)


def _job_dead(reason: str, now: datetime) -> dict[str, Any]:
    return {
        "status": JobStatus.FAILED,
        "finished_at": now,
        "error_code": WORKER_LOST,
        "message": reason,
    }


def _job_lost(job: Job, reason: str) -> None:
    job_tokens_revoke(job_id=job.pk, now=timezone.now())
    audit_record(
        caller=None,
        action="job.failed",
        site_id=job.site_id,
        target_type="job",
        target_id=job.pk,
        detail={"code": WORKER_LOST, "attempts": job.attempt},
    )


def _job_requeued(job: Job) -> None:
    Job.objects.filter(pk=job.pk).update(
        events=[
            *job.events,
            job_event(job, "The worker stopped answering; the job was queued again."),
        ]
    )


# A job as a lease (pollen.core.lease): the worker renews it with its progress reports.
JOB_LEASE = LeaseKind(
    noun="training job",
    model=Job,
    waiting={"status": JobStatus.QUEUED},
    held={"status": JobStatus.RUNNING},
    lease_seconds=job_lease_seconds,
    send=_queue,
    dead=_job_dead,
    on_dead=_job_lost,
    on_requeue=_job_requeued,
    advice="then start the training again",
)


def jobs_requeue_abandoned(*, site_id: int) -> list[int]:
    """Jobs whose worker stopped renewing its lease go back to the queue (they resume from a
    checkpoint); a job whose workers died ``POLLEN_LEASE_MAX_ATTEMPTS`` times fails instead."""
    lapsed = leases_requeue_lapsed(JOB_LEASE, scope=Q(site_id=site_id))
    return [job.pk for job in lapsed.requeued]


def _starting_task(entry: ZooEntry | None, parent: ModelVersion | None) -> str:
    if parent is not None:
        return parent.task
    return entry.task if entry is not None else Task.CLASSIFICATION


def recommended_starting_point(task: str = Task.CLASSIFICATION) -> ZooEntry:
    entry = ZooEntry.objects.filter(enabled=True, recommended=True, task=task).first()
    if entry is None:
        raise ApiError(
            "No recommended starting point is set up. Choose one from the model zoo.",
            code="invalid_starting_point",
        )
    return entry


def jobs_resend_stale_queued(*, site_id: int) -> list[int]:
    """Send again the queued jobs of an idle site that nobody claimed: their message may be lost.

    Only jobs of a kind the site runs none of (a busy worker explains a wait; quick models
    have a worker of their own); duplicates are harmless, since only one claim can win.
    """
    busy = set(
        Job.objects.filter(site_id=site_id, status=JobStatus.RUNNING).values_list(
            "recipe", flat=True
        )
    )
    scope = Q(site_id=site_id) & ~Q(recipe__in=busy)
    return [job.pk for job in leases_resend_unclaimed(JOB_LEASE, scope=scope)]
