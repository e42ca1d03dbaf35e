"""A running training job's reports: progress (which renews the lease), epoch records, a (re)start."""

from __future__ import annotations

from typing import Any

from django.db import transaction

from pollen.core.errors import ApiError, Conflict
from pollen.core.lease import lease_renew
from pollen.training.models import Job, JobStatus
from pollen.training.services import JOB_LEASE, job_event


def job_progress(*, job: Job, progress: dict[str, Any]) -> dict[str, Any]:
    """Record progress and renew the lease; tell the worker whether to stop."""
    updated = lease_renew(JOB_LEASE, pk=job.pk, claim_id=job.claim_id, progress=progress)
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
            locked.events = [*locked.events, job_event(locked, text)]
        locked.save(update_fields=["history", "checkpoint_epoch", "events"])
    return locked
