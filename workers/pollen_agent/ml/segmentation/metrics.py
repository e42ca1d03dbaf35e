"""How well predicted masks match the truth: what a segmentation model card reports.

Masks are H x W arrays of class indexes, 0 = background. For each image and foreground class:

- **Dice** ``2 TP / (2 TP + FP + FN)`` and **IoU** ``TP / (TP + FP + FN)``. A class absent from
  both the truth and the prediction is not scored for that image. An image's Dice is the mean
  over the classes it does score; an image with nothing in the truth and nothing predicted
  scores 1 (the model was right to draw nothing), one with nothing in the truth but something
  drawn scores 0 (a false-positive image).
- **Lesion Dice**: the mean over the images whose truth has a finding, the figure published
  for tumour-only data; **Dice** is the mean over all images; **pooled Dice** sums the pixels
  of every image first (large findings weigh more).
- **HD95**: the 95th percentile Hausdorff distance in pixels between the two outlines (the
  larger of the two directions, as MONAI computes it), for images where both are non-empty;
  its median over those images.
- **Lesion detection**: connected regions (8-connected) of each class. A true lesion is
  *found* when the predicted regions touching it overlap it with a Dice of at least
  ``DETECTION_DICE`` (0.1), else *missed*; a predicted region is a *false lesion* when the true
  regions it touches overlap it with a Dice below that (or none touches it). A blob drawn over
  half the image finds nothing, and two lesions drawn as one are both found.
- **Confidence intervals**: 95 % percentile bootstrap over images (seeded), for mean Dice and
  lesion Dice.

Everything returned is plain JSON: numbers, None where undefined, lists and dicts.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from scipy import ndimage

DETECTION_DICE = 0.1
BOOTSTRAP_RESAMPLES = 2000
HISTOGRAM_EDGES = tuple(round(0.1 * i, 1) for i in range(11))
WORST_CASES = 10
_EIGHT_CONNECTED = np.ones((3, 3), dtype=bool)


def confusion(pred: np.ndarray, truth: np.ndarray, num_classes: int) -> np.ndarray:
    """(K, K) pixel counts: rows are the true class, columns the predicted one."""
    pairs = (
        np.asarray(truth, dtype=np.int64).ravel() * num_classes
        + np.asarray(pred, dtype=np.int64).ravel()
    )
    return np.bincount(pairs, minlength=num_classes**2).reshape(num_classes, num_classes)


def class_scores(matrix: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per foreground class Dice and IoU from a confusion matrix (NaN: absent on both sides)."""
    tp = np.diag(matrix)[1:].astype(np.float64)
    fn = matrix.sum(axis=1)[1:] - tp
    fp = matrix.sum(axis=0)[1:] - tp
    scored = tp + fp + fn > 0
    with np.errstate(invalid="ignore", divide="ignore"):
        dice = np.where(scored, 2 * tp / (2 * tp + fp + fn), np.nan)
        iou = np.where(scored, tp / (tp + fp + fn), np.nan)
    return dice, iou


def image_dice(pred: np.ndarray, truth: np.ndarray, num_classes: int) -> float:
    """One image's Dice: the mean over the classes it scores, 1 when both masks are empty."""
    dice, _ = class_scores(confusion(pred, truth, num_classes))
    return mean_or_one(dice)


def mean_or_one(values: np.ndarray) -> float:
    scored = values[~np.isnan(values)]
    return float(scored.mean()) if len(scored) else 1.0


def hd95(a: np.ndarray, b: np.ndarray) -> float:
    """95th percentile Hausdorff distance (pixels) between two non-empty boolean masks."""
    rows, cols = np.nonzero(a | b)
    crop = np.s_[rows.min() : rows.max() + 1, cols.min() : cols.max() + 1]
    # Distances only involve outline pixels, all inside the masks' bounding box.
    edge_a, edge_b = _outline(a[crop]), _outline(b[crop])
    a_to_b = ndimage.distance_transform_edt(~edge_b)[edge_a]
    b_to_a = ndimage.distance_transform_edt(~edge_a)[edge_b]
    return float(max(np.percentile(a_to_b, 95), np.percentile(b_to_a, 95)))


def _outline(mask: np.ndarray) -> np.ndarray:
    return mask & ~ndimage.binary_erosion(mask, structure=_EIGHT_CONNECTED)


@dataclass
class Detection:
    """Lesion-level counts (see the module docstring for the overlap rule)."""

    found: int = 0
    missed: int = 0
    false: int = 0

    def add(self, other: Detection) -> None:
        self.found, self.missed = self.found + other.found, self.missed + other.missed
        self.false += other.false


def detect_lesions(pred: np.ndarray, truth: np.ndarray) -> Detection:
    """Found, missed and false lesions between two boolean masks of one class."""
    true_regions, n_true = ndimage.label(truth, structure=_EIGHT_CONNECTED)
    pred_regions, n_pred = ndimage.label(pred, structure=_EIGHT_CONNECTED)
    # overlap[i, j]: pixels of true region i in predicted region j (0 = outside any region).
    pairs = true_regions.ravel().astype(np.int64) * (n_pred + 1) + pred_regions.ravel()
    overlap = np.bincount(pairs, minlength=(n_true + 1) * (n_pred + 1)).reshape(
        n_true + 1, n_pred + 1
    )[1:, 1:]
    true_sizes, pred_sizes = (
        _region_sizes(true_regions, n_true),
        _region_sizes(pred_regions, n_pred),
    )
    matched_true = _matched(overlap, true_sizes, pred_sizes)
    matched_pred = _matched(overlap.T, pred_sizes, true_sizes)
    return Detection(
        found=int(matched_true.sum()),
        missed=int(n_true - matched_true.sum()),
        false=int(n_pred - matched_pred.sum()),
    )


def _region_sizes(regions: np.ndarray, count: int) -> np.ndarray:
    return np.bincount(regions.ravel(), minlength=count + 1)[1:]


def _matched(overlap: np.ndarray, own: np.ndarray, other: np.ndarray) -> np.ndarray:
    # Each region against the union of the other side's regions that touch it.
    touching = overlap > 0
    union = touching @ other
    with np.errstate(invalid="ignore", divide="ignore"):
        dice = 2 * overlap.sum(axis=1) / (own + union)
    return np.nan_to_num(dice) >= DETECTION_DICE


@dataclass
class _Image:
    """One image's scores."""

    dice: np.ndarray  # per foreground class, NaN where not scored
    iou: np.ndarray
    hd95: np.ndarray  # per foreground class, NaN unless both masks hold the class
    has_finding: bool
    drew_something: bool
    detection: Detection = field(default_factory=Detection)

    @property
    def mean_dice(self) -> float:
        return mean_or_one(self.dice)

    @property
    def mean_iou(self) -> float:
        return mean_or_one(self.iou)


def _score_image(
    pred: np.ndarray, truth: np.ndarray, num_classes: int
) -> tuple[_Image, np.ndarray]:
    if np.shape(pred) != np.shape(truth):
        raise ValueError(
            f"a predicted mask {np.shape(pred)} differs from its truth {np.shape(truth)}"
        )
    matrix = confusion(pred, truth, num_classes)
    dice, iou = class_scores(matrix)
    distances = np.full(num_classes - 1, np.nan)
    detection = Detection()
    for c in range(1, num_classes):
        if matrix[c].sum() == 0 and matrix[:, c].sum() == 0:
            continue
        predicted, true = pred == c, truth == c
        if matrix[c].sum() and matrix[:, c].sum():
            distances[c - 1] = hd95(predicted, true)
        detection.add(detect_lesions(predicted, true))
    record = _Image(
        dice=dice,
        iou=iou,
        hd95=distances,
        has_finding=bool(matrix[1:].sum()),
        drew_something=bool(matrix[:, 1:].sum()),
        detection=detection,
    )
    return record, matrix


def segmentation_metrics(
    pred_masks: Sequence[np.ndarray],
    true_masks: Sequence[np.ndarray],
    label_names: Sequence[str],
    *,
    image_ids: Sequence[str] | None = None,
    seed: int = 0,
) -> dict[str, Any]:
    """Every segmentation metric of a set of images (see the module docstring), JSON-ready.

    ``label_names`` names the class indexes, background first. ``image_ids`` (default: the
    images' positions) name the images in ``per_image`` and ``worst``.
    """
    if len(pred_masks) != len(true_masks):
        raise ValueError(f"{len(pred_masks)} predicted masks for {len(true_masks)} true ones")
    names = list(label_names)
    ids = [str(i) for i in (image_ids if image_ids is not None else range(len(true_masks)))]
    num_classes = len(names)
    scored = [_score_image(p, t, num_classes) for p, t in zip(pred_masks, true_masks, strict=True)]
    images = [record for record, _ in scored]
    pooled = sum((matrix for _, matrix in scored), np.zeros((num_classes, num_classes), np.int64))
    dice = np.array([image.mean_dice for image in images])
    iou = np.array([image.mean_iou for image in images])
    finding = np.array([image.has_finding for image in images], dtype=bool)
    rng = np.random.default_rng(seed)
    pooled_dice, pooled_iou = class_scores(pooled)
    return {
        "label_names": names,
        "images": len(images),
        "lesion_images": int(finding.sum()),
        "dice": _mean(dice),
        "dice_ci": bootstrap_ci(dice, rng),
        "lesion_dice": _mean(dice[finding]),
        "lesion_dice_ci": bootstrap_ci(dice[finding], rng),
        "iou": _mean(iou),
        "lesion_iou": _mean(iou[finding]),
        "pooled_dice": _nanmean(pooled_dice),
        "pooled_iou": _nanmean(pooled_iou),
        **_distance_summary(np.array([image.hd95 for image in images]).reshape(-1)),
        "detection": _detection_summary(images),
        **_empty_summary(images),
        "per_class": _per_class(images, names, pooled_dice),
        "dice_histogram": dice_histogram(dice),
        "worst": _worst(images, ids),
        "per_image": [
            _image_json(image, image_id, names) for image, image_id in zip(images, ids, strict=True)
        ],
    }


def _mean(values: np.ndarray) -> float | None:
    return float(values.mean()) if len(values) else None


def _nanmean(values: np.ndarray) -> float | None:
    kept = values[~np.isnan(values)]
    return float(kept.mean()) if len(kept) else None


def _number(value: float) -> float | None:
    return None if math.isnan(value) else float(value)


def bootstrap_ci(
    values: np.ndarray, rng: np.random.Generator, resamples: int = BOOTSTRAP_RESAMPLES
) -> list[float] | None:
    """95 % percentile bootstrap interval of the mean of ``values`` (None for no values)."""
    if len(values) == 0:
        return None
    draws = rng.integers(0, len(values), size=(resamples, len(values)))
    means = np.asarray(values, dtype=np.float64)[draws].mean(axis=1)
    low, high = np.percentile(means, [2.5, 97.5])
    return [float(low), float(high)]


def dice_histogram(dice: np.ndarray) -> dict[str, list]:
    """How many images fall in each tenth of Dice (the last bin includes 1.0)."""
    counts, _ = np.histogram(dice, bins=HISTOGRAM_EDGES)
    return {"edges": list(HISTOGRAM_EDGES), "counts": [int(c) for c in counts]}


def _distance_summary(distances: np.ndarray) -> dict[str, Any]:
    kept = distances[~np.isnan(distances)]
    return {
        "hd95_median": float(np.median(kept)) if len(kept) else None,
        "hd95_images": len(kept),
    }


def _detection_summary(images: list[_Image]) -> dict[str, Any]:
    total = Detection()
    for image in images:
        total.add(image.detection)
    lesions = total.found + total.missed
    return {
        "found": total.found,
        "missed": total.missed,
        "false": total.false,
        "sensitivity": total.found / lesions if lesions else None,
        "false_per_image": total.false / len(images) if images else None,
        "rule": f"a lesion and a drawn region match when they overlap with Dice >= {DETECTION_DICE}",
    }


def _empty_summary(images: list[_Image]) -> dict[str, Any]:
    empty = [image for image in images if not image.has_finding]
    correct = sum(1 for image in empty if not image.drew_something)
    return {
        "empty_images": len(empty),
        "empty_correct": correct,
        "empty_correct_fraction": correct / len(empty) if empty else None,
        "false_positive_images": len(empty) - correct,
    }


def _per_class(images: list[_Image], names: list[str], pooled_dice: np.ndarray) -> dict[str, Any]:
    dice = np.array([image.dice for image in images]).reshape(len(images), -1)
    iou = np.array([image.iou for image in images]).reshape(len(images), -1)
    distances = np.array([image.hd95 for image in images]).reshape(len(images), -1)
    out = {}
    for c, name in enumerate(names[1:]):
        out[name] = {
            "dice": _nanmean(dice[:, c]),
            "iou": _nanmean(iou[:, c]),
            "pooled_dice": _number(pooled_dice[c]),
            **_distance_summary(distances[:, c]),
            "images": int((~np.isnan(dice[:, c])).sum()),
        }
    return out


def _worst(images: list[_Image], ids: list[str]) -> list[dict[str, Any]]:
    order = sorted(range(len(images)), key=lambda i: (images[i].mean_dice, i))
    return [
        {
            "image_id": ids[i],
            "dice": images[i].mean_dice,
            "has_finding": images[i].has_finding,
            "drew_something": images[i].drew_something,
        }
        for i in order[:WORST_CASES]
    ]


def _image_json(image: _Image, image_id: str, names: list[str]) -> dict[str, Any]:
    return {
        "image_id": image_id,
        "dice": image.mean_dice,
        "iou": image.mean_iou,
        "has_finding": image.has_finding,
        "drew_something": image.drew_something,
        "per_class": {
            name: {
                "dice": _number(image.dice[c]),
                "iou": _number(image.iou[c]),
                "hd95": _number(image.hd95[c]),
            }
            for c, name in enumerate(names[1:])
        },
        "lesions": {
            "found": image.detection.found,
            "missed": image.detection.missed,
            "false": image.detection.false,
        },
    }
