"""Whole-image prediction: probabilities, test-time augmentation and input validation."""

import numpy as np
import pytest
import torch
from torch import nn

from pollen_agent.errors import UserError
from pollen_agent.ml.predict import predict, preprocess

MEAN = (0.5, 0.5, 0.5)
STD = (0.25, 0.25, 0.25)


class PointwiseNet(nn.Module):
    """1x1 convolutions and global pooling: blind to where pixels are, so flip-invariant."""

    def __init__(self, in_channels: int = 3, classes: int = 3) -> None:
        super().__init__()
        self.conv = nn.Conv2d(in_channels, 8, kernel_size=1)
        self.head = nn.Linear(8, classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(torch.relu(self.conv(x)).mean(dim=(2, 3)))


class LeftHalfNet(nn.Module):
    """Looks only at the left half of the image, so flipping changes its answer."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 4, kernel_size=3, padding=1)
        self.head = nn.Linear(4, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        half = x[..., : x.shape[-1] // 2]
        return self.head(torch.relu(self.conv(half)).mean(dim=(2, 3)))


def _images(count: int, seed: int = 0) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    return [rng.integers(0, 256, size=(40, 56, 3), dtype=np.uint8) for _ in range(count)]


def _left_bright(count: int) -> list[np.ndarray]:
    images = []
    for _ in range(count):
        image = np.zeros((32, 32, 3), dtype=np.uint8)
        image[:, :16] = 230
        images.append(image)
    return images


def test_probabilities_are_a_distribution_per_image():
    torch.manual_seed(0)
    probs = predict(PointwiseNet(), _images(5), input_size=32, mean=MEAN, std=STD, batch_size=2)
    assert probs.shape == (5, 3)
    assert probs.dtype == np.float32
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, atol=1e-5)
    assert (probs >= 0).all()


def test_tta_leaves_a_flip_invariant_model_unchanged():
    torch.manual_seed(0)
    model = PointwiseNet()
    plain = predict(model, _images(3), input_size=32, mean=MEAN, std=STD)
    augmented = predict(model, _images(3), input_size=32, mean=MEAN, std=STD, tta="d4")
    np.testing.assert_allclose(augmented, plain, atol=1e-5)


def test_tta_changes_a_model_that_depends_on_orientation():
    torch.manual_seed(0)
    model = LeftHalfNet()
    plain = predict(model, _left_bright(2), input_size=32, mean=MEAN, std=STD)
    augmented = predict(model, _left_bright(2), input_size=32, mean=MEAN, std=STD, tta="hflip")
    np.testing.assert_allclose(augmented.sum(axis=1), 1.0, atol=1e-5)
    assert np.abs(augmented - plain).max() > 1e-3


def test_prediction_restores_training_mode():
    model = PointwiseNet().train()
    predict(model, _images(1), input_size=16, mean=MEAN, std=STD)
    assert model.training


def test_single_logit_model_answers_two_columns():
    torch.manual_seed(0)
    probs = predict(PointwiseNet(classes=1), _images(2), input_size=16, mean=MEAN, std=STD)
    assert probs.shape == (2, 2)
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, atol=1e-6)


def test_greyscale_image_is_repeated_to_three_channels():
    grey = np.full((20, 30), 128, dtype=np.uint8)
    tensor = preprocess(grey, input_size=16, mean=MEAN, std=STD)
    assert tensor.shape == (3, 16, 16)
    expected = (128 / 255 - 0.5) / 0.25
    torch.testing.assert_close(tensor, torch.full((3, 16, 16), expected), atol=1e-5, rtol=0)


def test_rgba_image_drops_alpha():
    rgba = np.zeros((20, 20, 4), dtype=np.uint8)
    rgba[..., 0] = 255
    rgba[..., 3] = 7
    tensor = preprocess(rgba, input_size=8, mean=(0, 0, 0), std=(1, 1, 1))
    torch.testing.assert_close(tensor[0], torch.ones(8, 8))
    torch.testing.assert_close(tensor[1:], torch.zeros(2, 8, 8))


def test_grey_picture_saved_as_rgb_feeds_a_greyscale_model():
    rgb = np.repeat(np.full((20, 20, 1), 51, dtype=np.uint8), 3, axis=2)
    tensor = preprocess(rgb, input_size=10, mean=(0.0,), std=(1.0,))
    assert tensor.shape == (1, 10, 10)
    torch.testing.assert_close(tensor, torch.full((1, 10, 10), 0.2), atol=1e-6, rtol=0)


def test_five_channel_image_is_rejected():
    with pytest.raises(UserError) as caught:
        preprocess(np.zeros((32, 32, 5), dtype=np.uint8), input_size=16, mean=MEAN, std=STD)
    assert caught.value.code == "wrong_channels"
    assert "32x32x5" in caught.value.message


def test_colour_image_is_rejected_by_a_greyscale_model():
    rng = np.random.default_rng(1)
    colour = rng.integers(0, 256, size=(32, 32, 3), dtype=np.uint8)
    with pytest.raises(UserError) as caught:
        predict(PointwiseNet(in_channels=1), [colour], input_size=16, mean=(0.5,), std=(0.25,))
    assert caught.value.code == "wrong_channels"
    assert "greyscale" in caught.value.message


def test_model_that_expects_one_channel_with_three_channel_settings_is_rejected():
    with pytest.raises(UserError) as caught:
        predict(PointwiseNet(in_channels=1), _images(1), input_size=16, mean=MEAN, std=STD)
    assert caught.value.code == "wrong_channels"


@pytest.mark.parametrize("shape", [(7, 100), (100, 7, 3), (0, 0)])
def test_tiny_image_is_rejected(shape):
    with pytest.raises(UserError) as caught:
        predict(
            PointwiseNet(), [np.zeros(shape, dtype=np.uint8)], input_size=16, mean=MEAN, std=STD
        )
    assert caught.value.code == "image_too_small"


@pytest.mark.parametrize(
    "pixels",
    [
        np.linspace(1000, 3000, 100, dtype=np.uint16).reshape(10, 10),
        np.linspace(-0.5, 2.0, 100).reshape(10, 10),
    ],
    ids=["uint16", "float"],
)
def test_non_byte_images_are_stretched_to_their_own_range_as_in_training(pixels):
    tensor = preprocess(pixels, input_size=10, mean=(0, 0, 0), std=(1, 1, 1))
    reference = np.round((pixels - pixels.min()) / (pixels.max() - pixels.min()) * 255) / 255
    expected = torch.from_numpy(reference.astype(np.float32)).expand(3, 10, 10)
    torch.testing.assert_close(tensor, expected, atol=1e-6, rtol=0)
