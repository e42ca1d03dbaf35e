"""Ingest: images per second checked by the site agent (decode, limits, sha256, thumbnail written back)
versus a bare read-and-decode of the same files from the same storage.

The ratio is what the safety checks and the thumbnail cost on top of reading the pixels at all.
"""

from __future__ import annotations

import io
import time
from typing import Any

from bench import fixtures
from bench.report import row
from bench.stats import paired_ratios, summarize

NAME = "ingest"
SIDE_PX = 256


def _bare(storage: Any, keys: list[str]) -> float:
    from PIL import Image

    started = time.perf_counter()
    for key in keys:
        Image.open(io.BytesIO(storage.get_bytes(key))).load()
    return time.perf_counter() - started


def _ingest(storage: Any, keys: list[str], prefix: str) -> float:
    from pollen_agent.ingest.ingest import ingest_batch

    started = time.perf_counter()
    results = ingest_batch(
        storage, list(enumerate(keys)), thumbnail_prefix=f"{prefix}/thumbs", reject_duplicates=False
    )
    elapsed = time.perf_counter() - started
    accepted = sum(1 for r in results if r["status"] == "accepted")
    # The baseline check: every file really went through the whole ingest.
    assert accepted == len(keys), f"ingest accepted {accepted} of {len(keys)} files"
    return elapsed


def run(quick: bool, repeat: int) -> list[dict[str, Any]]:
    n_images = 100 if quick else 300
    images, labels, source = fixtures.medmnist("breastmnist", "train")
    images, labels = images[:n_images], labels[:n_images]
    rows = []
    s3 = fixtures.s3_storage()
    with fixtures.fs_storage() as fs:
        for side, storage in (("local disk", fs), ("S3 (SeaweedFS)", s3)):
            prefix = f"{fixtures.RUN_PREFIX}/ingest-{'s3' if storage is s3 else 'fs'}"
            stored = fixtures.store_pngs(storage, images, labels, side=SIDE_PX, prefix=prefix)
            keys = [r["storage_key"] for r in stored.rows]
            ingest_rates, bare_rates = [], []
            for rep in range(repeat):
                order = ("ingest", "bare") if rep % 2 == 0 else ("bare", "ingest")
                for what in order:
                    if what == "ingest":
                        ingest_rates.append(n_images / _ingest(storage, keys, prefix))
                    else:
                        bare_rates.append(n_images / _bare(storage, keys))
            rows.append(
                row(
                    NAME,
                    f"{n_images} PNGs {SIDE_PX}px ({source}) on {side}, one thread, {repeat} reps",
                    "images/s: full ingest (checks, sha256, thumbnail) vs bare read + decode",
                    summarize(ingest_rates).text(),
                    summarize(bare_rates).text(),
                    paired_ratios(ingest_rates, bare_rates).text(),
                )
            )
    return rows
