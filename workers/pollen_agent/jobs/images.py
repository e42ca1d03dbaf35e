"""Read a dataset's images from the site's storage into memory, decoded and downsized for training."""

from __future__ import annotations

from collections.abc import Callable, Collection
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import numpy as np
from PIL import Image as PILImage

from pollen_agent.errors import UserError
from pollen_agent.ingest.decode import decode_image
from pollen_agent.intensity import stretch_to_uint8
from pollen_agent.open_maps import JsonRecord
from pollen_agent.storage.base import Storage

READ_THREADS = 8


@dataclass
class SplitImages:
    images: list[np.ndarray] = field(default_factory=list)
    labels: list[int] = field(default_factory=list)
    ids: list[int] = field(default_factory=list)
    # Segmentation: each image's mask (H x W class indexes), at the image's size.
    masks: list[np.ndarray] = field(default_factory=list)


def model_pixels(data: bytes) -> np.ndarray:
    """A stored image's pixels as every model reads them: decoded, deeper than 8 bits stretched
    to 0..255 by the one stretch (``pollen_agent.intensity``)."""
    return stretch_to_uint8(decode_image(data).array)


def downsized(array: np.ndarray, keep_side: int) -> np.ndarray:
    """``array`` with its longer side at most ``keep_side`` (aspect kept), else unchanged."""
    if max(array.shape[:2]) <= keep_side:
        return array
    image = PILImage.fromarray(array)
    image.thumbnail((keep_side, keep_side), PILImage.Resampling.BILINEAR)
    return np.asarray(image)


def keep_side(input_size: int) -> int:
    """The longest side images are kept at in memory: a little more than the model's input, so
    augmentation still has detail to work with; the same for training, checks and predictions."""
    return max(int(input_size * 1.25), 64)


def _to_training_array(data: bytes, *, keep_side: int) -> np.ndarray:
    return downsized(model_pixels(data), keep_side)


def load_splits(
    storage: Storage,
    rows: list[JsonRecord],
    label_names: list[str],
    *,
    input_size: int,
    on_progress: Callable[[int, int], None] | None = None,
    only: Collection[str] = ("train", "val", "test"),
) -> dict[str, SplitImages]:
    """rows: {id, storage_key, label, split} from the hub. Unknown labels are skipped.

    ``only`` reads just those splits (the others stay empty), e.g. the held-out test images.
    """
    index = {name: i for i, name in enumerate(label_names)}
    usable = [r for r in rows if r["label"] in index and r["split"] in only]
    side = keep_side(input_size)
    splits = {name: SplitImages() for name in ("train", "val", "test")}

    def read(row: JsonRecord) -> tuple[JsonRecord, np.ndarray]:
        return row, _to_training_array(storage.get_bytes(row["storage_key"]), keep_side=side)

    done = 0
    with ThreadPoolExecutor(max_workers=READ_THREADS) as pool:
        for row, array in pool.map(read, usable):
            split = splits[row["split"]]
            split.images.append(array)
            split.labels.append(index[row["label"]])
            split.ids.append(row["id"])
            done += 1
            if on_progress and (done % 50 == 0 or done == len(usable)):
                on_progress(done, len(usable))
    if "train" in only and not splits["train"].images:
        raise UserError("The dataset has no usable training images.", code="dataset_not_ready")
    return splits


def mask_pixels(data: bytes) -> np.ndarray:
    """A stored mask as models read it: the 8-bit PNG of class indexes ingest wrote."""
    import io

    with PILImage.open(io.BytesIO(data)) as picture:
        if picture.mode not in {"L", "P"}:
            raise UserError(
                "A stored mask is not the 8-bit mask ingest writes; upload the image and its "
                "mask again.",
                code="invalid_mask",
            )
        return np.asarray(picture, dtype=np.uint8)


def with_mask_downsized(
    image: np.ndarray, mask: np.ndarray, keep: int | None
) -> tuple[np.ndarray, np.ndarray]:
    """``image`` and its mask with the longer side at most ``keep`` (None: as they are); the
    mask by nearest neighbour, so it keeps its class indexes."""
    if keep is None or max(image.shape[:2]) <= keep:
        return image, mask
    small = downsized(image, keep)
    height, width = small.shape[:2]
    resized = PILImage.fromarray(mask).resize((width, height), PILImage.Resampling.NEAREST)
    return small, np.asarray(resized, dtype=np.uint8)


def load_mask_splits(
    storage: Storage,
    rows: list[JsonRecord],
    *,
    keep: int | None,
    on_progress: Callable[[int, int], None] | None = None,
    only: Collection[str] = ("train", "val", "test"),
) -> dict[str, SplitImages]:
    """Images with their reference masks (rows: {id, storage_key, mask_key, split}).

    ``keep`` is the longest side kept in memory (None keeps the full resolution, for models
    that read large images in patches). Rows without a mask are skipped.
    """
    usable = [r for r in rows if r.get("mask_key") and r["split"] in only]
    splits = {name: SplitImages() for name in ("train", "val", "test")}

    def read(row: JsonRecord) -> tuple[JsonRecord, np.ndarray, np.ndarray]:
        image = model_pixels(storage.get_bytes(row["storage_key"]))
        mask = mask_pixels(storage.get_bytes(row["mask_key"]))
        if mask.shape != image.shape[:2]:
            raise UserError(
                f"Image {row['id']} and its stored mask differ in size; upload both again.",
                code="invalid_mask",
            )
        return (row, *with_mask_downsized(image, mask, keep))

    done = 0
    with ThreadPoolExecutor(max_workers=READ_THREADS) as pool:
        for row, image, mask in pool.map(read, usable):
            split = splits[row["split"]]
            split.images.append(image)
            split.masks.append(mask)
            split.ids.append(row["id"])
            done += 1
            if on_progress and (done % 50 == 0 or done == len(usable)):
                on_progress(done, len(usable))
    if "train" in only and not splits["train"].images:
        raise UserError("The dataset has no training images with a mask.", code="dataset_not_ready")
    return splits
