"""A training job's claim by a site worker: the compare-and-set, the spec it trains from, sample links."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from pollen.accounts.caller import Caller
from pollen.accounts.models import TokenKind
from pollen.accounts.services import job_tokens_revoke, token_create
from pollen.training.models import Job, JobStatus
from pollen.training.services import _event
from pollen.zoo.models import WeightSource
from pollen_contracts import tasks


def _lease_seconds() -> int:
    return int(getattr(settings, "JOB_LEASE_SECONDS", 120))


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
        job_tokens_revoke(job_id=job.pk, now=now)
        _, plaintext = token_create(
            caller=None,
            site=job.site,
            name=f"job-{job.pk}",
            kind=TokenKind.JOB,
            job_id=job.pk,
            expires_in=timedelta(days=2),
        )
    return {"job_token": plaintext, "spec": _spec(job)}


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
