"""Decoding: formats from magic bytes, limits before pixels, DICOM windowing."""

from __future__ import annotations

import io
import tracemalloc

import numpy as np
import pytest
import tifffile
from ingest_images import dicom, jpeg, noise, png, png_claiming

from pollen_agent.errors import UserError
from pollen_agent.ingest.decode import decode_image, sniff_format
from pollen_agent.ingest.thumbnail import make_thumbnail


def test_grey_png():
    image = decode_image(png(noise((20, 30))), "x.png")
    assert (image.width, image.height, image.channels, image.format) == (30, 20, 1, "png")
    assert image.array.dtype == np.uint8 and image.modality == "OT"


def test_rgb_png_and_rgba_drops_alpha():
    rgb = noise((8, 9, 3))
    assert np.array_equal(decode_image(png(rgb), "c.png").array, rgb)
    rgba = decode_image(png(noise((8, 9, 4))), "a.png")
    assert rgba.channels == 3


def test_jpeg_detected_by_content_not_name():
    image = decode_image(jpeg(noise((16, 16, 3))), "scan.png")
    assert (image.format, image.channels, image.width) == ("jpeg", 3, 16)


def test_16bit_tiff_keeps_its_depth():
    array = np.arange(64 * 48, dtype=np.uint16).reshape(48, 64) * 20
    out = io.BytesIO()
    tifffile.imwrite(out, array)
    image = decode_image(out.getvalue(), "slide.tif")
    assert image.format == "tiff" and image.array.dtype == np.uint16
    assert np.array_equal(image.array, array)
    assert image.metadata["bit_depth"] == 16
    assert len(make_thumbnail(image)) > 0


def test_dicom_16bit_applies_rescale_then_window():
    # Stored values + intercept -1024 give HU; window 40/400 spans -160..240 HU.
    stored = np.array([[0, 1024 - 160, 1024 + 40], [1024 + 240, 2000, 4095]], dtype=np.uint16)
    image = decode_image(dicom(stored), "ct.dcm")
    assert image.format == "dicom" and image.modality == "CT"
    assert image.array.dtype == np.uint8
    assert image.array[0, 0] == 0 and image.array[0, 1] == 0
    assert 126 <= image.array[0, 2] <= 129
    assert image.array[1, 0] >= 254 and image.array[1, 1] == 255 and image.array[1, 2] == 255
    assert image.metadata["bit_depth"] == 12 and image.metadata["bits_allocated"] == 16
    assert image.metadata["raw_min"] == -1024 and image.metadata["raw_max"] == 3071
    assert image.metadata["window_center"] == 40


def test_dicom_monochrome1_is_inverted():
    stored = np.array([[0, 4095]], dtype=np.uint16)
    normal = decode_image(dicom(stored, center=None), "a.dcm").array
    inverted = decode_image(dicom(stored, center=None, photometric="MONOCHROME1"), "b.dcm").array
    assert normal.tolist() == [[0, 255]] and inverted.tolist() == [[255, 0]]


def test_dicom_without_window_uses_full_range():
    stored = np.array([[100, 200], [300, 400]], dtype=np.uint16)
    assert decode_image(dicom(stored, center=None), "a.dcm").array.tolist() == [[0, 85], [170, 255]]


@pytest.mark.parametrize(
    ("data", "code", "words"),
    [
        (b"", "empty_file", "empty"),
        (b"hello, I am a text file\n", "unsupported_format", "not a PNG, JPEG, TIFF or DICOM"),
        (png(noise((64, 64)))[:300], "corrupt_image", "damaged or incomplete"),
        (jpeg(noise((64, 64, 3)))[:400], "corrupt_image", "damaged or incomplete"),
        (png_claiming(100_000, 100_000), "too_many_pixels", "100,000 x 100,000"),
        (dicom(None), "no_pixel_data", "no pixel data"),
    ],
    ids=[
        "empty",
        "text-named-png",
        "truncated-png",
        "truncated-jpeg",
        "png-bomb",
        "dicom-no-pixels",
    ],
)
def test_bad_input_is_a_user_error_with_a_reason(data, code, words):
    with pytest.raises(UserError, match=words) as exc:
        decode_image(data, "upload.png")
    assert exc.value.code == code


def test_png_bomb_is_rejected_without_allocating():
    data = png_claiming(100_000, 100_000)
    tracemalloc.start()
    with pytest.raises(UserError):
        decode_image(data, "bomb.png")
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert peak < 5 * 1024 * 1024


def test_file_over_the_size_limit():
    with pytest.raises(UserError, match="over the") as exc:
        decode_image(png(noise((32, 32))), "big.png", max_bytes=100)
    assert exc.value.code == "file_too_large"


def test_sniff_format():
    assert sniff_format(b"II*\x00rest") == "tiff"
    assert sniff_format(b"\x00" * 128 + b"DICM") == "dicom"
    assert sniff_format(b"GIF89a") is None


def test_thumbnail_is_a_small_png():
    from PIL import Image

    thumb = make_thumbnail(decode_image(png(noise((600, 300))), "x.png"))
    with Image.open(io.BytesIO(thumb)) as im:
        assert im.format == "PNG" and im.size == (128, 256)
