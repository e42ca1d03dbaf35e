"""Sliding-window inference: background skipping, lesion localisation, bounded memory."""

import time
import tracemalloc

import numpy as np
import pytest
import torch
from torch import nn

from pollen_agent.errors import UserError
from pollen_agent.ml.inference import policy
from pollen_agent.ml.sliding import is_background_patch, predict_large

MEAN = (0.5, 0.5, 0.5)
STD = (0.25, 0.25, 0.25)
GLASS, TISSUE, LESION = 240, 180, 50


def _policy(input_size: int):
    return policy(input_size=input_size, mean=MEAN, std=STD)


class DarknessNet(nn.Module):
    """Class 1 ("lesion") grows with how dark the patch is; a real 3x3 conv keeps Grad-CAM valid."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 1, kernel_size=3, padding=1)
        with torch.no_grad():
            self.conv.weight.fill_(-1.0 / 27)
            self.conv.bias.fill_(0.0)
        self.head = nn.Linear(1, 2)
        with torch.no_grad():
            self.head.weight.copy_(torch.tensor([[0.0], [4.0]]))
            self.head.bias.copy_(torch.tensor([0.0, 0.0]))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.conv(x).mean(dim=(2, 3)))


def _textured(rng: np.random.Generator, shape: tuple[int, int], level: int) -> np.ndarray:
    noise = rng.integers(-40, 41, size=(*shape, 1), dtype=np.int16)
    return np.clip(level + noise, 0, 255).astype(np.uint8).repeat(3, axis=2)


def _slide(size: int, tissue: tuple[slice, slice], lesion: tuple[slice, slice]) -> np.ndarray:
    rng = np.random.default_rng(0)
    image = np.full((size, size, 3), GLASS, dtype=np.uint8)
    image[tissue] = _textured(rng, image[tissue].shape[:2], TISSUE)
    image[lesion] = _textured(rng, image[lesion].shape[:2], LESION)
    return image


def test_background_rule():
    rng = np.random.default_rng(0)
    assert is_background_patch(np.full((64, 64, 3), GLASS, dtype=np.uint8))
    assert is_background_patch(np.zeros((64, 64), dtype=np.uint8))  # flat black border
    faint_glass = np.clip(GLASS + rng.normal(0, 4, size=(64, 64)), 0, 255).astype(np.uint8)
    assert is_background_patch(faint_glass)
    assert not is_background_patch(_textured(rng, (64, 64), TISSUE))
    assert not is_background_patch(_textured(rng, (64, 64), 225))  # pale but textured


def test_background_patches_are_counted_and_skipped():
    # A 4x4 grid of 64 px patches; tissue fills exactly five of them.
    image = _slide(256, (slice(0, 64), slice(0, 256)), (slice(64, 128), slice(0, 64)))
    result = predict_large(DarknessNet(), image, patch_size=64, inference=_policy(32), batch_size=3)
    assert (result.patch_count, result.skipped_background) == (5, 11)
    assert result.foreground.sum() == 5 and result.foreground[:1].all()
    assert result.grid[~result.foreground].max() == 0.0
    np.testing.assert_allclose(result.probs.sum(), 1.0, atol=1e-5)
    assert result.max_probs[1] > 0.9 > result.probs[1]


def test_all_background_is_a_user_error():
    with pytest.raises(UserError) as caught:
        predict_large(
            DarknessNet(),
            np.full((300, 300, 3), GLASS, dtype=np.uint8),
            patch_size=100,
            inference=_policy(16),
        )
    assert caught.value.code == "no_foreground"


def test_image_smaller_than_a_patch_is_padded():
    rng = np.random.default_rng(0)
    image = _textured(rng, (50, 70), LESION)
    result = predict_large(DarknessNet(), image, patch_size=128, inference=_policy(32))
    assert result.patch_count == 1 and result.grid.shape == (1, 1)
    assert result.heatmap is not None and result.heatmap.shape == (50, 70)


def test_overlapping_stride_covers_edges():
    image = _slide(300, (slice(0, 300), slice(0, 300)), (slice(0, 0), slice(0, 0)))
    result = predict_large(DarknessNet(), image, patch_size=100, stride=50, inference=_policy(16))
    assert result.grid.shape == (5, 5)
    assert result.patch_count == 25


@pytest.mark.parametrize("method", ["probability", "gradcam"])
def test_large_slide_heatmap_peaks_on_the_lesion(method):
    size = 4000
    lesion = (slice(2600, 3200), slice(700, 1300))
    image = _slide(size, (slice(500, 3600), slice(400, 3500)), lesion)
    tracemalloc.start()
    started = time.perf_counter()
    result = predict_large(
        DarknessNet(),
        image,
        patch_size=256,
        inference=_policy(64),
        batch_size=32,
        class_index=1,
        heatmap_method=method,
    )
    elapsed = time.perf_counter() - started
    _, peak_bytes = tracemalloc.get_traced_memory()
    tracemalloc.stop()

    assert result.grid.shape == (16, 16)
    assert result.patch_count + result.skipped_background == 256
    assert 100 < result.patch_count < 256
    # The grid's hottest cell and the heatmap's peak both land on the lesion.
    row, col = np.unravel_index(int(result.grid.argmax()), result.grid.shape)
    assert lesion[0].start <= row * 256 + 128 < lesion[0].stop
    assert lesion[1].start <= col * 256 + 128 < lesion[1].stop
    heatmap = result.heatmap
    assert heatmap is not None and heatmap.shape == (1024, 1024) and heatmap.dtype == np.float32
    assert heatmap.min() >= 0.0 and heatmap.max() <= 1.0
    y, x = np.unravel_index(int(heatmap.argmax()), heatmap.shape)
    scale = size / 1024
    assert lesion[0].start <= y * scale < lesion[0].stop
    assert lesion[1].start <= x * scale < lesion[1].stop
    # Streamed: far less than one float copy of the slide (192 MB) was ever allocated.
    assert peak_bytes < 24 * 2**20, f"peak numpy allocation {peak_bytes / 2**20:.0f} MiB"
    assert elapsed < 120, f"took {elapsed:.0f} s"


def test_without_heatmap_nothing_is_painted_and_the_model_keeps_its_mode():
    image = _slide(256, (slice(0, 256), slice(0, 128)), (slice(0, 64), slice(0, 64)))
    model = DarknessNet().train()
    result = predict_large(model, image, patch_size=128, inference=_policy(16), with_heatmap=False)
    assert result.heatmap is None and result.patch_count == 2
    assert model.training


def test_a_16_bit_slide_is_stretched_over_the_whole_slide_not_per_patch():
    from pollen_agent.intensity import stretch_to_uint8

    image = _slide(256, (slice(0, 256), slice(0, 256)), (slice(0, 128), slice(0, 128)))
    deep = image.astype(np.uint16) * 40 + 1000  # 1000..11200: stretched back to 0..255
    deep[200, 200] = 0  # the slide's range, which one patch alone would not know
    as_read = predict_large(DarknessNet(), deep, patch_size=128, inference=_policy(16))
    stretched = predict_large(
        DarknessNet(), stretch_to_uint8(deep), patch_size=128, inference=_policy(16)
    )
    np.testing.assert_array_equal(as_read.grid, stretched.grid)
    np.testing.assert_array_equal(as_read.probs, stretched.probs)
