"""Sliding-window inference for images too large to squash into one input (pathology slides).

The image is cut into ``patch_size`` squares every ``stride`` pixels (the last row and column
are shifted in so the edges are covered). Background patches are skipped: a patch is background
when it is near-white with little texture (grey-level mean above ``white_level`` and standard
deviation below ``background_threshold``, both on the 0-255 scale), or when it is flat at any
brightness (standard deviation below ``FLAT_STD``: padding, scanner borders). Statistics come from
every 4th pixel of the patch.

Memory stays bounded by ``batch_size`` patches: only uint8 patches are cut from the image (which
may be a memory map) and only one batch is converted to floats at a time.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np
import torch
from PIL import Image
from torch import nn

from pollen_agent.errors import UserError
from pollen_agent.intensity import scale_to_uint8
from pollen_agent.ml.device import place_batch, resolve_device
from pollen_agent.ml.gradcam import gradcam_batch
from pollen_agent.ml.inference import (
    InferencePolicy,
    check_model_channels,
    eval_mode,
    preprocess,
    probs_of_batch,
    tta_views,
    validate_image,
)

BACKGROUND_STD = 12.0
WHITE_LEVEL = 200.0
FLAT_STD = 2.0
PAD_VALUE = 255  # patches that run past a small image's edge are padded with glass-white

HeatmapMethod = Literal["probability", "gradcam"]


@dataclass(frozen=True)
class LargeResult:
    """Slide-level answer of ``predict_large``.

    ``probs`` is the mean of the foreground patches' class probabilities and ``max_probs`` their
    maximum (a small lesion shows in the maximum before the mean). ``grid`` holds each patch
    position's probability of ``class_index`` (0 for background), ``foreground`` marks the
    positions that were evaluated. ``heatmap`` is aligned with the image, at most
    ``heatmap_max_side`` on its long side, with values in [0, 1]; None unless asked for.
    """

    probs: np.ndarray
    max_probs: np.ndarray
    patch_count: int
    skipped_background: int
    class_index: int
    grid: np.ndarray
    foreground: np.ndarray
    heatmap: np.ndarray | None


@dataclass(frozen=True)
class _Patch:
    row: int
    col: int
    y: int
    x: int


def predict_large(
    model: nn.Module,
    image: np.ndarray,
    *,
    inference: InferencePolicy,
    patch_size: int = 256,
    stride: int | None = None,
    batch_size: int = 32,
    background_threshold: float = BACKGROUND_STD,
    white_level: float = WHITE_LEVEL,
    with_heatmap: bool = True,
    heatmap_method: HeatmapMethod = "probability",
    class_index: int | None = None,
    heatmap_max_side: int = 1024,
    device: torch.device | str | None = None,
) -> LargeResult:
    """Classify a large image patch by patch and, optionally, map where each class was seen.

    Each patch is preprocessed and averaged as ``inference`` (the model's manifest policy) says;
    an image deeper than 8 bits is stretched over the whole image's range. ``stride`` defaults to ``patch_size`` (no overlap). The heatmap follows ``class_index``,
    by default the slide's most probable class. With ``heatmap_method="probability"`` every patch
    paints its probability; with ``"gradcam"`` it paints its Grad-CAM scaled by that probability,
    which costs one more forward and a backward pass per foreground patch. The model is moved to
    ``device`` (default: CUDA when available); its train/eval flags are restored. Raises
    ``UserError(no_foreground)`` when every patch is background.
    """
    validate_image(image)
    check_model_channels(model, inference.preprocess.in_channels)
    stride = stride or patch_size
    if patch_size < 1 or stride < 1 or batch_size < 1:
        raise ValueError("patch_size, stride and batch_size must be positive")
    runner = _Runner(model, image, patch_size, batch_size, inference, device)
    patches = _plan(image.shape[0], image.shape[1], patch_size, stride)

    def is_tissue(pixels: np.ndarray) -> bool:
        return not is_background_patch(
            pixels, background_threshold=background_threshold, white_level=white_level
        )

    foreground, patch_probs = runner.classify(patches, keep=is_tissue)
    if not foreground:
        raise UserError(
            "Every part of this image looks like empty background, so there is nothing to "
            "classify. Check that the image shows tissue.",
            code="no_foreground",
        )
    probs = patch_probs.mean(axis=0)
    chosen = int(probs.argmax()) if class_index is None else class_index
    if not 0 <= chosen < probs.shape[0]:
        raise ValueError(f"class_index {chosen} is out of range for {probs.shape[0]} classes")
    weights = patch_probs[:, chosen]
    grid, mask = _grid(patches[-1].row + 1, patches[-1].col + 1, foreground, weights)
    heatmap = None
    if with_heatmap:
        canvas = _Canvas(image.shape[0], image.shape[1], heatmap_max_side)
        runner.paint(canvas, foreground, weights, method=heatmap_method, class_index=chosen)
        heatmap = canvas.result()
    return LargeResult(
        probs=probs,
        max_probs=patch_probs.max(axis=0),
        patch_count=len(foreground),
        skipped_background=len(patches) - len(foreground),
        class_index=chosen,
        grid=grid,
        foreground=mask,
        heatmap=heatmap,
    )


@dataclass
class _Runner:
    """The model and preprocessing settings, applied to batches of patches cut on demand."""

    model: nn.Module
    image: np.ndarray
    patch_size: int
    batch_size: int
    inference: InferencePolicy
    device: torch.device | str | None

    def __post_init__(self) -> None:
        self.target = resolve_device(self.device)
        self.model.to(self.target)
        # A deeper-than-8-bit image is stretched over the whole image's range, never per patch.
        self.levels = None if self.image.dtype == np.uint8 else _range(self.image)

    def classify(
        self, patches: Sequence[_Patch], *, keep: Callable[[np.ndarray], bool]
    ) -> tuple[list[_Patch], np.ndarray]:
        """The kept patches and their class probabilities, (P, C) float32."""
        views = tta_views(self.inference.tta)
        kept: list[_Patch] = []
        chunks: list[np.ndarray] = []
        with eval_mode(self.model), torch.inference_mode():
            for batch in self._batches(patches, keep):
                probs = probs_of_batch(self.model, self._tensors(batch), views)
                chunks.append(probs.cpu().numpy())
                kept.extend(patch for patch, _ in batch)
        if not chunks:
            return kept, np.zeros((0, 0), dtype=np.float32)
        return kept, np.concatenate(chunks).astype(np.float32)

    def paint(
        self,
        canvas: _Canvas,
        patches: Sequence[_Patch],
        weights: np.ndarray,
        *,
        method: HeatmapMethod,
        class_index: int,
    ) -> None:
        """Paint each patch's probability, or its Grad-CAM scaled by it, onto ``canvas``."""
        if method == "probability":
            for patch, weight in zip(patches, weights, strict=True):
                canvas.add(patch.y, patch.x, self.patch_size, np.float32(weight))
            return
        if method != "gradcam":
            raise ValueError(f"unknown heatmap method {method!r}")
        by_patch = dict(zip(patches, weights, strict=True))
        for batch in self._batches(patches):
            inputs = self._tensors(batch)
            cams = gradcam_batch(self.model, inputs, class_indices=[class_index] * len(batch))
            for (patch, _), cam in zip(batch, cams, strict=True):
                canvas.add(patch.y, patch.x, self.patch_size, cam * by_patch[patch])

    def _tensors(self, batch: list[tuple[_Patch, np.ndarray]]) -> torch.Tensor:
        tensors = [preprocess(pixels, self.inference.preprocess) for _, pixels in batch]
        return place_batch(torch.stack(tensors), self.target)

    def _batches(
        self, patches: Sequence[_Patch], keep: Callable[[np.ndarray], bool] | None = None
    ) -> Iterator[list[tuple[_Patch, np.ndarray]]]:
        """Lists of (patch, uint8 pixels), at most ``batch_size`` long, of the kept patches."""
        batch: list[tuple[_Patch, np.ndarray]] = []
        for patch in patches:
            pixels = _cut(self.image, patch, self.patch_size, self.levels)
            if keep is not None and not keep(pixels):
                continue
            batch.append((patch, pixels))
            if len(batch) == self.batch_size:
                yield batch
                batch = []
        if batch:
            yield batch


def _grid(
    rows: int, cols: int, patches: Sequence[_Patch], values: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    grid = np.zeros((rows, cols), dtype=np.float32)
    mask = np.zeros((rows, cols), dtype=bool)
    for patch, value in zip(patches, values, strict=True):
        grid[patch.row, patch.col] = value
        mask[patch.row, patch.col] = True
    return grid, mask


def is_background_patch(
    patch: np.ndarray,
    *,
    background_threshold: float = BACKGROUND_STD,
    white_level: float = WHITE_LEVEL,
) -> bool:
    """Whether a uint8 patch is glass or padding rather than tissue (see the module docstring)."""
    sample = patch[::4, ::4]
    if sample.ndim == 3:
        sample = sample[:, :, :3].mean(axis=2, dtype=np.float32)
    grey = sample.astype(np.float32, copy=False)
    spread = float(grey.std())
    return spread < FLAT_STD or (spread < background_threshold and float(grey.mean()) > white_level)


def _plan(height: int, width: int, patch_size: int, stride: int) -> list[_Patch]:
    ys, xs = _starts(height, patch_size, stride), _starts(width, patch_size, stride)
    return [_Patch(r, c, y, x) for r, y in enumerate(ys) for c, x in enumerate(xs)]


def _starts(length: int, patch_size: int, stride: int) -> list[int]:
    if length <= patch_size:
        return [0]
    starts = list(range(0, length - patch_size + 1, stride))
    if starts[-1] != length - patch_size:
        starts.append(length - patch_size)
    return starts


def _range(image: np.ndarray) -> tuple[float, float]:
    return float(np.min(image)), float(np.max(image))


def _cut(
    image: np.ndarray, patch: _Patch, patch_size: int, levels: tuple[float, float] | None
) -> np.ndarray:
    pixels = np.asarray(image[patch.y : patch.y + patch_size, patch.x : patch.x + patch_size])
    if levels is not None:
        pixels = scale_to_uint8(pixels, *levels)
    missing_y, missing_x = patch_size - pixels.shape[0], patch_size - pixels.shape[1]
    if missing_y or missing_x:
        padding = [(0, missing_y), (0, missing_x)] + [(0, 0)] * (pixels.ndim - 2)
        pixels = np.pad(pixels, padding, constant_values=PAD_VALUE)
    return pixels


class _Canvas:
    """Average of per-patch maps painted onto a downscaled copy of the image's frame."""

    def __init__(self, height: int, width: int, max_side: int) -> None:
        self.scale = min(1.0, max_side / max(height, width))
        self.height = max(1, round(height * self.scale))
        self.width = max(1, round(width * self.scale))
        self.total = np.zeros((self.height, self.width), dtype=np.float32)
        self.count = np.zeros((self.height, self.width), dtype=np.float32)

    def add(self, y: int, x: int, size: int, values: np.ndarray | np.float32) -> None:
        top, left = math.floor(y * self.scale), math.floor(x * self.scale)
        # The footprint before clipping: a padded patch may reach past the image's edge.
        full_bottom = max(top + 1, math.ceil((y + size) * self.scale))
        full_right = max(left + 1, math.ceil((x + size) * self.scale))
        bottom, right = min(self.height, full_bottom), min(self.width, full_right)
        if np.ndim(values) == 2:
            resized = Image.fromarray(np.asarray(values, dtype=np.float32)).resize(
                (full_right - left, full_bottom - top), Image.Resampling.BILINEAR
            )
            values = np.asarray(resized)[: bottom - top, : right - left]
        self.total[top:bottom, left:right] += values
        self.count[top:bottom, left:right] += 1.0

    def result(self) -> np.ndarray:
        out = np.divide(self.total, self.count, out=np.zeros_like(self.total), where=self.count > 0)
        return np.clip(out, 0.0, 1.0)
