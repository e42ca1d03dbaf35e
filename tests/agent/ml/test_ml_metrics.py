"""Evaluation metrics checked against scikit-learn and hand-worked cases."""

from __future__ import annotations

import json

import numpy as np
import pytest
from sklearn.metrics import balanced_accuracy_score, confusion_matrix, roc_auc_score

from pollen_agent.ml.metrics import evaluate, expected_calibration_error

BINARY = ["normal", "disease"]


def _binary_probs(p1: np.ndarray) -> np.ndarray:
    return np.column_stack([1 - p1, p1])


def _is_plain_json(value) -> None:
    json.dumps(value, allow_nan=False)


def test_binary_metrics_match_sklearn():
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 2, 500)
    p1 = np.clip(labels * 0.3 + rng.uniform(0, 0.7, 500), 0, 1)
    result = evaluate(_binary_probs(p1), labels, BINARY, threshold=0.5)
    predicted = (p1 >= 0.5).astype(int)
    assert result["auc"] == pytest.approx(roc_auc_score(labels, p1))
    assert result["accuracy"] == pytest.approx(np.mean(predicted == labels))
    assert result["balanced_accuracy"] == pytest.approx(balanced_accuracy_score(labels, predicted))
    assert result["confusion_matrix"] == confusion_matrix(labels, predicted).tolist()
    tp = np.sum((predicted == 1) & (labels == 1))
    tn = np.sum((predicted == 0) & (labels == 0))
    assert result["sensitivity"] == pytest.approx(tp / np.sum(labels == 1))
    assert result["specificity"] == pytest.approx(tn / np.sum(labels == 0))
    assert result["n"] == 500
    assert result["class_counts"] == {
        "normal": int(np.sum(labels == 0)),
        "disease": int(np.sum(labels == 1)),
    }
    roc = result["roc"]["disease"]
    assert len(roc["fpr"]) <= 101 and roc["fpr"][0] == 0.0 and roc["tpr"][-1] == 1.0
    _is_plain_json(result)


def test_threshold_moves_the_operating_point():
    labels = np.array([0, 0, 1, 1])
    probs = _binary_probs(np.array([0.1, 0.4, 0.35, 0.9]))
    assert evaluate(probs, labels, BINARY, threshold=0.5)["sensitivity"] == 0.5
    assert evaluate(probs, labels, BINARY, threshold=0.3)["sensitivity"] == 1.0


def test_perfect_classifier():
    labels = np.array([0, 1, 0, 1, 1])
    result = evaluate(_binary_probs(labels.astype(float)), labels, BINARY)
    assert result["auc"] == 1.0 and result["accuracy"] == 1.0
    assert result["sensitivity"] == 1.0 and result["specificity"] == 1.0
    assert result["confusion_matrix"] == [[2, 0], [0, 3]]
    assert result["ece"] == pytest.approx(0.0)
    assert result["warnings"] == []


def test_single_class_labels_do_not_crash():
    labels = np.ones(6, dtype=int)
    result = evaluate(_binary_probs(np.linspace(0, 1, 6)), labels, BINARY)
    assert result["auc"] is None
    assert any("AUC is undefined" in w for w in result["warnings"])
    assert result["specificity"] is None and result["sensitivity"] == pytest.approx(0.5)
    _is_plain_json(result)


def test_no_images_do_not_crash():
    result = evaluate(np.zeros((0, 2)), np.zeros(0, dtype=int), BINARY)
    assert result["n"] == 0 and result["warnings"]
    _is_plain_json(result)


def test_multiclass_matches_sklearn_macro_ovr():
    rng = np.random.default_rng(1)
    labels = rng.integers(0, 3, 300)
    logits = rng.normal(size=(300, 3)) + np.eye(3)[labels] * 1.5
    probs = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    result = evaluate(probs, labels, ["a", "b", "c"])
    assert result["auc"] == pytest.approx(
        roc_auc_score(labels, probs, multi_class="ovr", average="macro")
    )
    assert result["accuracy"] == pytest.approx(np.mean(probs.argmax(1) == labels))
    assert set(result["roc"]) == {"a", "b", "c"}
    predicted = probs.argmax(1)
    for c, name in enumerate("abc"):
        expected = np.sum((predicted == c) & (labels == c)) / np.sum(labels == c)
        assert result["per_class"][name]["sensitivity"] == pytest.approx(expected)
    assert "sensitivity" not in result
    _is_plain_json(result)


def test_multiclass_with_an_absent_label_warns():
    labels = np.array([0, 1, 0, 1])
    probs = np.array([[0.8, 0.1, 0.1], [0.1, 0.8, 0.1], [0.6, 0.3, 0.1], [0.2, 0.7, 0.1]])
    result = evaluate(probs, labels, ["a", "b", "c"])
    assert result["auc"] == 1.0 and result["warnings"]


def test_calibration_error():
    labels = np.array([1] * 8 + [0] * 2)
    calibrated = _binary_probs(np.full(10, 0.8))  # says 80%, right 80% of the time
    assert expected_calibration_error(calibrated, labels) == pytest.approx(0.0)
    overconfident = _binary_probs(np.full(10, 0.99))
    assert expected_calibration_error(overconfident, labels) == pytest.approx(0.19)
