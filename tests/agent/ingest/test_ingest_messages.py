"""Rejection reasons name the user's own file, once, in words (issue 16, item 13).

Uploads are stored under generated keys (``datasets/<id>/images/<uuid>.png``); the user
knows the file by the name it had on their computer. No reason may show the key, a Python
repr such as ``<_io.BytesIO object at 0x...>``, or a name twice. DICOM files exported from
a PACS without the 128-byte preamble are read when the dataset itself parses.
"""

from __future__ import annotations

import io
import re
import zipfile

import numpy as np
import pytest
from ingest_images import dicom, jpeg, noise, png, png_claiming

from pollen_agent.errors import UserError
from pollen_agent.ingest.archive import extract_zip
from pollen_agent.ingest.decode import decode_image, sniff_format
from pollen_agent.ingest.ingest import ingest_batch

THUMBS = "datasets/1/thumbnails"
REPR = re.compile(r"<[^<>]* at 0x[0-9a-fA-F]+>|_io\.|BytesIO")


def _key(i: int) -> str:
    return f"datasets/1/images/{i:032x}.png"


def _bare_dicom(pixels: np.ndarray | None, *, keep_meta: bool = False) -> bytes:
    """A DICOM file as many PACS export it: no 128-byte preamble and no 'DICM'; without
    ``keep_meta`` also no file meta group, just the dataset (implicit VR little endian)."""
    import pydicom
    from pydicom.dataset import FileMetaDataset
    from pydicom.filewriter import dcmwrite

    ds = pydicom.dcmread(io.BytesIO(dicom(pixels)))
    ds.preamble = None
    out = io.BytesIO()
    if keep_meta:
        dcmwrite(out, ds, write_like_original=True)
    else:
        ds.file_meta = FileMetaDataset()
        dcmwrite(out, ds, implicit_vr=True, little_endian=True)
    data = out.getvalue()
    assert data[128:132] != b"DICM" and not data.startswith(b"DICM")
    return data


def test_each_reason_names_the_users_file_once_and_never_the_storage_key(store):
    good = png(noise((16, 16)))
    files = {
        1: ("Chest X-ray (left).png", b""),
        2: ("scan 2.png", png(noise((64, 64)))[:300]),
        3: ("notes.png", b"this is text, not an image"),
        4: ("bomb.png", png_claiming(100_000, 100_000)),
        5: ("report.dcm", dicom(None)),
        6: ("first.png", good),
        7: ("second copy.png", good),
        8: ("photo.jpg", b"\xff\xd8\xff" + b"not really a jpeg" * 20),
    }
    for image_id, (_, data) in files.items():
        store.put_bytes(_key(image_id), data)
    items = [(image_id, _key(image_id)) for image_id in files] + [(9, _key(9))]
    names = {image_id: name for image_id, (name, _) in files.items()} | {9: "never sent.png"}
    results = ingest_batch(store, items, thumbnail_prefix=THUMBS, names=names)
    rejected = {r["image_id"]: r["reason"] for r in results if r["status"] == "rejected"}
    assert set(rejected) == {1, 2, 3, 4, 5, 7, 8, 9}
    for image_id, reason in rejected.items():
        assert reason.startswith(f"{names[image_id]}: "), reason
        assert reason.count(names[image_id]) == 1, reason
        assert f"{image_id:032x}" not in reason and "datasets/" not in reason, reason
        assert not REPR.search(reason), reason
    assert "identical to first.png" in rejected[7]


def test_a_damaged_file_is_explained_without_a_python_repr():
    for data in (b"\xff\xd8\xff" + b"\x00" * 50, b"\x89PNG\r\n\x1a\n" + b"\x00" * 50):
        with pytest.raises(UserError) as raised:
            decode_image(data, "x.jpg")
        assert not REPR.search(raised.value.message), raised.value.message
        assert "damaged" in raised.value.message


def test_a_reason_without_a_known_name_does_not_fall_back_to_the_key(store):
    store.put_bytes(_key(1), b"this is text, not an image")
    [result] = ingest_batch(store, [(1, _key(1))], thumbnail_prefix=THUMBS)
    assert result["reason"].startswith("The file is not a PNG, JPEG, TIFF or DICOM image")
    assert f"{1:032x}" not in result["reason"]


@pytest.mark.parametrize("keep_meta", [False, True], ids=["dataset-only", "meta-no-preamble"])
def test_dicom_without_the_preamble_is_read(keep_meta):
    stored = np.array([[0, 1000], [2000, 3000]], np.uint16)
    bare = _bare_dicom(stored, keep_meta=keep_meta)
    assert sniff_format(bare) == "dicom"
    image = decode_image(bare, "export.dcm")
    assert image.format == "dicom" and image.modality == "CT"
    assert np.array_equal(image.array, decode_image(dicom(stored), "full.dcm").array)


def test_a_preambleless_dicom_is_accepted_by_ingest(store):
    store.put_bytes(_key(1), _bare_dicom(np.full((8, 8), 1064, np.uint16)))
    [result] = ingest_batch(store, [(1, _key(1))], thumbnail_prefix=THUMBS, names={1: "ct.dcm"})
    assert result["status"] == "accepted", result
    assert (result["width"], result["height"], result["modality"]) == (8, 8, "CT")


def test_a_preambleless_dicom_without_pixels_is_rejected_with_a_reason():
    with pytest.raises(UserError) as raised:
        decode_image(_bare_dicom(None), "report.dcm")
    assert raised.value.code == "no_pixel_data"
    assert "no pixel data" in raised.value.message


def test_bytes_that_only_look_like_a_headerless_dicom_are_not_an_image():
    fake = b"\x08\x00\x05\x00" + bytes(range(256)) * 4
    with pytest.raises(UserError) as raised:
        decode_image(fake, "odd.bin")
    assert raised.value.code == "unsupported_format"
    assert "not a PNG, JPEG, TIFF or DICOM image" in raised.value.message


def test_a_zip_entry_whose_name_is_too_long_is_refused_stating_the_limit(store):
    long_name = "a" * 252 + ".png"  # 256 characters
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as zf:
        zf.writestr(f"cats/{long_name}", jpeg(noise((8, 8, 3))))
        zf.writestr("cats/short.png", png(noise((8, 8))))
    result = extract_zip(store, buffer.getvalue(), dest_prefix="datasets/1/archive")
    assert [e.name for e in result.entries] == ["cats/short.png"]
    [(name, reason)] = result.rejected
    assert name == f"cats/{long_name}"
    assert "255 characters" in reason
