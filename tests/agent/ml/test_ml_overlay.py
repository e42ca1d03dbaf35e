"""Heatmap PNGs: valid images of the right size and colours."""

import io

import numpy as np
import pytest
from PIL import Image

from pollen_agent.ml.overlay import colormap_lut, heatmap_overlay_png, heatmap_png


def _decode(png: bytes) -> Image.Image:
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    image = Image.open(io.BytesIO(png))
    image.load()
    return image


@pytest.mark.parametrize("name", ["inferno", "viridis"])
def test_colormap_runs_dark_to_bright(name):
    lut = colormap_lut(name)
    assert lut.shape == (256, 3) and lut.dtype == np.uint8
    luminance = lut.astype(float) @ np.array([0.299, 0.587, 0.114])
    assert luminance[-1] > luminance[128] > luminance[0]


def test_heatmap_png_has_the_heatmap_size_and_colormap_ends():
    heatmap = np.zeros((20, 30), dtype=np.float32)
    heatmap[:, 15:] = 1.0
    image = _decode(heatmap_png(heatmap))
    assert image.size == (30, 20) and image.mode == "RGB"
    pixels = np.asarray(image)
    lut = colormap_lut("inferno")
    np.testing.assert_array_equal(pixels[0, 0], lut[0])
    np.testing.assert_array_equal(pixels[0, -1], lut[255])


def test_heatmap_png_is_capped_in_size():
    image = _decode(heatmap_png(np.random.default_rng(0).random((300, 3000)), max_side=1024))
    assert image.size == (1024, 102)


@pytest.mark.parametrize("shape", [(48, 64), (48, 64, 3), (48, 64, 4), (48, 64, 1)])
def test_overlay_is_an_rgb_png_of_the_image_size(shape):
    image = np.full(shape, 200, dtype=np.uint8)
    heatmap = np.linspace(0, 1, 6 * 8, dtype=np.float32).reshape(6, 8)
    overlay = _decode(heatmap_overlay_png(image, heatmap))
    assert overlay.size == (64, 48) and overlay.mode == "RGB"


def test_overlay_blends_the_colour_in_at_alpha():
    image = np.full((16, 16, 3), 100, dtype=np.uint8)
    heatmap = np.ones((16, 16), dtype=np.float32)
    pixels = np.asarray(_decode(heatmap_overlay_png(image, heatmap, alpha=0.5)))
    expected = np.round(0.5 * 100 + 0.5 * colormap_lut("inferno")[255].astype(float))
    np.testing.assert_array_equal(pixels[8, 8], expected.astype(np.uint8))


def test_overlay_of_a_large_image_is_reduced():
    image = np.zeros((3000, 2000), dtype=np.uint8)
    overlay = _decode(heatmap_overlay_png(image, np.zeros((10, 10)), max_side=1024))
    assert overlay.size == (683, 1024)


def test_nan_in_heatmap_is_drawn_as_zero():
    heatmap = np.full((4, 4), np.nan, dtype=np.float32)
    pixels = np.asarray(_decode(heatmap_png(heatmap)))
    assert (pixels == colormap_lut("inferno")[0]).all()


def test_three_dimensional_heatmap_is_rejected():
    with pytest.raises(ValueError, match="2-D"):
        heatmap_png(np.zeros((4, 4, 3)))
