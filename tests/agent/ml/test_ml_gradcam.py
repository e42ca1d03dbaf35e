"""Grad-CAM: the heatmap points at the evidence, and the model is left untouched."""

import copy

import numpy as np
import pytest
import timm
import torch
import torchvision
from torch import nn

from pollen_agent.errors import UserError
from pollen_agent.ml.gradcam import find_target_layer, gradcam, gradcam_batch

SIZE = 32
QUADRANTS = {"top_left": (0, 0), "top_right": (0, 1), "bottom_left": (1, 0), "bottom_right": (1, 1)}


class TinyCNN(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(1, 8, 3, padding=1),
            nn.ReLU(),
            nn.MaxPool2d(2),
            nn.Conv2d(8, 16, 3, padding=1),
            nn.ReLU(),
        )
        self.head = nn.Linear(16, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x).mean(dim=(2, 3)))


def _square_image(rng: np.random.Generator, quadrant: tuple[int, int] | None) -> np.ndarray:
    image = rng.normal(0.2, 0.05, size=(SIZE, SIZE)).astype(np.float32)
    if quadrant is not None:
        half = SIZE // 2
        top = quadrant[0] * half + int(rng.integers(1, half - 7))
        left = quadrant[1] * half + int(rng.integers(1, half - 7))
        image[top : top + 6, left : left + 6] = 1.0
    return image


def _batch(rng: np.random.Generator, count: int) -> tuple[torch.Tensor, torch.Tensor]:
    labels = rng.integers(0, 2, size=count)
    images = [
        _square_image(rng, tuple(rng.integers(0, 2, size=2)) if label else None) for label in labels
    ]
    return torch.from_numpy(np.stack(images)[:, None]), torch.from_numpy(labels)


@pytest.fixture(scope="module")
def square_detector() -> TinyCNN:
    """A tiny CNN trained to say whether a bright square is present anywhere."""
    torch.manual_seed(0)
    rng = np.random.default_rng(0)
    model = TinyCNN()
    optimiser = torch.optim.Adam(model.parameters(), lr=0.01)
    for _ in range(80):
        images, labels = _batch(rng, 32)
        loss = nn.functional.cross_entropy(model(images), labels)
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
    images, labels = _batch(rng, 200)
    with torch.no_grad():
        accuracy = (model(images).argmax(1) == labels).float().mean().item()
    assert accuracy > 0.95, f"the detector did not learn (accuracy {accuracy:.2f})"
    return model.eval()


def _hook_state(model: nn.Module) -> list[int]:
    return [
        len(m._forward_hooks) + len(m._forward_pre_hooks) + len(m._backward_hooks)
        for m in model.modules()
    ]


@pytest.mark.parametrize("quadrant", QUADRANTS.values(), ids=QUADRANTS.keys())
@pytest.mark.parametrize("method", ["gradcam", "gradcam++"])
def test_heatmap_peak_falls_in_the_quadrant_with_the_square(square_detector, quadrant, method):
    rng = np.random.default_rng(42)
    image = torch.from_numpy(_square_image(rng, quadrant))[None, None]
    heatmap = gradcam(square_detector, image, class_index=1, method=method)
    assert heatmap.shape == (SIZE, SIZE)
    assert heatmap.dtype == np.float32
    assert heatmap.min() >= 0.0 and heatmap.max() == pytest.approx(1.0)
    row, col = np.unravel_index(int(heatmap.argmax()), heatmap.shape)
    assert (row // (SIZE // 2), col // (SIZE // 2)) == quadrant


def test_batch_heatmaps_match_one_at_a_time(square_detector):
    rng = np.random.default_rng(3)
    images = torch.from_numpy(
        np.stack([_square_image(rng, q) for q in QUADRANTS.values()])[:, None]
    )
    together = gradcam_batch(square_detector, images, class_indices=[1, 1, 1, 1])
    for i in range(len(images)):
        alone = gradcam(square_detector, images[i : i + 1], class_index=1)
        np.testing.assert_allclose(together[i], alone, atol=1e-5)


def test_model_is_left_as_it_was(square_detector):
    model = copy.deepcopy(square_detector).train()
    model.zero_grad(set_to_none=True)
    before_hooks = _hook_state(model)
    before_state = {k: v.clone() for k, v in model.state_dict().items()}
    image = torch.from_numpy(_square_image(np.random.default_rng(0), (0, 0)))[None, None]
    gradcam(model, image)
    gradcam(model, image, target_layer="features.3")
    assert _hook_state(model) == before_hooks
    assert model.training and all(m.training for m in model.modules())
    assert all(p.grad is None for p in model.parameters())
    for key, value in model.state_dict().items():
        torch.testing.assert_close(value, before_state[key])


def test_hooks_are_removed_even_when_the_forward_fails():
    model = TinyCNN()
    with pytest.raises(RuntimeError):
        gradcam(model, torch.zeros(1, 3, SIZE, SIZE))  # wrong channel count
    assert sum(_hook_state(model)) == 0


def test_model_with_no_convolution_is_refused():
    mlp = nn.Sequential(nn.Flatten(), nn.Linear(3 * 16 * 16, 8), nn.ReLU(), nn.Linear(8, 2))
    with pytest.raises(UserError) as caught:
        gradcam(mlp, torch.zeros(1, 3, 16, 16))
    assert caught.value.code == "heatmap_unsupported"
    assert sum(_hook_state(mlp)) == 0


@pytest.mark.parametrize(
    "make_vit",
    [
        lambda: timm.models.vision_transformer.VisionTransformer(
            img_size=32, patch_size=8, embed_dim=32, depth=2, num_heads=2, num_classes=2
        ),
        lambda: torchvision.models.VisionTransformer(
            image_size=32, patch_size=8, num_layers=1, num_heads=2, hidden_dim=16, mlp_dim=32
        ),
    ],
    ids=["timm", "torchvision"],
)
def test_vision_transformer_is_refused(make_vit):
    vit = make_vit()
    with pytest.raises(UserError) as caught:
        gradcam(vit, torch.zeros(1, 3, 32, 32))
    assert caught.value.code == "heatmap_unsupported"


def test_resnet_explains_its_last_residual_stage():
    model = torchvision.models.resnet18(num_classes=3)
    assert find_target_layer(model, torch.zeros(1, 3, 64, 64)) is model.layer4
    heatmap = gradcam(model, torch.randn(1, 3, 64, 64), class_index=2)
    assert heatmap.shape == (64, 64)


def test_efficientnet_explains_its_final_activated_features():
    model = timm.create_model("tf_efficientnet_lite0", pretrained=False, num_classes=2)
    assert find_target_layer(model, torch.zeros(1, 3, 64, 64)) is model.bn2


def test_named_layer_is_used():
    model = torchvision.models.resnet18(num_classes=3)
    x = torch.randn(1, 3, 64, 64)
    by_name = gradcam(model, x, class_index=0, target_layer="layer3")
    by_module = gradcam(model, x, class_index=0, target_layer=model.layer3)
    np.testing.assert_array_equal(by_name, by_module)
    assert not np.array_equal(by_name, gradcam(model, x, class_index=0))
