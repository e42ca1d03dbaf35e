"""A fine-tuned model beside the model it started from, on the same check images.

Each model gets its point metrics (from :func:`pollen_agent.ml.metrics.evaluate`) with 95 %
intervals; the pair gets a paired, seeded bootstrap of the AUC difference over the very same
resampled images, which is far tighter than comparing two separate intervals. numpy only.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from pollen_agent.ml.metrics import evaluate, positive_index
from pollen_contracts.comparison import VERDICT_TEXT, comparison_verdict, dice_comparison_verdict

RESAMPLES = 1000
# Resampled images held in memory at once (1000 resamples of 5,000 images); beyond that, fewer
# resamples, never under MIN_RESAMPLES, keep a very large check set within memory and seconds.
MAX_DRAWS = 5_000_000
MIN_RESAMPLES = 200
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
    """``resamples`` x N counts: how often each image is drawn into each resample.

    Each resample draws, with replacement, as many images of each label as the check set has,
    so every label is present in every resample and the AUC is always defined.
    """
    rng = np.random.default_rng(seed)
    weights = np.zeros((resamples, len(labels)))
    # Groups are drawn in the order of their first image, not of their label numbers, so the
    # same images draw the same resamples whichever label is called positive.
    groups = sorted((np.flatnonzero(labels == c) for c in np.unique(labels)), key=lambda m: m[0])
    for members in groups:
        m = len(members)
        draws = rng.integers(0, m, size=(resamples, m)) + m * np.arange(resamples)[:, None]
        weights[:, members] = np.bincount(draws.ravel(), minlength=resamples * m).reshape(-1, m)
    return weights


def _weighted_auc(scores: np.ndarray, positive: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """Mann-Whitney AUC (ties count half) of ``scores`` for each row of image ``weights``.

    One sort serves every resample: per distinct score, the weight of negatives below it and
    level with it, so a resample costs O(N) rather than a sort of its own.
    """
    order = np.argsort(scores, kind="stable")
    sorted_scores, w = scores[order], weights[:, order]
    pos = positive[order]
    starts = np.flatnonzero(np.r_[True, sorted_scores[1:] != sorted_scores[:-1]])
    neg_level = np.add.reduceat(w * ~pos, starts, axis=1)
    pos_level = np.add.reduceat(w * pos, starts, axis=1)
    neg_below = np.cumsum(neg_level, axis=1) - neg_level
    wins = (pos_level * (neg_below + neg_level / 2)).sum(axis=1)
    return wins / (pos_level.sum(axis=1) * neg_level.sum(axis=1))


def resampled_auc(probs: np.ndarray, labels: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """The AUC on each resample (a row of image ``weights``), computed as ``evaluate`` does for
    the full set: one label's probability for two labels (either gives the same AUC), the mean
    one-vs-rest AUC otherwise."""
    classes = [1] if probs.shape[1] == 2 else list(np.unique(labels))
    per_class = [_weighted_auc(probs[:, c], labels == c, weights) for c in classes]
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
    resampled: np.ndarray | None,
    positive_class: str | None = None,
) -> dict[str, Any]:
    """One model's AUC, accuracy, sensitivity and specificity, each with its 95 % interval
    (``resampled``: its AUC on each bootstrap resample, or None where there are none)."""
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
        _percentile_interval(resampled)
        if resampled is not None and summary["auc"] is not None
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
    resamples = min(resamples, max(MIN_RESAMPLES, MAX_DRAWS // max(len(labels), 1)))
    # A resample needs two images of every label to say anything about ranking.
    weights = (
        stratified_resamples(labels, resamples, seed)
        if np.count_nonzero(counts) == len(label_names) and counts.min() >= 2
        else None
    )
    # The same resamples for both models: the difference is paired image by image.
    child_aucs, parent_aucs = (
        (resampled_auc(child_probs, labels, weights), resampled_auc(parent_probs, labels, weights))
        if weights is not None
        else (None, None)
    )
    child = model_summary(child_probs, labels, label_names, child_aucs, positive_class)
    parent = model_summary(parent_probs, labels, label_names, parent_aucs, positive_class)
    difference = difference_ci = None
    if child_aucs is not None and parent_aucs is not None:
        # Resamples exist only when every label is present, so both AUCs are defined.
        difference = float(child["auc"] - parent["auc"])
        difference_ci = _percentile_interval(child_aucs - parent_aucs)
    verdict = comparison_verdict(images_per_label=per_label, difference_ci=difference_ci)
    return {
        "check_images": len(labels),
        "images_per_label": per_label,
        "confidence_level": LEVEL,
        "child": child,
        "parent": parent,
        "auc_difference": difference,
        "auc_difference_ci": difference_ci,
        "resamples": resamples if weights is not None else 0,
        "seed": seed,
        "verdict": verdict,
        "verdict_text": VERDICT_TEXT[verdict],
    }


def compare_dice_with_parent(
    child_dice: np.ndarray,
    parent_dice: np.ndarray,
    *,
    seed: int = 0,
    resamples: int = RESAMPLES,
) -> dict[str, Any]:
    """Two outlining models on the same check images: mean Dice per image, each with its 95 %
    interval, and a paired, seeded bootstrap of the difference over the same resampled images.

    ``child_dice`` and ``parent_dice`` are each model's Dice on every check image, in the same
    order (an empty mask left empty scores 1, as on the job's own check).
    """
    child = np.asarray(child_dice, dtype=np.float64).reshape(-1)
    parent = np.asarray(parent_dice, dtype=np.float64).reshape(-1)
    if child.shape != parent.shape:
        raise ValueError(f"{len(child)} child scores for {len(parent)} parent scores")
    n = len(child)
    rng = np.random.default_rng(seed)
    draws = rng.integers(0, n, size=(resamples, n)) if n else np.zeros((0, 0), np.int64)
    child_means = child[draws].mean(axis=1) if n else np.zeros(0)
    parent_means = parent[draws].mean(axis=1) if n else np.zeros(0)
    difference_ci = _percentile_interval(child_means - parent_means) if n >= 2 else None
    verdict = dice_comparison_verdict(check_images=n, difference_ci=difference_ci)

    def summary(scores: np.ndarray, means: np.ndarray) -> dict[str, Any]:
        return {
            "dice": float(scores.mean()) if n else None,
            "dice_ci": _percentile_interval(means) if n >= 2 else None,
        }

    return {
        "metric": "dice",
        "check_images": n,
        "confidence_level": LEVEL,
        "child": summary(child, child_means),
        "parent": summary(parent, parent_means),
        "dice_difference": float(child.mean() - parent.mean()) if n else None,
        "dice_difference_ci": difference_ci,
        "resamples": resamples if n >= 2 else 0,
        "seed": seed,
        "verdict": verdict,
        "verdict_text": VERDICT_TEXT[verdict],
    }
