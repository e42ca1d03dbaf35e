"""Small PNG previews for the dashboard; they stay in site storage."""

from __future__ import annotations

import io

import numpy as np
from PIL import Image

from pollen_agent.ingest.decode import DecodedImage
from pollen_agent.intensity import DISPLAY_PERCENTILES, stretch_to_uint8

THUMBNAIL_SIZE = 256


def to_display_uint8(array: np.ndarray) -> np.ndarray:
    """uint8 as is; 16-bit stretched between its 0.5th and 99.5th percentiles (the same
    stretch models use, with the extremes clipped for a preview)."""
    return stretch_to_uint8(array, DISPLAY_PERCENTILES)


def make_thumbnail(image: DecodedImage, size: int = THUMBNAIL_SIZE) -> bytes:
    """A PNG whose longer side is at most ``size`` pixels, aspect ratio kept."""
    preview = Image.fromarray(to_display_uint8(image.array))
    preview.thumbnail((size, size), Image.Resampling.LANCZOS, reducing_gap=3.0)
    out = io.BytesIO()
    # Fast zlib level: thumbnails are small and short-lived to send, and encoding dominated ingest time.
    preview.save(out, format="PNG", optimize=False, compress_level=1)
    return out.getvalue()
