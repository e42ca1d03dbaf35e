"""Demo images for the embedded default: BreastMNIST when it is available, else labelled synthetic images.

The seed writes files into the site's local storage folder the way an upload would, then lets
the site agent ingest them. Third-party data is read from its folder, never copied into the repo.
"""

from __future__ import annotations

import os
import random
import struct
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from django.conf import settings

BREAST_LABELS = ["malignant", "benign or normal"]
SYNTHETIC_LABELS = ["no finding", "bright spot"]


@dataclass
class DemoImage:
    filename: str
    label: str
    patient_id: str
    png: bytes


def png_grey(pixels: list[bytes], width: int, height: int) -> bytes:
    """Encode 8-bit grey rows as PNG with the standard library (the hub has no imaging library)."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return (
            struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
        )

    raw = b"".join(b"\x00" + row for row in pixels)
    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(raw, 6))
        + chunk(b"IEND", b"")
    )


def medmnist_dir() -> Path | None:
    """The shared data folder: POLLEN_MEDMNIST_DIR, else ../shared/data/medmnist beside the repository."""
    candidates = [
        os.environ.get("POLLEN_MEDMNIST_DIR"),
        str(settings.REPO_DIR.parent / "shared" / "data" / "medmnist"),
    ]
    for candidate in candidates:
        if candidate and (Path(candidate) / "breastmnist.npz").is_file():
            return Path(candidate)
    return None


def _medmnist_download() -> Path | None:
    """Where the machine has internet and the medmnist package, let it fetch the official file."""
    try:
        import medmnist  # type: ignore[import-not-found]

        folder = Path(settings.VAR_DIR) / "medmnist"
        folder.mkdir(parents=True, exist_ok=True)
        medmnist.BreastMNIST(split="train", download=True, root=str(folder))
        return folder if (folder / "breastmnist.npz").is_file() else None
    except Exception:
        return None


def breastmnist_images(folder: Path) -> Iterator[DemoImage]:
    import numpy as np

    with np.load(folder / "breastmnist.npz", allow_pickle=False) as npz:
        for split in ("train", "val", "test"):
            images, labels = npz[f"{split}_images"], npz[f"{split}_labels"].reshape(-1)
            for i, (image, label) in enumerate(zip(images, labels, strict=True)):
                rows = [bytes(row) for row in image.astype("uint8")]
                yield DemoImage(
                    f"breastmnist-{split}-{i:04d}.png",
                    BREAST_LABELS[int(label)],
                    f"BM-{split}-{i:04d}",
                    png_grey(rows, image.shape[1], image.shape[0]),
                )


def synthetic_images(count: int = 200, size: int = 64) -> Iterator[DemoImage]:
    """Clearly labelled synthetic images: noise, with a bright spot for the second label."""
    rng = random.Random(7)
    for i in range(count):
        label = i % 2
        cx, cy = rng.randint(12, size - 12), rng.randint(12, size - 12)
        rows = []
        for y in range(size):
            row = bytearray(rng.randint(20, 70) for _ in range(size))
            if label:
                for x in range(max(0, cx - 6), min(size, cx + 6)):
                    if abs(y - cy) < 6:
                        row[x] = 220
            rows.append(bytes(row))
        yield DemoImage(
            f"synthetic-{i:04d}.png",
            SYNTHETIC_LABELS[label],
            f"SYN-{i:04d}",
            png_grey(rows, size, size),
        )


def demo_source() -> tuple[str, list[str], Iterator[DemoImage]]:
    folder = medmnist_dir() or _medmnist_download()
    if folder is not None:
        return "BreastMNIST (MedMNIST v2, CC BY 4.0)", BREAST_LABELS, breastmnist_images(folder)
    return "Synthetic demo images (not medical data)", SYNTHETIC_LABELS, synthetic_images()
