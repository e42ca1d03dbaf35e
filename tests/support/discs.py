"""Images with masks made for tests: bright discs on noisy backgrounds, learnable in seconds.

A model that learns anything outlines the discs, so a check on it is a real one (Dice well
above what drawing nothing or everything scores) and stays fast. ``disc_zip`` writes a CSV
manifest with the split of every image, so splits are the same on every run.
"""

from __future__ import annotations

import csv
import io
import zipfile

import numpy as np
from PIL import Image as PILImage

SIDE = 64


def disc(seed: int, *, empty: bool) -> tuple[bytes, bytes]:
    rng = np.random.default_rng(seed)
    image = rng.normal(60, 20, (SIDE, SIDE))
    mask = np.zeros((SIDE, SIDE), np.uint8)
    if not empty:
        radius = rng.integers(7, 14)
        cy, cx = rng.integers(radius + 2, SIDE - radius - 2, size=2)
        yy, xx = np.mgrid[:SIDE, :SIDE]
        mask[(yy - cy) ** 2 + (xx - cx) ** 2 <= radius**2] = 255
        image[mask > 0] += 110
    pictures = []
    for array in (np.clip(image, 0, 255).astype(np.uint8), mask):
        out = io.BytesIO()
        PILImage.fromarray(array).save(out, format="PNG")
        pictures.append(out.getvalue())
    return pictures[0], pictures[1]


def disc_zip(n: int, *, seed: int = 0) -> bytes:
    entries: dict[str, bytes] = {}
    rows = io.StringIO()
    writer = csv.writer(rows)
    writer.writerow(["image", "mask", "split"])
    for i in range(n):
        split = "test" if i % 6 == 0 else "val" if i % 6 == 1 else "train"
        image, mask = disc(seed + i, empty=i % 5 == 4)
        entries[f"discs/images/d{i}.png"] = image
        entries[f"discs/masks/d{i}_mask.png"] = mask
        writer.writerow([f"images/d{i}.png", f"masks/d{i}_mask.png", split])
    entries["discs/manifest.csv"] = rows.getvalue().encode()
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, data in entries.items():
            archive.writestr(name, data)
    return out.getvalue()
