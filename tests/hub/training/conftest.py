from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image as PILImage

from pollen.datasets.models import Dataset, Image, ImageStatus
from pollen.datasets.splits import split_for


def square_image(label: int, seed: int, size: int = 40) -> bytes:
    """A noisy picture with a bright square at the top (label 0) or the bottom (label 1).

    Top/bottom, not left/right: training augmentation flips images horizontally.
    """
    rng = np.random.default_rng(seed)
    array = rng.integers(0, 60, (size, size), dtype=np.uint8)
    y = 3 if label == 0 else size - 15
    x = int(rng.integers(4, size - 16))
    array[y : y + 12, x : x + 12] = 230
    buf = io.BytesIO()
    PILImage.fromarray(array).save(buf, format="PNG")
    return buf.getvalue()


@pytest.fixture
def labelled_rows():
    """Create accepted image rows (metadata only) with a balanced split, for lifecycle tests."""

    def make(dataset: Dataset, n: int = 60, labels=("left", "right")) -> list[Image]:
        rows = []
        for i in range(n):
            key = f"datasets/{dataset.pk}/images/{i}.png"
            rows.append(
                Image(
                    dataset=dataset,
                    filename=f"{i}.png",
                    storage_key=key,
                    status=ImageStatus.ACCEPTED,
                    label=labels[i % len(labels)],
                    patient_id=f"P{i}",
                    sha256=f"{i:064x}",
                    width=40,
                    height=40,
                    split=split_for(seed=dataset.split_seed, patient_id=f"P{i}", fallback_key=key),
                )
            )
        return Image.objects.bulk_create(rows)

    return make
