"""Whole-image inference by keyword: a front of :mod:`pollen_agent.ml.inference` for callers
that hold an input size, mean and std rather than a model's manifest (benchmarks, tests).

It adds no preprocessing or augmentation of its own: both come from ``ml.inference``.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from torch import nn

from pollen_agent.ml.inference import Preprocess, policy, predict_probs
from pollen_agent.ml.inference import preprocess as _preprocess


def preprocess(
    image: np.ndarray, *, input_size: int, mean: Sequence[float], std: Sequence[float]
) -> torch.Tensor:
    """One image as the model's (len(mean), input_size, input_size) input tensor."""
    settings = Preprocess(int(input_size), tuple(map(float, mean)), tuple(map(float, std)))
    return _preprocess(image, settings)


def predict(
    model: nn.Module,
    images: Sequence[np.ndarray],
    *,
    input_size: int,
    mean: Sequence[float],
    std: Sequence[float],
    tta: str = "none",
    batch_size: int = 32,
    device: torch.device | str | None = None,
) -> np.ndarray:
    """Class probabilities (N, C) under test-time augmentation ``tta`` ("none", "hflip", "d4")."""
    chosen = policy(input_size=input_size, mean=mean, std=std, tta=tta)
    return predict_probs(model, images, chosen, device=device, batch_size=batch_size)
