"""PNG renderings of heatmaps, alone or blended over the image they explain.

Colormaps are 256-entry lookup tables interpolated from ten evenly spaced anchor colours of
matplotlib's perceptually uniform maps, so no plotting library is needed at the site.
"""

from __future__ import annotations

import io
from typing import Literal

import numpy as np
from PIL import Image

Colormap = Literal["inferno", "viridis"]

DEFAULT_MAX_SIDE = 1024

_ANCHORS: dict[str, tuple[str, ...]] = {
    "inferno": (
        "000004", "1b0c42", "4b0c6b", "781c6d", "a52c60",
        "cf4446", "ed6925", "fb9a06", "f7d03c", "fcffa4",
    ),
    "viridis": (
        "440154", "482878", "3e4989", "31688e", "26828e",
        "1f9e89", "35b779", "6dcd59", "b4de2c", "fde725",
    ),
}  # fmt: skip


def colormap_lut(name: Colormap = "inferno") -> np.ndarray:
    """A (256, 3) uint8 lookup table for ``name``."""
    anchors = np.array([[int(h[i : i + 2], 16) for i in (0, 2, 4)] for h in _ANCHORS[name]])
    positions = np.linspace(0.0, 1.0, len(anchors))
    levels = np.linspace(0.0, 1.0, 256)
    channels = [np.interp(levels, positions, anchors[:, c]) for c in range(3)]
    return np.stack(channels, axis=1).round().astype(np.uint8)


def colorize(heatmap: np.ndarray, *, colormap: Colormap = "inferno") -> np.ndarray:
    """(H, W, 3) uint8 colours for a heatmap of values in [0, 1] (NaN counts as 0)."""
    values = np.nan_to_num(np.asarray(heatmap, dtype=np.float32), nan=0.0)
    indices = (np.clip(values, 0.0, 1.0) * 255.0).round().astype(np.uint8)
    return colormap_lut(colormap)[indices]


def heatmap_png(
    heatmap: np.ndarray,
    *,
    colormap: Colormap = "inferno",
    max_side: int = DEFAULT_MAX_SIDE,
) -> bytes:
    """PNG bytes of a 2-D heatmap in [0, 1], coloured, at its own size capped at ``max_side``."""
    _check_heatmap(heatmap)
    height, width = _fit(heatmap.shape[0], heatmap.shape[1], max_side)
    resized = _resize_heatmap(heatmap, height, width)
    return png_bytes(colorize(resized, colormap=colormap))


def heatmap_overlay_png(
    image: np.ndarray,
    heatmap: np.ndarray,
    *,
    alpha: float = 0.45,
    colormap: Colormap = "inferno",
    max_side: int = DEFAULT_MAX_SIDE,
) -> bytes:
    """PNG bytes of ``image`` with ``heatmap`` blended over it at opacity ``alpha``.

    The heatmap is stretched to the image; images larger than ``max_side`` on their long side
    are reduced first, so a whole-slide image yields an overlay a browser can show.
    """
    if not 0.0 <= alpha <= 1.0:
        raise ValueError(f"alpha must be in [0, 1], got {alpha}")
    _check_heatmap(heatmap)
    rgb = reduced_rgb(image, max_side)
    colours = colorize(_resize_heatmap(heatmap, rgb.shape[0], rgb.shape[1]), colormap=colormap)
    blended = (1.0 - alpha) * rgb.astype(np.float32) + alpha * colours.astype(np.float32)
    return png_bytes(blended.round().astype(np.uint8))


def _check_heatmap(heatmap: np.ndarray) -> None:
    if np.ndim(heatmap) != 2 or min(np.shape(heatmap)) < 1:
        raise ValueError(f"a heatmap must be a non-empty 2-D array, got shape {np.shape(heatmap)}")


def _fit(height: int, width: int, max_side: int) -> tuple[int, int]:
    scale = min(1.0, max_side / max(height, width))
    return max(1, round(height * scale)), max(1, round(width * scale))


def _resize_heatmap(heatmap: np.ndarray, height: int, width: int) -> np.ndarray:
    values = np.nan_to_num(np.asarray(heatmap, dtype=np.float32), nan=0.0)
    if values.shape == (height, width):
        return values
    resized = Image.fromarray(values).resize((width, height), Image.Resampling.BILINEAR)
    return np.asarray(resized)


def reduced_rgb(image: np.ndarray, max_side: int) -> np.ndarray:
    """RGB uint8 copy of ``image`` no larger than ``max_side``, without a full-size float copy."""
    array = np.asarray(image)
    if array.ndim == 3 and array.shape[2] in (2, 4):
        array = array[:, :, :-1]
    if array.ndim == 3 and array.shape[2] == 1:
        array = array[:, :, 0]
    if array.ndim not in (2, 3) or (array.ndim == 3 and array.shape[2] != 3):
        raise ValueError(f"expected a greyscale, RGB or RGBA image, got shape {array.shape}")
    if array.dtype != np.uint8:
        raise ValueError(f"expected uint8 pixels, got {array.dtype}")
    height, width = _fit(array.shape[0], array.shape[1], max_side)
    # Striding first keeps the resampling cheap on slide-sized images.
    step = max(1, min(array.shape[0] // height, array.shape[1] // width) // 2)
    reduced = Image.fromarray(np.ascontiguousarray(array[::step, ::step])).convert("RGB")
    if reduced.size != (width, height):
        reduced = reduced.resize((width, height), Image.Resampling.BILINEAR)
    return np.asarray(reduced)


def png_bytes(rgb: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(rgb).save(buffer, format="PNG", optimize=False)
    return buffer.getvalue()
