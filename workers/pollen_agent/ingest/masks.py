"""Segmentation masks: decode one reader's mask files, check them against their image and the
dataset's label map, merge them, and describe the result (numbers, never pixels).

A mask is stored once checked as an 8-bit PNG of class indexes (0 = background, 1.. = the
dataset's classes in order), whatever the user sent: binary masks drawn as 0/255, saved as
1-bit, as a palette, in 16 bits or as grey saved in RGB all become the same 0/1 bytes, so
training reads one format. What cannot be read without guessing (colours, anti-aliased edges,
values outside the label map, another size than the image, two files that disagree) is refused
with a reason that names the user's file and says what to fix.
"""

from __future__ import annotations

import dataclasses
import hashlib
import io
import posixpath
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from PIL import Image
from scipy import ndimage

from pollen_agent.errors import UserError
from pollen_agent.ingest.decode import DecodedImage, open_pillow, sniff_format
from pollen_agent.ingest.limits import check_size
from pollen_agent.ingest.thumbnail import THUMBNAIL_SIZE, to_display_uint8
from pollen_agent.storage.base import ObjectNotFound, Storage, validate_prefix
from pollen_contracts.limits import MAX_IMAGE_PIXELS, MAX_UPLOAD_BYTES
from pollen_contracts.reports import IngestedMask, MaskStats

SIXTEEN_BIT_MODES = ("I;16", "I;16B", "I;16L", "I;16N", "I")
# What a binary mask may use for its one class besides 0: 1, or the brightest value of its depth.
BINARY_FOREGROUNDS = {8: 255, 16: 65535}
# 8-connected: two lesion pixels touching at a corner are one lesion.
EIGHT_CONNECTED = np.ones((3, 3), dtype=bool)
# Overlay colours per class (1, 2, ...): they stand out on grey images and on red fundus photos.
CLASS_COLOURS = (
    (255, 221, 0),
    (0, 200, 255),
    (255, 64, 160),
    (120, 255, 80),
    (170, 110, 255),
    (255, 130, 30),
)
FILL_OPACITY = 0.35
SHOWN_VALUES = 8


@dataclass(frozen=True)
class Segmentation:
    """A segmentation dataset's settings, as the hub sends them with ingest work."""

    label_names: tuple[str, ...]
    masks_required: bool = True
    reference_reader: str = ""

    @classmethod
    def from_payload(cls, raw: Mapping[str, Any] | None) -> Segmentation | None:
        """None for a classification dataset (no ``segmentation`` key in the payload)."""
        if raw is None:
            return None
        names = tuple(str(name) for name in raw.get("label_names") or ())
        if not 2 <= len(names) <= 256:
            raise UserError(
                "The hub sent a segmentation label map with "
                f"{len(names)} classes; it needs background and 1 to 255 classes. Ask your site "
                "IT to update the site agent to the hub's version.",
                code="contract_mismatch",
            )
        return cls(
            label_names=names,
            masks_required=bool(raw.get("masks_required", True)),
            reference_reader=str(raw.get("reference_reader") or ""),
        )

    @property
    def classes(self) -> int:
        """The highest class index a mask may hold."""
        return len(self.label_names) - 1

    @property
    def binary(self) -> bool:
        return self.classes == 1


@dataclass(frozen=True)
class MaskItem:
    """One reader's mask of an image as the hub sends it: one file, or parts to merge."""

    mask_id: int
    keys: tuple[str, ...]
    filenames: tuple[str, ...] = ()
    reader: str = ""

    @classmethod
    def from_payload(cls, raw: Mapping[str, Any]) -> MaskItem:
        return cls(
            mask_id=int(raw["mask_id"]),
            keys=tuple(raw["keys"]),
            filenames=tuple(raw.get("filenames") or ()),
            reader=str(raw.get("reader") or ""),
        )

    def filename(self, index: int) -> str:
        """The user's name for one of the files (never the storage key, which means nothing)."""
        if index < len(self.filenames) and self.filenames[index]:
            return self.filenames[index]
        return f"mask file {index + 1}"


# --- Decoding and checking one file ----------------------------------------------------------


def read_mask(
    data: bytes,
    segmentation: Segmentation,
    *,
    max_bytes: int = MAX_UPLOAD_BYTES,
    max_pixels: int = MAX_IMAGE_PIXELS,
) -> np.ndarray:
    """One mask file as class indexes (uint8, height x width); UserError says why it cannot be.

    Messages say "the mask" and never its name: the caller puts the user's name in front.
    """
    check_size(len(data), max_bytes=max_bytes)
    fmt = sniff_format(data)
    if fmt not in ("png", "tiff", "jpeg"):
        raise UserError(
            "The mask is not a PNG or TIFF image; save it as a greyscale PNG whose values are "
            "class numbers.",
            code="unsupported_format",
        )
    raw, depth = _open(data, fmt, max_pixels)
    try:
        return to_class_indexes(raw, segmentation, depth=depth)
    except UserError as exc:
        if fmt != "jpeg":
            raise
        # JPEG's compression blurs every edge: its values can never be exact.
        raise UserError(
            f"{exc.message} JPEG blurs the edges of a mask; save masks as PNG.", code=exc.code
        ) from None


def _open(data: bytes, fmt: str, max_pixels: int) -> tuple[np.ndarray, int]:
    """The pixels in the file's own values (palette indexes, not colours), and their bit depth."""
    try:
        return _pixels(open_pillow(data, fmt, max_pixels))
    except UserError:
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise UserError("The mask is too large to open safely.", code="too_many_pixels") from exc
    except Exception as exc:
        # Decoders fail in many ways on damaged files; none of them may stop a batch.
        raise UserError(
            f"The {fmt.upper()} mask is damaged or incomplete and cannot be read.",
            code="corrupt_image",
        ) from exc


def _pixels(image: Image.Image) -> tuple[np.ndarray, int]:
    mode = image.mode
    if mode in ("1", "L", "P"):  # "P": the palette's indexes are the values, not its colours
        return np.asarray(image), 8
    if mode in ("LA", "PA"):
        return np.asarray(image.getchannel(0)), 8
    if mode in SIXTEEN_BIT_MODES:
        return np.asarray(image), 16
    if mode == "F":
        return np.asarray(image), 32
    if mode not in ("RGB", "RGBA"):
        image = image.convert("RGB")  # CMYK, YCbCr...: judged by their colours
    rgb = np.asarray(image)[:, :, :3]
    if not (
        np.array_equal(rgb[:, :, 0], rgb[:, :, 1]) and np.array_equal(rgb[:, :, 0], rgb[:, :, 2])
    ):
        raise UserError(
            "The mask is in colour (its red, green and blue differ), and colours cannot be "
            "read as classes without guessing; save the mask as a greyscale PNG whose values "
            "are class numbers.",
            code="mask_is_colour",
        )
    return rgb[:, :, 0], 8  # grey saved as colour: the same value in each channel


def to_class_indexes(raw: np.ndarray, segmentation: Segmentation, *, depth: int = 8) -> np.ndarray:
    """Pixel values into class indexes; UserError(mask_values_outside_label_map) otherwise.

    A binary map accepts 0/1, 0/255 (0/65535 in 16 bits) and booleans; a map of K classes
    accepts 0..K.
    """
    if raw.dtype == np.bool_:
        return raw.astype(np.uint8)
    values = _values(raw)
    allowed = set(range(segmentation.classes + 1))
    if values <= allowed:
        return raw.astype(np.uint8)
    top = BINARY_FOREGROUNDS.get(depth)
    if segmentation.binary and top is not None and values <= {0, top}:
        return (raw == top).astype(np.uint8)
    raise UserError(
        _outside_message(raw, values, segmentation, top),
        code="mask_values_outside_label_map",
    )


def _values(raw: np.ndarray) -> set[float]:
    if raw.dtype in (np.uint8, np.uint16):  # counting is much faster than sorting
        return {int(v) for v in np.flatnonzero(np.bincount(raw.ravel()))}
    return {v.item() for v in np.unique(raw)}


def _outside_message(
    raw: np.ndarray, values: set[float], segmentation: Segmentation, top: int | None
) -> str:
    allowed: set[float] = set(range(segmentation.classes + 1))
    if segmentation.binary and top is not None:
        # Judge a mask drawn in 0/255 by that convention, so 255 is not called wrong.
        allowed = {0, top} if top in values and 1 not in values else {0, 1}
        allowed_text = f"0 for background and either 1 or {top} for {segmentation.label_names[1]}"
    else:
        allowed_text = (
            f"0 to {segmentation.classes} ("
            + ", ".join(f"{i} = {name}" for i, name in enumerate(segmentation.label_names))
            + ")"
        )
    outside = sorted(values - allowed)
    count = f"{int(np.isin(raw, outside).sum()):,}" if len(outside) < 1024 else "many"
    return (
        f"The mask holds the values {_list(sorted(values))}, and {count} pixels hold values "
        f"outside this dataset's label map ({_list(outside)}); a mask may only hold "
        f"{allowed_text}. Save the mask without smoothing (no anti-aliasing; resize it with "
        "nearest neighbour) as a greyscale PNG whose values are class numbers."
    )


def _list(values: Sequence[float]) -> str:
    shown = ", ".join(f"{v:g}" for v in values[:SHOWN_VALUES])
    more = len(values) - SHOWN_VALUES
    return shown + (f" and {more} more" if more > 0 else "")


def check_mask_size(mask: np.ndarray, image: DecodedImage, image_name: str) -> None:
    height, width = mask.shape
    if (width, height) != (image.width, image.height):
        of = f"its image {image_name}" if image_name else "its image"
        raise UserError(
            f"The mask is {width} x {height} pixels but {of} is {image.width} x "
            f"{image.height} (width x height); a mask must have exactly its image's size. "
            "Export the mask from that image without resizing or cropping.",
            code="mask_size_mismatch",
        )


def merge_parts(parts: Sequence[tuple[str, np.ndarray]], segmentation: Segmentation) -> np.ndarray:
    """Several files of one reader as one mask: the union of their classes.

    Two files giving different classes to a pixel cannot be merged without guessing:
    UserError(mask_conflict) names both and counts the pixels.
    """
    merged = parts[0][1].copy()
    owner = np.zeros(merged.shape, np.int32)  # which file gave each pixel its class
    for index, (name, part) in enumerate(parts[1:], start=1):
        clash = (merged > 0) & (part > 0) & (merged != part)
        if clash.any():
            other = parts[int(np.bincount(owner[clash]).argmax())][0]
            raise UserError(
                f"{name} and {other} give different classes to the same {int(clash.sum()):,} "
                "pixels; the files of one reader are merged, so each pixel may have one class. "
                "Correct the files so they agree, or send them as different readers.",
                code="mask_conflict",
            )
        take = (part > 0) & (merged == 0)
        merged[take] = part[take]
        owner[take] = index
    return merged


# --- What a mask holds ------------------------------------------------------------------------


def mask_stats(mask: np.ndarray, label_names: Sequence[str]) -> MaskStats:
    """Counts per class and the 8-connected lesions of the foreground (any class)."""
    counts = np.bincount(mask.ravel(), minlength=len(label_names))
    foreground = mask > 0
    regions, components = ndimage.label(foreground, structure=EIGHT_CONNECTED)
    largest = int(np.bincount(regions.ravel())[1:].max()) if components else 0
    return MaskStats(
        empty=components == 0,
        foreground_fraction=round(float(foreground.mean()), 6),
        class_pixels={name: int(counts[i]) for i, name in enumerate(label_names) if i > 0},
        components=int(components),
        largest_component_px=largest,
    )


def dice(a: np.ndarray, b: np.ndarray) -> float:
    """Agreement of two masks of one image: the foreground's Dice for a binary map; for several
    classes, the mean Dice of the classes either mask holds. Two empty masks agree fully (1.0)."""
    classes = sorted((set(np.unique(a)) | set(np.unique(b))) - {0})
    if not classes:
        return 1.0
    scores = []
    for value in classes:
        in_a, in_b = a == value, b == value
        total = int(in_a.sum()) + int(in_b.sum())
        scores.append(2.0 * int((in_a & in_b).sum()) / total)
    return round(float(np.mean(scores)), 6)


def encode_mask(mask: np.ndarray) -> bytes:
    out = io.BytesIO()
    Image.fromarray(mask, mode="L").save(out, format="PNG", optimize=False, compress_level=6)
    return out.getvalue()


def overlay_thumbnail(image: DecodedImage, mask: np.ndarray, size: int = THUMBNAIL_SIZE) -> bytes:
    """A small PNG of the image with each class filled lightly and outlined in its colour."""
    preview = Image.fromarray(to_display_uint8(image.array)).convert("RGB")
    preview.thumbnail((size, size), Image.Resampling.LANCZOS, reducing_gap=3.0)
    small = np.asarray(Image.fromarray(mask).resize(preview.size, Image.Resampling.NEAREST))
    pixels = np.asarray(preview, dtype=np.float32).copy()
    for value in np.unique(small[small > 0]):
        colour = np.array(CLASS_COLOURS[(int(value) - 1) % len(CLASS_COLOURS)], np.float32)
        inside = small == value
        edge = inside & ~ndimage.binary_erosion(inside, structure=EIGHT_CONNECTED)
        pixels[inside] = pixels[inside] * (1 - FILL_OPACITY) + colour * FILL_OPACITY
        pixels[edge] = colour
    out = io.BytesIO()
    Image.fromarray(np.round(pixels).astype(np.uint8)).save(
        out, format="PNG", optimize=False, compress_level=1
    )
    return out.getvalue()


# --- One image's masks, from storage to verdicts ------------------------------------------------


def mask_keys(mask_prefix: str, image_key: str, item: MaskItem) -> tuple[str, str]:
    """Where the normalised mask and its overlay go: fixed by the image and the mask's files,
    so a retried ingest overwrites them, never piles up."""
    digest = hashlib.sha256("\n".join([image_key, *item.keys]).encode()).hexdigest()[:32]
    prefix = validate_prefix(mask_prefix)
    return posixpath.join(prefix, f"{digest}.png"), posixpath.join(prefix, f"{digest}-overlay.png")


@dataclass
class CheckedMask:
    """A verdict, and for an accepted mask its class indexes (for the readers' agreement)."""

    verdict: IngestedMask
    reader: str
    pixels: np.ndarray | None = None


def ingest_masks(
    storage: Storage,
    image: DecodedImage,
    items: Sequence[MaskItem],
    segmentation: Segmentation,
    *,
    image_key: str,
    image_name: str,
    mask_prefix: str,
    max_bytes: int = MAX_UPLOAD_BYTES,
    max_pixels: int = MAX_IMAGE_PIXELS,
) -> list[IngestedMask]:
    """Check, store and describe each reader's mask of an accepted image; one verdict per item,
    in order. Accepted masks other than the reference reader's carry their Dice against it."""
    checked = [
        _check_one(
            storage,
            image,
            item,
            segmentation,
            image_key=image_key,
            image_name=image_name,
            mask_prefix=mask_prefix,
            max_bytes=max_bytes,
            max_pixels=max_pixels,
        )
        for item in items
    ]
    return _with_agreement(checked, segmentation.reference_reader)


def _check_one(
    storage: Storage,
    image: DecodedImage,
    item: MaskItem,
    segmentation: Segmentation,
    *,
    image_key: str,
    image_name: str,
    mask_prefix: str,
    max_bytes: int,
    max_pixels: int,
) -> CheckedMask:
    parts: list[tuple[str, np.ndarray]] = []
    for index, key in enumerate(item.keys):
        name = item.filename(index)
        try:
            data = _fetch(storage, key, max_bytes)
            mask = read_mask(data, segmentation, max_bytes=max_bytes, max_pixels=max_pixels)
            check_mask_size(mask, image, image_name)
        except UserError as exc:
            return _refused(item, f"{name}: {exc.message}", exc.code)
        parts.append((name, mask))
    if not parts:
        return _refused(
            item, f"{image_name}: a mask was announced without any file.", "missing_file"
        )
    try:
        merged = merge_parts(parts, segmentation)
    except UserError as exc:
        return _refused(item, exc.message, exc.code)
    key, overlay_key = mask_keys(mask_prefix, image_key, item)
    encoded = encode_mask(merged)
    storage.put_bytes(key, encoded, content_type="image/png")
    storage.put_bytes(overlay_key, overlay_thumbnail(image, merged), content_type="image/png")
    verdict = IngestedMask(
        mask_id=item.mask_id,
        status="accepted",
        sha256=hashlib.sha256(encoded).hexdigest(),
        size_bytes=len(encoded),
        key=key,
        thumbnail_key=overlay_key,
        stats=mask_stats(merged, segmentation.label_names),
    )
    return CheckedMask(verdict, item.reader, merged)


def _fetch(storage: Storage, key: str, max_bytes: int) -> bytes:
    try:
        check_size(storage.size(key), max_bytes=max_bytes)  # before downloading anything
        return storage.get_bytes(key)
    except ObjectNotFound as exc:
        raise UserError(
            "The file was not found; the upload may not have finished. Upload it again.",
            code="missing_file",
        ) from exc


def _refused(item: MaskItem, reason: str, code: str) -> CheckedMask:
    verdict = IngestedMask(mask_id=item.mask_id, status="rejected", code=code, reason=reason)
    return CheckedMask(verdict, item.reader)


def _with_agreement(checked: list[CheckedMask], reference_reader: str) -> list[IngestedMask]:
    """The reference is the named reader's mask when this image has one, else the first mask."""
    accepted = [c for c in checked if c.pixels is not None]
    if len(accepted) < 2:
        return [c.verdict for c in checked]
    reference = next((c for c in accepted if c.reader == reference_reader), accepted[0])
    assert reference.pixels is not None
    out = []
    for c in checked:
        if c.pixels is not None and c is not reference:
            score = dice(c.pixels, reference.pixels)
            out.append(dataclasses.replace(c.verdict, agreement_dice=score))
        else:
            out.append(c.verdict)
    return out


def not_checked(items: Sequence[MaskItem], image_name: str) -> list[IngestedMask]:
    """Verdicts for the masks of an image that was not accepted: they are not kept."""
    image = f"its image {image_name}" if image_name else "its image"
    return [
        IngestedMask(
            mask_id=item.mask_id,
            status="rejected",
            code="image_rejected",
            reason=f"{item.filename(0)}: not kept, because {image} was rejected (see the "
            "image's reason).",
        )
        for item in items
    ]
