"""Segmentation datasets: the mask's classes, masks paired with uploads, what the agent found.

A mask is metadata at the hub (``Mask``: reader, files, checksum, statistics); its pixels stay
in the site's storage like the image's. Each reader's mask of an image is one row; several
files of one reader (a lesion per file) are merged by the agent at ingest.
"""

from __future__ import annotations

import itertools
import uuid
from collections.abc import Iterable, Mapping
from typing import Any

from pollen.core.errors import ApiError, Conflict
from pollen.datasets.models import Dataset, Image, ImageStatus, Mask, Task

MAX_MASK_CLASSES = 20
MAX_READER_CHARS = 50
BACKGROUND = "background"


def mask_classes_check(*, task: str, mask_classes: list[str]) -> list[str]:
    """The cleaned names of a mask's values 1, 2, ...; segmentation needs at least one."""
    cleaned = [(name or "").strip() for name in mask_classes]
    if task != Task.SEGMENTATION:
        if cleaned:
            raise ApiError(
                "Only a segmentation dataset has mask classes. Choose the segmentation task, "
                "or leave mask_classes out.",
                code="mask_classes_need_segmentation",
            )
        return []
    if not cleaned:
        raise ApiError(
            "Name what your masks mark (for example 'lesion'): a segmentation dataset needs at "
            "least one mask class.",
            code="mask_classes_required",
        )
    if any(not name or len(name) > 100 for name in cleaned):
        raise ApiError(
            "Each mask class needs a name of 1 to 100 characters.", code="invalid_mask_class"
        )
    if len({name.lower() for name in cleaned}) != len(cleaned) or BACKGROUND in {
        name.lower() for name in cleaned
    }:
        raise ApiError(
            "Each mask class must appear once, and 'background' (the value 0) is not one.",
            code="invalid_mask_class",
        )
    if len(cleaned) > MAX_MASK_CLASSES:
        raise ApiError(
            f"A dataset can have at most {MAX_MASK_CLASSES} mask classes.",
            code="invalid_mask_class",
        )
    return cleaned


def mask_classes_change(dataset: Dataset, new: list[str]) -> list[str]:
    """New classes may be added at the end; once masks are in, existing values keep their names."""
    cleaned = mask_classes_check(task=dataset.task, mask_classes=new)
    has_masks = Mask.objects.filter(image__dataset=dataset, status=ImageStatus.ACCEPTED).exists()
    if has_masks and cleaned[: len(dataset.mask_classes)] != list(dataset.mask_classes):
        raise Conflict(
            "Masks already use these classes' values: you may add classes at the end, but not "
            "rename, reorder or remove them.",
            code="mask_classes_in_use",
        )
    return cleaned


def model_label_names(dataset: Dataset) -> list[str]:
    """What a segmentation model's outputs mean: background, then the mask's classes."""
    return [BACKGROUND, *dataset.mask_classes]


def clean_reader(raw: object) -> str:
    reader = str(raw or "").strip()
    if len(reader) > MAX_READER_CHARS or any(c in reader for c in "/\\"):
        raise ApiError(
            f"A reader's name has at most {MAX_READER_CHARS} characters and no slashes.",
            code="invalid_reader",
        )
    return reader


def mask_key(dataset: Dataset, filename: str) -> str:
    suffix = filename.rsplit(".", 1)[-1].lower() if "." in filename else "bin"
    return f"datasets/{dataset.pk}/masks/uploads/{uuid.uuid4().hex}.{suffix[:8]}"


def masks_create(image: Image, groups: Mapping[str, list[tuple[str, str]]]) -> list[Mask]:
    """One row per reader: ``groups`` maps a reader to its (file name, storage key) parts."""
    return Mask.objects.bulk_create(
        [
            Mask(
                image=image,
                reader=reader,
                filenames=[name for name, _ in parts],
                source_keys=[key for _, key in parts],
            )
            for reader, parts in groups.items()
        ]
    )


def mask_slots(
    masks: Iterable[Mask], urls: Mapping[str, Mapping[str, Any]]
) -> list[dict[str, Any]]:
    """An upload link per mask file (``urls``: the agent's presigned slots by key)."""
    return [
        {
            "mask_id": mask.pk,
            "reader": mask.reader,
            "filename": name,
            "key": key,
            "url": urls[key]["url"],
            "method": urls[key]["method"],
            "headers": urls[key].get("headers", {}),
        }
        for mask in masks
        for name, key in zip(mask.filenames, mask.source_keys, strict=True)
    ]


def segmentation_payload(dataset: Dataset) -> dict[str, Any] | None:
    """What the agent needs to check masks (None for classification datasets)."""
    if dataset.task != Task.SEGMENTATION:
        return None
    return {
        "label_names": model_label_names(dataset),
        "masks_required": dataset.masks_required,
        "reference_reader": dataset.reference_reader,
    }


def ingest_masks_payload(masks: Iterable[Mask]) -> list[dict[str, Any]]:
    return [
        {
            "mask_id": mask.pk,
            "keys": list(mask.source_keys),
            "filenames": list(mask.filenames),
            "reader": mask.reader,
        }
        for mask in masks
    ]


def mask_results_record(recorded: list[tuple[Image, list[dict[str, Any]]]]) -> None:
    """Store what the agent found for each mask of the ``(image, mask results)`` just recorded,
    in one query and one update for the batch (a repeat changes nothing)."""
    masks = {
        m.pk: m
        for m in Mask.objects.select_for_update().filter(
            image_id__in=[image.pk for image, _ in recorded]
        )
    }
    changed = []
    for image, result in ((image, r) for image, results in recorded for r in results):
        mask = masks.get(result.get("mask_id", 0))
        if mask is None or mask.image_id != image.pk or mask.status != ImageStatus.PENDING:
            continue
        mask.sha256 = result.get("sha256", "") or ""
        mask.size_bytes = result.get("size_bytes")
        if result.get("status") == "accepted" and image.status == ImageStatus.ACCEPTED:
            mask.status = ImageStatus.ACCEPTED
            mask.storage_key = result.get("key", "") or ""
            mask.thumbnail_key = result.get("thumbnail_key", "") or ""
            mask.stats = result.get("stats") or {}
            mask.agreement_dice = result.get("agreement_dice")
        else:
            mask.status = ImageStatus.REJECTED
            mask.reject_code = (result.get("code") or "image_rejected")[:50]
            mask.reject_reason = (
                result.get("reason")
                or "Its image was not accepted, so the mask was not kept. Upload both again."
            )[:500]
        changed.append(mask)
    Mask.objects.bulk_update(
        changed,
        [
            "status",
            "sha256",
            "size_bytes",
            "storage_key",
            "thumbnail_key",
            "stats",
            "agreement_dice",
            "reject_code",
            "reject_reason",
        ],
    )


def reference_mask(image_masks: list[Mask], reference_reader: str) -> Mask | None:
    """The mask a model trains on and is scored against: the reference reader's, else the
    reader-less one, else the first reader's (by name)."""
    accepted = sorted(
        (m for m in image_masks if m.status == ImageStatus.ACCEPTED), key=lambda m: m.reader
    )
    for wanted in (reference_reader, ""):
        for mask in accepted:
            if mask.reader == wanted:
                return mask
    return accepted[0] if accepted else None


def mask_keys(masks: Iterable[Mask]) -> list[str]:
    """Every object a mask put in site storage: its uploads, the merged mask, its thumbnail."""
    keys: list[str] = []
    for mask in masks:
        keys += [*mask.source_keys, mask.storage_key, mask.thumbnail_key]
    return sorted({key for key in keys if key})


SIZE_BINS = (0.0, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0001)


def segmentation_stats(dataset: Dataset) -> dict[str, Any]:
    """What a segmentation dataset's masks hold: empty masks, lesion sizes, readers' agreement.

    Lesion size is the fraction of the image a reference mask covers (its foreground), in bins;
    agreement is each second reader's Dice against the reference reader, per image.
    """
    masks = list(
        Mask.objects.filter(image__dataset=dataset, image__status=ImageStatus.ACCEPTED)
        .select_related("image")
        .order_by("image_id", "reader")
    )
    by_image: dict[int, list[Mask]] = {}
    for mask in masks:
        by_image.setdefault(mask.image_id, []).append(mask)
    references = [
        ref
        for ref in (reference_mask(group, dataset.reference_reader) for group in by_image.values())
        if ref is not None
    ]
    accepted_images = dataset.images.filter(status=ImageStatus.ACCEPTED).count()
    fractions = [float(m.stats.get("foreground_fraction", 0.0)) for m in references]
    non_empty = [f for f in fractions if f > 0]
    lesions = [int(m.stats.get("components", 0)) for m in references]
    readers: dict[str, dict[str, int]] = {}
    for mask in masks:
        entry = readers.setdefault(mask.reader, {"accepted": 0, "rejected": 0, "pending": 0})
        entry[mask.status if mask.status in entry else "pending"] += 1
    agreement: list[dict[str, Any]] = [
        {
            "image_id": m.image_id,
            "filename": m.image.filename,
            "reader": m.reader,
            "dice": round(float(m.agreement_dice), 4),
        }
        for m in masks
        if m.agreement_dice is not None and m.status == ImageStatus.ACCEPTED
    ]
    dices: list[float] = sorted(float(a["dice"]) for a in agreement)
    return {
        "mask_classes": list(dataset.mask_classes),
        "images_with_mask": len(references),
        "images_without_mask": max(0, accepted_images - len(references)),
        "empty_masks": len(fractions) - len(non_empty),
        "lesions": {"total": sum(lesions), "images_with_several": sum(n > 1 for n in lesions)},
        "size_histogram": [
            {
                "from": lo,
                "to": min(hi, 1.0),
                "count": sum(lo < f <= hi for f in non_empty),
            }
            for lo, hi in itertools.pairwise(SIZE_BINS)
        ],
        "size_median": _median(non_empty),
        "readers": [{"reader": name, **counts} for name, counts in sorted(readers.items())],
        "agreement": {
            "images": len(dices),
            "mean_dice": round(sum(dices) / len(dices), 4) if dices else None,
            "median_dice": _median(dices),
            "worst": sorted(agreement, key=lambda a: a["dice"])[:10],
        },
    }


def _median(values: list[float]) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    middle = len(ordered) // 2
    value = ordered[middle] if len(ordered) % 2 else (ordered[middle - 1] + ordered[middle]) / 2
    return round(value, 4)
