"""Opening a round and sending its work to the sites (ids and presigned links only)."""

from __future__ import annotations

from datetime import timedelta

from django.db.models import Case, F, Value, When
from django.utils import timezone

from pollen.core.dispatch import send_on_commit
from pollen.core.errors import Conflict
from pollen.core.model_store import model_store
from pollen.federation.history import URL_MARGIN_SECONDS, update_key
from pollen.federation.models import (
    FederatedJob,
    Participant,
    Round,
    Strategy,
    WorkState,
)
from pollen.training.weights import entry_weights, hub_file_weights, model_version_weights
from pollen_contracts import queues, tasks
from pollen_contracts.contract import contract_task
from pollen_contracts.specs import FederatedRoundSpec
from pollen_contracts.weights import UploadLink, WeightsSpec

# A site's batch when the job does not choose one: a U-Net at 256 px holds 8 images in a few
# GB (the agent's single-site default too, ml.segmentation.objective.BATCH_SIZE).
DEFAULT_BATCH_SIZE = {"classification": 32, "segmentation": 8}

# --- rounds ---------------------------------------------------------------------------------


def round_open(job: FederatedJob, number: int, participants: list[Participant]) -> Round:
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
        turn_dispatch(job, round_, participant, round_.input_key, round_.input_sha256)
    return round_


def turn_dispatch(
    job: FederatedJob, round_: Round, participant: Participant, input_key: str, input_sha: str
) -> None:
    Participant.objects.filter(pk=participant.pk).update(
        work_round=round_.number,
        work_state=WorkState.QUEUED,
        claim_id="",
        last_sent_at=timezone.now(),
        # A new turn starts its attempts afresh; sending the same turn again keeps them.
        attempt=Case(When(work_round=round_.number, then=F("attempt")), default=Value(0)),
        lease_expires_at=None,
        progress={"input_key": input_key, "input_sha256": input_sha},
    )
    slug = participant.site.slug
    # A pointer only: the spec, with fresh links, comes with the claim (round_spec).
    send_on_commit(
        tasks.FEDERATED_ROUND,
        {"site": slug, "federated_job_id": job.pk, "round": round_.number},
        queue=queues.gpu_queue(slug),
    )


def _link_seconds(round_: Round) -> int:
    """Links live until the round's deadline, plus a margin."""
    left = int((round_.deadline_at - timezone.now()).total_seconds())
    return max(60, left) + URL_MARGIN_SECONDS


def _start_weights(job: FederatedJob) -> WeightsSpec:
    entry, version = job.starting_point, job.start_version
    if version is not None:
        return model_version_weights(version)
    assert entry is not None
    return entry_weights(entry)


def round_spec(
    job: FederatedJob, round_: Round, participant: Participant, *, lease_seconds: int
) -> FederatedRoundSpec:
    """A site's turn: round 0 prepares the start from the job's starting point, others train on
    the previous round's combined weights; both put their weights through ``update``."""
    from pollen.federation.round_results import federated_positive_class  # it opens rounds

    slug, number = participant.site.slug, round_.number
    if participant.dataset_id is None:  # only sites that accepted (with a dataset) get turns
        raise Conflict(
            "This site has not chosen the dataset it trains on.", code="dataset_not_found"
        )
    expires = _link_seconds(round_)
    weights = (
        _start_weights(job)
        if number == 0
        else hub_file_weights(
            participant.progress.get("input_key", ""),
            participant.progress.get("input_sha256", ""),
            expires_in=expires,
        )
    )
    return FederatedRoundSpec(
        federated_job_id=job.pk,
        round=number,
        rounds=job.rounds,
        site=slug,
        dataset_id=participant.dataset_id,
        label_names=list(job.label_names),
        positive_class=federated_positive_class(job) or None,
        architecture=job.architecture,
        input_size=job.input_size,
        local_epochs=job.local_epochs,
        batch_size=int(job.config.get("batch_size", DEFAULT_BATCH_SIZE.get(job.task, 32))),
        learning_rate=_round_lr(job, number),
        seed=int(job.config.get("seed", 0)),
        checkpoint_key=f"federated/{job.storage_name}/round-{number}/checkpoint.pt",
        lease_seconds=lease_seconds,
        weights=weights,
        update=UploadLink.from_dict(
            model_store().presign_put(update_key(job.pk, number, slug), expires_in=expires)
        ),
        task=contract_task(job.task),
    )


def _round_lr(job: FederatedJob, number: int) -> float:
    import math

    base = float(job.config.get("learning_rate", 1e-3))
    if job.rounds <= 1 or number < 1:
        return base
    progress = (number - 1) / (job.rounds - 1)
    return base * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * progress)))
