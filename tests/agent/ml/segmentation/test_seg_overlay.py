"""Segmentation PNGs: the mask, outlines over the image, probability and uncertainty maps."""

from __future__ import annotations

import io

import numpy as np
from PIL import Image

from pollen_agent.ml.segmentation.overlay import (
    PREDICTION_COLOUR,
    TRUTH_COLOUR,
    mask_png,
    outline,
    overlay_png,
    probability_png,
    uncertainty_png,
)


def decode(data: bytes) -> np.ndarray:
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    return np.asarray(Image.open(io.BytesIO(data)))


def square(top: int, left: int, side: int, value: int = 1) -> np.ndarray:
    mask = np.zeros((64, 48), dtype=np.uint8)
    mask[top : top + side, left : left + side] = value
    return mask


def test_the_mask_png_holds_the_class_indexes():
    mask = square(5, 5, 10) + square(30, 20, 8, value=2)
    assert np.array_equal(decode(mask_png(mask)), mask)


def test_outlines_of_prediction_and_truth_in_their_colours_over_the_image():
    image = np.full((64, 48), 100, dtype=np.uint8)
    pred, truth = square(10, 10, 12), square(30, 20, 10)
    rgb = decode(overlay_png(image, pred, truth))
    assert rgb.shape == (64, 48, 3)
    assert tuple(rgb[10, 15]) == PREDICTION_COLOUR and tuple(rgb[30, 25]) == TRUTH_COLOUR
    assert tuple(rgb[15, 15]) == (100, 100, 100)  # inside: the image shows through
    assert tuple(rgb[0, 0]) == (100, 100, 100)
    alone = decode(overlay_png(image, pred))
    assert tuple(alone[30, 25]) == (100, 100, 100)


def test_an_outline_is_the_region_border_only():
    mask = square(10, 10, 6)
    border = outline(mask)
    assert border.sum() == 4 * 6 - 4 and not border[12, 12] and border[10, 12]
    assert not outline(np.zeros((8, 8), dtype=np.uint8)).any()


def test_large_images_are_reduced_with_their_masks():
    image = np.zeros((2000, 1000, 3), dtype=np.uint8)
    mask = np.zeros((2000, 1000), dtype=np.uint8)
    mask[500:1500, 200:800] = 1
    rgb = decode(overlay_png(image, mask, max_side=500))
    assert rgb.shape == (500, 250, 3) and (rgb == PREDICTION_COLOUR).all(axis=2).any()


def test_probability_and_uncertainty_maps_are_pngs_of_the_image_size():
    probabilities = np.stack([np.full((30, 20), 0.8), np.full((30, 20), 0.2)]).astype(np.float32)
    assert decode(probability_png(probabilities)).shape == (30, 20, 3)
    assert decode(uncertainty_png(np.zeros((30, 20), dtype=np.float32))).shape == (30, 20, 3)
