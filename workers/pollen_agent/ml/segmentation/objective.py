"""What segmentation brings to the training recipe (``ml.recipe.train(..., objective=...)``).

- Loss: Dice + cross-entropy weighted by the training masks' class frequencies
  (``losses.DiceCELoss``).
- Validation: every validation image through the one prediction path (``infer``), bare image
  (no test-time augmentation), scored at the image's own size. An image with an empty mask
  scores 1 when the model draws nothing there and 0 when it draws something (``metrics``).
- Selection: the mean Dice per image; its noise for the recipe's tie rule is the standard
  error of that mean (the spread of the images' Dice over the square root of their number).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.utils.data import Dataset

from pollen_agent.errors import UserError
from pollen_agent.ml.recipe import TrainConfig, output_classes
from pollen_agent.ml.segmentation.data import SegmentationDataset
from pollen_agent.ml.segmentation.infer import SIDE_MULTIPLE, predict_segmentations
from pollen_agent.ml.segmentation.losses import DiceCELoss, pixel_class_weights
from pollen_agent.ml.segmentation.metrics import class_scores, confusion, mean_or_one

# BatchNorm wants several images per step, and a U-Net at 256 px holds a batch of 8 in a few
# GB of memory; validation reads the same number of images at a time.
BATCH_SIZE = 8


def train_config(**overrides: Any) -> TrainConfig:
    """The recipe's settings for a U-Net: 256 px, batches of 8 (``overrides`` win)."""
    return TrainConfig(**({"input_size": 256, "batch_size": BATCH_SIZE} | overrides))


class SegmentationObjective:
    """Masks with ``label_names`` (background first): Dice + CE, selected on mean Dice."""

    def __init__(self, label_names: Sequence[str]) -> None:
        if len(label_names) < 2:
            raise UserError(
                "A segmentation needs the background and at least one class to outline.",
                code="too_few_labels",
            )
        self.label_names = list(label_names)
        self.loss = DiceCELoss(torch.ones(len(self.label_names)))

    @property
    def num_classes(self) -> int:
        return len(self.label_names)

    def build_loss(self, model: nn.Module, train_ds: Dataset, val_ds: Dataset) -> nn.Module:
        train, val = _masks_of(train_ds), _masks_of(val_ds)
        if train.input_size % SIDE_MULTIPLE:
            raise UserError(
                f"The input size {train.input_size} is not a multiple of {SIDE_MULTIPLE}, "
                "which a U-Net needs. Choose 256, for example.",
                code="invalid_input_size",
            )
        if len(train) < 2 or len(val) < 1:
            raise UserError(
                "Training needs at least two images with masks, and one more to validate on.",
                code="too_few_images",
            )
        self._check_outputs(model, train)
        counts = train.pixel_counts()
        self._check_values(counts, "training")
        self._check_values(val.pixel_counts(), "validation")
        self._check_every_class_drawn(counts)
        self.loss = DiceCELoss(pixel_class_weights(counts, self.num_classes))
        return self.loss

    def _check_outputs(self, model: nn.Module, train: SegmentationDataset) -> None:
        outputs = output_classes(model, train)
        if outputs != self.num_classes:
            raise UserError(
                f"The model draws {outputs} classes but the label map has {self.num_classes} "
                f"({', '.join(self.label_names)}). Start from a model made for this label map.",
                code="weights_mismatch",
            )

    def _check_values(self, counts: np.ndarray, split: str) -> None:
        unknown = [int(v) for v in np.flatnonzero(counts[self.num_classes :]) + self.num_classes]
        if unknown:
            raise UserError(
                f"Some {split} masks hold the values {unknown}, but the label map has classes "
                f"0 to {self.num_classes - 1} ({', '.join(self.label_names)}). Check the masks' "
                "label map.",
                code="invalid_mask",
            )

    def _check_every_class_drawn(self, counts: np.ndarray) -> None:
        if not counts[1 : self.num_classes].any():
            raise UserError(
                "Every training mask is empty, so there is nothing to learn to outline. Add "
                "images whose masks outline the finding.",
                code="masks_empty",
            )
        missing = [self.label_names[c] for c in range(1, self.num_classes) if counts[c] == 0]
        if missing:
            raise UserError(
                f"No training mask outlines {', '.join(repr(m) for m in missing)}, so the model "
                "could not learn it. Add images with that class, or remove it from the label map.",
                code="label_missing_from_split",
            )

    def validate(self, model: nn.Module, val_ds: Dataset, config: TrainConfig) -> dict[str, Any]:
        val = _masks_of(val_ds)
        device = next(model.parameters()).device
        batch_size = max(1, min(config.eval_batch_size, config.batch_size))
        predictions = predict_segmentations(
            model, val.images, policy=val.policy(tta="none"), device=device, batch_size=batch_size
        )
        dice, iou, losses, finding = [], [], [], []
        for prediction, truth in zip(predictions, val.masks, strict=True):
            matrix = confusion(prediction.mask, truth, self.num_classes)
            image_dice, image_iou = class_scores(matrix)
            dice.append(mean_or_one(image_dice))
            iou.append(mean_or_one(image_iou))
            finding.append(bool(matrix[1:].sum()))
            losses.append(self._loss_of(prediction.probabilities, truth))
        return _summary(np.array(dice), np.array(iou), np.array(finding), losses) | {
            "label_names": self.label_names
        }

    def _loss_of(self, probabilities: np.ndarray, truth: np.ndarray) -> float:
        target = torch.from_numpy(np.asarray(truth, dtype=np.int64)).unsqueeze(0)
        loss = self.loss.of_probabilities(torch.from_numpy(probabilities)[None], target)
        return float(loss)

    def score(self, val_metrics: dict[str, Any]) -> float:
        return float(val_metrics["dice"])

    def noise(self, peak_score: float, val_metrics: dict[str, Any]) -> float:
        return float(val_metrics["dice_se"])

    def history_fields(self, val_metrics: dict[str, Any]) -> dict[str, Any]:
        return {
            "val_loss": val_metrics["loss"],
            "val_dice": val_metrics["dice"],
            "val_lesion_dice": val_metrics["lesion_dice"],
            "val_iou": val_metrics["iou"],
        }


def _masks_of(dataset: Dataset) -> SegmentationDataset:
    if not isinstance(dataset, SegmentationDataset):
        raise TypeError(
            f"segmentation trains on a SegmentationDataset, not {type(dataset).__name__}"
        )
    return dataset


def _summary(
    dice: np.ndarray, iou: np.ndarray, finding: np.ndarray, losses: list[float]
) -> dict[str, Any]:
    # Plain floats: the metrics travel in checkpoints read with weights_only=True.
    spread = float(dice.std(ddof=1)) if len(dice) > 1 else 0.0
    return {
        "loss": float(np.mean(losses)),
        "dice": float(dice.mean()),
        "dice_se": spread / math.sqrt(len(dice)),
        "lesion_dice": float(dice[finding].mean()) if finding.any() else None,
        "iou": float(iou.mean()),
        "images": len(dice),
        "lesion_images": int(finding.sum()),
    }
