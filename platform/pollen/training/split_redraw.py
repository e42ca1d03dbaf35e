"""Draw a dataset's patient split again, so that every label can be trained and checked.

Patients are shared between the training, validation and test sets by a hash of the
dataset's split seed (``pollen.datasets.splits``). On a small dataset, chance can leave a
label with no validation or test images, and training is refused. A clinician can then ask
for the split to be drawn again: the first seed, from the current one on, that gives every
label at least ``REDRAW_MINIMUM`` images in each set. A patient's images still stay together.

Once a model was trained on the dataset (or a training or cross-site job uses it), its test
images must stay unseen, so the split is frozen and a redraw is refused.
"""

from __future__ import annotations

from typing import Any

from django.db import transaction

from pollen.accounts.caller import Caller
from pollen.audit.services import audit_record
from pollen.core.errors import ApiError, Conflict
from pollen.datasets.models import Dataset, DatasetStatus, Image, ImageStatus
from pollen.datasets.selectors import dataset_stats
from pollen.datasets.splits import first_seed_meeting, split_for
from pollen.training.models import JobStatus
from pollen.training.services import MIN_IMAGES_PER_LABEL

# Enough to train (MIN_IMAGES_PER_LABEL) and one test image per label for the evaluation.
REDRAW_MINIMUM = {**MIN_IMAGES_PER_LABEL, "test": 1}
BATCH = 2000


def _frozen_reason(dataset: Dataset) -> str:
    from pollen.federation.models import Participant, ParticipantStatus

    used = dataset.jobs.filter(
        status__in=[JobStatus.QUEUED, JobStatus.RUNNING, JobStatus.SUCCEEDED]
    ).first()
    if used is not None:
        what = "was trained on" if used.status == JobStatus.SUCCEEDED else "is being trained on"
        return (
            f"A model {what} this dataset (job '{used.name}'), so its test images must stay "
            "unseen and the split cannot change. To train with another split, make a new "
            "dataset with these images."
        )
    if Participant.objects.filter(dataset=dataset, status=ParticipantStatus.ACCEPTED).exists():
        return (
            "This dataset takes part in a cross-site job, so its split cannot change. To train "
            "with another split, make a new dataset with these images."
        )
    return ""


def _impossible(rows: list[tuple[str, str, str]], labels: list[str]) -> str:
    patients: dict[str, set[str]] = {}
    for label, patient_id, key in rows:
        patients.setdefault(label, set()).add(patient_id or key)
    short = [f"'{name}' ({len(patients[name])})" for name in labels if len(patients[name]) < 3]
    reason = (
        f"These labels have fewer than three patients: {', '.join(short)}. "
        if short
        else "No split of these patients does it. "
    )
    return (
        "Every label needs images from at least three patients (training, validation and "
        f"test). {reason}Add images of these labels from more patients."
    )


def split_redraw(*, caller: Caller, dataset: Dataset) -> dict[str, Any]:
    """Give the dataset a split in which every label can be trained; returns what moved."""
    caller.require_clinical()
    if dataset.status != DatasetStatus.ACTIVE:
        raise Conflict("This dataset is being deleted.", code="dataset_deleting")
    frozen = _frozen_reason(dataset)
    if frozen:
        raise Conflict(frozen, code="split_frozen")
    rows = list(
        dataset.images.filter(status=ImageStatus.ACCEPTED)
        .exclude(label="")
        .values_list("label", "patient_id", "storage_key")
    )
    labels = sorted({label for label, _, _ in rows})
    if len(labels) < 2:
        raise ApiError(
            "The dataset needs accepted images of at least two labels before a split can be drawn.",
            code="dataset_not_ready",
        )
    seed = first_seed_meeting(rows, REDRAW_MINIMUM, start=dataset.split_seed)
    if seed is None:
        raise Conflict(_impossible(rows, labels), code="split_impossible")
    with transaction.atomic():
        locked = Dataset.objects.select_for_update().get(pk=dataset.pk)
        if _frozen_reason(locked):  # a job started meanwhile
            raise Conflict(_frozen_reason(locked), code="split_frozen")
        previous = locked.split_seed
        locked.split_seed = seed
        locked.save(update_fields=["split_seed"])
        current = list(locked.images.values_list("id", "patient_id", "storage_key", "split"))
        changed = [
            Image(pk=pk, split=split)
            for pk, patient_id, key, old in current
            if (split := split_for(seed=seed, patient_id=patient_id, fallback_key=key)) != old
        ]
        Image.objects.bulk_update(changed, ["split"], batch_size=BATCH)
        moved = len(changed)
        audit_record(
            caller=caller,
            action="dataset.split_redrawn",
            site_id=locked.site_id,
            target_type="dataset",
            target_id=locked.pk,
            detail={"previous_seed": previous, "seed": seed, "moved_images": moved},
        )
    dataset.refresh_from_db()
    return {"moved_images": moved, "labels": dataset_stats(dataset=dataset)["labels"]}
