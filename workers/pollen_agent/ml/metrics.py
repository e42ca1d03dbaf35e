"""Evaluation metrics as plain JSON: numpy and scikit-learn only, no torch."""

from __future__ import annotations

from typing import Any

import numpy as np
from sklearn.metrics import balanced_accuracy_score, confusion_matrix, roc_auc_score, roc_curve

MAX_ROC_POINTS = 101
ECE_BINS = 10


def positive_index(label_names: list[str], positive_class: str | None = None) -> int | None:
    """The class index of the finding a binary model looks for; None with three or more labels.

    ``positive_class`` names it (a label); left out, the second label, as models trained before
    the finding was recorded measured it.
    """
    if len(label_names) != 2:
        return None
    if not positive_class:
        return 1
    if positive_class not in label_names:
        raise ValueError(f"positive class {positive_class!r} is not one of {label_names}")
    return list(label_names).index(positive_class)


def evaluate(
    probs: np.ndarray,
    labels: np.ndarray,
    label_names: list[str],
    threshold: float = 0.5,
    *,
    positive_class: str | None = None,
) -> dict[str, Any]:
    """Summarise predictions ``probs`` (N, C) against true ``labels`` (N,).

    Binary tasks: ``positive_class`` names the finding (default: the second label), wherever it
    stands in ``label_names``; it is predicted when its probability reaches ``threshold``, and
    ``sensitivity``/``specificity`` and the ROC curve are about it. Multi-class tasks predict the
    most probable class and report one-vs-rest sensitivity, specificity and ROC per class.
    Degenerate inputs (one class present, no images) produce ``None`` where a number is
    undefined and an entry in ``warnings``.
    """
    probs = np.asarray(probs, dtype=np.float64)
    labels = np.asarray(labels, dtype=np.int64).reshape(-1)
    n_classes = len(label_names)
    if probs.ndim != 2 or probs.shape != (len(labels), n_classes):
        raise ValueError(f"probs shape {probs.shape} does not fit {len(labels)} x {n_classes}")
    positive = positive_index(list(label_names), positive_class)
    warnings: list[str] = []
    counts = np.bincount(labels, minlength=n_classes)
    result: dict[str, Any] = {
        "n": len(labels),
        "label_names": list(label_names),
        "class_counts": {name: int(c) for name, c in zip(label_names, counts, strict=True)},
        "threshold": float(threshold),
        "positive_class": label_names[positive] if positive is not None else None,
        "warnings": warnings,
    }
    if len(labels) == 0:
        warnings.append("No images to evaluate.")
        return result
    predicted = _predict(probs, threshold, positive)
    result["accuracy"] = float(np.mean(predicted == labels))
    result["balanced_accuracy"] = _balanced_accuracy(labels, predicted, counts)
    result["confusion_matrix"] = confusion_matrix(
        labels, predicted, labels=range(n_classes)
    ).tolist()
    result["auc"] = _auc(probs, labels, counts, label_names, warnings)
    result["roc"] = _roc_curves(probs, labels, counts, label_names, positive)
    result["per_class"] = _per_class(labels, predicted, counts, label_names)
    if positive is not None:
        finding = result["per_class"][label_names[positive]]
        result["sensitivity"] = finding["sensitivity"]
        result["specificity"] = finding["specificity"]
    result["ece"] = expected_calibration_error(probs, labels)
    return result


def _predict(probs: np.ndarray, threshold: float, positive: int | None) -> np.ndarray:
    if positive is not None:
        return np.where(probs[:, positive] >= threshold, positive, 1 - positive).astype(np.int64)
    return probs.argmax(axis=1)


def _balanced_accuracy(labels: np.ndarray, predicted: np.ndarray, counts: np.ndarray) -> float:
    if np.count_nonzero(counts) < 2:
        # sklearn warns and still answers plain accuracy here; say so explicitly.
        return float(np.mean(predicted == labels))
    return float(balanced_accuracy_score(labels, predicted))


def _auc(
    probs: np.ndarray,
    labels: np.ndarray,
    counts: np.ndarray,
    label_names: list[str],
    warnings: list[str],
) -> float | None:
    present = np.flatnonzero(counts)
    if len(present) < 2:
        warnings.append(
            "AUC is undefined: the images carry only one label "
            f"({label_names[int(labels[0])]}). Evaluate on images of every label."
        )
        return None
    if probs.shape[1] == 2:
        return float(roc_auc_score(labels, probs[:, 1]))
    if len(present) < probs.shape[1]:
        missing = [label_names[i] for i in range(probs.shape[1]) if counts[i] == 0]
        warnings.append(f"AUC averages only labels present; none of: {', '.join(missing)}.")
    aucs = [roc_auc_score(labels == c, probs[:, c]) for c in present]
    return float(np.mean(aucs))


def _roc_curves(
    probs: np.ndarray,
    labels: np.ndarray,
    counts: np.ndarray,
    label_names: list[str],
    positive: int | None,
) -> dict[str, dict[str, list[float]]]:
    classes = [positive] if positive is not None else range(probs.shape[1])
    curves = {}
    for c in classes:
        positives = counts[c]
        if positives == 0 or positives == len(labels):
            continue
        fpr, tpr, _ = roc_curve(labels == c, probs[:, c])
        keep = _downsample(len(fpr), MAX_ROC_POINTS)
        curves[label_names[c]] = {"fpr": fpr[keep].tolist(), "tpr": tpr[keep].tolist()}
    return curves


def _downsample(length: int, limit: int) -> np.ndarray:
    # Keep both ends so the curve still starts at (0,0) and ends at (1,1).
    if length <= limit:
        return np.arange(length)
    return np.unique(np.linspace(0, length - 1, limit).round().astype(int))


def _per_class(
    labels: np.ndarray, predicted: np.ndarray, counts: np.ndarray, label_names: list[str]
) -> dict[str, dict[str, Any]]:
    per_class = {}
    for c, name in enumerate(label_names):
        actual, called = labels == c, predicted == c
        negatives = len(labels) - counts[c]
        per_class[name] = {
            "count": int(counts[c]),
            "sensitivity": _ratio(np.sum(actual & called), counts[c]),
            "specificity": _ratio(np.sum(~actual & ~called), negatives),
        }
    return per_class


def _ratio(numerator: int | np.integer, denominator: int | np.integer) -> float | None:
    return float(numerator) / float(denominator) if denominator else None


def expected_calibration_error(probs: np.ndarray, labels: np.ndarray) -> float:
    """Expected calibration error of the top-class confidence over 10 equal-width bins."""
    confidence = probs.max(axis=1)
    correct = probs.argmax(axis=1) == labels
    bins = np.minimum((confidence * ECE_BINS).astype(int), ECE_BINS - 1)
    ece = 0.0
    for b in range(ECE_BINS):
        in_bin = bins == b
        if in_bin.any():
            gap = abs(correct[in_bin].mean() - confidence[in_bin].mean())
            ece += in_bin.mean() * gap
    return float(ece)
