"""The inference policy a manifest carries, the one intensity stretch, and label-order-free AUC noise."""

from __future__ import annotations

import io
import json

import numpy as np
import pytest
import torch
from PIL import Image as PILImage

from pollen_agent.errors import UserError
from pollen_agent.ingest.decode import decode_image
from pollen_agent.ingest.thumbnail import to_display_uint8
from pollen_agent.intensity import stretch_to_uint8
from pollen_agent.jobs.images import model_pixels
from pollen_agent.ml import inference
from pollen_agent.ml.artifact import save_model_folder
from pollen_agent.ml.compare import compare_with_parent
from pollen_agent.ml.data import ArrayImageDataset
from pollen_agent.ml.manifest import MANIFEST_NAME, read_manifest
from pollen_agent.ml.recipe import auc_noise
from pollen_agent.ml.zoo import build_model


def _saved(tmp_path, **extra):
    torch.manual_seed(0)
    fields = {"architecture": "small_cnn", "label_names": ["a", "b"], "input_size": 32} | extra
    return save_model_folder(tmp_path, build_model("small_cnn", 2, source="random"), fields)


def test_a_model_trained_with_horizontal_flips_is_averaged_over_horizontal_flips_only(tmp_path):
    manifest = _saved(tmp_path)
    written = json.loads((tmp_path / MANIFEST_NAME).read_text())["inference"]
    assert written == {
        "version": 1,
        "tta": "hflip",
        "preprocess": {"intensity": "min_max_stretch", "resize": "bilinear_squash"},
    }
    chosen = inference.manifest_policy(manifest)
    assert chosen.tta == "hflip" and len(inference.tta_views(chosen.tta)) == 2
    assert chosen.preprocess.input_size == 32 and chosen.preprocess.mean == tuple(manifest.mean)
    assert inference.manifest_policy(manifest, tta=False).tta == "none"


def test_a_manifest_from_before_the_policy_reads_as_how_it_was_trained(tmp_path):
    _saved(tmp_path)
    raw = json.loads((tmp_path / MANIFEST_NAME).read_text())
    del raw["inference"]
    (tmp_path / MANIFEST_NAME).write_text(json.dumps(raw))
    manifest = read_manifest(tmp_path)
    assert manifest.inference is None
    assert inference.manifest_policy(manifest).tta == inference.LEGACY_TTA == "hflip"


@pytest.mark.parametrize(
    "block",
    [
        {"version": 2, "tta": "hflip", "preprocess": {}},
        {"version": 1, "tta": "rot45", "preprocess": {}},
        {"version": 1, "tta": "hflip", "preprocess": {"intensity": "gamma", "resize": "crop"}},
    ],
    ids=["newer-version", "unknown-views", "unknown-preprocessing"],
)
def test_a_policy_this_agent_cannot_follow_is_refused_with_what_to_do(tmp_path, block):
    manifest = _saved(tmp_path)
    raw = manifest.to_dict() | {"inference": block}
    (tmp_path / MANIFEST_NAME).write_text(json.dumps(raw))
    with pytest.raises(UserError) as caught:
        inference.manifest_policy(read_manifest(tmp_path))
    assert caught.value.code == "model_format"
    assert "Update the site agent" in caught.value.message


def test_an_explicit_policy_is_kept_in_the_manifest(tmp_path):
    block = {
        "version": 1,
        "tta": "d4",
        "preprocess": inference.trained_block().preprocess.to_dict(),
    }
    manifest = _saved(tmp_path, inference=block)
    assert inference.manifest_policy(manifest).tta == "d4"


# --- One stretch ----------------------------------------------------------------------------------


def _reference_stretch(values: np.ndarray) -> np.ndarray:
    values = values.astype(np.float64)
    return np.round((values - values.min()) / (values.max() - values.min()) * 255).astype(np.uint8)


def _png16(values: np.ndarray) -> bytes:
    buf = io.BytesIO()
    PILImage.fromarray(values.astype(np.uint16)).save(buf, format="PNG")
    return buf.getvalue()


def test_a_16_bit_image_is_stretched_once_and_rounded_wherever_it_is_read():
    # 0..1000: level 1 maps to 0.255, level 3 to 0.765, where truncating and rounding differ.
    values = np.arange(1001, dtype=np.uint16)[:1000].reshape(25, 40) + 1
    values[0, 0] = 0
    expected = _reference_stretch(values)
    np.testing.assert_array_equal(stretch_to_uint8(values), expected)
    assert stretch_to_uint8(values)[0, 3] == 1  # 0.765 rounds up; the old copies truncated to 0
    # Training and site checks read stored images through it, predictions too.
    np.testing.assert_array_equal(model_pixels(_png16(values)), expected)
    # The model's input is that picture: training's dataset and inference agree exactly.
    settings = inference.Preprocess(16, (0.5,) * 3, (0.25,) * 3)
    dataset = ArrayImageDataset(
        [values], [0], input_size=16, mean=settings.mean, std=settings.std, augment=False
    )
    torch.testing.assert_close(
        dataset[0][0], inference.preprocess(values, settings), rtol=0, atol=0
    )
    torch.testing.assert_close(
        inference.preprocess(values, settings), inference.preprocess(expected, settings)
    )


def test_thumbnails_use_the_same_stretch_with_the_extremes_clipped():
    rng = np.random.default_rng(0)
    values = rng.integers(0, 4000, size=(50, 50)).astype(np.uint16)
    values[0, 0] = 65535  # one hot pixel
    low, high = np.percentile(values.astype(np.float64), [0.5, 99.5])
    reference = np.round(np.clip((values - low) / (high - low), 0, 1) * 255).astype(np.uint8)
    np.testing.assert_array_equal(to_display_uint8(values), reference)
    np.testing.assert_array_equal(stretch_to_uint8(values, (0.5, 99.5)), reference)


def test_decoded_16_bit_png_keeps_its_depth_for_the_stretch():
    values = np.linspace(0, 60000, 400).reshape(20, 20).astype(np.uint16)
    assert decode_image(_png16(values)).array.dtype == np.uint16


# --- AUC noise that does not depend on which label is positive ------------------------------------


def test_auc_standard_error_is_the_same_whichever_label_is_positive():
    labels = np.array([0] * 21 + [1] * 57)
    assert auc_noise(0.93, labels, 2) == pytest.approx(auc_noise(0.93, 1 - labels, 2), abs=1e-15)
    assert 0.02 < auc_noise(0.93, labels, 2) < 0.05


def test_auc_interval_is_the_same_whichever_label_is_positive():
    rng = np.random.default_rng(5)
    labels = np.array([0] * 21 + [1] * 57)
    rng.shuffle(labels)
    score = np.clip(0.35 * labels + rng.normal(0.35, 0.2, len(labels)), 0.0, 1.0)
    other = np.clip(0.25 * labels + rng.normal(0.4, 0.2, len(labels)), 0.0, 1.0)
    as_is = compare_with_parent(
        np.c_[1 - score, score], np.c_[1 - other, other], labels, ["clear", "mass"]
    )
    swapped = compare_with_parent(
        np.c_[score, 1 - score], np.c_[other, 1 - other], 1 - labels, ["mass", "clear"]
    )
    for key in ("auc", "auc_ci"):
        np.testing.assert_allclose(swapped["child"][key], as_is["child"][key], rtol=0, atol=1e-12)
    np.testing.assert_allclose(swapped["auc_difference_ci"], as_is["auc_difference_ci"], atol=1e-12)


def test_inference_runs_in_full_precision_even_where_training_autocasts(monkeypatch):
    """A prediction must not depend on the machine: no bf16 autocast, which moved probabilities
    by up to 0.13 on a GPU. Here the CPU is made to look like a device that autocasts."""
    import torch

    from pollen_agent.ml import device
    from pollen_agent.ml.zoo import build_model

    torch.manual_seed(0)
    model = build_model("small_cnn", 2, source="random").eval()
    images = [np.random.default_rng(i).integers(0, 255, (40, 40), dtype=np.uint8) for i in range(4)]
    chosen = inference.policy(input_size=32, mean=[0.5] * 3, std=[0.5] * 3, tta="hflip")
    exact = inference.predict_probs(model, images, chosen)
    monkeypatch.setattr(device, "amp_dtype", lambda _device: torch.bfloat16)
    with device.autocast_context(torch.device("cpu")):
        assert torch.is_autocast_enabled("cpu"), "the stand-in device does autocast"
    np.testing.assert_allclose(inference.predict_probs(model, images, chosen), exact, atol=1e-6)
