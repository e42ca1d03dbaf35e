"""A trained model is a folder: ``manifest.json`` beside ``weights.safetensors``.

Loading a folder never runs code: weights are safetensors only, and their checksum is
verified before they are parsed.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

from safetensors.torch import save_file
from torch import nn

from pollen_agent.errors import UserError
from pollen_agent.ml.inference import inference_block, trained_block
from pollen_agent.ml.manifest import WEIGHTS_NAME, Manifest, read_manifest, write_manifest
from pollen_agent.ml.weights_io import read_model_folder_state, sha256_file
from pollen_agent.ml.zoo import build_model, get_spec
from pollen_contracts.contract import contract_task

__all__ = ["load_model_folder", "read_manifest", "save_model_folder", "sha256_file"]


def save_model_folder(
    path: str | Path, model: nn.Module, manifest_fields: dict[str, Any]
) -> Manifest:
    """Write ``model`` and its manifest into the folder ``path`` (created if needed).

    ``manifest_fields`` must give ``architecture`` and ``label_names``, and may give
    ``input_size``, ``mean``, ``std`` (default: the architecture's), ``licence``, ``parent``,
    ``training_summary``, ``metrics``, ``positive_class`` (the finding, one of the labels) and
    ``inference`` (default: the policy of a model trained here, ``ml.inference.TRAINED_TTA``).
    The checksum and creation time are filled in here.
    """
    finding = manifest_fields.get("positive_class") or None
    if finding is not None and finding not in manifest_fields["label_names"]:
        raise ValueError(f"positive class {finding!r} is not one of the model's labels")
    folder = Path(path)
    folder.mkdir(parents=True, exist_ok=True)
    spec = get_spec(manifest_fields["architecture"])
    weights = folder / WEIGHTS_NAME
    # safetensors refuses shared or non-contiguous storage; clone makes every tensor its own.
    state = {k: v.detach().cpu().contiguous().clone() for k, v in model.state_dict().items()}
    save_file(state, str(weights))
    manifest = Manifest(
        architecture=spec.name,
        label_names=[str(name) for name in manifest_fields["label_names"]],
        input_size=int(manifest_fields.get("input_size", spec.input_size)),
        mean=[float(v) for v in manifest_fields.get("mean", spec.mean)],
        std=[float(v) for v in manifest_fields.get("std", spec.std)],
        weights_sha256=sha256_file(weights),
        licence=str(manifest_fields.get("licence", "")),
        created_at=dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        parent=manifest_fields.get("parent") or None,
        training_summary=dict(manifest_fields.get("training_summary") or {}),
        metrics=dict(manifest_fields.get("metrics") or {}),
        positive_class=str(finding) if finding is not None else None,
        inference=inference_block(manifest_fields.get("inference") or trained_block()),
        task=contract_task(str(manifest_fields.get("task", spec.task))),
    )
    write_manifest(folder, manifest)
    return manifest


def load_model_folder(
    path: str | Path, *, expected_sha256: str | None = None
) -> tuple[nn.Module, Manifest]:
    """Rebuild the model saved in folder ``path``, in eval mode, with its manifest.

    The weights' sha256 is checked against the manifest and, when given, against
    ``expected_sha256`` before the file is parsed; a mismatch raises ``checksum_mismatch``.
    """
    manifest, state = read_model_folder_state(path, expected_sha256=expected_sha256)
    model = build_model(manifest.architecture, manifest.num_classes, source="random")
    own = model.state_dict()
    if set(own) != set(state) or any(own[k].shape != state[k].shape for k in own):
        raise UserError(
            "The model's weights do not match its manifest; the model folder is damaged.",
            code="weights_mismatch",
        )
    model.load_state_dict(state, strict=True)
    return model.eval(), manifest
