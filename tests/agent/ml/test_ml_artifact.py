"""Model folders: a manifest beside safetensors weights, checksummed before loading."""

from __future__ import annotations

import json

import pytest
import torch

from pollen_agent.errors import UserError
from pollen_agent.ml import weights_io
from pollen_agent.ml.artifact import load_model_folder, save_model_folder, sha256_file
from pollen_agent.ml.manifest import MANIFEST_NAME, WEIGHTS_NAME
from pollen_agent.ml.zoo import build_model

FIELDS = {
    "label_names": ["benign", "malignant"],
    "parent": {"model_version": "abc", "weights_sha256": "0" * 64},
    "training_summary": {"train": {"benign": 10, "malignant": 5}},
    "metrics": {"auc": 0.9},
    "licence": "Apache-2.0",
}


@pytest.mark.parametrize("arch", ["small_cnn", "efficientnet_lite0"])
def test_round_trip_gives_identical_outputs(tmp_path, arch):
    model = build_model(arch, 2, source="random").eval()
    manifest = save_model_folder(tmp_path / "m", model, {"architecture": arch, **FIELDS})
    loaded, read_back = load_model_folder(tmp_path / "m", expected_sha256=manifest.weights_sha256)
    x = torch.randn(3, 3, 48, 48)
    with torch.no_grad():
        assert torch.equal(model(x), loaded(x))
    assert read_back == manifest
    assert read_back.parent == FIELDS["parent"] and read_back.label_names == ["benign", "malignant"]
    assert manifest.weights_sha256 == sha256_file(tmp_path / "m" / WEIGHTS_NAME)


def test_manifest_is_plain_json_with_preprocessing(tmp_path):
    model = build_model("small_cnn", 2, source="random")
    save_model_folder(tmp_path / "m", model, {"architecture": "small_cnn", **FIELDS})
    raw = json.loads((tmp_path / "m" / MANIFEST_NAME).read_text())
    for key in ("format_version", "architecture", "input_size", "mean", "std", "created_at"):
        assert key in raw
    assert raw["input_size"] == 32 and len(raw["mean"]) == 3


def _flip_one_byte(path):
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0x01
    path.write_bytes(bytes(data))


def test_tampered_weights_are_refused_and_never_parsed(tmp_path, monkeypatch):
    model = build_model("small_cnn", 2, source="random")
    save_model_folder(tmp_path / "m", model, {"architecture": "small_cnn", **FIELDS})
    _flip_one_byte(tmp_path / "m" / WEIGHTS_NAME)

    def must_not_parse(*args, **kwargs):
        raise AssertionError("tampered weights were parsed")

    monkeypatch.setattr(weights_io, "load_file", must_not_parse)
    with pytest.raises(UserError) as caught:
        load_model_folder(tmp_path / "m")
    assert caught.value.code == "checksum_mismatch"


def test_checksum_recorded_by_the_hub_is_enforced(tmp_path):
    # Someone replaced weights and manifest together: only the hub's record catches it.
    model = build_model("small_cnn", 2, source="random")
    save_model_folder(tmp_path / "m", model, {"architecture": "small_cnn", **FIELDS})
    with pytest.raises(UserError) as caught:
        load_model_folder(tmp_path / "m", expected_sha256="f" * 64)
    assert caught.value.code == "checksum_mismatch"


def test_folder_without_manifest_is_not_a_model(tmp_path):
    (tmp_path / "m").mkdir()
    with pytest.raises(UserError) as caught:
        load_model_folder(tmp_path / "m")
    assert caught.value.code == "model_invalid"
