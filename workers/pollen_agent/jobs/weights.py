"""Fetch a job's starting weights: pip-installed ImageNet, random, an imported file, or a site model folder."""

from __future__ import annotations

import hashlib
import tempfile
from pathlib import Path
from typing import Any

import requests

from pollen_agent.errors import RetryableError, UserError
from pollen_agent.ml.manifest import MANIFEST_NAME, WEIGHTS_NAME
from pollen_agent.storage.base import Storage


def _download(url: str, dest: Path, expected_sha256: str) -> None:
    digest = hashlib.sha256()
    try:
        with requests.get(url, stream=True, timeout=60) as response:
            if response.status_code != 200:
                raise RetryableError(
                    f"The starting weights could not be downloaded ({response.status_code})."
                )
            with open(dest, "wb") as out:
                for chunk in response.iter_content(1 << 20):
                    digest.update(chunk)
                    out.write(chunk)
    except requests.RequestException as exc:
        raise RetryableError(
            f"The starting weights could not be downloaded: {exc.__class__.__name__}"
        ) from exc
    if digest.hexdigest() != expected_sha256:
        raise UserError(
            "The starting weights do not match their recorded checksum; they were not loaded.",
            code="checksum_mismatch",
        )


def build_start_model(spec: dict[str, Any], storage: Storage, work: Path) -> Any:
    """Build the model a job starts from; weights are verified before they are parsed."""
    from pollen_agent.ml.zoo import build_model

    weights = spec["weights"]
    num_classes = len(spec["label_names"])
    kind = weights["kind"]
    if kind in {"imagenet", "random"}:
        return build_model(spec["architecture"], num_classes, source=kind)
    if kind == "file":
        path = work / f"start.{weights.get('suffix', 'safetensors')}"
        _download(weights["url"], path, weights["sha256"])
        return build_model(
            spec["architecture"],
            num_classes,
            source="file",
            weights_path=str(path),
            expected_sha256=weights["sha256"],
        )
    if kind == "site_model":
        folder = Path(tempfile.mkdtemp(dir=work))
        prefix = weights["key"].rstrip("/")
        for name in (MANIFEST_NAME, WEIGHTS_NAME):
            (folder / name).write_bytes(storage.get_bytes(f"{prefix}/{name}"))
        return build_model(
            spec["architecture"],
            num_classes,
            source="model_folder",
            weights_path=str(folder),
            expected_sha256=weights["sha256"],
        )
    if kind == "published":
        folder = Path(tempfile.mkdtemp(dir=work))
        _download(weights["manifest_url"], folder / MANIFEST_NAME, weights["manifest_sha256"])
        _download(weights["url"], folder / WEIGHTS_NAME, weights["sha256"])
        return build_model(
            spec["architecture"],
            num_classes,
            source="model_folder",
            weights_path=str(folder),
            expected_sha256=weights["sha256"],
        )
    raise UserError(f"Unknown kind of starting weights '{kind}'.", code="invalid_starting_point")
