"""The finished cross-site model checked on each site's held-out images, beside the site's local model.

When a federated job succeeds, every site still taking part gets one held-out check (a
``HeldOutEvaluation``), run by its agent on its infer queue as marketplace work (kind
``held-out-evaluations`` in ``pollen.marketplace.work``: claim, lease, take-over, give-up).
At the site the agent evaluates, on the test split of the site's own dataset (separated by
patient, never trained or tuned on):

- the final combined model, and
- the site's *local model*: its own update from round 1, trained on its own images only,
  from the same common starting model, for the job's local epochs. That is the model this
  site would have had without the other sites, at the cost of one round. In a relay only the
  first site's first turn started from the common model, so the other sites have none.

Only aggregate numbers come back (counts, AUC, accuracy, sensitivity, specificity and their
95 % intervals; for an outlining model Dice, lesion Dice, IoU and HD95). A site whose check fails leaves the job as it is: the reason is recorded.
"""

from __future__ import annotations

from typing import Any

from django.db import transaction
from django.utils import timezone

from pollen.core.dispatch import send_on_commit
from pollen.core.errors import Conflict
from pollen.datasets.models import DatasetStatus
from pollen.federation.history import history_add
from pollen.federation.models import (
    FederatedJob,
    HeldOutEvaluation,
    LocalModelSource,
    Participant,
    ParticipantStatus,
    Round,
    Strategy,
    Update,
    UpdateStatus,
)
from pollen.federation.round_results import federated_positive_class
from pollen.marketplace.models import WorkStatus
from pollen.marketplace.versions import finish_claimed
from pollen.training.weights import hub_file_weights
from pollen_contracts import queues, tasks
from pollen_contracts.contract import contract_task
from pollen_contracts.specs import HeldOutSpec
from pollen_contracts.weights import WeightsSpec

URL_SECONDS = 3600
PAYLOAD_KIND = "held_out"


def _local_model(job: FederatedJob, participant: Participant) -> tuple[str, str]:
    """(source, note): where the site's local model comes from, or why it has none."""
    first = Round.objects.filter(job=job, number=1).first()
    name = participant.site.name
    if first is None:
        return LocalModelSource.NONE, "No training round ran."
    if job.strategy == Strategy.RELAY and first.expected_sites[:1] != [participant.site_id]:
        return LocalModelSource.NONE, (
            f"In a relay, {name}'s first turn started from the model of the hospital before "
            "it, so there is no model trained on its images alone."
        )
    if not Update.objects.filter(
        round=first, site_id=participant.site_id, status=UpdateStatus.ACCEPTED
    ).exists():
        return LocalModelSource.NONE, f"{name} sent no model in round 1."
    return LocalModelSource.FIRST_ROUND, ""


def held_out_dispatch(job: FederatedJob) -> list[HeldOutEvaluation]:
    """Queue one held-out check at each site still taking part (call in the job's final transaction)."""
    participants = Participant.objects.filter(
        job=job, status=ParticipantStatus.ACCEPTED, dataset__isnull=False
    ).select_related("site")
    checks = []
    for participant in participants:
        source, note = _local_model(job, participant)
        check, created = HeldOutEvaluation.objects.get_or_create(
            job=job,
            site=participant.site,
            defaults={
                "dataset_id": participant.dataset_id,
                "local_source": source,
                "local_note": note,
            },
        )
        if created:
            send_on_commit(
                tasks.FEDERATED_HELD_OUT,
                {"site": participant.site.slug, "kind": PAYLOAD_KIND, "id": check.pk},
                queue=queues.infer_queue(participant.site.slug),
            )
        checks.append(check)
    if checks:
        history_add(
            job.pk,
            "Each hospital now checks the final model, and the model it trained alone, on its "
            "own held-out images (kept out of training).",
        )
    return checks


def _weights(key: str, sha256: str) -> WeightsSpec:
    return hub_file_weights(key, sha256, expires_in=URL_SECONDS)


def held_out_spec(check: HeldOutEvaluation) -> HeldOutSpec:
    """What the agent needs: the dataset, the model's shape, and links to both sets of weights."""
    job = check.job
    dataset = check.dataset
    if dataset is None or dataset.status != DatasetStatus.ACTIVE:
        raise Conflict(
            "The dataset this hospital trained on was deleted, so its held-out images are gone.",
            code="dataset_not_found",
        )
    final = Round.objects.filter(job=job, number=job.rounds).first()
    if final is None or not final.weights_key:
        raise Conflict("The final combined model is missing.", code="model_missing")
    local = None
    if check.local_source == LocalModelSource.FIRST_ROUND:
        update = Update.objects.get(
            round__job=job, round__number=1, site_id=check.site_id, status=UpdateStatus.ACCEPTED
        )
        local = _weights(update.weights_key, update.weights_sha256)
    return HeldOutSpec(
        federated_job_id=job.pk,
        held_out_id=check.pk,
        dataset_id=dataset.pk,
        label_names=list(job.label_names),
        architecture=job.architecture,
        input_size=job.input_size,
        positive_class=federated_positive_class(job) or None,
        federated=_weights(final.weights_key, final.weights_sha256),
        local=local,
        task=contract_task(job.task),
    )


def held_out_complete(
    *,
    check: HeldOutEvaluation,
    claim_id: str,
    federated: dict[str, Any],
    local: dict[str, Any],
    comparison: dict[str, Any],
) -> HeldOutEvaluation:
    """Store the site's aggregate numbers (only while this worker's claim holds the check)."""
    with transaction.atomic():
        if not finish_claimed(
            HeldOutEvaluation,
            check.pk,
            claim_id=claim_id,
            active={WorkStatus.RUNNING},
            status=WorkStatus.SUCCEEDED,
            federated=federated,
            local=local if check.local_source else {},
            comparison=comparison if check.local_source and local else {},
            finished_at=timezone.now(),
        ):
            raise Conflict("This held-out check is not running.", code="not_running")
        _log_result(check, federated, local)
    check.refresh_from_db()
    return check


# The number a held-out check's history gives: AUC for a classifier, Dice for an outline.
HELD_OUT_SCORES = (("auc", "AUC"), ("dice", "Dice"))


def _log_result(check: HeldOutEvaluation, federated: dict[str, Any], local: dict[str, Any]) -> None:
    words = f"{check.site.name} checked the final model on {federated.get('n', 0)} held-out images"
    key, name = next(
        ((k, n) for k, n in HELD_OUT_SCORES if isinstance(federated.get(k), float)), ("", "")
    )
    if key:
        words += f": {name} {federated[key]:.2f}"
        local_score = local.get(key) if check.local_source else None
        if isinstance(local_score, float):
            words += f", against {local_score:.2f} for its own model trained alone"
    history_add(check.job_id, words + ".", site=check.site.slug)
