"""Opening a round and sending its work to the sites (ids and presigned links only)."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from django.utils import timezone

from pollen.core.dispatch import send_on_commit
from pollen.core.model_store import model_store
from pollen.federation.history import URL_MARGIN_SECONDS, update_key
from pollen.federation.models import (
    FederatedJob,
    Participant,
    Round,
    Strategy,
    WorkState,
)
from pollen.zoo.models import WeightSource
from pollen_contracts import queues, tasks

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


def _round_lr(job: FederatedJob, number: int) -> float:
    import math

    base = float(job.config.get("learning_rate", 1e-3))
    if job.rounds <= 1 or number < 1:
        return base
    progress = (number - 1) / (job.rounds - 1)
    return base * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * progress)))
