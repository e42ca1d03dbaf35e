"""The manifest that describes a model folder, read and written through the one contract type.

The type, its writer and its reader live in ``pollen_contracts.manifest`` (the hub writes the
manifest of a cross-site model with the same code); this module adds the folder and the
agent's error: a manifest that cannot be read ends the work with a reason, never a crash.
"""

from __future__ import annotations

from pathlib import Path

from pollen_agent.errors import UserError
from pollen_contracts.manifest import (
    FORMAT_VERSION,
    MANIFEST_NAME,
    WEIGHTS_NAME,
    ManifestError,
    ModelManifest,
    manifest_bytes,
    manifest_parse,
)

Manifest = ModelManifest

__all__ = [
    "FORMAT_VERSION",
    "MANIFEST_NAME",
    "WEIGHTS_NAME",
    "Manifest",
    "read_manifest",
    "write_manifest",
]


def write_manifest(folder: str | Path, manifest: ModelManifest) -> Path:
    """Write ``manifest.json`` into ``folder`` and return its path."""
    path = Path(folder) / MANIFEST_NAME
    path.write_bytes(manifest_bytes(manifest))
    return path


def read_manifest(folder: str | Path) -> ModelManifest:
    """Read and check ``manifest.json`` from a model folder."""
    path = Path(folder) / MANIFEST_NAME
    if not path.is_file():
        raise UserError(
            f"{Path(folder).name} is not a Pollen model: it has no {MANIFEST_NAME}.",
            code="model_invalid",
        )
    try:
        return manifest_parse(path.read_bytes())
    except ManifestError as exc:
        raise UserError(exc.message, code=exc.code) from None
