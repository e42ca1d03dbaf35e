"""The quick model on real breast ultrasound images (BreastMNIST, official splits)."""

from __future__ import annotations

import time

import numpy as np
import pytest
import torch

from pollen_agent.ml.artifact import load_model_folder, save_model_folder
from pollen_agent.ml.data import ArrayImageDataset, load_medmnist
from pollen_agent.ml.metrics import evaluate
from pollen_agent.ml.quick import train_quick
from pollen_agent.ml.recipe import predict_probs
from pollen_agent.ml.zoo import get_spec

NAMES = ["malignant", "benign or normal"]


def _split(split: str) -> tuple[np.ndarray, np.ndarray]:
    try:
        return load_medmnist("breastmnist", split)
    except FileNotFoundError as exc:
        pytest.skip(f"BreastMNIST is not available on this machine: {exc}")


@pytest.mark.slow
def test_quick_model_on_breastmnist(tmp_path):
    train, val, test = _split("train"), _split("val"), _split("test")
    started = time.perf_counter()
    result = train_quick(train, val, label_names=NAMES)
    trained = time.perf_counter() - started

    spec = get_spec("efficientnet_lite0")
    test_ds = ArrayImageDataset(*test, input_size=224, mean=spec.mean, std=spec.std, augment=False)
    # The quick model is an ordinary model folder: save it and evaluate what was loaded.
    save_model_folder(
        tmp_path / "quick", result.model, {"architecture": spec.name, "label_names": NAMES}
    )
    loaded, _ = load_model_folder(tmp_path / "quick")
    metrics = evaluate(predict_probs(loaded, test_ds, tta="hflip"), test_ds.labels, NAMES)
    print(
        f"\nquick model: trained in {trained:.0f}s {result.seconds}, "
        f"val AUC {result.val_metrics['auc']:.3f}, test AUC {metrics['auc']:.3f}, "
        f"test accuracy {metrics['accuracy']:.3f}"
    )
    assert metrics["auc"] >= 0.85
    assert result.val_metrics["auc"] >= 0.8


def test_quick_model_head_matches_its_features():
    # Without real data: the folded head must reproduce the regression's probabilities.
    rng = np.random.default_rng(0)
    labels = np.array([0, 1] * 6)
    images = [rng.integers(0, 80, (16, 16), dtype=np.uint8) + 120 * label for label in labels]
    result = train_quick((images, labels), (images, labels), input_size=32, label_names=["a", "b"])
    spec = get_spec("efficientnet_lite0")
    dataset = ArrayImageDataset(
        images, labels, input_size=32, mean=spec.mean, std=spec.std, augment=False
    )
    probs = predict_probs(result.model, dataset, tta="hflip")
    assert result.val_metrics is not None
    again = evaluate(probs, labels, ["a", "b"])
    assert again["auc"] == pytest.approx(result.val_metrics["auc"], abs=1e-6)
    assert torch.is_tensor(result.model.get_classifier().weight)
