"""Augmentation that moves an image and its mask together.

Each training item is a random *view* of its source picture: one affine map (a centre, a
rotation of up to ±10 degrees, a zoom between 0.9 and 1.15, and a horizontal flip half the
time) applied to the image with bilinear and to the mask with nearest-neighbour sampling, so
every pixel keeps its class and stays on its own pixel. Brightness and contrast (±10 %) then
change the image only. The same map also cuts a patch out of a large image, so a crop never
shows a rotated picture's black corners where there was image to show.

Horizontal flips only: the models are averaged over their mirror image at inference
(``TRAINED_TTA``); ultrasound and fundus photographs are not read upside down.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageEnhance

MAX_ROTATION_DEGREES = 10.0
SCALE_RANGE = (0.9, 1.15)
MAX_SHIFT = 0.08  # of the view's side
JITTER = 0.1


@dataclass(frozen=True)
class View:
    """Which part of a source picture a training item shows, and how it is turned.

    The view is ``size`` pixels square, centred on (``centre_x``, ``centre_y``) of the source,
    rotated by ``angle`` degrees, zoomed in by ``scale`` and mirrored when ``flip``.
    """

    centre_x: float
    centre_y: float
    angle: float = 0.0
    scale: float = 1.0
    flip: bool = False


def random_view(
    rng: np.random.Generator, centre_x: float, centre_y: float, size: int, *, shift: bool
) -> View:
    """A random rotation, zoom and flip around a centre; ``shift`` moves the centre a little."""
    if shift:
        centre_x += float(rng.uniform(-MAX_SHIFT, MAX_SHIFT)) * size
        centre_y += float(rng.uniform(-MAX_SHIFT, MAX_SHIFT)) * size
    return View(
        centre_x=centre_x,
        centre_y=centre_y,
        angle=float(rng.uniform(-MAX_ROTATION_DEGREES, MAX_ROTATION_DEGREES)),
        scale=float(rng.uniform(*SCALE_RANGE)),
        flip=bool(rng.random() < 0.5),
    )


def apply_view(
    picture: Image.Image, mask: Image.Image, view: View, size: int
) -> tuple[Image.Image, Image.Image]:
    """The ``size`` x ``size`` view of the picture (bilinear) and of its mask (nearest).

    Whatever falls outside the source is black in the picture and background in the mask.
    """
    coefficients = _affine(view, size)
    return (
        picture.transform(
            (size, size), Image.Transform.AFFINE, coefficients, Image.Resampling.BILINEAR
        ),
        mask.transform(
            (size, size), Image.Transform.AFFINE, coefficients, Image.Resampling.NEAREST
        ),
    )


def _affine(view: View, size: int) -> tuple[float, float, float, float, float, float]:
    # PIL maps each output pixel (x, y) to the source point (a x + b y + c, d x + e y + f).
    # The view's centre lands on the output's centre; around it the output is rotated,
    # mirrored and zoomed: source = centre + M (output - size / 2).
    radians = math.radians(view.angle)
    cos, sin = math.cos(radians) / view.scale, math.sin(radians) / view.scale
    mirror = -1.0 if view.flip else 1.0
    a, b, d, e = cos * mirror, -sin, sin * mirror, cos
    half = size / 2
    return (
        a,
        b,
        view.centre_x - (a + b) * half,
        d,
        e,
        view.centre_y - (d + e) * half,
    )


def jitter(picture: Image.Image, rng: np.random.Generator) -> Image.Image:
    """Brightness and contrast changed by up to ±``JITTER`` (the image only, never the mask)."""
    picture = ImageEnhance.Brightness(picture).enhance(float(rng.uniform(1 - JITTER, 1 + JITTER)))
    return ImageEnhance.Contrast(picture).enhance(float(rng.uniform(1 - JITTER, 1 + JITTER)))
