"""Data path: images read and decoded from site storage on S3 versus from local disk."""

from __future__ import annotations

import time
from typing import Any

from bench import fixtures
from bench.checks import check_arrays_equal
from bench.report import row
from bench.stats import paired_ratios, summarize

NAME = "data path"
SIDE_PX = 256


def _load(storage: Any, rows: list[dict[str, Any]], input_size: int) -> tuple[list, float]:
    from pollen_agent.jobs.images import load_splits

    started = time.perf_counter()
    splits = load_splits(storage, rows, ["0", "1"], input_size=input_size)
    return splits["train"].images, time.perf_counter() - started


def run(quick: bool, repeat: int) -> list[dict[str, Any]]:
    n_images = 200 if quick else 546
    input_size = fixtures.recommended_input_size("efficientnet_lite0")  # what a job resizes to
    images, labels, source = fixtures.medmnist("breastmnist", "train")
    images, labels = images[:n_images], labels[:n_images]
    s3 = fixtures.s3_storage()
    prefix = f"{fixtures.RUN_PREFIX}/datapath"
    rates: dict[str, list[float]] = {"s3": [], "fs": []}
    with fixtures.fs_storage() as fs:
        on_s3 = fixtures.store_pngs(s3, images, labels, side=SIDE_PX, prefix=prefix)
        on_fs = fixtures.store_pngs(fs, images, labels, side=SIDE_PX, prefix=prefix)
        assert on_s3.rows == on_fs.rows and on_s3.total_bytes == on_fs.total_bytes
        for rep in range(repeat):
            results = {}
            for side in ("s3", "fs") if rep % 2 == 0 else ("fs", "s3"):
                storage = s3 if side == "s3" else fs
                results[side] = _load(storage, on_s3.rows, input_size)
                rates[side].append(n_images / results[side][1])
            check_arrays_equal(results["s3"][0], results["fs"][0], what="decoded images S3 vs disk")
    setting = (
        f"{n_images} PNGs {SIDE_PX}px ({source}, {on_s3.total_bytes / n_images / 1e3:.0f} kB "
        f"each), load_splits ({8} threads), {repeat} reps"
    )
    return [
        row(
            NAME,
            setting,
            "images/s read + decoded: S3 (SeaweedFS) vs local disk",
            summarize(rates["s3"]).text(),
            summarize(rates["fs"]).text(),
            paired_ratios(rates["s3"], rates["fs"]).text(),
        )
    ]
