"""Model cards: what a published version's card says, and the metrics a site may share."""

from __future__ import annotations

from typing import Any

from pollen.marketplace.models import (
    PublishedModel,
)
from pollen.training.models import ModelVersion

CARD_METRICS = (
    "n",
    "auc",
    "accuracy",
    "balanced_accuracy",
    "sensitivity",
    "specificity",
    "positive_class",
    "calibration_error",
    "class_counts",
    "evaluated_on",
    "tta",  # how the test images' probabilities were averaged (pollen_agent.ml.inference)
)
SHAREABLE_METRICS = frozenset(
    {
        "n",
        "label_names",
        "class_counts",
        "threshold",
        "warnings",
        "accuracy",
        "balanced_accuracy",
        "confusion_matrix",
        "auc",
        "roc",
        "per_class",
        "sensitivity",
        "specificity",
        "positive_class",
        "ece",
        "skipped_images",
        "evaluated_on",
        "tta",
    }
)
# An outlining model's card: aggregate numbers only (never an image id or a per-image row).
SEGMENTATION_CARD_METRICS = (
    "images",
    "lesion_images",
    "dice",
    "dice_ci",
    "lesion_dice",
    "lesion_dice_ci",
    "iou",
    "pooled_dice",
    "hd95_median",
    "detection",
    "empty_images",
    "empty_correct_fraction",
    "dice_histogram",
    "evaluated_on",
    "tta",
    "input_mode",
)
SHAREABLE_METRICS = SHAREABLE_METRICS | set(SEGMENTATION_CARD_METRICS) | {"worst_dice"}
SEGMENTATION_PREPROCESSING = {
    "whole": "Each image's longer side is resized to {size} pixels and the image is centred on a "
    "black square, so nothing is squashed; the outline is drawn back at the image's own size.",
    "patch": "Images are read at their own resolution in {size}-pixel squares that overlap and "
    "are blended smoothly; the outline is drawn at the image's own size.",
}
PREPROCESSING = (
    "Each image is resized to {size}x{size} pixels (squashed, not cropped), scaled to 0-1 and "
    "normalised with the mean and standard deviation below. Greyscale images are repeated to "
    "three channels. Images longer than 2048 pixels on a side are read in sliding-window patches."
)


def card_of(version: ModelVersion, dataset_modality: str) -> dict[str, Any]:
    """The automatic part of the model card: counts and aggregate metrics only."""
    summary = version.training_summary or {}
    per_split = summary.get("images_per_split") or {}
    totals: dict[str, int] = {}
    for counts in per_split.values():
        for label, n in (counts or {}).items():
            totals[label] = totals.get(label, 0) + int(n)
    entry = version.starting_point
    parent = version.parent
    card: dict[str, Any] = {
        "architecture": version.architecture,
        "task": version.task,
        "labels": list(version.label_names),
        # The finding the model looks for: its sensitivity ("cases found") is about this label.
        "positive_class": version.positive_class or None,
        "input": {
            "size": version.input_size,
            "channels": len(version.mean),
            "mean": version.mean,
            "std": version.std,
            "preprocessing": PREPROCESSING.format(size=version.input_size),
        },
        "training_data": {
            "modality": dataset_modality,
            "images_per_split": per_split,
            "images_per_label": totals,
            "total_images": sum(totals.values()),
            "recipe": summary.get("recipe"),
        },
        "site": {"slug": version.site.slug, "name": version.site.name},
        "metrics": {k: version.metrics.get(k) for k in CARD_METRICS if k in version.metrics},
        "lineage": {
            "weights_sha256": version.weights_sha256,
            "starting_point": (
                {"slug": entry.slug, "name": entry.name, "source": entry.source} if entry else None
            ),
            "parent": (
                {"site": parent.site.slug, "weights_sha256": parent.weights_sha256}
                if parent
                else None
            ),
        },
        "licence": version.licence or (entry.licence if entry else ""),
        "trained_at": version.created_at.isoformat(timespec="seconds"),
    }
    if version.task == "segmentation":
        card |= _segmentation_card(version, summary, per_split)
        card["training_data"]["modality"] = dataset_modality
    return card


def _segmentation_card(
    version: ModelVersion, summary: dict[str, Any], per_split: dict[str, Any]
) -> dict[str, Any]:
    """What differs on an outlining model's card: classes, how images are read, Dice."""
    mode = summary.get("input_mode") or "whole"
    metrics = version.metrics or {}
    worst = metrics.get("worst") or []
    return {
        "labels": list(version.label_names[1:]),  # background is not a finding
        "positive_class": None,
        "input": {
            "size": version.input_size,
            "channels": len(version.mean),
            "mean": version.mean,
            "std": version.std,
            "mode": mode,
            "preprocessing": SEGMENTATION_PREPROCESSING.get(
                mode, SEGMENTATION_PREPROCESSING["whole"]
            ).format(size=version.input_size),
        },
        "training_data": {
            "images_per_split": per_split,
            "total_images": sum(int((c or {}).get("images", 0)) for c in per_split.values()),
            "empty_masks": sum(int((c or {}).get("empty_masks", 0)) for c in per_split.values()),
            "recipe": summary.get("recipe"),
        },
        "metrics": {k: metrics.get(k) for k in SEGMENTATION_CARD_METRICS if k in metrics}
        # The worst cases as numbers only: which images they were stays at the site.
        | {"worst_dice": [round(float(w["dice"]), 4) for w in worst[:5] if "dice" in w]},
    }


def index_fields(model: PublishedModel) -> None:
    labels = [str(label).lower() for label in model.label_names]
    model.labels_index = "|" + "|".join(labels) + "|"
    model.search_text = " ".join(
        [
            model.name,
            model.architecture,
            model.modality,
            model.site.name,
            model.site.slug,
            *labels,
            model.intended_use,
        ]
    ).lower()


def clean_metrics(metrics: dict[str, Any]) -> dict[str, Any]:
    """Aggregate numbers only: anything that could carry per-image results is dropped."""
    return {k: v for k, v in metrics.items() if k in SHAREABLE_METRICS}
