"""Deleting a dataset: one protocol that the hub and the site agent both finish, whoever fails.

What a hospital expects: deleting a dataset removes its images (files, thumbnails, labels and
patient ids) but never breaks a model that was trained on it. So the dataset row stays as a
tombstone with its name, label names and image counts, and the models, publications and
evaluations that name it keep their lineage. Work that still reads the images (a queued or
running job, prediction, evaluation, archive import or cross-site job) blocks deletion with a
409 ``dataset_in_use`` that names it.

The protocol, in states of ``Dataset.status``:
1. ``active -> deleting`` (compare-and-set, site administrators only, audited); the hub asks the
   agent on the site's io queue to remove everything under ``datasets/<id>/``.
2. The agent deletes idempotently (a missing object is not an error) and reports ``purged``.
3. ``deleting -> deleted`` (compare-and-set): the image rows go. A second report is a no-op 200.
If the agent dies half-way or its message is lost, ``datasets_purge_resend`` (on each agent
heartbeat today, a clock later) asks again after ``PURGE_RESEND_SECONDS``; if the hub is down,
the agent retries its report.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from django.db import transaction
from django.db.models import Count, Q
from django.utils import timezone

from pollen.accounts.caller import Caller
from pollen.audit.services import audit_record
from pollen.core.dispatch import send_on_commit
from pollen.core.errors import Conflict
from pollen.datasets.models import (
    ArchiveImport,
    ArchiveStatus,
    Dataset,
    DatasetStatus,
    Image,
    ImageStatus,
)
from pollen_contracts import queues, tasks

# Long enough for an agent to remove a large dataset, short enough that a lost request is
# noticed the same hour. Sending again is harmless: deletion is idempotent.
PURGE_RESEND_SECONDS = 15 * 60
LIST_LIMIT = 100


def _jobs(dataset: Dataset) -> list[dict[str, Any]]:
    from pollen.training.models import Job

    rows = Job.objects.filter(dataset=dataset).order_by("id")
    return [dict(row) for row in rows.values("id", "name", "status")]


def _model_versions(dataset: Dataset) -> list[dict[str, Any]]:
    from pollen.training.models import ModelVersion

    rows = ModelVersion.objects.filter(job__dataset=dataset).order_by("id")
    return [dict(row) for row in rows.values("id", "name")]


def _publications(dataset: Dataset) -> list[dict[str, Any]]:
    from pollen.marketplace.models import PublishedVersion

    rows = PublishedVersion.objects.filter(model_version__job__dataset=dataset).order_by("id")
    return [
        {"id": pk, "model_name": name, "number": number, "status": status}
        for pk, name, number, status in rows.values_list(
            "id", "published_model__name", "number", "status"
        )
    ]


def _work(dataset: Dataset) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    from pollen.marketplace.models import Prediction, SiteEvaluation

    evaluations = SiteEvaluation.objects.filter(dataset=dataset).order_by("id")
    predictions = Prediction.objects.filter(dataset=dataset).order_by("id")
    return (
        [dict(row) for row in evaluations.values("id", "status", "published_version_id")],
        [dict(row) for row in predictions.values("id", "status")],
    )


def _federated(dataset: Dataset) -> list[dict[str, Any]]:
    from pollen.federation.models import Participant

    rows = Participant.objects.filter(dataset=dataset).order_by("job_id")
    return [
        {"id": pk, "name": name, "status": status}
        for pk, name, status in rows.values_list("job_id", "job__name", "job__status")
    ]


def _blocking(impact: dict[str, Any], dataset: Dataset) -> list[str]:
    """Work that still reads the images: deleting under it would fail it half-way."""
    from pollen.federation.models import FINAL_STATUSES as FEDERATED_FINAL
    from pollen.federation.models import HeldOutEvaluation
    from pollen.marketplace.models import WORK_FINAL_STATUSES, WorkStatus

    checking = (WorkStatus.QUEUED, WorkStatus.RUNNING)
    from pollen.training.models import FINAL_STATUSES

    reasons = [
        f"The training job '{j['name']}' is {j['status']}: wait for it to finish or cancel it."
        for j in impact["jobs"]
        if j["status"] not in FINAL_STATUSES
    ]
    reasons += [
        f"An evaluation (number {e['id']}) is {e['status']}: wait for it to finish."
        for e in impact["evaluations"]
        if e["status"] not in WORK_FINAL_STATUSES
    ]
    reasons += [
        f"Applying a model (number {p['id']}) is {p['status']}: wait for it to finish."
        for p in impact["predictions"]
        if p["status"] not in WORK_FINAL_STATUSES
    ]
    reasons += [
        f"The cross-site job '{f['name']}' is {f['status']}: wait for it to finish or leave it."
        for f in impact["federated_jobs"]
        if f["status"] not in FEDERATED_FINAL
    ]
    if HeldOutEvaluation.objects.filter(dataset=dataset, status__in=checking).exists():
        reasons.append(
            "A cross-site model is being checked on its held-out images: wait for it to finish."
        )
    if ArchiveImport.objects.filter(dataset=dataset, status=ArchiveStatus.EXTRACTING).exists():
        reasons.append("A zip file is being unpacked into it: wait for it to finish.")
    return reasons


def _summary_sentence(impact: dict[str, Any]) -> str:
    images = impact["images"]
    sentence = (
        f"Deleting removes its {images} image{'s' if images != 1 else ''} (files, thumbnails, "
        "labels and patient ids) from your site's storage and from Pollen. This cannot be undone."
    )
    models = len(impact["model_versions"])
    if models:
        sentence += (
            f" The {models} model{'s' if models != 1 else ''} trained on it stay usable, and so "
            "do their publications and evaluations: their history keeps this dataset's name, "
            "labels and image counts."
        )
    return sentence


def dataset_deletion_impact(*, dataset: Dataset) -> dict[str, Any]:
    """What depends on the dataset, what deletion keeps, and what (if anything) blocks it."""
    evaluations, predictions = _work(dataset)
    impact: dict[str, Any] = {
        "dataset": {"id": dataset.pk, "name": dataset.name},
        "images": Image.objects.filter(dataset=dataset).count(),
        "jobs": _jobs(dataset),
        "model_versions": _model_versions(dataset),
        "published_versions": _publications(dataset),
        "evaluations": evaluations,
        "predictions": predictions,
        "federated_jobs": _federated(dataset),
    }
    impact["blocking"] = _blocking(impact, dataset)
    impact["can_delete"] = not impact["blocking"]
    impact["summary"] = _summary_sentence(impact)
    for key in ("jobs", "model_versions", "published_versions", "evaluations", "predictions"):
        impact[key] = impact[key][:LIST_LIMIT]
    return impact


def _counts_kept(dataset: Dataset) -> dict[str, Any]:
    """What lineage keeps once the image rows are gone: counts only, no patient ids."""
    accepted = Image.objects.filter(dataset=dataset, status=ImageStatus.ACCEPTED)
    per_label = dict(accepted.values_list("label").annotate(n=Count("id")).order_by())
    per_split = dict(accepted.values_list("split").annotate(n=Count("id")).order_by())
    patients = accepted.exclude(patient_id="").aggregate(n=Count("patient_id", distinct=True))
    return {
        "images": Image.objects.filter(dataset=dataset).count(),
        "accepted": sum(per_split.values()),
        "per_label": per_label,
        "per_split": per_split,
        "patients": patients["n"],
    }


def _purge_payload(dataset: Dataset) -> dict[str, Any]:
    return {
        "site": dataset.site.slug,
        "prefixes": [f"datasets/{dataset.pk}/"],
        "keys": [],
        "dataset_id": dataset.pk,
    }


def dataset_delete(*, caller: Caller, dataset: Dataset) -> dict[str, Any]:
    """Start deleting a dataset (site administrators only); answers the impact it was judged on."""
    caller.require_clinical()
    # Deleting images is irreversible and can end a colleague's work: an administrator decides.
    caller.require_admin(dataset.site_id)
    with transaction.atomic():
        locked = Dataset.objects.select_for_update().select_related("site").get(pk=dataset.pk)
        if locked.status != DatasetStatus.ACTIVE:
            raise Conflict("This dataset is already being deleted.", code="already_deleting")
        impact = dataset_deletion_impact(dataset=locked)
        if impact["blocking"]:
            raise Conflict(
                "This dataset is still in use. " + " ".join(impact["blocking"]),
                code="dataset_in_use",
                fields={"blocking": impact["blocking"]},
            )
        now = timezone.now()
        Dataset.objects.filter(pk=locked.pk, status=DatasetStatus.ACTIVE).update(
            status=DatasetStatus.DELETING,
            deleted_by_id=caller.user_id if caller.token is None else None,
            deletion_requested_at=now,
            purge_sent_at=now,
            deleted_summary=_counts_kept(locked),
        )
        audit_record(
            caller=caller,
            action="dataset.delete",
            site_id=locked.site_id,
            target_type="dataset",
            target_id=locked.pk,
            detail={
                "name": locked.name,
                "images": impact["images"],
                "jobs": [j["id"] for j in impact["jobs"]],
                "model_versions": [m["id"] for m in impact["model_versions"]],
                "published_versions": [p["id"] for p in impact["published_versions"]],
                "evaluations": [e["id"] for e in impact["evaluations"]],
            },
        )
        send_on_commit(
            tasks.DELETE_OBJECTS, _purge_payload(locked), queue=queues.io_queue(locked.site.slug)
        )
    return {**impact, "status": DatasetStatus.DELETING}


def dataset_purge(*, dataset: Dataset) -> str:
    """The agent removed the files: the tombstone stays, the image rows go. Idempotent."""
    with transaction.atomic():
        done = Dataset.objects.filter(pk=dataset.pk, status=DatasetStatus.DELETING).update(
            status=DatasetStatus.DELETED, deleted_at=timezone.now()
        )
        if done:
            Image.objects.filter(dataset_id=dataset.pk).delete()
            ArchiveImport.objects.filter(dataset_id=dataset.pk).delete()
            audit_record(
                caller=None,
                action="dataset.purged",
                site_id=dataset.site_id,
                target_type="dataset",
                target_id=dataset.pk,
            )
            return DatasetStatus.DELETED
    status = Dataset.objects.filter(pk=dataset.pk).values_list("status", flat=True).first()
    if status == DatasetStatus.DELETED:
        return DatasetStatus.DELETED  # a repeated report: the first one did the work
    raise Conflict("Only a dataset being deleted can be purged.", code="not_deleting")


def datasets_purge_resend(*, now: datetime, site_id: int | None = None) -> list[int]:
    """Ask the agent again to remove datasets it has not confirmed (it died, or lost the message)."""
    cutoff = now - timedelta(seconds=PURGE_RESEND_SECONDS)
    lapsed = Dataset.objects.filter(status=DatasetStatus.DELETING).filter(
        Q(purge_sent_at__lt=cutoff) | Q(purge_sent_at=None)
    )
    if site_id is not None:
        lapsed = lapsed.filter(site_id=site_id)
    resent = []
    for dataset in lapsed.select_related("site"):
        with transaction.atomic():
            # Compare-and-set on the last send: two heartbeats at once send one request.
            if Dataset.objects.filter(
                pk=dataset.pk, status=DatasetStatus.DELETING, purge_sent_at=dataset.purge_sent_at
            ).update(purge_sent_at=now):
                send_on_commit(
                    tasks.DELETE_OBJECTS,
                    _purge_payload(dataset),
                    queue=queues.io_queue(dataset.site.slug),
                )
                resent.append(dataset.pk)
    return resent
