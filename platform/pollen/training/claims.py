"""A training job's claim by a site worker: the compare-and-set, the spec it trains from, sample links."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from django.db import transaction
from django.utils import timezone

from pollen.accounts.caller import Caller
from pollen.accounts.models import TokenKind
from pollen.accounts.services import job_tokens_revoke, token_create
from pollen.core.lease import lease_claim
from pollen.training.models import Job
from pollen.training.services import JOB_LEASE, job_event, job_lease_seconds
from pollen.training.weights import entry_weights, model_version_weights, published_weights
from pollen_contracts import tasks
from pollen_contracts.contract import contract_task
from pollen_contracts.specs import ParentRef, TrainingSpec
from pollen_contracts.weights import WeightsSpec


def _spec(job: Job) -> TrainingSpec:
    entry = job.starting_point
    parent = job.parent_version
    weights: WeightsSpec
    if parent is not None and job.config.get("published_version"):
        from pollen.marketplace.models import PublishedVersion

        weights = published_weights(
            PublishedVersion.objects.get(pk=job.config["published_version"])
        )
        architecture, input_size = parent.architecture, parent.input_size
    elif parent is not None:
        weights = model_version_weights(parent)
        architecture, input_size = parent.architecture, parent.input_size
    else:
        assert entry is not None
        architecture, input_size = entry.architecture, entry.input_size
        weights = entry_weights(entry)
    return TrainingSpec(
        job_id=job.pk,
        attempt=job.attempt,
        recipe=job.recipe,
        dataset_id=job.dataset_id,
        label_names=list(job.label_names),
        positive_class=job.positive_class or None,
        task=contract_task(job.task),
        architecture=architecture,
        input_size=int(job.config.get("input_size", input_size)),
        weights=weights,
        config=dict(job.config),
        checkpoint_key=f"jobs/{job.storage_name}/checkpoint.pt",
        samples_prefix=f"jobs/{job.storage_name}/samples/",
        model_key=f"models/job-{job.storage_name}/",
        lease_seconds=job_lease_seconds(),
        starting_point=entry.slug if entry else f"model-version-{parent.pk if parent else '?'}",
        licence=(entry.licence if entry else parent.licence if parent else ""),
        parent=(
            ParentRef(
                model_version_id=parent.pk,
                weights_sha256=parent.weights_sha256,
                site=parent.site.slug,
            )
            if parent
            else None
        ),
    )


def job_claim(*, caller: Caller, job: Job, claim_id: str, worker: str) -> dict[str, Any] | None:
    """Claim a queued job (or take over one whose worker stopped renewing its lease).

    Returns the spec and a job-scoped token, or None when another worker holds it, it has
    ended, or its attempts are used up (``pollen.core.lease``).
    """
    now = timezone.now()
    with transaction.atomic():
        claim = lease_claim(JOB_LEASE, pk=job.pk, claim_id=claim_id, worker=worker, now=now)
        if claim is None:
            return None
        Job.objects.filter(pk=job.pk, started_at=None).update(started_at=now)
        job.refresh_from_db()
        if claim.new:  # the same delivery claiming again (a retry) is no news
            # Whether a checkpoint is resumed is known only once the worker has looked for
            # one (job_training_start): claiming it must not say so in advance.
            text = (
                f"Started on {worker}"
                if claim.attempt == 1
                else f"Picked up again on {worker} (attempt {claim.attempt})"
            )
            Job.objects.filter(pk=job.pk).update(events=[*job.events, job_event(job, text)])
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
    return {"job_token": plaintext, "spec": _spec(job).to_dict()}


def job_samples_presign(*, job: Job) -> list[dict[str, Any]]:
    """The evaluation's sample predictions, each with a short-lived link to its heatmap overlay.

    The overlays stay in the site's storage; the browser fetches them from there.
    """
    samples = list((job.evaluation or {}).get("samples", []))
    # The file names the site uploaded them by (kept at the hub; the agent reports ids only).
    names = dict(
        job.dataset.images.filter(pk__in=[s.get("image_id") for s in samples]).values_list(
            "pk", "filename"
        )
    )
    samples = [{**s, "filename": names.get(s.get("image_id"))} for s in samples]
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
