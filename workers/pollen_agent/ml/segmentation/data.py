"""Images with masks as a torch dataset, in whole images or in patches.

Masks hold class indexes (0 = background, 1..K-1 the classes of the label map), already checked
and merged by ingest. Each item goes through the one inference path's preprocessing
(``ml.inference``: intensity stretch, the model's channels, mean and std), so training sees
exactly what inference will:

- ``whole``: the long side resized to ``input_size`` and the picture centred on a black square
  (``letterbox``); the mask the same way with nearest-neighbour sampling.
- ``patch``: ``input_size`` squares cut from the image at its own resolution (``native``), for
  images too large to shrink without losing what is outlined (retinal vessels). Half the
  training patches are centred on a pixel of a class to outline, so that sparse findings are
  seen often; the others anywhere.

Augmentation (``augment``) depends only on ``(seed, epoch, index)``, so a resumed run sees
exactly the items it would have seen.
"""

from __future__ import annotations

import glob
import os
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Literal

import numpy as np
import torch
from PIL import Image
from torch.utils.data import Dataset

from pollen_agent.errors import UserError
from pollen_agent.ml.data import repo_root
from pollen_agent.ml.inference import (
    InferencePolicy,
    Preprocess,
    letterbox,
    model_picture,
    picture_tensor,
    policy,
)
from pollen_agent.ml.segmentation.augment import View, apply_view, jitter, random_view
from pollen_contracts.manifest import LETTERBOX, NATIVE, TRAINED_TTA

Mode = Literal["whole", "patch"]
MODES: tuple[Mode, ...] = ("whole", "patch")
# Images whose long side is more than this many input sizes train in patches: shrinking them
# further loses structures a few pixels wide.
PATCH_FACTOR = 2.0
FOREGROUND_BIAS = 0.5
# Patch-trained models read an image up to this size in one pass, larger ones in windows.
DEFAULT_WINDOW = 1024
DEFAULT_OVERLAP = 0.25
MAX_CLASSES = 256  # masks are 8-bit
BUSI_ENV = "POLLEN_BUSI_DIR"
BUSI_CLASSES = ("benign", "malignant", "normal")


class SegmentationDataset(Dataset[tuple[torch.Tensor, torch.Tensor]]):
    """Images (H x W or H x W x C, any depth) and their masks (H x W class indexes).

    Items are a float tensor (channels, input_size, input_size) and a long tensor
    (input_size, input_size) of class indexes.
    """

    def __init__(
        self,
        images: Sequence[np.ndarray],
        masks: Sequence[np.ndarray],
        *,
        input_size: int,
        mean: Sequence[float],
        std: Sequence[float],
        augment: bool,
        seed: int = 0,
        mode: Mode = "whole",
        patches_per_image: int = 1,
    ) -> None:
        if mode not in MODES:
            raise ValueError(f"mode must be one of {MODES}, not {mode!r}")
        if len(images) != len(masks):
            raise UserError(
                f"There are {len(images)} images but {len(masks)} masks.", code="invalid_input"
            )
        for index, (image, mask) in enumerate(zip(images, masks, strict=True)):
            check_mask(image, mask, index)
        self.images, self.masks = images, masks
        self.input_size, self.mode = int(input_size), mode
        resize = LETTERBOX if mode == "whole" else NATIVE
        self.settings = Preprocess(
            self.input_size, tuple(map(float, mean)), tuple(map(float, std)), resize=resize
        )
        self.augment, self.seed, self.epoch = augment, seed, 0
        # Patch mode: an epoch cuts this many patches from each image (each its own draw), so
        # that an epoch sees about as much of a large image as whole-image training does.
        self.repeats = max(1, int(patches_per_image)) if mode == "patch" else 1

    def set_epoch(self, epoch: int) -> None:
        """Select the augmentation stream for ``epoch`` (called by the training loop)."""
        self.epoch = epoch

    def __len__(self) -> int:
        return len(self.images) * self.repeats

    def __getitem__(self, draw: int) -> tuple[torch.Tensor, torch.Tensor]:
        index = draw % len(self.images)
        rng = np.random.default_rng([self.seed, self.epoch, draw]) if self.augment else None
        picture = model_picture(self.images[index], self.settings.in_channels)
        mask = Image.fromarray(np.asarray(self.masks[index], dtype=np.uint8))
        size = self.input_size
        if self.mode == "whole":
            picture = letterbox(picture, size)
            mask = letterbox(mask, size, resample=Image.Resampling.NEAREST)
        centre = self._centre(np.asarray(mask), rng)
        if rng is not None:
            view = random_view(rng, *centre, size, shift=self.mode == "whole")
            picture, mask = apply_view(picture, mask, view, size)
            picture = jitter(picture, rng)
        elif self.mode == "patch":
            picture, mask = apply_view(picture, mask, View(*centre), size)
        return picture_tensor(picture, self.settings), torch.from_numpy(
            np.asarray(mask, dtype=np.int64)
        )

    def _centre(self, mask: np.ndarray, rng: np.random.Generator | None) -> tuple[float, float]:
        height, width = mask.shape
        if self.mode == "whole" or rng is None:
            return width // 2, height // 2
        half = self.input_size / 2
        found = np.flatnonzero(mask) if rng.random() < FOREGROUND_BIAS else np.zeros(0, int)
        if len(found):
            y, x = divmod(int(found[rng.integers(len(found))]), width)
            return _inside(x + 0.5, width, half), _inside(y + 0.5, height, half)
        return _uniform(rng, width, half), _uniform(rng, height, half)

    def pixel_counts(self) -> np.ndarray:
        """How many pixels of each class index (0..255) the masks hold, at their own size."""
        counts = np.zeros(MAX_CLASSES, dtype=np.int64)
        for mask in self.masks:
            counts += np.bincount(np.asarray(mask, dtype=np.uint8).ravel(), minlength=MAX_CLASSES)
        return counts

    def policy(self, tta: str = TRAINED_TTA) -> InferencePolicy:
        """How a model trained on this dataset reads an image (its manifest's inference block)."""
        return segmentation_policy(
            input_size=self.input_size,
            mean=self.settings.mean,
            std=self.settings.std,
            mode=self.mode,
            tta=tta,
        )


def _uniform(rng: np.random.Generator, length: int, half: float) -> float:
    # A centre that keeps the whole patch inside the image when the image is large enough.
    if length <= 2 * half:
        return length / 2
    return float(rng.uniform(half, length - half))


def _inside(centre: float, length: int, half: float) -> float:
    return length / 2 if length <= 2 * half else min(max(centre, half), length - half)


def segmentation_policy(
    *,
    input_size: int,
    mean: Sequence[float],
    std: Sequence[float],
    mode: Mode,
    tta: str = TRAINED_TTA,
    window: int = DEFAULT_WINDOW,
    overlap: float = DEFAULT_OVERLAP,
) -> InferencePolicy:
    """The inference policy of a segmentation model trained in ``mode``."""
    if mode == "whole":
        return policy(input_size=input_size, mean=mean, std=std, tta=tta, resize=LETTERBOX)
    return policy(
        input_size=input_size,
        mean=mean,
        std=std,
        tta=tta,
        resize=NATIVE,
        window=max(window, input_size),
        overlap=overlap,
    )


def check_mask(image: np.ndarray, mask: np.ndarray, index: int) -> None:
    """Refuse a mask that is not a 2-D array of class indexes the size of its image."""
    shape = np.shape(mask)
    if len(shape) != 2:
        raise UserError(
            f"Mask {index + 1} has shape {'x'.join(map(str, shape))}; a mask holds one class "
            "index per pixel (a greyscale image).",
            code="invalid_mask",
        )
    if shape != np.shape(image)[:2]:
        raise UserError(
            f"Mask {index + 1} is {shape[1]}x{shape[0]} pixels but its image is "
            f"{np.shape(image)[1]}x{np.shape(image)[0]}; a mask must match its image.",
            code="invalid_mask",
        )
    values = np.asarray(mask)
    if values.size and (values.min() < 0 or values.max() >= MAX_CLASSES):
        raise UserError(
            f"Mask {index + 1} holds the value {int(values.max())}; class indexes go from 0 "
            f"to {MAX_CLASSES - 1}.",
            code="invalid_mask",
        )


def patches_per_image(sizes: Iterable[tuple[int, int]], input_size: int) -> int:
    """How many input-size patches cover the typical image (median area): CHASE_DB1's
    999 x 960 photographs hold about 15 squares of 256 px."""
    areas = [height * width for height, width in sizes]
    if not areas:
        return 1
    return max(1, round(float(np.median(areas)) / float(input_size) ** 2))


def choose_mode(sizes: Iterable[tuple[int, int]], input_size: int) -> Mode:
    """``patch`` when the typical image (median long side) is over twice the input size.

    BUSI (256 px at most) trains whole at 256 px; CHASE_DB1 (999 x 960) in 256 px patches.
    """
    long_sides = [max(height, width) for height, width in sizes]
    if not long_sides:
        return "whole"
    return "patch" if float(np.median(long_sides)) > PATCH_FACTOR * input_size else "whole"


def busi_dir() -> Path:
    """Where BUSI (``busi-256``) lives: ``$POLLEN_BUSI_DIR``, else ``../shared/data/busi-256``."""
    configured = os.environ.get(BUSI_ENV)
    if configured:
        return Path(configured)
    return repo_root().parent / "shared" / "data" / "busi-256"


def load_busi(
    classes: Sequence[str] = ("benign", "malignant"), *, limit: int | None = None
) -> tuple[list[np.ndarray], list[np.ndarray], list[str]]:
    """BUSI images (RGB uint8), masks (0/1, an image's masks merged) and file names, sorted.

    ``limit`` keeps the first images of each class. Raises FileNotFoundError naming the folder
    when the data is not there.
    """
    root = busi_dir()
    images, masks, names = [], [], []
    for name in classes:
        if name not in BUSI_CLASSES:
            raise ValueError(f"BUSI has no class {name!r}; choose from {BUSI_CLASSES}")
        folder = root / name / "images"
        if not folder.is_dir():
            raise FileNotFoundError(f"BUSI folder {folder} not found; set {BUSI_ENV}")
        for path in sorted(folder.glob("*.png"))[:limit]:
            images.append(np.asarray(Image.open(path).convert("RGB")))
            parts = sorted((root / name / "masks").glob(f"{glob.escape(path.stem)}_mask*.png"))
            merged = np.zeros(images[-1].shape[:2], dtype=np.uint8)
            for part in parts:
                merged |= (np.asarray(Image.open(part).convert("L")) > 127).astype(np.uint8)
            masks.append(merged)
            names.append(f"{name}/{path.name}")
    return images, masks, names
