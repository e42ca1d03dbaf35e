"""Job lifecycle. Every status change is a compare-and-set that only one caller can win."""

from __future__ import annotations

import logging
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from django.conf import settings
from django.db import transaction
from django.db.models import Count
from django.utils import timezone

from pollen.accounts.caller import Caller
from pollen.accounts.models import ApiToken, Site, TokenKind
from pollen.accounts.services import token_create
from pollen.audit.services import audit_record
from pollen.core.advanced import advanced_check
from pollen.core.dispatch import send_on_commit
from pollen.core.errors import ApiError, Conflict
from pollen.datasets.models import Dataset, DatasetStatus, ImageStatus
from pollen.datasets.positive_class import positive_class_for
from pollen.training.comparison import comparison_record
from pollen.training.models import Job, JobStatus, ModelVersion, Recipe
from pollen.zoo.models import WeightSource, ZooEntry
from pollen_contracts import queues, tasks

if TYPE_CHECKING:
    from pollen.marketplace.models import PublishedVersion

logger = logging.getLogger(__name__)

ADVANCED_LIMITS = {
    "epochs": (1, 200),
    "batch_size": (2, 512),
    "input_size": (16, 1024),
    "seed": (0, 2**31 - 1),
    "learning_rate": (1e-6, 1.0),
    "max_minutes": (1, 24 * 60),
}
MIN_IMAGES_PER_LABEL = {"train": 2, "val": 1}
# A job whose workers keep dying or keep hitting a passing fault stops after this many starts.
MAX_ATTEMPTS = 5


def _lease_seconds() -> int:
    return int(getattr(settings, "JOB_LEASE_SECONDS", 120))


def dataset_readiness(dataset: Dataset) -> tuple[list[str], list[str]]:
    """The labels to train on, and the problems that would stop training, in plain words."""
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


def _event(job: Job, text: str) -> dict[str, Any]:
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


def _spec(job: Job) -> dict[str, Any]:
    entry = job.starting_point
    parent = job.parent_version
    weights: dict[str, Any]
    if parent is not None and job.config.get("published_version"):
        from pollen.marketplace.models import PublishedVersion
        from pollen.marketplace.versions import published_weights

        weights = published_weights(
            PublishedVersion.objects.get(pk=job.config["published_version"])
        )
        architecture, input_size = parent.architecture, parent.input_size
    elif parent is not None:
        from pollen.training.weights import model_version_weights

        weights = model_version_weights(parent)
        architecture, input_size = parent.architecture, parent.input_size
    else:
        assert entry is not None
        architecture, input_size = entry.architecture, entry.input_size
        weights = {"kind": entry.source}
        if entry.source == WeightSource.FILE:
            from pollen.core.model_store import model_store

            weights.update(
                url=model_store().presign_get(entry.weights_key, expires_in=3600),
                sha256=entry.weights_sha256,
                suffix=entry.weights_key.rsplit(".", 1)[-1],
            )
    return {
        "job_id": job.pk,
        "attempt": job.attempt,
        "recipe": job.recipe,
        "dataset_id": job.dataset_id,
        "label_names": job.label_names,
        "positive_class": job.positive_class,
        "architecture": architecture,
        "input_size": int(job.config.get("input_size", input_size)),
        "weights": weights,
        "config": job.config,
        "checkpoint_key": f"jobs/{job.storage_name}/checkpoint.pt",
        "samples_prefix": f"jobs/{job.storage_name}/samples/",
        "model_key": f"models/job-{job.storage_name}/",
        "lease_seconds": _lease_seconds(),
        "starting_point": entry.slug if entry else f"model-version-{parent.pk if parent else '?'}",
        "licence": (entry.licence if entry else parent.licence if parent else ""),
        "parent": (
            {
                "model_version_id": parent.pk,
                "weights_sha256": parent.weights_sha256,
                "site": parent.site.slug,
            }
            if parent
            else None
        ),
    }


def job_claim(*, caller: Caller, job: Job, claim_id: str, worker: str) -> dict[str, Any] | None:
    """Claim a queued job (or take over one whose worker stopped renewing its lease).

    Returns the spec and a job-scoped token, or None when another worker holds it or it has ended.
    """
    now = timezone.now()
    lease = now + timedelta(seconds=_lease_seconds())
    with transaction.atomic():
        fresh = Job.objects.filter(pk=job.pk, status=JobStatus.QUEUED)
        same_delivery = Job.objects.filter(pk=job.pk, status=JobStatus.RUNNING, claim_id=claim_id)
        abandoned = Job.objects.filter(
            pk=job.pk, status=JobStatus.RUNNING, lease_expires_at__lt=now
        )
        won = False
        for candidate in (fresh, same_delivery, abandoned):
            if candidate.update(
                status=JobStatus.RUNNING,
                claim_id=claim_id,
                worker=worker[:200],
                lease_expires_at=lease,
                started_at=job.started_at or now,
            ):
                won = True
                break
        if not won:
            return None
        job.refresh_from_db()
        Job.objects.filter(pk=job.pk).update(
            attempt=job.attempt + 1,
            events=[
                *job.events,
                # Whether a checkpoint is resumed is known only once the worker has looked for
                # one (job_training_start): claiming it must not say so in advance.
                _event(
                    job,
                    f"Started on {worker}"
                    if job.attempt == 0
                    else f"Picked up again on {worker} (attempt {job.attempt + 1})",
                ),
            ],
        )
        job.refresh_from_db()
        ApiToken.objects.filter(kind=TokenKind.JOB, job_id=job.pk, revoked_at__isnull=True).update(
            revoked_at=now
        )
        _, plaintext = token_create(
            caller=None,
            site=job.site,
            name=f"job-{job.pk}",
            kind=TokenKind.JOB,
            job_id=job.pk,
            expires_in=timedelta(days=2),
        )
    return {"job_token": plaintext, "spec": _spec(job)}


def job_progress(*, job: Job, progress: dict[str, Any]) -> dict[str, Any]:
    """Record progress and renew the lease; tell the worker whether to stop."""
    lease = timezone.now() + timedelta(seconds=_lease_seconds())
    updated = Job.objects.filter(pk=job.pk, status=JobStatus.RUNNING, claim_id=job.claim_id).update(
        progress=progress, lease_expires_at=lease
    )
    job.refresh_from_db(fields=["cancel_requested", "status"])
    return {"cancel_requested": job.cancel_requested or not updated, "status": job.status}


def _running_locked(job: Job) -> Job:
    locked = Job.objects.select_for_update().get(pk=job.pk)
    if locked.status != JobStatus.RUNNING:
        raise Conflict("This job is not running.", code="job_not_running")
    return locked


def _history_merge(job: Job, records: list[dict[str, Any]]) -> bool:
    """Add epoch records to ``job.history``, each epoch at most once; True when it changed.

    An agent sends a record again when it never heard the hub's answer (the hub went away
    mid-request) or when a new worker resumes a checkpoint that carries it, so the same
    (epoch, attempt) arriving twice must change nothing. A later attempt's record of an
    epoch replaces an earlier attempt's (that run trained the epoch again from an older
    checkpoint); a late record from an earlier attempt is ignored.
    """
    by_epoch = {h["epoch"]: h for h in job.history}
    changed = False
    for record in records:
        old = by_epoch.get(record["epoch"])
        if old is not None and old.get("attempt", 0) >= record.get("attempt", 0):
            continue
        by_epoch[record["epoch"]] = record
        changed = True
    job.history = [by_epoch[epoch] for epoch in sorted(by_epoch)]
    job.checkpoint_epoch = job.history[-1]["epoch"] if job.history else None
    return changed


def job_epoch_record(*, job: Job, record: dict[str, Any]) -> bool:
    """Record a finished epoch (its checkpoint is saved); idempotent per (job, epoch).

    Returns False when the hub already had it, so a resent record is never counted twice.
    """
    with transaction.atomic():
        locked = _running_locked(job)
        changed = _history_merge(locked, [record])
        if changed:
            locked.save(update_fields=["history", "checkpoint_epoch"])
    return changed


def job_training_start(*, job: Job, from_epoch: int, records: list[dict[str, Any]]) -> Job:
    """The worker starts training: from the checkpoint saved after ``from_epoch``, or from 0.

    The history is made to describe the run that goes on. The epochs up to the checkpoint
    stay, and the records the checkpoint carries are added, so epochs whose record never
    reached the hub (it was away, or the worker died before sending) appear once. Epochs
    after the checkpoint belong to a run that is not continued and go. Only here, once the
    worker has really loaded a checkpoint, does the job say that it resumed.
    """
    if any(not 1 <= r["epoch"] <= from_epoch for r in records):
        raise ApiError(
            f"The epochs sent must be those up to the checkpoint (1 to {from_epoch}).",
            code="invalid_epochs",
        )
    with transaction.atomic():
        locked = _running_locked(job)
        locked.history = [h for h in locked.history if h["epoch"] <= from_epoch]
        _history_merge(locked, records)
        locked.checkpoint_epoch = from_epoch or None
        if from_epoch:
            text = f"Resumed from epoch {from_epoch}, the last checkpoint saved at the site."
        elif locked.attempt > 1:
            text = "No checkpoint had been saved yet, so training started again from epoch 1."
        else:
            text = ""
        if text:
            locked.events = [*locked.events, _event(locked, text)]
        locked.save(update_fields=["history", "checkpoint_epoch", "events"])
    return locked


def _finished(job: Job, evaluation: dict[str, Any]) -> dict[str, Any]:
    """How a job with a model ends: succeeded, or cancelled with the best model so far."""
    if evaluation.get("stop_reason") != "cancelled":
        return {
            "status": JobStatus.SUCCEEDED,
            "message": "",
            "progress": {**job.progress, "fraction": 1.0, "eta_seconds": 0},
        }
    ran, planned = evaluation.get("epochs_run"), evaluation.get("planned_epochs")
    return {
        "status": JobStatus.CANCELLED,
        "message": (
            f"Stopped by a user after {ran} of {planned} rounds of learning. The best model "
            f"of those rounds (round {evaluation.get('kept_epoch')}) was checked on the "
            "final-check images and kept: it was stopped early, so it may be less accurate "
            "than a finished run."
        ),
        "progress": {**job.progress, "eta_seconds": 0},
    }


def job_complete(*, job: Job, result: dict[str, Any]) -> ModelVersion:
    """Finish the job: store the evaluation and register the model version (weights stay at the site).

    A run that a user stopped after some epochs ended gives its best model so far: the job
    ends cancelled, and its model says it was stopped early.
    """
    model = result["model"]
    finished = _finished(job, result["evaluation"])
    with transaction.atomic():
        if not Job.objects.filter(pk=job.pk, status=JobStatus.RUNNING).update(
            finished_at=timezone.now(),
            evaluation=result["evaluation"],
            timings=result.get("timings", {}),
            **finished,
        ):
            raise Conflict(
                "This job is not running; its result was not recorded.", code="job_not_running"
            )
        version = ModelVersion.objects.create(
            site_id=job.site_id,
            job=job,
            name=job.name,
            architecture=model["architecture"],
            label_names=model["label_names"],
            positive_class=model.get("positive_class", job.positive_class) or "",
            input_size=model["input_size"],
            mean=model["mean"],
            std=model["std"],
            weights_sha256=model["weights_sha256"],
            storage_key=model["storage_key"],
            parent=job.parent_version,
            starting_point=job.starting_point,
            licence=model.get("licence", ""),
            training_summary=model.get("training_summary", {}),
            metrics=result["evaluation"],
            parent_comparison=(
                comparison_record(result["parent_comparison"])
                if result.get("parent_comparison")
                else None
            ),
        )
        ApiToken.objects.filter(kind=TokenKind.JOB, job_id=job.pk).update(revoked_at=timezone.now())
        audit_record(
            caller=None,
            action=f"job.{finished['status']}",
            site_id=job.site_id,
            target_type="job",
            target_id=job.pk,
            detail={"model_version": version.pk, "weights_sha256": version.weights_sha256},
        )
    return version


def job_fail(*, job: Job, code: str, message: str) -> Job:
    status = JobStatus.CANCELLED if code == "cancelled" else JobStatus.FAILED
    with transaction.atomic():
        if not Job.objects.filter(pk=job.pk, status=JobStatus.RUNNING).update(
            status=status, finished_at=timezone.now(), error_code=code[:50], message=message[:2000]
        ):
            raise Conflict("This job is not running.", code="job_not_running")
        ApiToken.objects.filter(kind=TokenKind.JOB, job_id=job.pk).update(revoked_at=timezone.now())
        audit_record(
            caller=None,
            action=f"job.{status}",
            site_id=job.site_id,
            target_type="job",
            target_id=job.pk,
            detail={"code": code},
        )
    job.refresh_from_db()
    return job


def _give_up(job: Job, now: Any) -> None:
    with transaction.atomic():
        if Job.objects.filter(pk=job.pk, status=JobStatus.RUNNING, lease_expires_at__lt=now).update(
            status=JobStatus.FAILED,
            finished_at=now,
            error_code="too_many_attempts",
            message=(
                f"The job was started {job.attempt} times and never finished: the site agent keeps "
                "stopping or cannot reach storage. Ask your site IT to check the agent's log, then "
                "start the job again (checkpoints saved so far are kept)."
            ),
        ):
            ApiToken.objects.filter(kind=TokenKind.JOB, job_id=job.pk).update(revoked_at=now)
            audit_record(
                caller=None,
                action="job.failed",
                site_id=job.site_id,
                target_type="job",
                target_id=job.pk,
                detail={"code": "too_many_attempts"},
            )


def jobs_requeue_abandoned(*, site_id: int) -> list[int]:
    """Jobs whose worker stopped renewing its lease go back to the queue (they resume from a checkpoint)."""
    now = timezone.now()
    requeued = []
    for job in Job.objects.filter(
        site_id=site_id, status=JobStatus.RUNNING, lease_expires_at__lt=now
    ):
        if job.attempt >= MAX_ATTEMPTS:
            _give_up(job, now)
            continue
        with transaction.atomic():
            if Job.objects.filter(
                pk=job.pk, status=JobStatus.RUNNING, lease_expires_at__lt=now
            ).update(
                status=JobStatus.QUEUED,
                claim_id="",
                lease_expires_at=None,
                events=[
                    *job.events,
                    _event(job, "The worker stopped answering; the job was queued again."),
                ],
            ):
                requeued.append(job.pk)
                _queue(job)
    return requeued


def recommended_starting_point() -> ZooEntry:
    entry = ZooEntry.objects.filter(enabled=True, recommended=True).first()
    if entry is None:
        raise ApiError(
            "No recommended starting point is set up. Choose one from the model zoo.",
            code="invalid_starting_point",
        )
    return entry


def job_samples_presign(*, job: Job) -> list[dict[str, Any]]:
    """The evaluation's sample predictions, each with a short-lived link to its heatmap overlay.

    The overlays stay in the site's storage; the browser fetches them from there.
    """
    samples = list((job.evaluation or {}).get("samples", []))
    keys = [s["overlay_key"] for s in samples if s.get("overlay_key")]
    if not keys:
        return samples
    from pollen.core.dispatch import ask_site_agent

    answer = ask_site_agent(
        job.site.slug,
        tasks.PRESIGN_DOWNLOAD,
        {"site": job.site.slug, "keys": keys, "expires_in": 300},
    )
    urls = answer.get("urls", {})
    return [{**s, "overlay_url": urls.get(s.get("overlay_key", ""))} for s in samples]


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
    cutoff = timezone.now() - timedelta(seconds=settings.JOB_RESEND_SECONDS)
    resent = []
    for job in Job.objects.filter(
        site_id=site_id, status=JobStatus.QUEUED, last_sent_at__lt=cutoff
    ).exclude(recipe__in=busy):
        with transaction.atomic():
            if Job.objects.filter(
                pk=job.pk, status=JobStatus.QUEUED, last_sent_at__lt=cutoff
            ).update(last_sent_at=timezone.now()):
                resent.append(job.pk)
                _queue(job)
    return resent
