"""A finished cross-site model, and this site's local model, on the site's held-out images.

The held-out images are the test split of the dataset the site trained on: separated by
patient, never trained on and never used to pick an epoch. The local model is the site's own
round-1 update (its images only, from the same common starting model); the hub sends it when
the site has one. Both models are measured image by image on the very same images with the
fine-tune check's code (``pollen_agent.ml.compare``): point metrics from ``ml.metrics``, 95 %
intervals, and a paired bootstrap of the AUC difference. Only those numbers leave the site.

An outlining (segmentation) model is checked through the test check of a segmentation job
(``jobs/segmentation.py``, the one prediction path with the policy its manifest records):
Dice, lesion Dice, IoU and HD95 against the site's own masks, and a paired bootstrap of the
mean Dice difference. Which image scored what stays at the site.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from pollen_agent.errors import UserError
from pollen_agent.hub_client import HubClient
from pollen_agent.jobs.federated import download_weights, load_global, site_steps
from pollen_agent.jobs.images import SplitImages, load_splits
from pollen_agent.open_maps import JsonRecord, Metrics
from pollen_agent.storage.base import Storage
from pollen_contracts.manifest import TRAINED_TTA
from pollen_contracts.reports import HeldOutResult
from pollen_contracts.specs import HeldOutSpec
from pollen_contracts.weights import WeightsSpec

# The numbers the hub stores for each model (pollen.federation.agent_apis.HeldOutMetricsIn).
SUMMARY_KEYS = (
    "auc",
    "auc_ci",
    "accuracy",
    "accuracy_ci",
    "sensitivity",
    "sensitivity_ci",
    "specificity",
    "specificity_ci",
)
COMPARISON_KEYS = ("auc_difference", "auc_difference_ci", "verdict")
# An outlining model's numbers (pollen.federation.agent_apis.HeldOutMetricsIn too).
OUTLINE_KEYS = ("dice", "dice_ci", "lesion_dice", "lesion_dice_ci", "iou", "hd95_median")
DICE_COMPARISON_KEYS = ("dice_difference", "dice_difference_ci", "verdict")


def _checked(test: SplitImages) -> SplitImages:
    if not test.images:
        raise UserError(
            "This hospital's dataset has no held-out (test) images, so the final model could "
            "not be checked on images it never saw. Add images, then train again.",
            code="no_held_out_images",
        )
    return test


def _held_out_images(spec: HeldOutSpec, hub: HubClient, storage: Storage) -> SplitImages:
    rows = hub.get_all(f"agent/datasets/{spec.dataset_id}/training-images/")
    splits = load_splits(
        storage, rows, spec.label_names, input_size=spec.input_size, only=("test",)
    )
    return _checked(splits["test"])


def _model(spec: HeldOutSpec, weights: WeightsSpec) -> Any:
    """The model ``weights`` hold (from the hub's store, checksum verified), ready to evaluate."""
    from pollen_agent.ml.device import pick_device
    from pollen_agent.ml.zoo import build_model

    model = build_model(spec.architecture, len(spec.label_names), source="random")
    load_global(model, download_weights(weights.url, weights.sha256))
    return model.to(pick_device()).eval()


def _probabilities(spec: HeldOutSpec, weights: WeightsSpec, test: SplitImages) -> np.ndarray:
    """The model's class probabilities on ``test``, exactly as a training job's test evaluation."""
    from pollen_agent.ml.inference import predict_probs, trained_policy
    from pollen_agent.ml.zoo import get_spec

    arch = get_spec(spec.architecture)
    inference = trained_policy(input_size=spec.input_size, mean=arch.mean, std=arch.std)
    return predict_probs(_model(spec, weights), test.images, inference).astype(np.float64)


def _summary(model: Metrics, labels: np.ndarray, names: list[str], positive: int | None) -> Metrics:
    counts = np.bincount(labels, minlength=len(names))
    return {
        "n": len(labels),
        "class_counts": {name: int(c) for name, c in zip(names, counts, strict=True)},
        "positive_class": names[positive] if positive is not None else "",
        **{k: model.get(k) for k in SUMMARY_KEYS},
        # Both models are averaged as they were trained (ml.inference.TRAINED_TTA): recorded so
        # these numbers are never shown beside numbers computed another way.
        "tta": TRAINED_TTA,
    }


def run_held_out(
    *, spec: HeldOutSpec, hub: HubClient, storage: Storage, work: Path
) -> HeldOutResult:
    """Both models on the held-out images: ``{"federated", "local", "comparison"}`` (numbers only)."""
    if spec.task == "segmentation":
        return _outline_check(spec, hub, storage)
    from pollen_agent.ml.compare import compare_with_parent
    from pollen_agent.ml.metrics import positive_index

    names = list(spec.label_names)
    positive_class = spec.positive_class or None
    test = _held_out_images(spec, hub, storage)
    labels = np.asarray(test.labels, dtype=np.int64)
    federated = _probabilities(spec, spec.federated, test)
    # Without a local model the federated model is compared with itself: the same code path,
    # so its numbers are the same whether or not the site has a local model.
    local = _probabilities(spec, spec.local, test) if spec.local else federated
    compared = compare_with_parent(federated, local, labels, names, positive_class=positive_class)
    positive = positive_index(names, positive_class)
    result: JsonRecord = {
        "federated": _summary(compared["child"], labels, names, positive),
        "local": None,
    }
    if spec.local:
        result["local"] = _summary(compared["parent"], labels, names, positive)
        result["comparison"] = {k: compared.get(k) for k in COMPARISON_KEYS}
    return HeldOutResult.from_dict(result)


def _outline_check(spec: HeldOutSpec, hub: HubClient, storage: Storage) -> HeldOutResult:
    """Both outlining models on the site's held-out images and their masks, through a
    segmentation job's own test check."""
    from pollen_agent.ml.compare import compare_dice_with_parent
    from pollen_agent.ml.zoo import get_spec

    steps = site_steps(spec, spec.federated)
    rows = hub.get_all(f"agent/datasets/{spec.dataset_id}/training-images/")
    splits = steps.load(storage, rows, lambda done, total: None)
    test = _checked(splits["test"])
    arch = get_spec(spec.architecture)

    def check(weights: WeightsSpec) -> Metrics:
        return steps.evaluate(_model(spec, weights), splits, arch.mean, arch.std)

    federated = check(spec.federated)
    result: JsonRecord = {"federated": _outline_summary(federated, test, spec), "local": None}
    if spec.local:
        local = check(spec.local)
        result["local"] = _outline_summary(local, test, spec)
        compared = compare_dice_with_parent(_dice(federated), _dice(local))
        result["comparison"] = {"auc_difference": None, "auc_difference_ci": None} | {
            k: compared[k] for k in DICE_COMPARISON_KEYS
        }
    return HeldOutResult.from_dict(result)


def _dice(report: Metrics) -> np.ndarray:
    return np.array([row["dice"] for row in report["per_image"]], dtype=np.float64)


def _outline_summary(report: Metrics, test: SplitImages, spec: HeldOutSpec) -> Metrics:
    """Counts and aggregate Dice numbers; ``class_counts``: images whose mask holds each class."""
    masks = [np.asarray(m) for m in test.masks]
    return {
        "n": len(masks),
        "class_counts": {
            name: int(sum(bool(np.any(m == c)) for m in masks))
            for c, name in enumerate(spec.label_names)
        },
        "positive_class": "",
        **{k: report.get(k) for k in OUTLINE_KEYS},
        "tta": report["tta"],
    }
