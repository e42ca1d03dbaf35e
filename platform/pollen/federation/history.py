"""A federated job's history (what its page says), where its round files live, and ending a job."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from pollen.federation.models import (
    FederatedJob,
    FederatedStatus,
    Participant,
    ParticipantStatus,
    Round,
    RoundStatus,
    Strategy,
    WorkState,
)

URL_MARGIN_SECONDS = 900
# How a clinician reads each strategy in the job's history.
STRATEGY_WORDS: dict[str, str] = {
    Strategy.FEDAVG: "at all hospitals at once",
    Strategy.RELAY: "at one hospital after another",
}


# The number a round's history gives for how well a model does on the tuning images, first
# found first: AUC for a classifier, Dice for an outlining model.
SCORE_WORDS = (("val_auc", "AUC"), ("val_dice", "Dice"))


def score_words(metrics: dict[str, Any], *, lead: str = ", ") -> str:
    """E.g. ", AUC 0.812 on tuning images" (empty when the site sent no such number)."""
    for key, name in SCORE_WORDS:
        value = metrics.get(key)
        if isinstance(value, float):
            return f"{lead}{name} {value:.3f} on tuning images"
    return ""


def round_lease_seconds() -> int:
    return int(getattr(settings, "JOB_LEASE_SECONDS", 120))


def now_text() -> str:
    return timezone.now().isoformat(timespec="seconds")


def history_add(job_id: int, text: str, **detail: Any) -> None:
    """Append to the job's history (rows locked, so concurrent sites never lose an entry).

    ``text`` is what a clinician reads: hospital names, never slugs or training jargon.
    ``detail`` keeps machine-readable keys (``site`` is the slug, ``code`` a stable code).
    """
    with transaction.atomic():
        job = FederatedJob.objects.select_for_update().get(pk=job_id)
        job.events = [*job.events, {"at": now_text(), "text": text, **detail}]
        job.save(update_fields=["events"])


def round_folder(job_id: int, number: int) -> str:
    return f"federated/{job_id}/round-{number}"


def update_key(job_id: int, number: int, slug: str) -> str:
    """Where a site uploads its update (through a presigned PUT URL)."""
    return f"{round_folder(job_id, number)}/uploads/{slug}.safetensors"


def accepted_key(job_id: int, number: int, slug: str) -> str:
    # A copy the site holds no URL for: re-uploading cannot change an accepted update.
    return f"{round_folder(job_id, number)}/accepted/{slug}.safetensors"


def withdrawn_site_ids(job: FederatedJob) -> set[int]:
    return set(
        Participant.objects.filter(job=job, status=ParticipantStatus.WITHDRAWN).values_list(
            "site_id", flat=True
        )
    )


def job_finish(job: FederatedJob, status: str, code: str, message: str) -> bool:
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
