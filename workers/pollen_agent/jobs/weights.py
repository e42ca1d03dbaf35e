"""Build a job's starting model: pip-installed ImageNet, random, an imported file, or a model folder."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pollen_agent.errors import UserError
from pollen_agent.jobs.model_source import download_verified, fetch_model_folder
from pollen_agent.storage.base import Storage


def build_start_model(spec: dict[str, Any], storage: Storage, work: Path) -> Any:
    """Build the model a job starts from; downloaded weights are verified before they are parsed."""
    from pollen_agent.ml.zoo import build_model

    weights = spec["weights"]
    num_classes = len(spec["label_names"])
    kind = weights["kind"]
    if kind in {"imagenet", "random"}:
        return build_model(spec["architecture"], num_classes, source=kind)
    if kind == "file":
        path = work / f"start.{weights.get('suffix', 'safetensors')}"
        download_verified(weights["url"], path, weights["sha256"], what="starting weights")
        return build_model(
            spec["architecture"],
            num_classes,
            source="file",
            weights_path=str(path),
            expected_sha256=weights["sha256"],
        )
    if kind in {"site_model", "published"}:
        folder = fetch_model_folder(weights, storage, work)
        return build_model(
            spec["architecture"],
            num_classes,
            source="model_folder",
            weights_path=str(folder),
            expected_sha256=weights["sha256"],
        )
    raise UserError(f"Unknown kind of starting weights '{kind}'.", code="invalid_starting_point")
