"""The one segmentation prediction: original size, sliding windows without seams, TTA, manifest."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest
import torch
from torch import nn

from pollen_agent.ml.inference import letterbox_box, manifest_policy, preprocess, tta_views
from pollen_agent.ml.segmentation.data import segmentation_policy
from pollen_agent.ml.segmentation.infer import (
    _INVERSES,
    predict_segmentation,
    predict_segmentations,
    window_logits,
)
from pollen_agent.ml.segmentation.model import unet_efficientnet_lite0
from pollen_contracts.manifest import InferenceBlock

MEAN, STD = (0.5, 0.5, 0.5), (0.5, 0.5, 0.5)


@pytest.fixture(scope="module")
def unet() -> nn.Module:
    torch.manual_seed(0)
    return unet_efficientnet_lite0(3).eval()


def pointwise_model() -> nn.Module:
    # Each output pixel depends on its own input pixel only: any tiling must give the same map.
    torch.manual_seed(1)
    return nn.Sequential(nn.Conv2d(3, 8, 1), nn.Tanh(), nn.Conv2d(8, 3, 1)).eval()


def whole(size=64, tta="none"):
    return segmentation_policy(input_size=size, mean=MEAN, std=STD, mode="whole", tta=tta)


def patches(window, overlap=0.25, tta="none", size=64):
    return segmentation_policy(
        input_size=size, mean=MEAN, std=STD, mode="patch", tta=tta, window=window, overlap=overlap
    )


def image(height, width, seed=0, channels=3):
    rng = np.random.default_rng(seed)
    shape = (height, width, channels) if channels > 1 else (height, width)
    return rng.integers(0, 255, shape).astype(np.uint8)


@pytest.mark.parametrize("shape", [(50, 37), (64, 64), (90, 200)])
def test_a_whole_image_model_answers_at_the_image_own_size(unet, shape):
    answer = predict_segmentation(unet, image(*shape), policy=whole())
    assert answer.probabilities.shape == (3, *shape) and answer.probabilities.dtype == np.float32
    assert answer.mask.shape == shape and answer.mask.dtype == np.uint8
    assert answer.uncertainty.shape == shape
    assert np.allclose(answer.probabilities.sum(axis=0), 1.0, atol=1e-5)
    assert np.array_equal(answer.mask, answer.probabilities.argmax(axis=0))
    assert answer.uncertainty.min() >= 0.0 and answer.uncertainty.max() <= 1.0


def test_a_whole_image_answer_is_the_model_output_cut_out_of_its_letterbox(unet):
    picture = image(64, 40)
    answer = predict_segmentation(unet, picture, policy=whole())
    tensor = preprocess(picture, whole().preprocess).unsqueeze(0)
    with torch.no_grad():
        probabilities = unet(tensor).softmax(dim=1)[0].numpy()
    box = letterbox_box(64, 40, 64)
    inside = probabilities[:, box.top : box.top + box.height, box.left : box.left + box.width]
    assert np.allclose(answer.probabilities, inside, atol=1e-5)


def test_a_patch_model_answers_at_the_image_own_size_in_one_pass_or_in_windows(unet):
    for window in (64, 256):
        answer = predict_segmentation(unet, image(150, 97, channels=1), policy=patches(window))
        assert answer.mask.shape == (150, 97) and answer.probabilities.shape == (3, 150, 97)


def test_sliding_windows_blend_without_seams():
    model, picture = pointwise_model(), image(200, 150, seed=2)
    one_pass = predict_segmentation(model, picture, policy=patches(1024))
    for window, overlap in ((64, 0.25), (64, 0.5), (96, 0.0)):
        tiled = predict_segmentation(model, picture, policy=patches(window, overlap))
        assert np.allclose(tiled.probabilities, one_pass.probabilities, atol=1e-5)


def test_one_window_the_size_of_the_image_equals_a_single_pass(unet):
    tensor = torch.randn(3, 64, 96)
    with torch.no_grad():
        windowed = window_logits(unet, tensor, window=64, overlap=0.0)
        assert not torch.allclose(windowed, unet(tensor[None])[0], atol=1e-3)  # two windows
        square = tensor[:, :, :64]
        assert torch.allclose(
            window_logits(unet, square, window=64, overlap=0.5), unet(square[None])[0], atol=1e-5
        )


def test_hflip_averaging_makes_the_answer_mirror_with_the_image(unet):
    picture = image(64, 64, seed=3)
    mirrored = picture[:, ::-1].copy()
    for policy in (whole(tta="hflip"), patches(256, tta="hflip")):
        a = predict_segmentation(unet, picture, policy=policy).probabilities
        b = predict_segmentation(unet, mirrored, policy=policy).probabilities
        assert np.allclose(a[:, :, ::-1], b, atol=1e-5)
    # The control: without averaging a random U-Net is not mirror-symmetric.
    a = predict_segmentation(unet, picture, policy=whole()).probabilities
    b = predict_segmentation(unet, mirrored, policy=whole()).probabilities
    assert not np.allclose(a[:, :, ::-1], b, atol=1e-3)


@pytest.mark.parametrize("tta", ["none", "hflip", "d4"])
def test_every_view_has_its_inverse(tta):
    x = torch.randn(2, 3, 32, 64)
    for view, inverse in zip(tta_views(tta), _INVERSES[tta], strict=True):
        assert torch.equal(inverse(view(x)), x)


def test_many_images_at_once_answer_as_one_at_a_time(unet):
    pictures = [image(40 + 7 * i, 64, seed=i) for i in range(5)]
    together = list(predict_segmentations(unet, pictures, policy=whole(), batch_size=3))
    for picture, answer in zip(pictures, together, strict=True):
        alone = predict_segmentation(unet, picture, policy=whole())
        assert np.allclose(alone.probabilities, answer.probabilities, atol=1e-5)


def test_the_model_flags_are_its_own_between_answers(unet):
    unet.train()
    answers = predict_segmentations(unet, [image(64, 64)] * 2, policy=whole(), batch_size=1)
    next(answers)
    assert unet.training and torch.is_grad_enabled() and not torch.is_inference_mode_enabled()
    unet.eval()


def test_a_sixteen_bit_image_is_stretched_as_everywhere():
    model = pointwise_model()
    eight = image(40, 40, channels=1)
    eight[0, :2] = (0, 255)  # the full range: stretching 16 bits gives back these levels
    sixteen = eight.astype(np.uint16) * 257
    a = predict_segmentation(model, eight, policy=whole()).probabilities
    b = predict_segmentation(model, sixteen, policy=whole()).probabilities
    assert np.allclose(a, b, atol=1e-5)


def test_uncertainty_is_zero_where_certain_and_one_where_undecided():
    model = nn.Conv2d(3, 2, 1)
    with torch.no_grad():
        model.weight.zero_()
        model.bias.copy_(torch.tensor([0.0, 0.0]))
    undecided = predict_segmentation(model, image(32, 32), policy=whole())
    assert np.allclose(undecided.uncertainty, 1.0)
    with torch.no_grad():
        model.bias.copy_(torch.tensor([40.0, 0.0]))
    certain = predict_segmentation(model, image(32, 32), policy=whole())
    assert np.allclose(certain.uncertainty, 0.0, atol=1e-6) and not certain.mask.any()


def test_the_policy_travels_in_the_manifest_inference_block():
    for policy in (whole(tta="hflip"), patches(512, overlap=0.5, tta="hflip")):
        block = InferenceBlock.from_dict(policy.manifest_block().to_dict())
        manifest = SimpleNamespace(input_size=64, mean=list(MEAN), std=list(STD), inference=block)
        assert manifest_policy(manifest) == policy
        assert manifest_policy(manifest, tta=False) == policy.without_tta()


def test_a_classification_block_is_unchanged():
    # Classification manifests carry no window or overlap: older readers see the same JSON.
    assert InferenceBlock().to_dict() == {
        "tta": "hflip",
        "preprocess": {"intensity": "min_max_stretch", "resize": "bilinear_squash"},
        "version": 1,
    }
