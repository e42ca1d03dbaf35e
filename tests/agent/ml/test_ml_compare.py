"""A fine-tune beside its parent on the same check images: intervals, paired difference, verdict."""

from __future__ import annotations

import json

import numpy as np
import pytest
from sklearn.metrics import roc_auc_score

from pollen_agent.ml.compare import (
    compare_with_parent,
    resampled_auc,
    stratified_resamples,
    wilson_interval,
)

LABELS = ["normal", "pneumonia"]


def _probs(p1: np.ndarray) -> np.ndarray:
    return np.column_stack([1 - p1, p1])


def _scores(labels: np.ndarray, separation: float, seed: int) -> np.ndarray:
    """Probabilities of 'pneumonia' that separate the labels more as ``separation`` grows."""
    rng = np.random.default_rng(seed)
    return np.clip(0.5 + separation * (labels - 0.5) + rng.normal(0, 0.2, len(labels)), 0, 1)


def _check_set(per_label: int) -> np.ndarray:
    return np.repeat([0, 1], per_label)


def test_a_child_worse_than_its_parent_is_called_worse():
    labels = _check_set(100)
    child, parent = _scores(labels, 0.05, seed=1), _scores(labels, 0.6, seed=2)
    result = compare_with_parent(_probs(child), _probs(parent), labels, LABELS, seed=0)
    assert result["verdict"] == "worse"
    assert result["verdict_text"].startswith("Worse than the model it started from")
    assert result["child"]["auc"] < result["parent"]["auc"]
    low, high = result["auc_difference_ci"]
    assert low <= result["auc_difference"] <= high < 0
    assert result["check_images"] == 200
    assert result["images_per_label"] == {"normal": 100, "pneumonia": 100}
    json.dumps(result, allow_nan=False)  # travels to the hub as plain JSON


def test_a_child_better_than_its_parent_is_called_better():
    labels = _check_set(100)
    child, parent = _scores(labels, 0.6, seed=1), _scores(labels, 0.05, seed=2)
    result = compare_with_parent(_probs(child), _probs(parent), labels, LABELS)
    assert result["verdict"] == "better"


def test_the_same_model_shows_no_clear_difference():
    labels = _check_set(60)
    scores = _probs(_scores(labels, 0.3, seed=1))
    result = compare_with_parent(scores, scores.copy(), labels, LABELS)
    assert result["auc_difference"] == 0 and result["auc_difference_ci"] == [0.0, 0.0]
    assert result["verdict"] == "no_clear_difference"


def test_five_check_images_are_too_few_to_tell_even_when_the_child_looks_worse():
    # The case from the field: AUC 0.50 on 5 check images.
    labels = np.array([0, 0, 0, 1, 1])
    child = _probs(np.array([0.5, 0.5, 0.5, 0.5, 0.5]))
    parent = _probs(np.array([0.1, 0.2, 0.3, 0.8, 0.9]))
    result = compare_with_parent(child, parent, labels, LABELS)
    assert result["child"]["auc"] == 0.5 and result["parent"]["auc"] == 1.0
    assert result["verdict"] == "too_few"
    assert "Too few check images" in result["verdict_text"]


def test_an_interval_too_wide_to_mean_anything_is_too_few():
    # Enough images of each label by count, but so noisy the difference could be anything.
    labels = _check_set(12)
    child, parent = _scores(labels, 0.1, seed=3), _scores(labels, 0.15, seed=4)
    result = compare_with_parent(_probs(child), _probs(parent), labels, LABELS)
    low, high = result["auc_difference_ci"]
    assert low < 0 < high and high - low > 0.2
    assert result["verdict"] == "too_few"


def test_a_check_set_with_one_label_gives_no_auc_and_too_few():
    labels = np.zeros(30, dtype=int)
    scores = _probs(np.linspace(0, 1, 30))
    result = compare_with_parent(scores, scores, labels, LABELS)
    assert result["child"]["auc"] is None and result["auc_difference_ci"] is None
    assert result["resamples"] == 0
    assert result["verdict"] == "too_few"


def test_intervals_bracket_each_metric_and_are_reproducible():
    labels = _check_set(50)
    child, parent = _probs(_scores(labels, 0.4, seed=5)), _probs(_scores(labels, 0.3, seed=6))
    first = compare_with_parent(child, parent, labels, LABELS, seed=7)
    assert first == compare_with_parent(child, parent, labels, LABELS, seed=7)
    for side in ("child", "parent"):
        metrics = first[side]
        for name in ("auc", "accuracy", "sensitivity", "specificity"):
            low, high = metrics[f"{name}_ci"]
            assert 0 <= low <= metrics[name] <= high <= 1, (side, name)


def test_wilson_interval_stays_inside_zero_and_one():
    assert wilson_interval(0, 0) is None
    low, high = wilson_interval(5, 5)
    assert high == 1.0 and 0.4 < low < 0.6
    low, high = wilson_interval(50, 100)
    assert low == pytest.approx(0.4038, abs=1e-3) and high == pytest.approx(0.5962, abs=1e-3)


def test_resampled_auc_of_the_original_images_matches_sklearn():
    rng = np.random.default_rng(0)
    labels = np.repeat([0, 1, 2], 20)
    probs = rng.dirichlet([1, 1, 1], size=60).round(2)  # rounded: ties too
    expected = np.mean([roc_auc_score(labels == c, probs[:, c]) for c in range(3)])
    assert resampled_auc(probs, labels, np.ones((1, 60)))[0] == pytest.approx(expected)
    binary = _probs(rng.uniform(size=40).round(1))
    two = np.repeat([0, 1], 20)
    assert resampled_auc(binary, two, np.ones((1, 40)))[0] == pytest.approx(
        roc_auc_score(two, binary[:, 1])
    )


def test_each_resample_draws_every_label_as_often_and_scores_like_sklearn():
    rng = np.random.default_rng(1)
    labels = np.repeat([0, 1], [15, 25])
    scores = _probs(rng.uniform(size=40).round(1))
    weights = stratified_resamples(labels, 50, seed=0)
    assert weights.shape == (50, 40)
    assert (weights[:, labels == 0].sum(axis=1) == 15).all()
    assert (weights[:, labels == 1].sum(axis=1) == 25).all()
    aucs = resampled_auc(scores, labels, weights)
    for row, auc in zip(weights.astype(int), aucs, strict=True):
        drawn = np.repeat(np.arange(40), row)  # the resample as a list of images
        assert auc == pytest.approx(roc_auc_score(labels[drawn], scores[drawn, 1]))


def test_sensitivity_and_its_interval_follow_the_named_finding():
    labels = _check_set(40)
    child, parent = _probs(_scores(labels, 0.4, seed=8)), _probs(_scores(labels, 0.2, seed=9))
    default = compare_with_parent(child, parent, labels, LABELS)["child"]
    flipped = compare_with_parent(child, parent, labels, LABELS, positive_class="normal")["child"]
    assert flipped["sensitivity"] == default["specificity"]
    assert flipped["sensitivity_ci"] == default["specificity_ci"]
    assert flipped["auc_ci"] == default["auc_ci"], "the AUC is the same whichever label is found"


def test_a_very_large_check_set_is_resampled_fewer_times(monkeypatch):
    from pollen_agent.ml import compare

    monkeypatch.setattr(compare, "MAX_DRAWS", 100 * 300)
    labels = _check_set(150)  # 300 images: 100 resamples fit, but never fewer than 200
    scores = _probs(_scores(labels, 0.3, seed=1))
    assert compare_with_parent(scores, scores, labels, LABELS)["resamples"] == 200
    monkeypatch.setattr(compare, "MAX_DRAWS", 10**9)
    assert compare_with_parent(scores, scores, labels, LABELS)["resamples"] == 1000


def test_outlining_models_are_compared_on_paired_dice():
    from pollen_agent.ml.compare import compare_dice_with_parent

    rng = np.random.default_rng(0)
    parent = rng.uniform(0.5, 0.8, 40)
    better = compare_dice_with_parent(parent + 0.1, parent, seed=1)
    assert better["verdict"] == "better" and better["metric"] == "dice"
    assert better["dice_difference"] == pytest.approx(0.1)
    low, high = better["dice_difference_ci"]
    assert 0 < low <= 0.1 <= high  # every image gained 0.1: the paired interval is tight
    same = compare_dice_with_parent(parent + rng.normal(0, 0.01, 40), parent, seed=1)
    assert same["verdict"] == "no_clear_difference"
    worse = compare_dice_with_parent(parent - 0.1, parent, seed=1)
    assert worse["verdict"] == "worse"
    few = compare_dice_with_parent(parent[:5] + 0.1, parent[:5], seed=1)
    assert few["verdict"] == "too_few" and few["check_images"] == 5
