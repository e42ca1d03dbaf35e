"""Build a job's starting model: pip-installed ImageNet, random, an imported file, or a model folder."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pollen_agent.errors import UserError
from pollen_agent.jobs.model_source import download_verified, fetch_model_folder
from pollen_agent.storage.base import Storage
from pollen_contracts.weights import WeightsSpec


def build_start_model(
    architecture: str, num_classes: int, weights: WeightsSpec, storage: Storage, work: Path
) -> Any:
    """Build the model a job starts from; downloaded weights are verified before they are parsed."""
    from pollen_agent.ml.zoo import build_model

    if weights.kind in {"imagenet", "random"}:
        return build_model(architecture, num_classes, source=weights.kind)
    if weights.kind == "file":
        path = work / f"start.{weights.suffix or 'safetensors'}"
        download_verified(weights.url, path, weights.sha256, what="starting weights")
        return build_model(
            architecture,
            num_classes,
            source="file",
            weights_path=str(path),
            expected_sha256=weights.sha256,
        )
    if weights.kind in {"site_model", "published"}:
        folder = fetch_model_folder(weights, storage, work)
        return build_model(
            architecture,
            num_classes,
            source="model_folder",
            weights_path=str(folder),
            expected_sha256=weights.sha256,
        )
    raise UserError(
        f"A {weights.kind} file cannot start a job; choose a model zoo entry or a trained model.",
        code="invalid_starting_point",
    )
