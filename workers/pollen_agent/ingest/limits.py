"""Size and pixel limits, checked before any pixel is decoded.

A 40 KB PNG can claim 100,000 x 100,000 pixels and ask the decoder for 30 GB.
So the dimensions come from the header first, and Pillow's own decompression
bomb guard stays on as a second line.
"""

from __future__ import annotations

import struct
import warnings

from PIL import Image

from pollen_agent.errors import UserError
from pollen_contracts.limits import MAX_IMAGE_PIXELS, MAX_UPLOAD_BYTES

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def _mib(n: int) -> str:
    return f"{n / (1024 * 1024):.0f} MB"


def check_size(size: int, *, max_bytes: int = MAX_UPLOAD_BYTES) -> None:
    if size == 0:
        raise UserError("The file is empty (0 bytes); upload it again.", code="empty_file")
    if size > max_bytes:
        raise UserError(
            f"The file is {_mib(size)}, over the {_mib(max_bytes)} limit; "
            "export it at a lower resolution or split it.",
            code="file_too_large",
        )


def check_dimensions(
    width: int, height: int, *, frames: int = 1, max_pixels: int = MAX_IMAGE_PIXELS
) -> None:
    if width <= 0 or height <= 0 or frames <= 0:
        raise UserError("The image has no pixels (zero width or height).", code="no_pixels")
    if width * height * frames > max_pixels:
        raise UserError(
            f"The image is {width:,} x {height:,} pixels"
            + (f" x {frames} frames" if frames > 1 else "")
            + f", over the limit of {max_pixels:,} pixels; downsample it before uploading.",
            code="too_many_pixels",
        )


def png_header_size(data: bytes) -> tuple[int, int]:
    """Width and height from a PNG's IHDR chunk, without any decoder."""
    if len(data) < 24 or data[12:16] != b"IHDR":
        raise UserError("The PNG file is damaged: its header is missing.", code="corrupt_image")
    width, height = struct.unpack(">II", data[16:24])
    return width, height


def enable_pillow_bomb_protection(max_pixels: int = MAX_IMAGE_PIXELS) -> None:
    """Keep Pillow's guard on at our limit, and make its warning an error.

    Pillow raises above twice MAX_IMAGE_PIXELS and only warns above it.
    """
    Image.MAX_IMAGE_PIXELS = max_pixels
    warnings.simplefilter("error", Image.DecompressionBombWarning)
