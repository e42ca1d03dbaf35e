"""Dice + weighted cross-entropy."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from pollen_agent.ml.segmentation.losses import (
    MAX_CLASS_WEIGHT,
    DiceCELoss,
    pixel_class_weights,
    soft_dice_loss,
)


def test_a_rare_class_weighs_more_capped_and_the_weights_average_one_over_pixels():
    counts = np.array([900, 100, 0])
    weights = pixel_class_weights(counts, 3).numpy()
    assert weights[1] > weights[0] and weights[2] >= weights[1]
    assert weights[2] / weights[0] == pytest.approx(MAX_CLASS_WEIGHT)  # absent: the cap
    assert weights[1] / weights[0] == pytest.approx(3.0)  # sqrt(900 / 100)
    frequency = np.maximum(counts, 1) / counts.sum()
    assert float((weights * frequency).sum()) == pytest.approx(1.0)


def _one_hot(target: torch.Tensor, classes: int) -> torch.Tensor:
    return F.one_hot(target, classes).permute(0, 3, 1, 2).float()


def test_dice_loss_is_zero_when_perfect_and_near_one_when_disjoint():
    target = torch.zeros(2, 16, 16, dtype=torch.long)
    target[:, 4:12, 4:12] = 1
    assert float(soft_dice_loss(_one_hot(target, 2), target)) == pytest.approx(0.0, abs=1e-6)
    wrong = torch.zeros_like(target)
    wrong[:, :4, :4] = 1
    assert float(soft_dice_loss(_one_hot(wrong, 2), target)) > 0.99


def test_the_loss_from_probabilities_equals_the_loss_from_logits():
    torch.manual_seed(0)
    logits = torch.randn(1, 3, 8, 8)
    target = torch.randint(0, 3, (1, 8, 8))
    loss = DiceCELoss(torch.tensor([0.5, 2.0, 3.0]))
    assert float(loss.of_probabilities(logits.softmax(dim=1), target)) == pytest.approx(
        float(loss(logits, target)), rel=1e-5
    )


def test_the_loss_falls_as_the_prediction_improves():
    target = torch.zeros(1, 16, 16, dtype=torch.long)
    target[:, 5:9, 5:9] = 1
    loss = DiceCELoss(pixel_class_weights(np.array([240, 16]), 2))
    good = _one_hot(target, 2) * 8 - 4
    assert (
        float(loss(good, target))
        < float(loss(torch.zeros_like(good), target))
        < float(loss(-good, target))
    )
