"""The quick model: a frozen ImageNet backbone with a logistic-regression head.

It trains in a minute or two on a CPU. Features are the backbone's pooled activations
averaged over each image and its mirror image. The fitted regression is folded into the
network's final linear layer, so the quick model is an ordinary zoo model: it is saved,
loaded and applied exactly like a fine-tuned one, averaged over the same views
(``ml.inference.TRAINED_TTA``), which makes its test-time augmentation exact.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score
from sklearn.model_selection import StratifiedKFold
from torch import nn
from torch.utils.data import DataLoader

from pollen_agent.errors import UserError
from pollen_agent.ml.data import ArrayImageDataset
from pollen_agent.ml.device import full_precision, pick_device, place_batch, place_model
from pollen_agent.ml.inference import TRAINED_TTA, tta_views
from pollen_agent.ml.metrics import evaluate
from pollen_agent.ml.recipe import Cancelled, check_labels
from pollen_agent.ml.zoo import build_model, get_spec

Images = tuple[Sequence[np.ndarray], Sequence[int]]
REGULARISATION_GRID = np.logspace(-3, 0, 7)  # strong priors suit few images, many features
MAX_FOLDS = 5


@dataclass
class QuickResult:
    """The quick model (backbone and head in one module) and how it did on validation."""

    model: nn.Module
    val_metrics: dict[str, Any] | None
    regularisation: float
    seconds: dict[str, float] = field(default_factory=dict)


def train_quick(
    train: Images,
    val: Images | None = None,
    *,
    label_names: Sequence[str] | None = None,
    arch: str = "efficientnet_lite0",
    input_size: int | None = None,
    batch_size: int = 64,
    seed: int = 0,
    should_cancel: Callable[[], bool] | None = None,
) -> QuickResult:
    """Fit a linear head on frozen ImageNet features of ``train`` images.

    The regularisation strength is chosen by stratified cross-validation on the training
    images, so the validation images (when given) give an honest estimate.
    """
    spec = get_spec(arch)
    if spec.family != "timm":
        raise UserError("The quick model is available for EfficientNet-Lite only.")
    size = input_size or spec.input_size
    train_labels = np.asarray(train[1], dtype=np.int64).reshape(-1)
    val_labels = np.asarray(val[1], dtype=np.int64).reshape(-1) if val is not None else train_labels
    num_classes = len(label_names) if label_names else int(train_labels.max()) + 1
    names = list(label_names) if label_names else [f"class {i}" for i in range(num_classes)]
    check_labels(train_labels, val_labels, names)

    started = time.perf_counter()
    torch.manual_seed(seed)
    model = build_model(arch, num_classes, source="imagenet")
    dataset = ArrayImageDataset(
        *train, input_size=size, mean=spec.mean, std=spec.std, augment=False
    )
    features = extract_features(model, dataset, batch_size=batch_size, should_cancel=should_cancel)
    extracted = time.perf_counter()
    fitted = _fit(features, train_labels, seed)
    _fold_into_head(model.get_classifier(), fitted)  # type: ignore[operator]
    head_done = time.perf_counter()

    val_metrics = None
    if val is not None:
        val_ds = ArrayImageDataset(
            *val, input_size=size, mean=spec.mean, std=spec.std, augment=False
        )
        val_features = extract_features(
            model, val_ds, batch_size=batch_size, should_cancel=should_cancel
        )
        val_metrics = evaluate(_probs(model, val_features), val_labels, names)
    seconds = {
        "features": extracted - started,
        "fit": head_done - extracted,
        "total": time.perf_counter() - started,
    }
    return QuickResult(model.eval(), val_metrics, fitted.C, seconds)


def extract_features(
    model: nn.Module,
    dataset: ArrayImageDataset,
    *,
    batch_size: int = 64,
    should_cancel: Callable[[], bool] | None = None,
) -> np.ndarray:
    """Pooled backbone features (N, D), averaged over the views of ``TRAINED_TTA`` (each image
    and its mirror image)."""
    device = pick_device()
    model = place_model(model, device).eval()
    views = tta_views(TRAINED_TTA)
    chunks = []
    # Full precision, as every inference (ml.inference.probs_of_batch): the features a quick model
    # is fitted on must be the ones it sees when it predicts, on any device.
    with torch.no_grad(), full_precision(device):
        for images, _ in DataLoader(dataset, batch_size=batch_size, shuffle=False):
            if should_cancel is not None and should_cancel():
                raise Cancelled("cancelled while reading image features")
            images = place_batch(images, device)
            both = torch.cat([view(images) for view in views])
            pooled = model.forward_head(model.forward_features(both), pre_logits=True)  # type: ignore[operator]
            halves = pooled.float().view(len(views), len(images), -1)
            chunks.append(halves.mean(dim=0).cpu().numpy())
    return np.concatenate(chunks).astype(np.float64)


@dataclass
class _Fitted:
    regression: LogisticRegression
    feature_mean: np.ndarray
    feature_scale: np.ndarray
    C: float


def _fit(features: np.ndarray, labels: np.ndarray, seed: int) -> _Fitted:
    """Standardise, choose C by stratified cross-validated AUC, then refit on all images."""
    present = np.bincount(labels)
    folds = int(min(MAX_FOLDS, present[present > 0].min()))
    if folds < 2:
        raise UserError(
            "Each label needs at least two training images for the quick model.",
            code="too_few_images",
        )
    mean, scale = features.mean(axis=0), features.std(axis=0) + 1e-6
    standard = (features - mean) / scale
    splits = list(StratifiedKFold(folds, shuffle=True, random_state=seed).split(standard, labels))
    scores = [_cv_auc(standard, labels, splits, C) for C in REGULARISATION_GRID]
    best_c = float(REGULARISATION_GRID[int(np.argmax(scores))])  # ties go to the stronger prior
    return _Fitted(_regression(best_c).fit(standard, labels), mean, scale, best_c)


def _regression(C: float) -> LogisticRegression:
    return LogisticRegression(C=C, class_weight="balanced", max_iter=2000)


def _cv_auc(
    features: np.ndarray, labels: np.ndarray, splits: list[tuple[np.ndarray, np.ndarray]], C: float
) -> float:
    aucs = []
    for fit_rows, score_rows in splits:
        model = _regression(C).fit(features[fit_rows], labels[fit_rows])
        probs = model.predict_proba(features[score_rows])
        if len(model.classes_) == 2:
            aucs.append(roc_auc_score(labels[score_rows], probs[:, 1]))
        else:
            aucs.append(
                roc_auc_score(labels[score_rows], probs, multi_class="ovr", labels=model.classes_)
            )
    return float(np.mean(aucs))


def _fold_into_head(head: nn.Linear, fitted: _Fitted) -> None:
    # Standardisation is affine, so it folds into the linear layer: W' = W/s, b' = b - W'm.
    regression = fitted.regression
    weight = regression.coef_ / fitted.feature_scale
    bias = regression.intercept_ - weight @ fitted.feature_mean
    if weight.shape[0] == 1:
        # A binary regression scores class 1 only; logits (-z/2, z/2) give the same softmax.
        weight, bias = np.vstack([-weight / 2, weight / 2]), np.array([-bias[0] / 2, bias[0] / 2])
    rows = np.zeros((head.out_features, weight.shape[1]))
    offsets = np.zeros(head.out_features)
    rows[regression.classes_], offsets[regression.classes_] = weight, bias
    with torch.no_grad():
        head.weight.copy_(torch.from_numpy(rows))
        head.bias.copy_(torch.from_numpy(offsets))


def _probs(model: nn.Module, features: np.ndarray) -> np.ndarray:
    head = model.get_classifier()  # type: ignore[operator]
    with torch.no_grad():
        logits = head(torch.from_numpy(features).to(head.weight))
    return torch.softmax(logits.float(), dim=1).cpu().numpy().astype(np.float64)
