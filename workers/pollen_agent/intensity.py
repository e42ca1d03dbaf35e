"""The one intensity stretch: deeper-than-8-bit pixels into 0..255.

Training, every kind of inference, ingest's DICOM decoding and the dashboard's thumbnails all
call these two functions, so a 16-bit image becomes the same bytes wherever it is read. numpy
only: ingest imports it without torch. Rounding is to the nearest level (never truncation),
computed in float64.
"""

from __future__ import annotations

import numpy as np

# Thumbnails clip the darkest and brightest 0.5 % so one hot pixel does not grey out a preview;
# models see the full range (``FULL_RANGE``), as they did in training.
DISPLAY_PERCENTILES = (0.5, 99.5)
FULL_RANGE = (0.0, 100.0)


def scale_to_uint8(values: np.ndarray, low: float, high: float) -> np.ndarray:
    """``values`` mapped linearly from [low, high] onto 0..255 (clipped, rounded); zeros when flat."""
    if not high > low:
        return np.zeros(np.shape(values), np.uint8)
    scaled = (np.clip(np.asarray(values, dtype=np.float64), low, high) - low) / (high - low)
    return np.round(scaled * 255.0).astype(np.uint8)


def stretch_to_uint8(
    array: np.ndarray, percentiles: tuple[float, float] = FULL_RANGE
) -> np.ndarray:
    """uint8 as is; anything else stretched between two percentiles of its own values.

    With the default full range that is its minimum and maximum. Where the percentiles meet
    (a nearly flat image) the full range is used; a flat image becomes zeros.
    """
    array = np.asarray(array)
    if array.dtype == np.uint8:
        return array
    if array.dtype == np.bool_:
        return array.astype(np.uint8) * 255
    values = array.astype(np.float64)
    if percentiles == FULL_RANGE:
        low, high = float(values.min()), float(values.max())
    else:
        low, high = (float(v) for v in np.percentile(values, percentiles))
        if not high > low:
            low, high = float(values.min()), float(values.max())
    return scale_to_uint8(values, low, high)
