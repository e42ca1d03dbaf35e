"""Fetch the model a marketplace job runs: published weights from the hub's model store, or a
model folder in the site's own storage. Checksums are verified before a byte is parsed.
"""

from __future__ import annotations

import hashlib
import tempfile
from pathlib import Path
from typing import Any

import requests

from pollen_agent.errors import RetryableError, UserError
from pollen_agent.ml.manifest import MANIFEST_NAME, WEIGHTS_NAME
from pollen_agent.storage.base import Storage
from pollen_contracts.weights import UploadLink, WeightsSpec

CHUNK = 1 << 20


def download_verified(url: str, dest: Path, expected_sha256: str, *, what: str) -> None:
    """Stream ``url`` to ``dest``; a checksum mismatch deletes the file and raises checksum_mismatch."""
    digest = hashlib.sha256()
    try:
        with requests.get(url, stream=True, timeout=60) as response:
            if response.status_code == 404:
                raise UserError(
                    f"The {what} is missing from the marketplace store.", code="model_missing"
                )
            if response.status_code != 200:
                raise RetryableError(
                    f"The {what} could not be downloaded ({response.status_code})."
                )
            with open(dest, "wb") as out:
                for chunk in response.iter_content(CHUNK):
                    digest.update(chunk)
                    out.write(chunk)
    except requests.RequestException as exc:
        raise RetryableError(
            f"The {what} could not be downloaded: {exc.__class__.__name__}"
        ) from exc
    if digest.hexdigest() != expected_sha256.strip().lower():
        dest.unlink(missing_ok=True)
        raise UserError(
            f"The {what} does not match the checksum recorded when it was published, so it may "
            "have been damaged or altered. It was not loaded. Ask the publisher to publish it again.",
            code="checksum_mismatch",
        )


def fetch_model_folder(weights: WeightsSpec, storage: Storage, work: Path) -> Path:
    """A local model folder (manifest + weights) whose weights match ``weights.sha256``."""
    folder = Path(tempfile.mkdtemp(dir=work, prefix="model-"))
    if weights.kind == "published":
        download_verified(
            weights.manifest_url, folder / MANIFEST_NAME, weights.manifest_sha256, what="manifest"
        )
        download_verified(weights.url, folder / WEIGHTS_NAME, weights.sha256, what="weights file")
    elif weights.kind == "site_model":
        prefix = weights.key.rstrip("/")
        for name in (MANIFEST_NAME, WEIGHTS_NAME):
            (folder / name).write_bytes(storage.get_bytes(f"{prefix}/{name}"))
    else:
        raise UserError(f"A {weights.kind} file is not a model folder.", code="model_invalid")
    return folder


def load_model(weights: WeightsSpec, storage: Storage, work: Path) -> tuple[Any, Any]:
    """(torch model in eval mode, manifest); the weights' checksum is checked again on load."""
    from pollen_agent.ml.artifact import load_model_folder

    folder = fetch_model_folder(weights, storage, work)
    return load_model_folder(folder, expected_sha256=weights.sha256)


def put_presigned(upload: UploadLink, path_or_bytes: Path | bytes, *, what: str) -> None:
    """Send a file to a presigned URL of the hub's model store."""
    data = path_or_bytes.read_bytes() if isinstance(path_or_bytes, Path) else path_or_bytes
    try:
        response = requests.request(
            upload.method,
            upload.url,
            data=data,
            headers=upload.headers,
            timeout=300,
        )
    except requests.RequestException as exc:
        raise RetryableError(f"The {what} could not be uploaded: {exc.__class__.__name__}") from exc
    if response.status_code >= 500:
        raise RetryableError(f"The marketplace store answered {response.status_code}; will retry.")
    if response.status_code not in (200, 201, 204):
        raise UserError(
            f"The marketplace store refused the {what} ({response.status_code}).",
            code="upload_refused",
        )
