"""The manifest of a model folder (``manifest.json`` beside ``weights.safetensors``).

Written in one place (:func:`manifest_bytes`) and read in one place (:func:`manifest_parse`) by
both sides: the agent for every model it trains, the hub for a cross-site round's combined model.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any, Literal, get_args

from pollen_contracts.contract import Contract, ContractError, Task, require
from pollen_contracts.weights import require_sha256

FORMAT_VERSION = 1
MANIFEST_NAME = "manifest.json"
WEIGHTS_NAME = "weights.safetensors"

# The one inference path (pollen_agent.ml.inference) names its methods here, so the hub can
# write a manifest the agent reads without importing torch.
INFERENCE_VERSION = 1
TtaPolicy = Literal["none", "hflip", "d4"]
TTA_POLICIES: tuple[str, ...] = get_args(TtaPolicy)
INTENSITY = "min_max_stretch"
RESIZE = "bilinear_squash"
# Segmentation keeps the image's proportions, so that a mask maps back onto it: "letterbox"
# resizes the long side to the input size and centres the picture on a black square (models
# trained on whole images); "native" keeps the image's own resolution and reads it in windows
# (models trained on patches of large images).
LETTERBOX = "letterbox"
NATIVE = "native"
RESIZE_METHODS: tuple[str, ...] = (RESIZE, LETTERBOX, NATIVE)
# Every model trained here saw random horizontal flips, so it is averaged over its mirror image.
TRAINED_TTA: TtaPolicy = "hflip"


@dataclass(frozen=True)
class PreprocessMethods(Contract):
    intensity: str = INTENSITY
    resize: str = RESIZE


@dataclass(frozen=True)
class InferenceBlock(Contract):
    """How the model is fed and averaged at inference, chosen from its training augmentation."""

    tta: TtaPolicy = TRAINED_TTA
    preprocess: PreprocessMethods = field(default_factory=PreprocessMethods)
    version: int = INFERENCE_VERSION
    # Segmentation at "native" resolution: an image up to ``window`` pixels a side is read in
    # one pass; a larger one in ``window``-sized squares that share ``overlap`` of their side,
    # blended with Gaussian weights. None for classification and whole-image models.
    window: int | None = None
    overlap: float | None = None

    def validate(self) -> None:
        require(self.window is None or self.window >= 32, "window", "must be at least 32 pixels")
        require(self.overlap is None or 0.0 <= self.overlap < 1.0, "overlap", "must be in [0, 1)")


@dataclass(frozen=True)
class ModelManifest(Contract):
    """Everything needed to rebuild, preprocess for, and credit a model."""

    architecture: str
    label_names: list[str]
    input_size: int
    mean: list[float]
    std: list[float]
    weights_sha256: str
    licence: str
    created_at: str
    # Where the model came from (the model it was fine-tuned from, or the cross-site job and
    # round): provenance shown as it is, its keys differ by origin.
    parent: dict[str, Any] | None = None
    # Epochs, timings and the recipe's choices, and the validation metrics: shown as they are.
    training_summary: dict[str, Any] = field(default_factory=dict)
    metrics: dict[str, Any] = field(default_factory=dict)
    # The label of the finding a two-label model looks for (None for three or more labels, and
    # in manifests written before it was recorded).
    positive_class: str | None = None
    # None in manifests written before it existed: they read as TRAINED_TTA (every such model
    # was trained here with horizontal flips).
    inference: InferenceBlock | None = None
    task: Task = "classification"
    format_version: int = FORMAT_VERSION

    @property
    def num_classes(self) -> int:
        return len(self.label_names)

    def validate(self) -> None:
        require(len(self.label_names) >= 2, "label_names", "needs at least two labels")
        require_sha256(self.weights_sha256, "weights_sha256")
        require(
            self.positive_class is None or self.positive_class in self.label_names,
            "positive_class",
            "must be one of label_names",
        )
        require(len(self.mean) == len(self.std), "std", "needs one value per channel, like mean")


class ManifestError(ValueError):
    """A manifest that cannot be read; ``code`` is ``model_invalid`` or ``model_format``."""

    def __init__(self, message: str, code: str) -> None:
        self.message, self.code = message, code
        super().__init__(message)


def manifest_bytes(manifest: ModelManifest) -> bytes:
    """The one writer: sorted, indented JSON with a trailing newline."""
    return (json.dumps(manifest.to_dict(), indent=2, sort_keys=True) + "\n").encode()


def manifest_parse(data: bytes) -> ModelManifest:
    """The one reader: checks the format version and every field, or raises ManifestError."""
    try:
        raw = json.loads(data)
    except (ValueError, UnicodeDecodeError) as exc:
        raise ManifestError("The model's manifest is not valid JSON.", "model_invalid") from exc
    if not isinstance(raw, dict):
        raise ManifestError("The model's manifest is not a JSON object.", "model_invalid")
    version = raw.get("format_version")
    if version != FORMAT_VERSION:
        raise ManifestError(
            f"This model was saved in format {version}; this site reads format {FORMAT_VERSION}. "
            "Update the site agent.",
            "model_format",
        )
    block = raw.get("inference")
    if isinstance(block, dict) and (
        block.get("version") != INFERENCE_VERSION or block.get("tta") not in TTA_POLICIES
    ):
        raise ManifestError(
            "This model's inference settings are from a newer version. Update the site agent.",
            "model_format",
        )
    try:
        return ModelManifest.from_dict(raw)
    except ContractError as exc:
        raise ManifestError(f"The model's manifest is not valid: {exc}.", "model_invalid") from exc
