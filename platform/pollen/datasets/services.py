"""Dataset writes: create and edit a dataset, and the rules for its labels and file names.

Images: ``images``; new uploads and the agent's ingest results: ``ingest``; unfinished
uploads: ``uploads``; label manifests: ``label_manifest``; deletion: ``deletion``.
"""

from __future__ import annotations

import secrets
from typing import Any

from django.db import IntegrityError, transaction

from pollen.accounts.caller import Caller
from pollen.accounts.models import Site
from pollen.audit.services import audit_record
from pollen.core.errors import ApiError, Conflict
from pollen.datasets.masks import mask_classes_change, mask_classes_check
from pollen.datasets.models import Dataset, DatasetStatus, Task
from pollen.datasets.positive_class import (
    positive_class_check,
    positive_class_for,
)
from pollen_contracts import limits

MAX_LABELS = 50
MAX_LABEL_LENGTH = 100


def clean_label(label: str) -> str:
    label = (label or "").strip()
    if len(label) > MAX_LABEL_LENGTH:
        raise ApiError(
            f"The label '{label[:30]}…' is too long: use at most {MAX_LABEL_LENGTH} characters.",
            code="invalid_label",
        )
    return label


def check_labels(label_names: list[str]) -> list[str]:
    cleaned = [clean_label(name) for name in label_names]
    if any(not name for name in cleaned):
        raise ApiError("Labels cannot be empty.", code="invalid_label")
    if len(set(cleaned)) != len(cleaned):
        raise ApiError("Each label must appear once.", code="duplicate_label")
    if len(cleaned) > MAX_LABELS:
        raise ApiError(f"A dataset can have at most {MAX_LABELS} labels.", code="too_many_labels")
    return cleaned


def dataset_create(
    *,
    caller: Caller,
    site: Site,
    name: str,
    description: str = "",
    modality: str = "other",
    label_names: list[str] | None = None,
    positive_class: str = "",
    task: str = Task.CLASSIFICATION,
    mask_classes: list[str] | None = None,
    masks_required: bool = True,
    reference_reader: str = "",
) -> Dataset:
    """Create a dataset; with two labels, ``positive_class`` names the finding (default by name).

    A segmentation dataset names its mask's classes (``mask_classes``: values 1, 2, ...).
    """
    caller.require_clinical()
    labels = check_labels(label_names or [])
    classes = mask_classes_check(task=task, mask_classes=mask_classes or [])
    finding = positive_class_for(labels, positive_class_check(positive_class, labels))
    try:
        with transaction.atomic():
            dataset = Dataset.objects.create(
                site=site,
                name=name.strip(),
                description=description,
                modality=modality,
                label_names=labels,
                positive_class=finding,
                task=task,
                mask_classes=classes,
                masks_required=masks_required,
                reference_reader=reference_reader.strip(),
                split_seed=secrets.randbelow(2**31),
                created_by_id=caller.user_id if caller.token is None else None,
            )
            audit_record(
                caller=caller,
                action="dataset.create",
                site_id=site.pk,
                target_type="dataset",
                target_id=dataset.pk,
                detail={"name": dataset.name, "positive_class": finding},
            )
    except IntegrityError as exc:
        raise Conflict(
            f"Your site already has a dataset called '{name}'. Choose another name.",
            code="dataset_exists",
        ) from exc
    return dataset


def dataset_update(*, caller: Caller, dataset: Dataset, **changes: Any) -> Dataset:
    caller.require_clinical()
    if "label_names" in changes:
        labels = check_labels(changes["label_names"])
        in_use = set(dataset.images.exclude(label="").values_list("label", flat=True).distinct())
        removed = in_use - set(labels)
        if removed:
            raise Conflict(
                f"These labels are still used by images: {', '.join(sorted(removed))}. Relabel those images first.",
                code="label_in_use",
            )
        changes["label_names"] = labels
    if "mask_classes" in changes:
        changes["mask_classes"] = mask_classes_change(dataset, changes["mask_classes"])
    before = dataset.positive_class
    changes.update(_positive_class_change(dataset, changes))
    for field, value in changes.items():
        setattr(dataset, field, value)
    try:
        with transaction.atomic():
            dataset.save(update_fields=list(changes))
            audit_record(
                caller=caller,
                action="dataset.update",
                site_id=dataset.site_id,
                target_type="dataset",
                target_id=dataset.pk,
                detail={"fields": sorted(changes)}
                | (
                    {"positive_class": {"from": before, "to": dataset.positive_class}}
                    if dataset.positive_class != before
                    else {}
                ),
            )
    except IntegrityError as exc:
        raise Conflict(
            "Your site already has a dataset with that name.", code="dataset_exists"
        ) from exc
    return dataset


def _positive_class_change(dataset: Dataset, changes: dict[str, Any]) -> dict[str, str]:
    """The finding after an update: as chosen (checked against the new labels), else kept."""
    labels = changes.get("label_names", dataset.label_names)
    if "positive_class" in changes:
        chosen = positive_class_check(changes["positive_class"], labels)
        return {"positive_class": positive_class_for(labels, chosen)}
    if "label_names" in changes:
        return {"positive_class": positive_class_for(labels, dataset.positive_class)}
    return {}


def ensure_active(dataset: Dataset) -> None:
    if dataset.status != DatasetStatus.ACTIVE:
        raise Conflict("This dataset is being deleted.", code="dataset_deleting")


def safe_filename(raw: str) -> str:
    name = (raw or "").replace("\\", "/").split("/")[-1].strip()
    if len(name) > limits.MAX_FILENAME_CHARS:
        raise ApiError(
            f"The file name '{name[:60]}...' has {len(name)} characters; names may have at most "
            f"{limits.MAX_FILENAME_CHARS} characters. Shorten it and try again.",
            code="invalid_filename",
        )
    if not name or name in {".", ".."} or any(ord(c) < 32 for c in name):
        raise ApiError(
            f"The file name '{raw[:60]}' is not usable. Rename the file and try again.",
            code="invalid_filename",
        )
    return name
