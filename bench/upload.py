"""Upload: MB/s through the presigned-URL flow versus a raw boto3 put_object, same server."""

from __future__ import annotations

import hashlib
import time
from typing import Any

import numpy as np
import requests

from bench import fixtures
from bench.checks import BaselineCheckFailed
from bench.report import row
from bench.stats import paired_ratios, summarize

NAME = "upload"


def _files(quick: bool) -> dict[str, list[bytes]]:
    images, _, _ = fixtures.medmnist("breastmnist", "train")
    small = [fixtures.png_bytes(image, 256) for image in images[: 40 if quick else 100]]
    rng = np.random.default_rng(0)
    side = 1024  # noise does not compress: a ~1 MB greyscale PNG, like a plain radiograph
    large = [
        fixtures.png_bytes(rng.integers(0, 256, (side, side), dtype=np.uint8), side)
        for _ in range(4 if quick else 12)
    ]
    return {"small": small, "large": large}


def _presigned(storage: Any, session: requests.Session, files: list[bytes], prefix: str) -> float:
    started = time.perf_counter()
    for i, data in enumerate(files):
        signed = storage.presign_put(f"{prefix}/{i}.png", expires_in=300, content_type="image/png")
        response = session.request(signed.method, signed.url, data=data, headers=signed.headers)
        response.raise_for_status()
    return time.perf_counter() - started


def _boto3(client: Any, files: list[bytes], prefix: str) -> float:
    started = time.perf_counter()
    for i, data in enumerate(files):
        client.put_object(
            Bucket=fixtures.SITE_BUCKET, Key=f"{prefix}/{i}.png", Body=data, ContentType="image/png"
        )
    return time.perf_counter() - started


def _check_stored(client: Any, files: list[bytes], prefixes: list[str]) -> None:
    for i, data in enumerate(files):
        want = hashlib.sha256(data).hexdigest()
        for prefix in prefixes:
            body = client.get_object(Bucket=fixtures.SITE_BUCKET, Key=f"{prefix}/{i}.png")["Body"]
            if hashlib.sha256(body.read()).hexdigest() != want:
                raise BaselineCheckFailed(f"upload: {prefix}/{i}.png does not hold the bytes sent")


def run(quick: bool, repeat: int) -> list[dict[str, Any]]:
    storage = fixtures.s3_storage()
    client = fixtures.raw_boto3_client()
    session = requests.Session()
    rows = []
    for kind, files in _files(quick).items():
        megabytes = sum(len(f) for f in files) / 1e6
        rates: dict[str, list[float]] = {"presigned": [], "boto3": []}
        for rep in range(repeat):
            base = f"{fixtures.RUN_PREFIX}/upload/{kind}/{rep}"
            for side in ("presigned", "boto3") if rep % 2 == 0 else ("boto3", "presigned"):
                if side == "presigned":
                    seconds = _presigned(storage, session, files, f"{base}/presigned")
                else:
                    seconds = _boto3(client, files, f"{base}/boto3")
                rates[side].append(megabytes / seconds)
            _check_stored(client, files, [f"{base}/presigned", f"{base}/boto3"])
        rows.append(
            row(
                NAME,
                f"{len(files)} {kind} PNGs, {megabytes / len(files):.2f} MB each, one at a time, "
                f"{repeat} reps",
                "MB/s: presign_put + HTTP PUT (requests) vs boto3 put_object",
                summarize(rates["presigned"]).text(),
                summarize(rates["boto3"]).text(),
                paired_ratios(rates["presigned"], rates["boto3"]).text(),
            )
        )
    return rows
