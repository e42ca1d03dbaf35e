"""Images in memory as a torch dataset, and the MedMNIST files used for benchmarks."""

from __future__ import annotations

import functools
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageEnhance
from torch.utils.data import Dataset

from pollen_agent.errors import UserError
from pollen_agent.ml.inference import Preprocess, preprocess

MAX_ROTATION_DEGREES = 10.0
JITTER = 0.1  # brightness and contrast vary by up to ±10%
MEDMNIST_ENV = "POLLEN_MEDMNIST_DIR"
MEDMNIST_SPLITS = ("train", "val", "test")


class ArrayImageDataset(Dataset[tuple[torch.Tensor, int]]):
    """Labelled uint8 images of any size, resized and normalised for a model.

    Each item goes through ``ml.inference.preprocess``, exactly as at inference. With
    ``augment`` each item is flipped horizontally at random (hence the models' ``hflip``
    test-time augmentation, ``ml.inference.TRAINED_TTA``), rotated by up to
    ±10 degrees and given a light brightness/contrast jitter. The augmentation depends only
    on ``(seed, epoch, index)``, so a resumed run sees exactly the images it would have seen.
    """

    def __init__(
        self,
        images: Sequence[np.ndarray],
        labels: Sequence[int],
        *,
        input_size: int,
        mean: Sequence[float],
        std: Sequence[float],
        augment: bool,
        seed: int = 0,
    ) -> None:
        if len(images) != len(labels):
            raise UserError(
                f"There are {len(images)} images but {len(labels)} labels.", code="invalid_input"
            )
        self.images = images
        self.labels = np.asarray(labels, dtype=np.int64).reshape(-1)
        self.input_size = int(input_size)
        self.settings = Preprocess(self.input_size, tuple(map(float, mean)), tuple(map(float, std)))
        self.augment = augment
        self.seed = seed
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        """Select the augmentation stream for ``epoch`` (called by the training loop)."""
        self.epoch = epoch

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        augment = None
        if self.augment:
            augment = functools.partial(
                _augment, rng=np.random.default_rng([self.seed, self.epoch, index])
            )
        # The same preprocessing as every inference (ml.inference), augmented in between.
        return preprocess(self.images[index], self.settings, augment=augment), int(
            self.labels[index]
        )


def _augment(picture: Image.Image, *, rng: np.random.Generator) -> Image.Image:
    # PIL, single-threaded and fast, leaves both CPU cores to the model's own arithmetic.
    if rng.random() < 0.5:
        picture = picture.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
    angle = float(rng.uniform(-MAX_ROTATION_DEGREES, MAX_ROTATION_DEGREES))
    picture = picture.rotate(angle, resample=Image.Resampling.BILINEAR)
    picture = ImageEnhance.Brightness(picture).enhance(float(rng.uniform(1 - JITTER, 1 + JITTER)))
    return ImageEnhance.Contrast(picture).enhance(float(rng.uniform(1 - JITTER, 1 + JITTER)))


def medmnist_dir() -> Path:
    """Where the MedMNIST ``.npz`` files live: ``$POLLEN_MEDMNIST_DIR``, else ``../shared``."""
    configured = os.environ.get(MEDMNIST_ENV)
    if configured:
        return Path(configured)
    return repo_root().parent / "shared" / "data" / "medmnist"


def repo_root() -> Path:
    # The repository root is the first ancestor holding pyproject.toml; fall back to the
    # fixed layout workers/pollen_agent/ml/ when running from an installed copy.
    here = Path(__file__).resolve()
    for parent in here.parents:
        if (parent / "pyproject.toml").is_file():
            return parent
    return here.parents[3]


def load_medmnist(name: str, split: str) -> tuple[np.ndarray, np.ndarray]:
    """Images (N, H, W) uint8 and labels (N,) int of one official MedMNIST split.

    Raises FileNotFoundError, naming where it looked, when the file is not there.
    """
    if split not in MEDMNIST_SPLITS:
        raise ValueError(f"split must be one of {MEDMNIST_SPLITS}, not {split!r}")
    path = medmnist_dir() / f"{name}.npz"
    if not path.is_file():
        raise FileNotFoundError(
            f"MedMNIST file {path} not found; set {MEDMNIST_ENV} to the folder holding {name}.npz"
        )
    with np.load(path, allow_pickle=False) as npz:
        return npz[f"{split}_images"], npz[f"{split}_labels"].reshape(-1).astype(np.int64)
