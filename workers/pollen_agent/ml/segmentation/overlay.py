"""PNG renderings of a segmentation: the mask itself, outlines over the image, and the maps.

- ``mask_png``: the class indexes as an 8-bit greyscale PNG (what a PACS or a script reads back).
- ``overlay_png``: the image with the prediction's outline in yellow and, when known, the
  truth's in cyan; both at the same size, so the dashboard can lay them side by side or fade
  one over the other.
- ``probability_png`` and ``uncertainty_png``: colour maps (``ml.overlay``'s palettes) of the
  probability of any finding and of the normalised entropy.
"""

from __future__ import annotations

import numpy as np
from PIL import Image
from scipy import ndimage

from pollen_agent.ml.overlay import DEFAULT_MAX_SIDE, heatmap_png, png_bytes, reduced_rgb

PREDICTION_COLOUR = (255, 214, 0)  # yellow
TRUTH_COLOUR = (0, 229, 255)  # cyan
# Outlines are one pixel wide on a 256 px image and thicker on larger ones, so they stay
# visible when a browser shrinks the picture.
OUTLINE_PER_PIXELS = 256


def mask_png(mask: np.ndarray) -> bytes:
    """The mask's class indexes (0..255) as an 8-bit greyscale PNG, at its own size."""
    values = np.asarray(mask)
    if values.ndim != 2 or values.size == 0:
        raise ValueError(f"a mask must be a non-empty 2-D array, got shape {values.shape}")
    if values.min() < 0 or values.max() > 255:
        raise ValueError("mask class indexes must be between 0 and 255")
    return png_bytes(np.ascontiguousarray(values.astype(np.uint8)))


def overlay_png(
    image: np.ndarray,
    mask: np.ndarray,
    truth: np.ndarray | None = None,
    *,
    max_side: int = DEFAULT_MAX_SIDE,
) -> bytes:
    """The image with the outline of each class region of ``mask`` (and of ``truth``) over it.

    ``image`` is uint8 greyscale or RGB(A) of the masks' size; images longer than ``max_side``
    are reduced, masks with them.
    """
    rgb = reduced_rgb(image, max_side).copy()
    height, width = rgb.shape[:2]
    thickness = max(1, round(max(height, width) / OUTLINE_PER_PIXELS))
    layers = [(mask, PREDICTION_COLOUR)]
    if truth is not None:
        layers.insert(0, (truth, TRUTH_COLOUR))  # the prediction's outline drawn on top
    for layer, colour in layers:
        if np.shape(layer)[:2] != np.shape(image)[:2]:
            raise ValueError(f"a mask {np.shape(layer)} differs from its image {np.shape(image)}")
        rgb[outline(_resized_mask(layer, height, width), thickness)] = colour
    return png_bytes(rgb)


def outline(mask: np.ndarray, thickness: int = 1) -> np.ndarray:
    """Pixels on the border of each class region (background excluded), ``thickness`` wide."""
    values = np.asarray(mask)
    padded = np.pad(values, 1, mode="edge")
    differs = np.zeros(values.shape, dtype=bool)
    for dy, dx in ((0, 1), (2, 1), (1, 0), (1, 2)):
        differs |= padded[dy : dy + values.shape[0], dx : dx + values.shape[1]] != values
    border = differs & (values > 0)
    if thickness > 1:
        border = ndimage.binary_dilation(border, iterations=thickness - 1) & (values > 0)
    return border


def _resized_mask(mask: np.ndarray, height: int, width: int) -> np.ndarray:
    values = np.asarray(mask, dtype=np.uint8)
    if values.shape == (height, width):
        return values
    return np.asarray(Image.fromarray(values).resize((width, height), Image.Resampling.NEAREST))


def probability_png(probabilities: np.ndarray, *, max_side: int = DEFAULT_MAX_SIDE) -> bytes:
    """The probability of any finding (1 - background), (K, H, W) in, coloured PNG out."""
    values = np.asarray(probabilities, dtype=np.float32)
    if values.ndim != 3 or values.shape[0] < 2:
        raise ValueError(f"expected (classes, H, W) probabilities, got shape {values.shape}")
    return heatmap_png(1.0 - values[0], colormap="inferno", max_side=max_side)


def uncertainty_png(uncertainty: np.ndarray, *, max_side: int = DEFAULT_MAX_SIDE) -> bytes:
    """The normalised entropy (H, W) in [0, 1] as a coloured PNG (bright: undecided)."""
    return heatmap_png(uncertainty, colormap="viridis", max_side=max_side)
