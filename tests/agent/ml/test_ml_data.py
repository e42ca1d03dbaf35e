"""In-memory image datasets and the MedMNIST loader."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from pollen_agent.ml.data import ArrayImageDataset, load_medmnist

MEAN, STD = (0.5, 0.5, 0.5), (0.5, 0.5, 0.5)


def _dataset(images, augment=False, seed=0):
    return ArrayImageDataset(
        images, [0] * len(images), input_size=16, mean=MEAN, std=STD, augment=augment, seed=seed
    )


def test_any_size_and_channel_layout_becomes_three_channels():
    rng = np.random.default_rng(0)
    images = [
        rng.integers(0, 255, (28, 40), dtype=np.uint8),
        rng.integers(0, 255, (50, 30, 1), dtype=np.uint8),
        rng.integers(0, 255, (9, 9, 3), dtype=np.uint8),
        rng.integers(0, 255, (64, 64, 4), dtype=np.uint8),
        rng.integers(0, 4095, (20, 20), dtype=np.uint16),
    ]
    for i in range(len(images)):
        tensor, label = _dataset(images)[i]
        assert tensor.shape == (3, 16, 16) and tensor.dtype == torch.float32 and label == 0
        assert float(tensor.min()) >= -1.0 and float(tensor.max()) <= 1.0


def test_grey_channels_are_identical_and_normalised():
    tensor, _ = _dataset([np.full((10, 10), 255, dtype=np.uint8)])[0]
    assert torch.allclose(tensor, torch.ones(3, 16, 16))


def test_augmentation_is_deterministic_per_seed_and_epoch():
    image = np.random.default_rng(1).integers(0, 255, (32, 32), dtype=np.uint8)
    first, again = _dataset([image], augment=True), _dataset([image], augment=True)
    assert torch.equal(first[0][0], again[0][0])
    plain = _dataset([image])[0][0]
    assert not torch.equal(first[0][0], plain)
    again.set_epoch(1)
    assert not torch.equal(first[0][0], again[0][0])
    assert not torch.equal(first[0][0], _dataset([image], augment=True, seed=5)[0][0])


def test_missing_medmnist_folder_says_where_it_looked(tmp_path, monkeypatch):
    monkeypatch.setenv("POLLEN_MEDMNIST_DIR", str(tmp_path))
    with pytest.raises(FileNotFoundError, match="POLLEN_MEDMNIST_DIR"):
        load_medmnist("breastmnist", "train")


def test_medmnist_reads_official_splits(monkeypatch):
    try:
        images, labels = load_medmnist("breastmnist", "val")
    except FileNotFoundError as exc:
        pytest.skip(f"MedMNIST data not available: {exc}")
    assert images.shape == (78, 28, 28) and labels.shape == (78,)
    assert set(np.unique(labels)) == {0, 1}
