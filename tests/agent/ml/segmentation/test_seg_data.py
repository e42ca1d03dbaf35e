"""Images with masks as training items: whole or in patches, moved together by augmentation."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from pollen_agent.errors import UserError
from pollen_agent.ml.inference import Preprocess, preprocess
from pollen_agent.ml.segmentation.data import SegmentationDataset, choose_mode
from pollen_contracts.manifest import LETTERBOX
from tests.agent.ml.segmentation.conftest import blob_images

MEAN, STD = (0.5, 0.5, 0.5), (0.5, 0.5, 0.5)


def dataset(images, masks, *, size=32, augment=False, mode="whole", seed=0):
    return SegmentationDataset(
        images, masks, input_size=size, mean=MEAN, std=STD, augment=augment, seed=seed, mode=mode
    )


def _bright(image: torch.Tensor) -> np.ndarray:
    # Pixels brighter than mid-grey: the blob (noise stays below 60 of 255).
    return (image.mean(dim=0) > 0.0).numpy()


@pytest.mark.parametrize("mode", ["whole", "patch"])
def test_augmentation_moves_the_mask_with_the_image(mode):
    images, masks = blob_images(6, seed=1, height=96, width=80)
    items = dataset(images, masks, size=64, augment=True, mode=mode, seed=3)
    agreement, foreground = [], 0
    for epoch in range(1, 6):
        items.set_epoch(epoch)
        for index in range(len(items)):
            image, mask = items[index]
            assert (
                image.shape == (3, 64, 64) and mask.shape == (64, 64) and mask.dtype == torch.int64
            )
            agreement.append(np.mean(_bright(image) == (mask.numpy() == 1)))
            foreground += int(mask.sum() > 0)
    # Only pixels on the blob's edge may disagree (bilinear image, nearest mask).
    assert min(agreement) > 0.95
    assert foreground > 0


def test_a_misaligned_mask_would_fail_the_alignment_check():
    # The control for the test above: the same measure on a mask shifted by 6 pixels.
    images, masks = blob_images(1, seed=1, height=96, width=80)
    image, mask = dataset(images, masks, size=64)[0]
    shifted = np.roll(mask.numpy(), 6, axis=1)
    assert np.mean(_bright(image) == (shifted == 1)) < 0.95


def test_augmentation_repeats_for_the_same_seed_epoch_and_index_and_varies_by_epoch():
    images, masks = blob_images(3, seed=2)
    items = dataset(images, masks, augment=True, seed=5)
    items.set_epoch(2)
    first = items[1]
    again = dataset(images, masks, augment=True, seed=5)
    again.set_epoch(2)
    assert all(torch.equal(a, b) for a, b in zip(first, again[1], strict=True))
    items.set_epoch(3)
    assert not torch.equal(first[0], items[1][0])


def test_a_whole_image_is_preprocessed_exactly_as_inference_letterboxes_it():
    images, masks = blob_images(1, seed=3, height=48, width=30)
    image, mask = dataset(images, masks, size=32)[0]
    settings = Preprocess(32, MEAN, STD, resize=LETTERBOX)
    assert torch.equal(image, preprocess(images[0], settings))
    # 48 x 30 -> 32 x 20, centred: 6 columns of padding on each side, background in the mask.
    assert (mask[:, :6] == 0).all() and (mask[:, 26:] == 0).all()
    assert (image[:, :, :6] == -1.0).all()  # black, normalised
    assert int(mask.sum()) > 0


def test_a_patch_is_cut_at_the_image_own_resolution():
    images, masks = blob_images(1, seed=4, height=100, width=90)
    image, mask = dataset(images, masks, size=32, mode="patch")[0]
    # Without augmentation: the centred 32 px square, not resized.
    top, left = 50 - 16, 45 - 16
    expected = masks[0][top : top + 32, left : left + 32]
    assert np.array_equal(mask.numpy(), expected)
    pixels = images[0][top : top + 32, left : left + 32].astype(np.float32) / 255.0
    assert torch.allclose(image[0], torch.from_numpy((pixels - 0.5) / 0.5))


def test_training_patches_are_drawn_towards_the_finding():
    rng = np.random.default_rng(0)
    image = rng.integers(0, 60, (400, 400)).astype(np.uint8)
    mask = np.zeros((400, 400), dtype=np.uint8)
    mask[300:310, 50:60] = 1  # a small finding in a large image
    items = dataset([image] * 40, [mask] * 40, size=64, augment=True, mode="patch")
    with_finding = sum(int(items[i][1].sum() > 0) for i in range(40))
    # A uniform 64 px patch would show it about 5 % of the time; half are centred on it.
    assert with_finding >= 12


def test_grey_and_rgb_images_become_the_model_three_channels_alike():
    images, masks = blob_images(1, seed=5)
    grey = dataset(images, masks)[0][0]
    rgb = dataset([np.repeat(images[0][:, :, None], 3, axis=2)], masks)[0][0]
    assert grey.shape == (3, 32, 32) and torch.equal(grey, rgb)


def test_a_mask_of_another_size_is_refused_by_position():
    images, masks = blob_images(2, seed=6)
    with pytest.raises(UserError, match="Mask 2 is 39x48 pixels but its image is 40x48") as error:
        dataset(images, [masks[0], masks[1][:, :-1]])
    assert error.value.code == "invalid_mask"


def test_pixel_counts_count_every_class_of_every_mask():
    images, masks = blob_images(3, seed=7)
    counts = dataset(images, masks).pixel_counts()
    assert counts[1] == sum(int(m.sum()) for m in masks)
    assert counts.sum() == sum(m.size for m in masks)


@pytest.mark.parametrize(
    ("sizes", "mode"),
    [
        ([(215, 256), (256, 175), (256, 256)], "whole"),  # BUSI at 256 px
        ([(960, 999)] * 3, "patch"),  # CHASE_DB1
        ([(400, 500)], "whole"),  # shrunk less than twice
    ],
)
def test_the_mode_follows_the_image_size(sizes, mode):
    assert choose_mode(sizes, 256) == mode


def test_a_patch_epoch_cuts_several_patches_from_each_large_image():
    """One patch per image per epoch saw 1/15 of a CHASE photograph (issue 18 bench): a large
    image yields as many draws as input-size squares it holds, each cut elsewhere."""
    from pollen_agent.ml.segmentation.data import patches_per_image

    assert patches_per_image([(960, 999)] * 3 + [(2000, 2000)], 256) == 15
    assert patches_per_image([(256, 200)], 256) == 1
    images, masks = blob_images(2, 0, height=128, width=128)
    common = {"input_size": 32, "mean": MEAN, "std": STD, "augment": True, "seed": 3}
    patched = SegmentationDataset(images, masks, mode="patch", patches_per_image=4, **common)
    assert len(patched) == 8
    draws = [patched[i][0] for i in (0, 2, 4, 6)]  # four draws of the first image
    assert all(not torch.equal(draws[0], other) for other in draws[1:])
    whole = SegmentationDataset(images, masks, mode="whole", patches_per_image=4, **common)
    assert len(whole) == 2  # whole images are seen once per epoch
