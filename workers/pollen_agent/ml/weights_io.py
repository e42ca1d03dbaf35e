"""Reading weight files safely: checksum first, then formats that cannot run code."""

from __future__ import annotations

import hashlib
from pathlib import Path

import torch
from safetensors.torch import load_file

from pollen_agent.errors import UserError
from pollen_agent.ml.manifest import WEIGHTS_NAME, Manifest, read_manifest

_CHUNK = 1 << 20
PICKLE_SUFFIXES = (".pt", ".pth", ".bin")


def sha256_file(path: str | Path) -> str:
    """Hex sha256 of a file, read in chunks so large weights never sit in memory twice."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(_CHUNK), b""):
            digest.update(chunk)
    return digest.hexdigest()


def verify_sha256(path: str | Path, expected_sha256: str | None) -> str:
    """Return the file's sha256, raising ``checksum_mismatch`` when it is not the expected one."""
    actual = sha256_file(path)
    if expected_sha256 is not None:
        verify_sha256_value(actual, expected_sha256, Path(path).name)
    return actual


def read_state_dict(
    path: str | Path, *, expected_sha256: str | None = None
) -> dict[str, torch.Tensor]:
    """Load a tensor dictionary from ``.safetensors`` or (zoo imports only) ``.pt``/``.pth``.

    The checksum is checked before a single byte is parsed. Pickle files are opened with
    ``weights_only=True`` so that a hostile file cannot execute code.
    """
    path = Path(path)
    if not path.is_file():
        raise UserError(f"The weights file {path.name} was not found.", code="weights_missing")
    verify_sha256(path, expected_sha256)
    if path.suffix == ".safetensors":
        return load_file(str(path), device="cpu")
    if path.suffix in PICKLE_SUFFIXES:
        return _read_torch_file(path)
    raise UserError(
        f"{path.name} is not a weights file Pollen can read. Use .safetensors (or .pt/.pth).",
        code="weights_format",
    )


def _read_torch_file(path: Path) -> dict[str, torch.Tensor]:
    try:
        loaded = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise UserError(
            f"{path.name} could not be read as plain weights ({type(exc).__name__}). Files that "
            "need code to load are refused; export the weights as .safetensors.",
            code="weights_format",
        ) from exc
    # Training scripts often wrap the weights: {"state_dict": ...} or {"model": ...}.
    for key in ("state_dict", "model", "model_state_dict"):
        if isinstance(loaded, dict) and isinstance(loaded.get(key), dict):
            loaded = loaded[key]
    if not isinstance(loaded, dict) or not all(
        isinstance(v, torch.Tensor) for v in loaded.values()
    ):
        raise UserError(
            f"{path.name} does not hold a dictionary of weight tensors.", code="weights_format"
        )
    return {_strip_prefix(k): v for k, v in loaded.items()}


def _strip_prefix(key: str) -> str:
    # DataParallel and torch.compile prefix every key; the architecture does not.
    for prefix in ("module.", "_orig_mod."):
        if key.startswith(prefix):
            key = key[len(prefix) :]
    return key


def read_model_folder_state(
    folder: str | Path, *, expected_sha256: str | None = None
) -> tuple[Manifest, dict[str, torch.Tensor]]:
    """Read a model folder's manifest and weights, verifying the checksum before loading.

    The file must match the manifest's checksum and, when given, ``expected_sha256`` (the
    checksum the hub recorded at publication). Otherwise nothing is loaded.
    """
    manifest = read_manifest(folder)
    weights = Path(folder) / WEIGHTS_NAME
    if not weights.is_file():
        raise UserError(
            f"The model folder {Path(folder).name} has no {WEIGHTS_NAME}.", code="model_invalid"
        )
    actual = verify_sha256(weights, manifest.weights_sha256)
    if expected_sha256 is not None:
        verify_sha256_value(actual, expected_sha256, weights.name)
    return manifest, load_file(str(weights), device="cpu")


def verify_sha256_value(actual: str, expected: str, name: str) -> None:
    """Raise ``checksum_mismatch`` when an already computed checksum is not the expected one."""
    if actual != expected.strip().lower():
        raise UserError(
            f"The weights file {name} is not the one that was recorded: its checksum differs, "
            "so it may be damaged or altered. It was not loaded. Import it again.",
            code="checksum_mismatch",
        )
