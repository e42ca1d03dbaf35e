"""A round's result: combine the accepted updates (the math is in ``aggregation``), record the
new model version and its metrics, and open the next round or finish the job.
"""

from __future__ import annotations

from typing import Any

from django.db import transaction
from django.utils import timezone

from pollen.audit.services import audit_record
from pollen.core.model_store import model_store, sha256_bytes
from pollen.datasets.positive_class import positive_class_for
from pollen.federation import aggregation
from pollen.federation.history import history_add, job_finish, now_text, round_folder, score_words
from pollen.federation.models import (
    FederatedJob,
    FederatedStatus,
    Participant,
    ParticipantStatus,
    Round,
    RoundStatus,
    Strategy,
    Update,
    UpdateStatus,
)
from pollen.federation.round_dispatch import round_open
from pollen.training.models import ModelVersion
from pollen.training.weights import HUB_PREFIX  # one definition of the hub-store key prefix
from pollen_contracts.contract import contract_task
from pollen_contracts.manifest import TRAINED_TTA, InferenceBlock, ModelManifest, manifest_bytes

# The sites' validation numbers a round averages (a classifier sends AUC and accuracy, an
# outlining model Dice and IoU; each round keeps the ones its sites sent).
METRIC_NAMES = (
    "val_auc",
    "val_accuracy",
    "val_balanced_accuracy",
    "val_dice",
    "val_iou",
    "val_loss",
    "train_loss",
)
# The numbers the combined model's manifest keeps, by task.
MANIFEST_METRICS = {
    "classification": ("val_auc", "val_accuracy"),
    "segmentation": ("val_dice", "val_iou"),
}


def round_aggregate(job: FederatedJob, round_: Round) -> None:
    """Combine the accepted updates of a round; only the caller that wins ``aggregating -> done`` records it."""
    accepted = list(
        Update.objects.filter(round=round_, status=UpdateStatus.ACCEPTED).select_related("site")
    )
    order = {site_id: i for i, site_id in enumerate(round_.expected_sites)}
    accepted.sort(key=lambda u: order.get(u.site_id, len(order)))
    needed = 1 if round_.number == 0 else job.min_participants
    if len(accepted) < needed:
        names = ", ".join(u.site.name for u in accepted) or "none"
        job_finish(
            job,
            FederatedStatus.FAILED,
            "not_enough_updates" if round_.number else "prepare_failed",
            (
                f"Round {round_.number} ended with trained models from {len(accepted)} hospital(s) "
                f"({names}); this training needs at least {job.min_participants}. Ask the "
                "hospitals' IT to check their Pollen computers, then try again."
                if round_.number
                else "The common starting model could not be prepared at the hospital that "
                "started this training; see the history."
            ),
        )
        return
    store = model_store()
    updates = []
    for update in accepted:
        data = store.get_bytes(update.weights_key)
        if sha256_bytes(data) != update.weights_sha256:
            raise RuntimeError(f"accepted update {update.pk} changed in the model store")
        updates.append((aggregation.read_tensors(data), max(1, update.sample_count)))
    if round_.number == 0 or job.strategy == Strategy.RELAY:
        combined = aggregation.relay(updates)
    else:
        combined = aggregation.fedavg(updates)
    data = aggregation.to_bytes(combined)
    sha = sha256_bytes(data)
    folder = round_folder(job.pk, round_.number)
    store.put_bytes(f"{folder}/weights.safetensors", data)
    metrics = _round_metrics(accepted)
    if round_.number > 0:
        manifest = _manifest(job, round_, sha, metrics, _inference(accepted))
        store.put_bytes(f"{folder}/manifest.json", manifest)
    _record_round(job, round_, f"{folder}/weights.safetensors", sha, metrics)


def _round_metrics(accepted: list[Update]) -> dict[str, Any]:
    """Sample-weighted means of the sites' validation numbers, and each site's own."""
    total = sum(u.sample_count for u in accepted) or 1
    out: dict[str, Any] = {
        "sites": len(accepted),
        "training_images": sum(u.sample_count for u in accepted),
    }
    for name in METRIC_NAMES:
        values = [(u.metrics.get(name), u.sample_count) for u in accepted]
        values = [(v, n) for v, n in values if isinstance(v, int | float)]
        if values:
            weight = sum(n for _, n in values) or total
            out[name] = sum(v * n for v, n in values) / weight
    out["per_site"] = {
        u.site.slug: {"sample_count": u.sample_count, **{k: u.metrics.get(k) for k in METRIC_NAMES}}
        for u in accepted
    }
    return out


def federated_positive_class(job: FederatedJob) -> str:
    """The finding a cross-site model looks for (jobs from before it was kept: by name).

    An outlining model has none: each class it draws is its own finding.
    """
    if job.task == "segmentation":
        return ""
    return positive_class_for(job.label_names, str(job.config.get("positive_class") or ""))


def _inference(accepted: list[Update]) -> InferenceBlock:
    """How the combined model reads images: as the first site (in the job's order) fed it.

    Every site trained its share with the agent's recipe (random horizontal flips), so the
    combined model is averaged over its mirror image too (``TRAINED_TTA``); a site whose task
    reports how it fed the model (segmentation: letterboxed whole images, or windows) says so.
    """
    reported = next((u.inference for u in accepted if u.inference), None)
    return InferenceBlock.from_dict(reported) if reported else InferenceBlock(tta=TRAINED_TTA)


def _manifest(
    job: FederatedJob,
    round_: Round,
    sha: str,
    metrics: dict[str, Any],
    inference: InferenceBlock,
) -> bytes:
    """The combined model's manifest, written by the same code as the agent's."""
    manifest = ModelManifest(
        architecture=job.architecture,
        label_names=list(job.label_names),
        positive_class=federated_positive_class(job) or None,
        input_size=job.input_size,
        mean=[float(v) for v in job.mean],
        std=[float(v) for v in job.std],
        weights_sha256=sha,
        licence=job.licence,
        created_at=now_text(),
        parent=_parent_info(job, round_),
        training_summary=_summary(job, round_, metrics),
        metrics={k: metrics.get(k) for k in MANIFEST_METRICS.get(job.task, ())},
        inference=inference,
        task=contract_task(job.task),
    )
    return manifest_bytes(manifest)


def _previous_version(job: FederatedJob, round_: Round) -> ModelVersion | None:
    if round_.number <= 1:
        return job.start_version
    previous = Round.objects.filter(job=job, number=round_.number - 1).first()
    return previous.model_version if previous else None


def _parent_info(job: FederatedJob, round_: Round) -> dict[str, Any] | None:
    parent = _previous_version(job, round_)
    if parent is None:
        return None
    return {
        "model_version_id": parent.pk,
        "weights_sha256": parent.weights_sha256,
        "site": parent.site.slug,
    }


def _summary(job: FederatedJob, round_: Round, metrics: dict[str, Any]) -> dict[str, Any]:
    return {
        "federated": {
            "job": job.pk,
            "strategy": job.strategy,
            "round": round_.number,
            "rounds": job.rounds,
            "local_epochs": job.local_epochs,
            "training_images_per_site": {
                slug: site["sample_count"] for slug, site in metrics.get("per_site", {}).items()
            },
        },
        "starting_point": job.starting_point.slug if job.starting_point else None,
    }


def _record_round(
    job: FederatedJob, round_: Round, key: str, sha: str, metrics: dict[str, Any]
) -> None:
    with transaction.atomic():
        if not Round.objects.filter(pk=round_.pk, status=RoundStatus.AGGREGATING).update(
            status=RoundStatus.DONE,
            weights_key=key,
            weights_sha256=sha,
            metrics=metrics,
            finished_at=timezone.now(),
        ):
            return  # another process recorded this round: aggregate exactly once
        round_.refresh_from_db()
        version = None
        if round_.number > 0:
            version = ModelVersion.objects.create(
                site_id=job.initiator_site_id,
                name=f"{job.name} - round {round_.number}",
                architecture=job.architecture,
                task=job.task,
                label_names=job.label_names,
                positive_class=federated_positive_class(job),
                input_size=job.input_size,
                mean=job.mean,
                std=job.std,
                weights_sha256=sha,
                storage_key=HUB_PREFIX + round_folder(job.pk, round_.number) + "/",
                parent=_previous_version(job, round_),
                starting_point=job.starting_point,
                licence=job.licence,
                training_summary=_summary(job, round_, metrics),
                metrics={k: v for k, v in metrics.items() if k != "per_site"},
            )
            Round.objects.filter(pk=round_.pk).update(model_version=version)
        history_add(
            job.pk,
            f"Round {round_.number}: the models of {metrics['sites']} hospital(s) were combined "
            "into one" + score_words(metrics, lead="; ") + ".",
        )
        job.refresh_from_db()
        if job.status != FederatedStatus.RUNNING:
            return
        if round_.number >= job.rounds:
            FederatedJob.objects.filter(pk=job.pk, status=FederatedStatus.RUNNING).update(
                final_version=version
            )
            job_finish(
                job, FederatedStatus.SUCCEEDED, "", "Finished: the final model is ready to publish."
            )
            from pollen.federation.evaluation import held_out_dispatch  # it imports this module

            held_out_dispatch(job)
            audit_record(
                caller=None,
                action="federated_job.succeeded",
                site_id=job.initiator_site_id,
                target_type="federated_job",
                target_id=job.pk,
                detail={"model_version": version.pk if version else None, "weights_sha256": sha},
            )
            return
        participants = list(
            Participant.objects.filter(job=job, status=ParticipantStatus.ACCEPTED).select_related(
                "site"
            )
        )
        round_open(job, round_.number + 1, participants)
