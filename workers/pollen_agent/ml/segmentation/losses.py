"""Dice + weighted cross-entropy: the loss for masks where the finding is a small part of the image.

- Soft Dice over the foreground classes (background left out: it is most of every image and
  would make Dice easy), pooled over the batch, so an image without a finding adds its false
  positives instead of an undefined ratio. ``1 - Dice`` is averaged over the classes.
- Cross-entropy over every pixel, each class weighted by the square root of its inverse
  frequency in the training masks (``pixel_class_weights``), capped at ``MAX_CLASS_WEIGHT``
  times the background's: a rare class counts more, yet not so much that the model learns to
  draw wide borders around it. The weights average 1 over the training pixels, which keeps the
  loss on its usual scale.

Dice steers the overlap a clinician reads; cross-entropy gives every pixel a gradient from the
first step, when Dice's is still flat.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

MAX_CLASS_WEIGHT = 10.0
SMOOTH = 1.0  # pixels: keeps Dice defined (1) when a class is absent from truth and prediction


def pixel_class_weights(counts: np.ndarray, num_classes: int) -> torch.Tensor:
    """Cross-entropy weights of ``num_classes`` classes from their training pixel counts."""
    counts = np.asarray(counts, dtype=np.float64)[:num_classes]
    frequency = np.maximum(counts, 1.0) / max(float(counts.sum()), 1.0)
    weights = np.sqrt(frequency[0] / frequency)
    weights = np.minimum(weights, MAX_CLASS_WEIGHT)
    weights /= float((weights * frequency).sum())
    return torch.tensor(weights, dtype=torch.float32)


def soft_dice_loss(probabilities: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """``1 - soft Dice`` averaged over the foreground classes, pooled over the batch.

    ``probabilities``: (N, K, H, W) softmax outputs; ``target``: (N, H, W) class indexes.
    """
    num_classes = probabilities.shape[1]
    one_hot = F.one_hot(target, num_classes).permute(0, 3, 1, 2).to(probabilities.dtype)
    dims = (0, 2, 3)
    overlap = (probabilities * one_hot).sum(dims)[1:]
    total = (probabilities.sum(dims) + one_hot.sum(dims))[1:]
    return 1.0 - ((2.0 * overlap + SMOOTH) / (total + SMOOTH)).mean()


class DiceCELoss(nn.Module):
    """``soft_dice_loss`` + cross-entropy weighted by ``class_weights`` (a buffer: moves with it)."""

    class_weights: torch.Tensor

    def __init__(self, class_weights: torch.Tensor) -> None:
        super().__init__()
        self.register_buffer("class_weights", class_weights.float())

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        logits = logits.float()  # under autocast: Dice's sums want full precision
        cross_entropy = F.cross_entropy(logits, target, weight=self.class_weights)
        return cross_entropy + soft_dice_loss(logits.softmax(dim=1), target)

    def of_probabilities(self, probabilities: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """The same loss from probabilities (validation reads them at the image's own size)."""
        log_probabilities = probabilities.clamp_min(1e-7).log()
        weights = self.class_weights.to(probabilities.device)
        cross_entropy = F.nll_loss(log_probabilities, target, weight=weights)
        return cross_entropy + soft_dice_loss(probabilities, target)
