"""A training job's end: record its model version and test check, or its failure."""

from __future__ import annotations

from typing import Any

from django.db import transaction
from django.utils import timezone

from pollen.accounts.services import job_tokens_revoke
from pollen.audit.services import audit_record
from pollen.core.errors import Conflict
from pollen.training.comparison import comparison_record
from pollen.training.models import Job, JobStatus, ModelVersion


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
            task=job.task,
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
        job_tokens_revoke(job_id=job.pk)
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
        job_tokens_revoke(job_id=job.pk)
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
