"""Decode PNG, JPEG, TIFF and DICOM bytes into a numpy array.

The format comes from the file's magic bytes, never its name. Every failure
is a UserError whose message a clinician can act on; limits are checked from
the header before pixels are decoded.
"""

from __future__ import annotations

import io
import re
import struct
import warnings
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from PIL import Image

from pollen_agent.errors import UserError
from pollen_agent.ingest.limits import (
    PNG_SIGNATURE,
    check_dimensions,
    check_size,
    enable_pillow_bomb_protection,
    png_header_size,
)
from pollen_agent.intensity import scale_to_uint8
from pollen_contracts.limits import MAX_IMAGE_PIXELS, MAX_UPLOAD_BYTES

NON_DICOM_MODALITY = "OT"  # DICOM's code for "other"
# The groups a DICOM file without its preamble starts with: the file meta information, or,
# when a PACS exports the bare dataset, the identifying group (SOP class, study date...).
BARE_DICOM_FIRST_GROUPS = (0x0002, 0x0008)
# A Python object's repr in an exception ("<_io.BytesIO object at 0x7f...>") means nothing
# to a clinician; decoders put one in when they cannot identify a stream.
OBJECT_REPR = re.compile(r"\s*<[^<>]*\bat 0x[0-9a-fA-F]+>")

enable_pillow_bomb_protection()


@dataclass
class DecodedImage:
    """Pixels as uint8 or uint16, shape (H, W) or (H, W, 3)."""

    array: np.ndarray
    width: int
    height: int
    channels: int
    modality: str
    format: str
    metadata: dict[str, Any] = field(default_factory=dict)


def sniff_format(data: bytes) -> str | None:
    if data.startswith(PNG_SIGNATURE):
        return "png"
    if data.startswith(b"\xff\xd8\xff"):
        return "jpeg"
    if data[:4] in (b"II*\x00", b"MM\x00*", b"II+\x00", b"MM\x00+"):
        return "tiff"
    if data[128:132] == b"DICM" or _looks_like_bare_dicom(data):
        return "dicom"
    return None


def _looks_like_bare_dicom(data: bytes) -> bool:
    """A DICOM file without the 128-byte preamble and 'DICM', as many PACS exports are.

    Only a hint: such a file is accepted only once pydicom has parsed it and found pixels.
    """
    if len(data) < 8:
        return False
    group, _element = struct.unpack("<HH", data[:4])
    return group in BARE_DICOM_FIRST_GROUPS


def decode_image(
    data: bytes,
    filename: str = "",
    *,
    max_bytes: int = MAX_UPLOAD_BYTES,
    max_pixels: int = MAX_IMAGE_PIXELS,
) -> DecodedImage:
    """Decode one image file; raise UserError saying why it cannot be used.

    Messages say "the file" and never its name: the caller puts the name the user knows
    in front (``filename`` is not used for that, and only kept for older callers).
    """
    check_size(len(data), max_bytes=max_bytes)
    fmt = sniff_format(data)
    if fmt is None:
        raise _not_an_image()
    decoder = {"png": _decode_pillow, "jpeg": _decode_pillow, "tiff": _decode_tiff}.get(
        fmt, _decode_dicom
    )
    try:
        return decoder(data, fmt, max_pixels)
    except UserError:
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise UserError(
            f"The image is too large to open safely ({exc}).", code="too_many_pixels"
        ) from exc
    except MemoryError as exc:
        raise UserError(
            "The image is too large to decode on this agent.", code="too_large"
        ) from exc
    except Exception as exc:
        # Decoders fail in many ways on damaged files; none of them may stop a batch.
        raise UserError(
            f"The {fmt.upper()} file is damaged or incomplete and cannot be read ({_short(exc)}).",
            code="corrupt_image",
        ) from exc


def _not_an_image() -> UserError:
    return UserError(
        "The file is not a PNG, JPEG, TIFF or DICOM image "
        "(its content does not match any of them, whatever its name says).",
        code="unsupported_format",
    )


def _short(exc: Exception) -> str:
    text = OBJECT_REPR.sub("", str(exc)).strip() or type(exc).__name__
    return text if len(text) <= 160 else text[:157] + "..."


# PNG and JPEG ----------------------------------------------------------------


def open_pillow(data: bytes, fmt: str, max_pixels: int) -> Image.Image:
    """A PNG, JPEG or TIFF loaded by Pillow once its dimensions are known to be within limits
    (a PNG's from its header, before Pillow reads anything)."""
    if fmt == "png":
        check_dimensions(*png_header_size(data), max_pixels=max_pixels)
    with warnings.catch_warnings():
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        image = Image.open(io.BytesIO(data), formats=[fmt.upper()])
        check_dimensions(*image.size, max_pixels=max_pixels)
        image.load()
    return image


def _decode_pillow(data: bytes, fmt: str, max_pixels: int) -> DecodedImage:
    image = open_pillow(data, fmt, max_pixels)
    mode = image.mode
    bit_depth = 16 if mode in ("I;16", "I;16B", "I;16L", "I") else 8
    if bit_depth == 16:
        array = _to_uint16(np.asarray(image))
    else:
        target = "L" if mode in ("1", "L", "LA", "I;8") else "RGB"
        if mode == "P":
            target = "RGBA" if "transparency" in image.info else "RGB"
        array = np.asarray(image.convert(target))
        if array.ndim == 3 and array.shape[2] == 4:
            array = array[:, :, :3]
    return _result(array, fmt, {"mode": mode, "bit_depth": bit_depth})


# TIFF ------------------------------------------------------------------------


def _decode_tiff(data: bytes, fmt: str, max_pixels: int) -> DecodedImage:
    import tifffile

    with tifffile.TiffFile(io.BytesIO(data)) as tif:
        page = tif.pages[0]
        axes, shape = page.axes, page.shape
        sizes = dict(zip(axes, shape, strict=True))
        check_dimensions(sizes.get("X", 0), sizes.get("Y", 0), max_pixels=max_pixels)
        array = page.asarray()
        pages = len(tif.pages)
    if "S" in axes and axes.index("S") < axes.index("Y"):
        array = np.moveaxis(array, axes.index("S"), -1)
    array = np.squeeze(array)
    if array.ndim == 3:
        samples = array.shape[2]
        array = array[:, :, 0] if samples < 3 else array[:, :, :3]
    if array.ndim != 2 and not (array.ndim == 3 and array.shape[2] == 3):
        raise UserError(f"The TIFF has an unsupported layout ({axes}).", code="unsupported_format")
    bit_depth = array.dtype.itemsize * 8
    if array.dtype != np.uint8:
        array = _to_uint16(array)
    meta = {"bit_depth": bit_depth, "sample_dtype": str(page.dtype), "pages": pages}
    return _result(array, fmt, meta)


def _to_uint16(array: np.ndarray) -> np.ndarray:
    """Keep uint16 as is; rescale any other numeric type into the uint16 range."""
    if array.dtype == np.uint16:
        return array
    if array.dtype == bool or array.dtype == np.uint8:
        return array.astype(np.uint16) * (65535 if array.dtype == bool else 257)
    values = array.astype(np.float64)
    low, high = np.nanmin(values), np.nanmax(values)
    if not np.isfinite(low) or not np.isfinite(high) or high <= low:
        return np.zeros(array.shape, np.uint16)
    return np.round((values - low) / (high - low) * 65535).astype(np.uint16)


# DICOM -----------------------------------------------------------------------


def _decode_dicom(data: bytes, fmt: str, max_pixels: int) -> DecodedImage:
    from pydicom.pixels import apply_modality_lut, apply_voi_lut

    ds = _read_dicom(data)
    if "PixelData" not in ds and "FloatPixelData" not in ds:
        raise UserError(
            "The DICOM file holds no image (no pixel data): it may be a report or "
            "a presentation state. Export the image series instead.",
            code="no_pixel_data",
        )
    rows, cols = int(ds.get("Rows", 0) or 0), int(ds.get("Columns", 0) or 0)
    frames = int(ds.get("NumberOfFrames", 1) or 1)
    check_dimensions(cols, rows, frames=frames, max_pixels=max_pixels)
    try:
        pixels = ds.pixel_array
    except (NotImplementedError, RuntimeError) as exc:
        syntax = getattr(ds.file_meta, "TransferSyntaxUID", None)
        name = getattr(syntax, "name", str(syntax))
        raise UserError(
            f"This agent cannot decompress DICOM encoded as {name}; "
            "export it uncompressed (Explicit VR Little Endian).",
            code="unsupported_format",
        ) from exc
    if frames > 1:
        pixels = pixels[0]
    samples = int(ds.get("SamplesPerPixel", 1) or 1)
    photometric = str(ds.get("PhotometricInterpretation", "MONOCHROME2"))
    meta: dict[str, Any] = {
        "bit_depth": int(ds.get("BitsStored", ds.get("BitsAllocated", 8)) or 8),
        "bits_allocated": int(ds.get("BitsAllocated", 8) or 8),
        "photometric": photometric,
        "frames": frames,
        "rescale_slope": float(ds.get("RescaleSlope", 1) or 1),
        "rescale_intercept": float(ds.get("RescaleIntercept", 0) or 0),
    }
    if samples == 3:
        array = scale_to_uint8(pixels.astype(np.float64), *_range(pixels))
        return _result(array, fmt, meta, modality=_modality(ds))
    # Rescale first: window centre and width are in the rescaled units (e.g. HU).
    values = np.asarray(apply_modality_lut(pixels, ds), dtype=np.float64)
    meta["raw_min"], meta["raw_max"] = _range(values)
    center, width = _first(ds, "WindowCenter"), _first(ds, "WindowWidth")
    if center is not None and width is not None and width >= 1:
        meta["window_center"], meta["window_width"] = center, width
        array = _window(values, center, width)
    elif "VOILUTSequence" in ds:
        lut = np.asarray(apply_voi_lut(pixels, ds, index=0), dtype=np.float64)
        array = scale_to_uint8(lut, *_range(lut))
    else:
        array = scale_to_uint8(values, *_range(values))
    if photometric == "MONOCHROME1":
        array = 255 - array
    return _result(array, fmt, meta, modality=_modality(ds))


def _read_dicom(data: bytes) -> Any:
    """The dataset, with or without the 128-byte preamble and 'DICM' prefix.

    Without them pydicom must be forced, and forced it reads almost any bytes as a few
    nonsense elements; so a bare file counts as DICOM only when what it parsed is a
    DICOM dataset (it names an image type or a modality, or holds pixel data).
    """
    import pydicom
    from pydicom.uid import ExplicitVRBigEndian, ExplicitVRLittleEndian, ImplicitVRLittleEndian

    if data[128:132] == b"DICM":
        return pydicom.dcmread(io.BytesIO(data))
    try:
        ds = pydicom.dcmread(io.BytesIO(data), force=True)
    except Exception as exc:
        raise _not_an_image() from exc
    if not any(name in ds for name in ("PixelData", "FloatPixelData", "SOPClassUID", "Modality")):
        raise _not_an_image()
    if "TransferSyntaxUID" not in ds.file_meta:
        # A bare dataset has no file meta: how pydicom read it is the transfer syntax.
        implicit, little = ds.original_encoding
        ds.file_meta.TransferSyntaxUID = (
            ImplicitVRLittleEndian
            if implicit
            else ExplicitVRLittleEndian
            if little
            else ExplicitVRBigEndian
        )
    return ds


def _first(ds: Any, name: str) -> float | None:
    value = ds.get(name)
    if value is None or value == "":
        return None
    if hasattr(value, "__len__") and not isinstance(value, str):
        value = value[0]
    return float(value)


def _window(values: np.ndarray, center: float, width: float) -> np.ndarray:
    """DICOM's linear VOI window (PS3.3 C.11.2.1.2) into 0..255."""
    if width <= 1:
        return np.where(values > center - 0.5, 255, 0).astype(np.uint8)
    scaled = ((values - (center - 0.5)) / (width - 1) + 0.5) * 255.0
    return np.round(np.clip(scaled, 0, 255)).astype(np.uint8)


def _range(values: np.ndarray) -> tuple[float, float]:
    return float(np.min(values)), float(np.max(values))


def _modality(ds: Any) -> str:
    return str(ds.get("Modality", "") or NON_DICOM_MODALITY)


def _result(
    array: np.ndarray, fmt: str, meta: dict[str, Any], *, modality: str = NON_DICOM_MODALITY
) -> DecodedImage:
    height, width = array.shape[:2]
    channels = 1 if array.ndim == 2 else array.shape[2]
    return DecodedImage(array, width, height, channels, modality, fmt, meta)
