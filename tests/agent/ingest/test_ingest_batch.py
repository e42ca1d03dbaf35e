"""ingest_one / ingest_batch: per-file verdicts; one bad file never stops the rest."""

from __future__ import annotations

import io

import numpy as np
from ingest_images import dicom, jpeg, noise, png, png_claiming
from PIL import Image

from pollen_agent.ingest.ingest import find_duplicates, ingest_batch, ingest_one

THUMBS = "ds/1/thumbs"


def test_accepted_png_has_metadata_and_a_thumbnail(store):
    data = png(noise((300, 200, 3)))
    store.put_bytes("ds/1/cats/a.png", data)
    result = ingest_one(store, "ds/1/cats/a.png", thumbnail_prefix=THUMBS, image_id=7)
    assert result["status"] == "accepted", result
    assert (result["width"], result["height"], result["channels"]) == (200, 300, 3)
    assert result["size_bytes"] == len(data) and len(result["sha256"]) == 64
    assert result["image_id"] == 7 and result["modality"] == "OT"
    assert result["thumbnail_key"].startswith(THUMBS + "/")
    with Image.open(io.BytesIO(store.get_bytes(result["thumbnail_key"]))) as thumb:
        assert max(thumb.size) == 256


def test_retried_ingest_reuses_the_same_thumbnail(store):
    store.put_bytes("a.png", png(noise((8, 8))))
    first = ingest_one(store, "a.png", thumbnail_prefix=THUMBS)
    again = ingest_one(store, "a.png", thumbnail_prefix=THUMBS)
    assert first == again
    assert len(list(store.list(THUMBS))) == 1


def test_bad_files_are_rejected_one_by_one_and_the_batch_completes(store):
    good = png(noise((16, 16)))
    files = {
        1: ("empty.png", b""),
        2: ("truncated.png", png(noise((64, 64)))[:300]),
        3: ("truncated.jpg", jpeg(noise((64, 64, 3)))[:400]),
        4: ("notes.png", b"this is text, not an image"),
        5: ("bomb.png", png_claiming(100_000, 100_000)),
        6: ("report.dcm", dicom(None)),
        7: ("good.png", good),
        8: ("copy-of-good.png", good),
        9: ("huge.png", png(noise((64, 64)))),
        10: ("ct.dcm", dicom(np.full((4, 4), 1064, np.uint16))),
        11: ("photo.jpg", jpeg(noise((10, 12, 3)))),
    }
    for name, data in files.values():
        store.put_bytes(f"ds/1/up/{name}", data)
    store.put_bytes("ds/1/up/huge.png", b"\x89PNG" + b"\0" * 5000)
    items = {image_id: f"ds/1/up/{name}" for image_id, (name, _) in files.items()}
    items[12] = "ds/1/up/never-uploaded.png"
    names = {image_id: name for image_id, (name, _) in files.items()}
    results = ingest_batch(store, items, thumbnail_prefix=THUMBS, max_bytes=4096, names=names)
    by_id = {r["image_id"]: r for r in results}
    assert [r["image_id"] for r in results] == list(items)

    def reason(image_id):
        assert by_id[image_id]["status"] == "rejected", by_id[image_id]
        return by_id[image_id]["reason"]

    assert "empty" in reason(1)
    assert "damaged or incomplete" in reason(2) and reason(2).startswith("truncated.png:")
    assert "damaged or incomplete" in reason(3)
    assert "not a PNG, JPEG, TIFF or DICOM" in reason(4)
    assert "100,000 x 100,000 pixels" in reason(5)
    assert "no pixel data" in reason(6)
    assert by_id[7]["status"] == "accepted"
    assert "identical to good.png" in reason(8)
    assert "over the" in reason(9) and "limit" in reason(9)
    assert by_id[10]["status"] == "accepted" and by_id[10]["modality"] == "CT"
    assert by_id[11]["status"] == "accepted" and by_id[11]["channels"] == 3
    assert "not found" in reason(12)
    # Thumbnails only for accepted files; the duplicate's was removed.
    assert len(list(store.list(THUMBS))) == 3


def test_duplicate_of_a_file_already_in_the_dataset(store):
    data = png(noise((8, 8), seed=3))
    store.put_bytes("b.png", data)
    import hashlib

    known = {hashlib.sha256(data).hexdigest(): "earlier.png"}
    [result] = ingest_batch(store, [(5, "b.png")], thumbnail_prefix=THUMBS, known_sha256=known)
    assert result["status"] == "rejected" and "identical to earlier.png" in result["reason"]


def test_find_duplicates_groups_by_checksum():
    results = [
        {"image_id": 1, "status": "accepted", "sha256": "aa"},
        {"image_id": 2, "status": "accepted", "sha256": "bb"},
        {"image_id": 3, "status": "rejected", "sha256": "aa"},
        {"image_id": 4, "status": "rejected", "reason": "empty"},
    ]
    assert find_duplicates(results) == {"aa": [1, 3]}


def test_a_file_whose_stored_size_is_not_the_declared_one_is_rejected_before_download(store):
    data = png(noise((8, 8)))
    store.put_bytes("short.png", data)
    store.put_bytes("exact.png", png(noise((9, 9))))
    exact_size = store.size("exact.png")
    results = ingest_batch(
        store,
        [(1, "short.png"), (2, "exact.png")],
        thumbnail_prefix=THUMBS,
        names={1: "Left breast.png", 2: "Right breast.png"},
        declared_sizes={1: len(data) + 100, 2: exact_size},
    )
    short, exact = results
    assert exact["status"] == "accepted", exact
    assert short["status"] == "rejected" and short["code"] == "size_mismatch"
    assert short["reason"].startswith("Left breast.png: ")
    assert f"{len(data)} bytes" in short["reason"] and f"{len(data) + 100} bytes" in short["reason"]
