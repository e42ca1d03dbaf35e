"""Shared fixtures: small synthetic images with masks, and a few real BUSI images."""

from __future__ import annotations

import numpy as np
import pytest

from pollen_agent.ml.segmentation.data import BUSI_ENV, busi_dir, load_busi

LESION = ["background", "lesion"]


def blob_images(
    n: int, seed: int, *, height: int = 48, width: int = 40
) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """Grey noise with a bright rectangle (class 1) somewhere in each image."""
    rng = np.random.default_rng(seed)
    images, masks = [], []
    for _ in range(n):
        image = rng.integers(0, 60, (height, width)).astype(np.uint8)
        mask = np.zeros((height, width), dtype=np.uint8)
        top, left = rng.integers(2, height // 2), rng.integers(2, width // 2)
        mask[top : top + height // 3, left : left + width // 3] = 1
        image[mask == 1] += 150
        images.append(image)
        masks.append(mask)
    return images, masks


@pytest.fixture(scope="session")
def busi() -> tuple[list[np.ndarray], list[np.ndarray], list[str]]:
    """Twelve benign and twelve malignant BUSI images with their merged masks."""
    if not (busi_dir() / "benign" / "images").is_dir():
        pytest.skip(f"BUSI is not at {busi_dir()}; set {BUSI_ENV} to the busi-256 folder")
    return load_busi(("benign", "malignant"), limit=12)
