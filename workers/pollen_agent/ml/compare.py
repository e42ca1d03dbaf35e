"""A fine-tuned model beside the model it started from, on the same check images.

Each model gets its point metrics (from :func:`pollen_agent.ml.metrics.evaluate`) with 95 %
intervals; the pair gets a paired, seeded bootstrap of the AUC difference over the very same
resampled images, which is far tighter than comparing two separate intervals. numpy only.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from scipy.stats import rankdata

from pollen_agent.ml.metrics import evaluate, positive_index
from pollen_contracts.comparison import VERDICT_TEXT, comparison_verdict

RESAMPLES = 1000
LEVEL = 0.95
_Z = 1.959963984540054  # two-sided 95 % normal quantile


def wilson_interval(successes: int, total: int) -> list[float] | None:
    """95 % Wilson score interval of a proportion: sensible even at 0 or n of n."""
    if total <= 0:
        return None
    p = successes / total
    denom = 1 + _Z**2 / total
    centre = (p + _Z**2 / (2 * total)) / denom
    half = _Z * np.sqrt(p * (1 - p) / total + _Z**2 / (4 * total**2)) / denom
    return [float(max(0.0, centre - half)), float(min(1.0, centre + half))]


def stratified_resamples(labels: np.ndarray, resamples: int, seed: int) -> np.ndarray:
    """``resamples`` x N image indices, each row drawn with replacement within each label.

    Drawing within each label keeps every label present in every resample, so the AUC is
    always defined; columns stay grouped by label, in label order.
    """
    rng = np.random.default_rng(seed)
    blocks = []
    for c in np.unique(labels):
        members = np.flatnonzero(labels == c)
        blocks.append(members[rng.integers(0, len(members), size=(resamples, len(members)))])
    return np.concatenate(blocks, axis=1)


def _auc_rows(scores: np.ndarray, positive: np.ndarray) -> np.ndarray:
    """AUC of each row of ``scores`` (Mann-Whitney, ties counted half) for the ``positive`` columns."""
    n_pos = int(positive.sum())
    n_neg = scores.shape[1] - n_pos
    ranks = rankdata(scores, axis=1)
    return (ranks[:, positive].sum(axis=1) - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg)


def resampled_auc(probs: np.ndarray, labels: np.ndarray, indices: np.ndarray) -> np.ndarray:
    """The AUC on each resample of ``indices``, computed as ``evaluate`` does for the full set:
    one label's probability for two labels (either gives the same AUC), the mean one-vs-rest
    AUC otherwise."""
    drawn = labels[indices[0]]
    classes = [1] if probs.shape[1] == 2 else list(np.unique(labels))
    per_class = [_auc_rows(probs[indices, c], drawn == c) for c in classes]
    return np.mean(per_class, axis=0)


def _percentile_interval(values: np.ndarray) -> list[float]:
    tail = (1 - LEVEL) / 2 * 100
    low, high = np.percentile(values, [tail, 100 - tail])
    return [float(low), float(high)]


def _proportions(matrix: np.ndarray, positive: int | None) -> dict[str, tuple[int, int]]:
    """(successes, total) behind accuracy and, for two labels, sensitivity and specificity."""
    counts = {"accuracy": (int(np.trace(matrix)), int(matrix.sum()))}
    if positive is not None:
        negative = 1 - positive
        counts["sensitivity"] = (int(matrix[positive, positive]), int(matrix[positive].sum()))
        counts["specificity"] = (int(matrix[negative, negative]), int(matrix[negative].sum()))
    return counts


def model_summary(
    probs: np.ndarray,
    labels: np.ndarray,
    label_names: list[str],
    indices: np.ndarray | None,
    positive_class: str | None = None,
) -> dict[str, Any]:
    """One model's AUC, accuracy, sensitivity and specificity, each with its 95 % interval."""
    report = evaluate(probs, labels, label_names, positive_class=positive_class)
    summary: dict[str, Any] = {
        k: report.get(k)
        for k in ("auc", "accuracy", "balanced_accuracy", "sensitivity", "specificity")
    }
    matrix = np.asarray(report.get("confusion_matrix") or np.zeros((0, 0)))
    if matrix.size:
        positive = positive_index(label_names, positive_class)
        for name, (successes, total) in _proportions(matrix, positive).items():
            summary[f"{name}_ci"] = wilson_interval(successes, total)
    summary["auc_ci"] = (
        _percentile_interval(resampled_auc(probs, labels, indices))
        if indices is not None and summary["auc"] is not None
        else None
    )
    return summary


def compare_with_parent(
    child_probs: np.ndarray,
    parent_probs: np.ndarray,
    labels: np.ndarray,
    label_names: list[str],
    *,
    seed: int = 0,
    resamples: int = RESAMPLES,
    positive_class: str | None = None,
) -> dict[str, Any]:
    """Both models on the same check images, the paired AUC difference and the verdict."""
    labels = np.asarray(labels, dtype=np.int64).reshape(-1)
    counts = np.bincount(labels, minlength=len(label_names))
    per_label = {name: int(n) for name, n in zip(label_names, counts, strict=True)}
    # A resample needs two images of every label to say anything about ranking.
    indices = (
        stratified_resamples(labels, resamples, seed)
        if np.count_nonzero(counts) == len(label_names) and counts.min() >= 2
        else None
    )
    child = model_summary(child_probs, labels, label_names, indices, positive_class)
    parent = model_summary(parent_probs, labels, label_names, indices, positive_class)
    difference = difference_ci = None
    if indices is not None and child["auc"] is not None and parent["auc"] is not None:
        difference = float(child["auc"] - parent["auc"])
        paired = resampled_auc(child_probs, labels, indices) - resampled_auc(
            parent_probs, labels, indices
        )
        difference_ci = _percentile_interval(paired)
    verdict = comparison_verdict(images_per_label=per_label, difference_ci=difference_ci)
    return {
        "check_images": len(labels),
        "images_per_label": per_label,
        "confidence_level": LEVEL,
        "child": child,
        "parent": parent,
        "auc_difference": difference,
        "auc_difference_ci": difference_ci,
        "resamples": resamples if indices is not None else 0,
        "seed": seed,
        "verdict": verdict,
        "verdict_text": VERDICT_TEXT[verdict],
    }
