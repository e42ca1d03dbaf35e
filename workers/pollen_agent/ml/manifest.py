"""The manifest that describes a model folder. Plain JSON, no torch."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from pollen_agent.errors import UserError

FORMAT_VERSION = 1
MANIFEST_NAME = "manifest.json"
WEIGHTS_NAME = "weights.safetensors"


@dataclass(frozen=True)
class Manifest:
    """Everything needed to rebuild, preprocess for, and credit a model."""

    architecture: str
    label_names: list[str]
    input_size: int
    mean: list[float]
    std: list[float]
    weights_sha256: str
    licence: str
    created_at: str
    parent: dict[str, Any] | None = None
    training_summary: dict[str, Any] = field(default_factory=dict)
    metrics: dict[str, Any] = field(default_factory=dict)
    # The label of the finding a two-label model looks for: its sensitivity is about this label.
    # None for three or more labels; manifests written before it was recorded lack it (their
    # metrics measured the second label).
    positive_class: str | None = None
    # How the model is fed and averaged at inference: {"version", "tta", "preprocess"}, written
    # from its training augmentation (pollen_agent.ml.inference). None in manifests written
    # before it existed (and by the hub's cross-site aggregation): every such model was trained
    # with horizontal flips, so they read as "hflip" (ml.inference.LEGACY_TTA).
    inference: dict[str, Any] | None = None
    format_version: int = FORMAT_VERSION

    @property
    def num_classes(self) -> int:
        return len(self.label_names)

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def write_manifest(folder: str | Path, manifest: Manifest) -> Path:
    """Write ``manifest.json`` into ``folder`` and return its path."""
    path = Path(folder) / MANIFEST_NAME
    path.write_text(json.dumps(manifest.to_json(), indent=2, sort_keys=True) + "\n")
    return path


def read_manifest(folder: str | Path) -> Manifest:
    """Read and validate ``manifest.json`` from a model folder."""
    path = Path(folder) / MANIFEST_NAME
    if not path.is_file():
        raise UserError(
            f"{Path(folder).name} is not a Pollen model: it has no {MANIFEST_NAME}.",
            code="model_invalid",
        )
    try:
        raw = json.loads(path.read_text())
    except (ValueError, UnicodeDecodeError) as exc:
        raise UserError("The model's manifest is not valid JSON.", code="model_invalid") from exc
    version = raw.get("format_version")
    if version != FORMAT_VERSION:
        raise UserError(
            f"This model was saved in format {version}; this site reads format {FORMAT_VERSION}. "
            "Update the site agent.",
            code="model_format",
        )
    known = {f.name for f in fields(Manifest)}
    missing = [f.name for f in fields(Manifest) if f.name not in raw and _required(f.name)]
    if missing:
        raise UserError(f"The model's manifest lacks {', '.join(missing)}.", code="model_invalid")
    return Manifest(**{k: v for k, v in raw.items() if k in known})


def _required(name: str) -> bool:
    return name not in {
        "parent",
        "training_summary",
        "metrics",
        "format_version",
        "positive_class",
        "inference",
    }
