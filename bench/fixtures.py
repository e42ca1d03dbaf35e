"""What the benchmarks share: real images, site storage on S3 and disk, a stand-in hub."""

from __future__ import annotations

import contextlib
import importlib.util
import io
import json
import os
import tempfile
import threading
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import numpy as np
from PIL import Image

from bench.report import REPO

S3_ENDPOINT_ENV = "POLLEN_S3_ENDPOINT"
DEFAULT_S3_ENDPOINT = "http://127.0.0.1:8333"
# The documented identities of the throwaway test S3 server (scripts/s3_identities.py).
ADMIN_KEYS = ("pollen-test-admin", "pollen-test-admin-secret")
SITE_KEYS = ("pollen-test-site-a", "pollen-test-site-a-secret")
SITE_BUCKET = "pollen-site-a"
RUN_PREFIX = f"bench/{uuid.uuid4().hex[:10]}"


def s3_endpoint() -> str:
    return os.environ.get(S3_ENDPOINT_ENV, DEFAULT_S3_ENDPOINT)


def medmnist(name: str, split: str) -> tuple[np.ndarray, np.ndarray, str]:
    """Images, labels and where they came from: the official files, else synthetic images."""
    from pollen_agent.ml.data import load_medmnist

    try:
        images, labels = load_medmnist(name, split)
        return images, labels, f"{name} {split}"
    except FileNotFoundError:
        n = {"train": 546, "val": 78, "test": 156}[split]
        rng = np.random.default_rng(0)
        labels = rng.integers(0, 2, n)
        images = rng.integers(0, 256, (n, 28, 28), dtype=np.uint8)
        images[labels == 1, 10:18, 10:18] = 255
        return images, labels.astype(np.int64), f"synthetic {split} (MedMNIST files not found)"


def png_bytes(image: np.ndarray, side: int) -> bytes:
    """``image`` upsampled to ``side`` px and encoded as a PNG, like a real upload."""
    picture = Image.fromarray(image).resize((side, side), Image.Resampling.BILINEAR)
    buffer = io.BytesIO()
    picture.save(buffer, format="PNG")
    return buffer.getvalue()


def _ensure_bucket(bucket: str = SITE_BUCKET) -> None:
    import boto3
    from botocore.exceptions import ClientError

    admin = boto3.client(
        "s3",
        endpoint_url=s3_endpoint(),
        region_name="us-east-1",
        aws_access_key_id=ADMIN_KEYS[0],
        aws_secret_access_key=ADMIN_KEYS[1],
    )
    try:
        admin.head_bucket(Bucket=bucket)
    except ClientError:
        admin.create_bucket(Bucket=bucket)


def site_storage_config(identity: str, prefix: str) -> dict[str, Any]:
    """An agent's storage settings for the test identity ``identity`` (``site-a``, ``site-b``...).

    Each such identity may touch only its own bucket (scripts/s3_identities.py documents the
    keys); ``prefix`` keeps this run's objects apart from everyone else's in that bucket.
    """
    spec = importlib.util.spec_from_file_location(
        "s3_identities", REPO / "scripts" / "s3_identities.py"
    )
    assert spec is not None and spec.loader is not None
    identities = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(identities)
    creds = identities.credentials([identity])[identity]
    _ensure_bucket(creds["bucket"])
    return {
        "kind": "s3",
        "endpoint_url": s3_endpoint(),
        "bucket": creds["bucket"],
        "access_key": creds["access_key"],
        "secret_key": creds["secret_key"],
        "prefix": prefix,
    }


def s3_storage() -> Any:
    """Site A's storage on the test S3 server, the way the agent builds it."""
    from pollen_agent.storage.s3 import S3Storage

    _ensure_bucket()
    return S3Storage(
        SITE_BUCKET,
        access_key=SITE_KEYS[0],
        secret_key=SITE_KEYS[1],
        endpoint_url=s3_endpoint(),
    )


def raw_boto3_client() -> Any:
    """A plain boto3 client with site A's credentials: what a user would write by hand."""
    import boto3

    return boto3.client(
        "s3",
        endpoint_url=s3_endpoint(),
        region_name="us-east-1",
        aws_access_key_id=SITE_KEYS[0],
        aws_secret_access_key=SITE_KEYS[1],
    )


@contextmanager
def fs_storage() -> Iterator[Any]:
    """Site A's storage on local disk (the embedded default), in a throwaway folder."""
    from pollen_agent.storage.fs import FilesystemStorage

    with tempfile.TemporaryDirectory(prefix="pollen-bench-") as root:
        yield FilesystemStorage(
            Path(root), site="site-a", base_url="http://127.0.0.1:1", secret="bench-only"
        )


@dataclass
class SiteImages:
    """PNG files stored under one prefix, with the hub's rows describing them."""

    rows: list[dict[str, Any]]
    total_bytes: int


def store_pngs(
    storage: Any, images: np.ndarray, labels: np.ndarray, *, side: int, prefix: str
) -> SiteImages:
    """Put one PNG per image at ``prefix`` and return the rows a training job would get."""
    rows, total = [], 0
    for i, (image, label) in enumerate(zip(images, labels, strict=True)):
        data = png_bytes(image, side)
        key = f"{prefix}/{i:05d}.png"
        storage.put_bytes(key, data, content_type="image/png")
        total += len(data)
        rows.append({"id": i, "storage_key": key, "label": str(int(label)), "split": "train"})
    return SiteImages(rows, total)


class _HubHandler(BaseHTTPRequestHandler):
    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        self.rfile.read(length)
        self.server.posts += 1  # type: ignore[attr-defined]
        body = json.dumps({"cancel_requested": False}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: Any) -> None:
        return None


@contextmanager
def stand_in_hub() -> Iterator[Any]:
    """A local HTTP server answering the agent's progress and epoch POSTs with 200.

    The agent's real HubClient talks to it over a real socket, so a progress report costs
    what it costs against a hub on the same host (minus the hub's own database work).
    """
    server = ThreadingHTTPServer(("127.0.0.1", 0), _HubHandler)
    server.posts = 0  # type: ignore[attr-defined]
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()


def database_url(base_url: str, database: str) -> str:
    """``base_url`` (a PostgreSQL URL) pointing at ``database`` on the same server."""
    return urlunsplit(urlsplit(base_url)._replace(path=f"/{database}"))


def recreate_database(base_url: str, database: str) -> str:
    """Drop and create ``database`` (a benchmark's own, throwaway); returns its URL."""
    import psycopg

    with psycopg.connect(database_url(base_url, "postgres"), autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{database}"')
    return database_url(base_url, database)


def drop_database(base_url: str, database: str) -> None:
    import psycopg

    with psycopg.connect(database_url(base_url, "postgres"), autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')


def cleanup_s3() -> None:
    """Delete everything this run stored under its own prefix."""
    with contextlib.suppress(Exception):  # best effort at the end of a run
        s3_storage().delete_prefix(RUN_PREFIX + "/")


def recommended_input_size(architecture: str) -> int:
    """The input size a one-click job gets: the hub's recommended zoo entry's."""
    from pollen.zoo.builtin import BUILTIN_ENTRIES

    entry = next(e for e in BUILTIN_ENTRIES if e["recommended"])
    if entry["architecture"] != architecture:
        raise RuntimeError(
            f"the recommended zoo entry is {entry['architecture']}, not {architecture}"
        )
    return int(entry["input_size"])
