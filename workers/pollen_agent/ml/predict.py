"""Whole-image inference: preprocessing, class probabilities and test-time augmentation.

Preprocessing squashes an image to ``input_size`` x ``input_size`` (no crop, so nothing at the
border is lost), scales to [0, 1] and normalises with the model's mean and std. The channel count
follows the model: greyscale images are repeated to three channels; a colour image given to a
greyscale model is accepted only when its channels are equal (a greyscale picture saved as RGB).
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator, Sequence

import numpy as np
import torch
from PIL import Image
from torch import nn

from pollen_agent.errors import UserError

MIN_IMAGE_SIDE = 8
# Mean per-pixel spread between R, G and B (0-255) below which a colour image counts as grey.
GREY_SPREAD_TOLERANCE = 3.0

Transform = Callable[[torch.Tensor], torch.Tensor]

# The dihedral group of the square: identity, three rotations, and four reflections.
TTA_TRANSFORMS: tuple[Transform, ...] = (
    lambda x: x,
    lambda x: torch.rot90(x, 1, dims=(-2, -1)),
    lambda x: torch.rot90(x, 2, dims=(-2, -1)),
    lambda x: torch.rot90(x, 3, dims=(-2, -1)),
    lambda x: torch.flip(x, dims=(-1,)),
    lambda x: torch.flip(x, dims=(-2,)),
    lambda x: x.transpose(-2, -1),
    lambda x: torch.rot90(x, 2, dims=(-2, -1)).transpose(-2, -1),
)


def preprocess(
    image: np.ndarray,
    *,
    input_size: int,
    mean: Sequence[float],
    std: Sequence[float],
    in_channels: int = 3,
) -> torch.Tensor:
    """Turn one HxW or HxWxC image into a normalised (in_channels, input_size, input_size) tensor.

    Accepts 1 (grey), 2 (grey + alpha), 3 (RGB) or 4 (RGBA) channels; alpha is dropped.
    Raises ``UserError`` (``wrong_channels`` or ``image_too_small``) for images that cannot be used.
    """
    pixels = _to_uint8_channels(image, in_channels)
    resized = np.asarray(
        Image.fromarray(pixels.squeeze(-1) if in_channels == 1 else pixels).resize(
            (input_size, input_size), Image.Resampling.BILINEAR
        )
    )
    tensor = torch.from_numpy(resized.reshape(input_size, input_size, in_channels).copy())
    tensor = tensor.permute(2, 0, 1).float().div_(255.0)
    return _normalise(tensor, mean, std)


def predict(
    model: nn.Module,
    images: Sequence[np.ndarray],
    *,
    input_size: int,
    mean: Sequence[float],
    std: Sequence[float],
    tta: bool = False,
    batch_size: int = 32,
    device: torch.device | str | None = None,
) -> np.ndarray:
    """Class probabilities, shape (N, C), for a sequence of images.

    The channel count the model expects comes from ``len(mean)``, and must agree with the model's
    first convolution. With ``tta`` the probabilities are averaged over the eight flips and 90 degree
    rotations of the square. A model with a single output is read as a binary sigmoid classifier and
    answers two columns, [1 - p, p]. The model is moved to ``device`` (default: CUDA when available)
    and put in eval mode for the call; its train/eval flags are restored afterwards.
    """
    in_channels = len(mean)
    check_model_channels(model, in_channels)
    target = resolve_device(device)
    model.to(target)
    transforms = TTA_TRANSFORMS if tta else TTA_TRANSFORMS[:1]
    chunks = []
    with eval_mode(model), torch.inference_mode():
        for start in range(0, len(images), batch_size):
            batch = torch.stack(
                [
                    preprocess(
                        img, input_size=input_size, mean=mean, std=std, in_channels=in_channels
                    )
                    for img in images[start : start + batch_size]
                ]
            ).to(target, non_blocking=True)
            chunks.append(average_probabilities(model, batch, transforms).cpu())
    if not chunks:
        return np.zeros((0, 0), dtype=np.float32)
    return torch.cat(chunks).numpy().astype(np.float32)


def average_probabilities(
    model: nn.Module, batch: torch.Tensor, transforms: Sequence[Transform]
) -> torch.Tensor:
    """Mean probabilities over ``transforms`` of an already-normalised batch (no grad handling)."""
    total = None
    for transform in transforms:
        with autocast_for(batch.device):
            logits = output_logits(model(transform(batch)))
        probs = logits_to_probabilities(logits.float())
        total = probs if total is None else total + probs
    assert total is not None
    return total / len(transforms)


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


def resolve_device(device: torch.device | str | None) -> torch.device:
    """The requested device, or CUDA when available, else CPU."""
    if device is not None:
        return torch.device(device)
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def autocast_for(device: torch.device) -> contextlib.AbstractContextManager[object]:
    """Mixed precision on CUDA (bfloat16 where supported); a no-op elsewhere."""
    if device.type != "cuda":
        return contextlib.nullcontext()
    dtype = torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    return torch.autocast("cuda", dtype=dtype)


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


def _to_uint8_channels(image: np.ndarray, in_channels: int) -> np.ndarray:
    """HxWxC uint8 array with ``in_channels`` channels, after validating shape and size."""
    validate_image(image)
    array = np.asarray(image)
    if array.ndim == 2:
        array = array[:, :, None]
    array = to_uint8(array)
    if array.shape[2] in (2, 4):
        array = array[:, :, :-1]
    if in_channels == 3:
        return np.ascontiguousarray(np.repeat(array, 3, axis=2) if array.shape[2] == 1 else array)
    if in_channels == 1:
        if array.shape[2] == 3:
            if _channel_spread(array) > GREY_SPREAD_TOLERANCE:
                raise UserError(
                    "This model works on greyscale images, but this image is in colour.",
                    code="wrong_channels",
                )
            array = array[:, :, :1]
        return np.ascontiguousarray(array)
    raise UserError(
        f"Models with {in_channels} input channels are not supported; use 1 or 3.",
        code="wrong_channels",
    )


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


def to_uint8(array: np.ndarray) -> np.ndarray:
    """Integer images are rescaled from their type's full range; floats are read as 0..1."""
    if array.dtype == np.uint8:
        return array
    if array.dtype == np.bool_:
        return array.astype(np.uint8) * 255
    scaled: np.ndarray
    if np.issubdtype(array.dtype, np.integer):
        top = float(np.iinfo(array.dtype).max)
        scaled = np.clip(array.astype(np.float32) * (255.0 / top), 0.0, 255.0)
    else:
        scaled = np.clip(array.astype(np.float32), 0.0, 1.0) * 255.0
    return scaled.round().astype(np.uint8)


def _channel_spread(rgb: np.ndarray) -> float:
    """Mean over pixels of max(R, G, B) - min(R, G, B), sampled for speed on large images."""
    step = max(1, max(rgb.shape[0], rgb.shape[1]) // 256)
    sample = rgb[::step, ::step].astype(np.int16)
    return float((sample.max(axis=2) - sample.min(axis=2)).mean())


def _normalise(tensor: torch.Tensor, mean: Sequence[float], std: Sequence[float]) -> torch.Tensor:
    channels = tensor.shape[0]
    if len(mean) != channels or len(std) != channels:
        raise ValueError(f"mean and std need {channels} values, got {len(mean)} and {len(std)}")
    mean_t = torch.tensor(mean, dtype=torch.float32).view(-1, 1, 1)
    std_t = torch.tensor(std, dtype=torch.float32).view(-1, 1, 1)
    return tensor.sub_(mean_t).div_(std_t)
