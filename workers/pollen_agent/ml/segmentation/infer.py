"""The one segmentation prediction: every mask a model draws comes from here.

Training's validation, a job's test check, predictions and evaluations at a site all call
:func:`predict_segmentation` (or :func:`predict_segmentations` for many images), with the
policy the model's manifest records (``ml.inference.manifest_policy``):

- ``letterbox`` (models trained on whole images): the image is preprocessed exactly as in
  training (long side to the input size, centred on a black square), and the answer is cut
  back out and resized to the image's own size.
- ``native`` (models trained on patches): the image is read at its own resolution; up to
  ``window`` pixels a side in one pass (padded to a multiple of 32), larger in windows of that
  size that share ``overlap`` of their side, blended with Gaussian weights that trust a
  window's centre more than its edges, so no seam shows where windows meet.
- Test-time augmentation as the policy says: each view's logits are mapped back onto the image
  (a mirrored answer is mirrored back) and averaged, as classification averages logits.

Logits are averaged and resized; probabilities come last, by softmax. Always in full
precision (``ml.inference.probs_of_batch`` says why).
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from torch import nn

from pollen_agent.ml.device import full_precision, place_batch, resolve_device
from pollen_agent.ml.inference import (
    InferencePolicy,
    Transform,
    check_model_channels,
    eval_mode,
    letterbox,
    letterbox_box,
    model_picture,
    output_logits,
    picture_tensor,
    tta_views,
)
from pollen_contracts.manifest import LETTERBOX, NATIVE

# Five stride-2 stages: a U-Net reads sides that are multiples of 32.
SIDE_MULTIPLE = 32
DEFAULT_BATCH = 8
# Gaussian blending (as nnU-Net): sigma of an eighth of the window, never quite zero at its edge.
SIGMA_FRACTION = 1 / 8
MIN_WEIGHT = 1e-3

# The inverse of each view of ml.inference's TTA policies, in the same order.
_INVERSES: dict[str, tuple[Transform, ...]] = {
    "none": (lambda y: y,),
    "hflip": (lambda y: y, lambda y: torch.flip(y, dims=(-1,))),
    "d4": (
        lambda y: y,
        lambda y: torch.rot90(y, -1, dims=(-2, -1)),
        lambda y: torch.rot90(y, -2, dims=(-2, -1)),
        lambda y: torch.rot90(y, -3, dims=(-2, -1)),
        lambda y: torch.flip(y, dims=(-1,)),
        lambda y: torch.flip(y, dims=(-2,)),
        lambda y: y.transpose(-2, -1),
        lambda y: torch.rot90(y.transpose(-2, -1), 2, dims=(-2, -1)),
    ),
}


@dataclass(frozen=True)
class SegmentationPrediction:
    """A model's answer for one image, at the image's own size (H x W)."""

    probabilities: np.ndarray  # (K, H, W) float32, softmax over the classes
    mask: np.ndarray  # (H, W) uint8 class indexes, the most probable class
    uncertainty: np.ndarray  # (H, W) float32, entropy / log K: 0 certain, 1 undecided

    @property
    def num_classes(self) -> int:
        return int(self.probabilities.shape[0])


def predict_segmentation(
    model: nn.Module,
    image: np.ndarray,
    *,
    policy: InferencePolicy,
    device: torch.device | str | None = None,
) -> SegmentationPrediction:
    """Segment one image (H x W or H x W x C, any depth) as ``policy`` says."""
    return next(predict_segmentations(model, [image], policy=policy, device=device))


def predict_segmentations(
    model: nn.Module,
    images: Sequence[np.ndarray],
    *,
    policy: InferencePolicy,
    device: torch.device | str | None = None,
    batch_size: int = DEFAULT_BATCH,
) -> Iterator[SegmentationPrediction]:
    """Segment ``images`` in order, ``batch_size`` whole images (or windows) at a time.

    The model moves to ``device`` (default: CUDA when present) and runs in eval mode while
    each batch is computed; between batches its train/eval flags are its own again.
    """
    settings = policy.preprocess
    if settings.resize not in (LETTERBOX, NATIVE):
        raise ValueError(
            f"a segmentation policy resizes by letterbox or native, not {settings.resize!r}"
        )
    check_model_channels(model, settings.in_channels)
    target = resolve_device(device)
    if next(model.parameters()).device != target:
        model.to(target)
    step = batch_size if settings.resize == LETTERBOX else 1
    for start in range(0, len(images), step):
        chunk = images[start : start + step]
        # Grad and eval modes are per thread: never left switched while the caller runs.
        with eval_mode(model), torch.inference_mode():
            if settings.resize == LETTERBOX:
                predictions = _letterboxed(model, chunk, policy, target)
            else:
                predictions = [_finish(_native_logits(model, chunk[0], policy, target, batch_size))]
        yield from predictions


def _letterboxed(
    model: nn.Module, images: Sequence[np.ndarray], policy: InferencePolicy, target: torch.device
) -> list[SegmentationPrediction]:
    settings, size = policy.preprocess, policy.preprocess.input_size
    pictures = [model_picture(image, settings.in_channels) for image in images]
    batch = torch.stack([picture_tensor(letterbox(p, size), settings) for p in pictures])
    logits = dense_logits(model, place_batch(batch, target), policy.tta)
    predictions = []
    for picture, one in zip(pictures, logits, strict=True):
        box = letterbox_box(picture.height, picture.width, size)
        inside = one[:, box.top : box.top + box.height, box.left : box.left + box.width]
        predictions.append(_finish(_resized(inside, picture.height, picture.width)))
    return predictions


def _native_logits(
    model: nn.Module,
    image: np.ndarray,
    policy: InferencePolicy,
    target: torch.device,
    batch_size: int,
) -> torch.Tensor:
    settings = policy.preprocess
    picture = model_picture(image, settings.in_channels)
    window = policy.window or settings.input_size
    height, width = picture.height, picture.width
    if max(height, width) <= window:
        padded = _padded(picture, _round_up(height), _round_up(width))
        tensor = place_batch(picture_tensor(padded, settings).unsqueeze(0), target)
        return dense_logits(model, tensor, policy.tta)[0, :, :height, :width]
    padded = _padded(picture, max(height, window), max(width, window))
    tensor = picture_tensor(padded, settings).to(target)
    overlap = policy.overlap if policy.overlap is not None else 0.0
    logits = window_logits(
        model, tensor, window=window, overlap=overlap, tta=policy.tta, batch_size=batch_size
    )
    return logits[:, :height, :width]


def window_logits(
    model: nn.Module,
    tensor: torch.Tensor,
    *,
    window: int,
    overlap: float,
    tta: str = "none",
    batch_size: int = DEFAULT_BATCH,
) -> torch.Tensor:
    """Logits (K, H, W) of a preprocessed (C, H, W) tensor read in Gaussian-blended windows.

    Windows start evenly from one edge to the other, so each side is covered with at least
    ``overlap`` of a window shared between neighbours; H and W must be at least ``window``.
    """
    _, height, width = tensor.shape
    step = max(1, math.floor(window * (1 - overlap)))
    corners = [(y, x) for y in _starts(height, window, step) for x in _starts(width, window, step)]
    weights = gaussian_weights(window, tensor.device)
    total: torch.Tensor | None = None
    coverage = torch.zeros((height, width), device=tensor.device)
    for first in range(0, len(corners), batch_size):
        chunk = corners[first : first + batch_size]
        tiles = torch.stack([tensor[:, y : y + window, x : x + window] for y, x in chunk])
        logits = dense_logits(model, place_batch(tiles, tensor.device), tta)
        if total is None:
            total = torch.zeros((logits.shape[1], height, width), device=tensor.device)
        for (y, x), one in zip(chunk, logits, strict=True):
            total[:, y : y + window, x : x + window] += one * weights
            coverage[y : y + window, x : x + window] += weights
    assert total is not None
    return total / coverage


def _starts(length: int, window: int, step: int) -> list[int]:
    last = length - window
    count = math.ceil(last / step) + 1
    return [round(i * last / (count - 1)) if count > 1 else 0 for i in range(count)]


def gaussian_weights(window: int, device: torch.device | None = None) -> torch.Tensor:
    """(window, window) blending weights: 1 at the centre, at least ``MIN_WEIGHT`` at the edge."""
    positions = torch.arange(window, dtype=torch.float32, device=device) + 0.5 - window / 2
    line = torch.exp(-(positions**2) / (2 * (window * SIGMA_FRACTION) ** 2))
    return torch.outer(line, line).clamp_min(MIN_WEIGHT)


def dense_logits(model: nn.Module, batch: torch.Tensor, tta: str) -> torch.Tensor:
    """Logits (N, K, H, W) of a preprocessed batch, averaged over the policy's views."""
    total: torch.Tensor | None = None
    views = tta_views(tta)
    with full_precision(batch.device):
        for view, inverse in zip(views, _INVERSES[tta], strict=True):
            logits = inverse(output_logits(model(view(batch))).float())
            total = logits if total is None else total + logits
    assert total is not None
    return total / len(views)


def _resized(logits: torch.Tensor, height: int, width: int) -> torch.Tensor:
    if logits.shape[-2:] == (height, width):
        return logits
    resized = F.interpolate(
        logits.unsqueeze(0), size=(height, width), mode="bilinear", align_corners=False
    )
    return resized[0]


def _padded(picture: Image.Image, height: int, width: int) -> Image.Image:
    # Black below and to the right, as letterboxing pads: the model has seen such borders.
    if (picture.height, picture.width) == (height, width):
        return picture
    canvas = Image.new(picture.mode, (width, height), 0)
    canvas.paste(picture, (0, 0))
    return canvas


def _round_up(side: int) -> int:
    return -(-side // SIDE_MULTIPLE) * SIDE_MULTIPLE


def _finish(logits: torch.Tensor) -> SegmentationPrediction:
    # A channels-last model answers in channels-last memory: one copy into plain (K, H, W)
    # order makes every step below a contiguous pass.
    probabilities = torch.softmax(logits.float().contiguous(), dim=0)
    return SegmentationPrediction(
        probabilities=probabilities.cpu().numpy(),
        mask=probabilities.argmax(dim=0).to(torch.uint8).cpu().numpy(),
        uncertainty=normalised_entropy(probabilities).cpu().numpy(),
    )


def normalised_entropy(probabilities: torch.Tensor) -> torch.Tensor:
    """Entropy over the class axis (0) divided by log K: 0 where certain, 1 where undecided."""
    entropy = torch.special.entr(probabilities).sum(dim=0)
    return (entropy / math.log(probabilities.shape[0])).clamp_(0.0, 1.0)
