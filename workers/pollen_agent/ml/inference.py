"""The one inference path: preprocessing and test-time augmentation, as the model's manifest says.

Every image a model sees goes through :func:`preprocess`: training batches, validation, a
training job's test evaluation, the fine-tune and held-out checks, predictions, sliding-window
patches, heatmaps and evaluations at a site. Every probability comes from :func:`predict_probs`
(or, for a prepared dataset or patch batch, :func:`probs_of_batch`, which it calls).

Preprocessing: the intensity stretch (:mod:`pollen_agent.intensity`, full range), then a
bilinear squash to ``input_size`` x ``input_size`` (no crop, so nothing at the border is lost),
then 0..1 and the model's mean and std. Segmentation models keep the image's proportions
instead (``letterbox``: the long side resized, centred on a black square; or ``native``: no
resize, read in windows by ``ml.segmentation.infer``), so that their masks map back onto it. The channel count follows the model: a greyscale image
is repeated to three channels; a colour image given to a greyscale model is accepted only when
its channels are equal (a greyscale picture saved as RGB).

Test-time augmentation averages the logits over views the model was trained to treat alike,
and no others: a model trained with horizontal flips is averaged over the image and its mirror
image (``hflip``); rotations and vertical flips it never saw in training would only add noise.
Logits, not probabilities, are averaged: for the quick model, whose features are averaged over
the image and its mirror, this is exactly how it was fitted.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
import torch
from PIL import Image
from torch import nn

from pollen_agent.errors import UserError
from pollen_agent.intensity import stretch_to_uint8
from pollen_agent.ml.device import full_precision, place_batch, resolve_device
from pollen_contracts.contract import ContractError
from pollen_contracts.manifest import (
    INFERENCE_VERSION,
    INTENSITY,
    LETTERBOX,
    NATIVE,
    RESIZE,
    RESIZE_METHODS,
    TRAINED_TTA,
    TTA_POLICIES,
    InferenceBlock,
    PreprocessMethods,
)

# What a manifest written before the inference block existed reads as: every such model was
# trained here with horizontal flips (TRAINED_TTA), so hflip is the policy that matches it.
LEGACY_TTA = TRAINED_TTA
MIN_IMAGE_SIDE = 8
# Mean per-pixel spread between R, G and B (0-255) below which a colour image counts as grey.
GREY_SPREAD_TOLERANCE = 3.0

Transform = Callable[[torch.Tensor], torch.Tensor]
Augment = Callable[[Image.Image], Image.Image]

_VIEWS: dict[str, tuple[Transform, ...]] = {
    "none": (lambda x: x,),
    "hflip": (lambda x: x, lambda x: torch.flip(x, dims=(-1,))),
    # The dihedral group of the square: identity, three rotations, and four reflections.
    "d4": (
        lambda x: x,
        lambda x: torch.rot90(x, 1, dims=(-2, -1)),
        lambda x: torch.rot90(x, 2, dims=(-2, -1)),
        lambda x: torch.rot90(x, 3, dims=(-2, -1)),
        lambda x: torch.flip(x, dims=(-1,)),
        lambda x: torch.flip(x, dims=(-2,)),
        lambda x: x.transpose(-2, -1),
        lambda x: torch.rot90(x, 2, dims=(-2, -1)).transpose(-2, -1),
    ),
}


@dataclass(frozen=True)
class Preprocess:
    """How an image becomes a model's input tensor."""

    input_size: int
    mean: tuple[float, ...]
    std: tuple[float, ...]
    intensity: str = INTENSITY
    resize: str = RESIZE

    @property
    def in_channels(self) -> int:
        return len(self.mean)


@dataclass(frozen=True)
class InferencePolicy:
    """Preprocessing plus the test-time augmentation a model is evaluated and applied with."""

    preprocess: Preprocess
    tta: str = "none"
    version: int = INFERENCE_VERSION
    # Segmentation at native resolution: the window side and the share of it neighbours overlap.
    window: int | None = None
    overlap: float | None = None

    def __post_init__(self) -> None:
        if self.tta not in TTA_POLICIES:
            raise ValueError(f"tta must be one of {TTA_POLICIES}, not {self.tta!r}")

    def without_tta(self) -> InferencePolicy:
        return replace(self, tta="none")

    def manifest_block(self) -> InferenceBlock:
        """The manifest's ``inference`` block (input size, mean and std stay top-level fields)."""
        methods = PreprocessMethods(
            intensity=self.preprocess.intensity, resize=self.preprocess.resize
        )
        return InferenceBlock(
            tta=self.tta,  # type: ignore[arg-type]
            preprocess=methods,
            version=self.version,
            window=self.window,
            overlap=self.overlap,
        )


def policy(
    *,
    input_size: int,
    mean: Sequence[float],
    std: Sequence[float],
    tta: str = "none",
    resize: str = RESIZE,
    window: int | None = None,
    overlap: float | None = None,
) -> InferencePolicy:
    settings = Preprocess(
        int(input_size), tuple(map(float, mean)), tuple(map(float, std)), resize=resize
    )
    return InferencePolicy(settings, tta, window=window, overlap=overlap)


def trained_policy(
    *, input_size: int, mean: Sequence[float], std: Sequence[float]
) -> InferencePolicy:
    """The policy of a model this agent trains: its own preprocessing, averaged as it trained."""
    return policy(input_size=input_size, mean=mean, std=std, tta=TRAINED_TTA)


def trained_block() -> InferenceBlock:
    """The ``inference`` block of a model this agent trains (see ``TRAINED_TTA``)."""
    return InferenceBlock(tta=TRAINED_TTA)


def inference_block(raw: InferenceBlock | Mapping[str, Any] | None) -> InferenceBlock:
    """A manifest's ``inference`` block, checked; a manifest without one reads as ``LEGACY_TTA``."""
    if not raw:
        return InferenceBlock(tta=LEGACY_TTA)
    try:
        block = raw if isinstance(raw, InferenceBlock) else InferenceBlock.from_dict(dict(raw))
    except ContractError as exc:
        raise UserError(
            f"This model's inference settings are not readable here ({exc}). Update the site agent.",
            code="model_format",
        ) from None
    if block.version != INFERENCE_VERSION:
        raise UserError(
            "This model's inference settings are from a newer version. Update the site agent.",
            code="model_format",
        )
    methods = block.preprocess
    if methods.intensity != INTENSITY or methods.resize not in RESIZE_METHODS:
        raise UserError(
            "This model needs preprocessing this site agent does not know. Update the site agent.",
            code="model_format",
        )
    return block


def manifest_policy(manifest: Any, *, tta: bool = True) -> InferencePolicy:
    """The policy a model's manifest records; ``tta=False`` asks for the bare image only."""
    block = inference_block(getattr(manifest, "inference", None))
    chosen = policy(
        input_size=manifest.input_size,
        mean=manifest.mean,
        std=manifest.std,
        tta=block.tta,
        resize=block.preprocess.resize,
        window=block.window,
        overlap=block.overlap,
    )
    return chosen if tta else chosen.without_tta()


def tta_views(tta: str) -> tuple[Transform, ...]:
    """The views a policy averages over (the first is always the image itself)."""
    if tta not in _VIEWS:
        raise ValueError(f"tta must be one of {TTA_POLICIES}, not {tta!r}")
    return _VIEWS[tta]


# --- Preprocessing ------------------------------------------------------------------------------


def preprocess(
    image: np.ndarray, settings: Preprocess, *, augment: Augment | None = None
) -> torch.Tensor:
    """One HxW or HxWxC image as a normalised (in_channels, input_size, input_size) tensor.

    Accepts 1 (grey), 2 (grey + alpha), 3 (RGB) or 4 (RGBA) channels; alpha is dropped.
    ``augment`` (training only) changes the resized picture before it becomes a tensor. Raises
    ``UserError`` (``wrong_channels`` or ``image_too_small``) for images that cannot be used.
    """
    picture = fit_picture(model_picture(image, settings.in_channels), settings)
    if augment is not None:
        picture = augment(picture)
    return picture_tensor(picture, settings)


def fit_picture(picture: Image.Image, settings: Preprocess) -> Image.Image:
    """The picture at the model's input size, as ``settings.resize`` says (``native``: as is)."""
    size = settings.input_size
    if settings.resize == LETTERBOX:
        return letterbox(picture, size)
    if settings.resize == NATIVE:
        return picture
    return picture.resize((size, size), Image.Resampling.BILINEAR)


@dataclass(frozen=True)
class Box:
    """Where a letterboxed picture sits on its square: top-left corner and size, in pixels."""

    top: int
    left: int
    height: int
    width: int


def letterbox_box(height: int, width: int, size: int) -> Box:
    """Where an image of ``height`` x ``width`` lands on a ``size`` square, long side first."""
    scale = size / max(height, width)
    new_height = min(size, max(1, round(height * scale)))
    new_width = min(size, max(1, round(width * scale)))
    return Box((size - new_height) // 2, (size - new_width) // 2, new_height, new_width)


def letterbox(
    picture: Image.Image,
    size: int,
    *,
    resample: Image.Resampling = Image.Resampling.BILINEAR,
) -> Image.Image:
    """``picture`` with its long side resized to ``size``, centred on a black square.

    Masks pass ``resample=NEAREST`` so that their class indexes stay whole.
    """
    box = letterbox_box(picture.height, picture.width, size)
    if (picture.height, picture.width) != (box.height, box.width):
        picture = picture.resize((box.width, box.height), resample)
    square = Image.new(picture.mode, (size, size), 0)
    square.paste(picture, (box.left, box.top))
    return square


def picture_tensor(picture: Image.Image, settings: Preprocess) -> torch.Tensor:
    """A model picture as a normalised (in_channels, H, W) float tensor."""
    pixels = torch.from_numpy(np.asarray(picture, dtype=np.float32) / 255.0)
    # Greyscale stays one channel until here: resizing one channel is cheaper than three.
    pixels = pixels.unsqueeze(0) if pixels.ndim == 2 else pixels.permute(2, 0, 1)
    if pixels.shape[0] != settings.in_channels:
        pixels = pixels.expand(settings.in_channels, -1, -1)
    mean = torch.tensor(settings.mean, dtype=torch.float32).view(-1, 1, 1)
    std = torch.tensor(settings.std, dtype=torch.float32).view(-1, 1, 1)
    return (pixels - mean) / std


def model_picture(image: np.ndarray, in_channels: int) -> Image.Image:
    """The stretched 8-bit picture a model with ``in_channels`` channels reads ("L" or "RGB")."""
    validate_image(image)
    array = np.asarray(image)
    if array.ndim == 2:
        array = array[:, :, None]
    array = stretch_to_uint8(array)
    if array.shape[2] in (2, 4):
        array = array[:, :, :-1]
    if in_channels not in (1, 3):
        raise UserError(
            f"Models with {in_channels} input channels are not supported; use 1 or 3.",
            code="wrong_channels",
        )
    if in_channels == 1 and array.shape[2] == 3:
        if _channel_spread(array) > GREY_SPREAD_TOLERANCE:
            raise UserError(
                "This model works on greyscale images, but this image is in colour.",
                code="wrong_channels",
            )
        array = array[:, :, :1]
    return Image.fromarray(np.ascontiguousarray(array[:, :, 0] if array.shape[2] == 1 else array))


def validate_image(image: np.ndarray) -> None:
    """Raise ``UserError`` unless ``image`` is HxW or HxWxC (C in 1..4) and at least 8 px a side."""
    shape = np.shape(image)
    if len(shape) not in (2, 3) or (len(shape) == 3 and shape[2] not in (1, 2, 3, 4)):
        described = "x".join(str(s) for s in shape)
        raise UserError(
            f"The image has shape {described}; expected greyscale, RGB or RGBA pixels.",
            code="wrong_channels",
        )
    if min(shape[0], shape[1]) < MIN_IMAGE_SIDE:
        raise UserError(
            f"The image is {shape[1]}x{shape[0]} pixels; it must be at least "
            f"{MIN_IMAGE_SIDE} pixels on each side.",
            code="image_too_small",
        )


def _channel_spread(rgb: np.ndarray) -> float:
    """Mean over pixels of max(R, G, B) - min(R, G, B), sampled for speed on large images."""
    step = max(1, max(rgb.shape[0], rgb.shape[1]) // 256)
    sample = rgb[::step, ::step].astype(np.int16)
    return float((sample.max(axis=2) - sample.min(axis=2)).mean())


# --- Probabilities ------------------------------------------------------------------------------


def predict_probs(
    model: nn.Module,
    images: Sequence[np.ndarray],
    chosen: InferencePolicy,
    *,
    device: torch.device | str | None = None,
    batch_size: int = 32,
) -> np.ndarray:
    """Class probabilities (N, C) float32 of ``images`` under the policy ``chosen``.

    The model moves to ``device`` (default: CUDA when present) and runs in eval mode for the
    call; its train/eval flags are restored afterwards. A model with a single output is read as
    a binary sigmoid classifier and answers two columns, [1 - p, p].
    """
    settings = chosen.preprocess
    check_model_channels(model, settings.in_channels)
    target = resolve_device(device)
    model.to(target)
    views = tta_views(chosen.tta)
    chunks = []
    with eval_mode(model), torch.inference_mode():
        for start in range(0, len(images), batch_size):
            batch = torch.stack(
                [preprocess(i, settings) for i in images[start : start + batch_size]]
            )
            chunks.append(probs_of_batch(model, place_batch(batch, target), views).cpu())
    if not chunks:
        return np.zeros((0, 0), dtype=np.float32)
    return torch.cat(chunks).numpy().astype(np.float32)


def probs_of_batch(
    model: nn.Module, batch: torch.Tensor, views: Sequence[Transform]
) -> torch.Tensor:
    """Probabilities of an already-preprocessed batch: logits averaged over ``views``.

    Always in full precision, on every device: on an H200, bf16 autocast moved EfficientNet-Lite0's
    probabilities by up to 0.13 and was 1.35x slower than float32, and TF32 still moved them by
    0.026 (``bench/gpu_check.py``); a prediction must not depend on the machine that made it.
    Training may still autocast.
    """
    total: torch.Tensor | None = None
    with full_precision(batch.device):
        for view in views:
            logits = output_logits(model(view(batch))).float()
            total = logits if total is None else total + logits
    assert total is not None
    return logits_to_probabilities(total / len(views))


def logits_to_probabilities(logits: torch.Tensor) -> torch.Tensor:
    """Softmax over classes; a single logit is a sigmoid, expanded to [1 - p, p]."""
    if logits.shape[1] == 1:
        positive = torch.sigmoid(logits)
        return torch.cat([1.0 - positive, positive], dim=1)
    return torch.softmax(logits, dim=1)


def output_logits(output: object) -> torch.Tensor:
    """The logits tensor of a model output that may be a tensor, a tuple or a dict of tensors."""
    if isinstance(output, torch.Tensor):
        return output
    if isinstance(output, (tuple, list)) and output and isinstance(output[0], torch.Tensor):
        return output[0]
    if isinstance(output, dict):
        logits = output.get("logits")
        if isinstance(logits, torch.Tensor):
            return logits
    raise TypeError(f"Cannot find logits in a model output of type {type(output).__name__}")


def check_model_channels(model: nn.Module, in_channels: int) -> None:
    """Raise ``UserError(wrong_channels)`` if the model's first convolution wants another count."""
    expected = model_in_channels(model)
    if expected is not None and expected != in_channels:
        raise UserError(
            f"This model expects {expected}-channel images but its settings describe "
            f"{in_channels} channel(s). Check the model's normalisation settings.",
            code="wrong_channels",
        )


def model_in_channels(model: nn.Module) -> int | None:
    """Input channels of the first 2-D convolution in the model, or None if it has none."""
    for module in model.modules():
        if isinstance(module, nn.Conv2d):
            return int(module.in_channels)
    return None


@contextlib.contextmanager
def eval_mode(model: nn.Module) -> Iterator[nn.Module]:
    """Put every submodule in eval mode for the block, then restore each one's own flag."""
    flags = [(module, module.training) for module in model.modules()]
    model.eval()
    try:
        yield model
    finally:
        for module, training in flags:
            module.training = training
