"""A segmentation zip end to end through the io tasks: extract_archive pairs images with their
masks, the (fake) hub answers with ids as the real one does, and ingest_images checks both."""

from __future__ import annotations

import io
import zipfile
from typing import Any

import numpy as np
from ingest_images import noise, png
from PIL import Image

from pollen_agent import runtime
from pollen_agent.tasks.io import extract_archive
from pollen_contracts.reports import ArchiveResult, IngestResults

SEGMENTATION = {"label_names": ["background", "lesion"], "masks_required": True}


class FakeHub:
    """Records posts; answers an archive's result with image and mask ids, as the hub does."""

    def __init__(self) -> None:
        self.posts: list[tuple[str, Any]] = []
        self.ids = iter(range(100, 10_000))

    def post(self, path: str, payload: Any = None) -> Any:
        self.posts.append((path, payload))
        if path.endswith("/result/"):
            result = ArchiveResult.from_dict(payload)  # what the hub's serializer checks
            return {"images": [self._image_row(entry) for entry in result.entries]}
        results = IngestResults.from_dict(payload).results
        return {
            "accepted": sum(r.status == "accepted" for r in results),
            "rejected": sum(r.status == "rejected" for r in results),
        }

    def _image_row(self, entry: Any) -> dict[str, Any]:
        masks = [
            {
                "mask_id": next(self.ids),
                "keys": mask.keys,
                "filenames": [name.split("/")[-1] for name in mask.names],
                "reader": mask.reader,
            }
            for mask in entry.masks or []
        ]
        return {
            "image_id": next(self.ids),
            "key": entry.key,
            "filename": entry.name.split("/")[-1],
            "masks": masks,
        }


def _lesion(shape=(24, 32)) -> bytes:
    mask = np.zeros(shape, np.uint8)
    mask[4:10, 6:14] = 255
    return png(mask)


def test_a_segmentation_zip_is_paired_checked_and_reported(store, monkeypatch):
    hub = FakeHub()
    monkeypatch.setattr(runtime, "storage_for", lambda slug: store)
    monkeypatch.setattr(runtime, "hub_for", lambda slug: hub)
    entries = {
        "study/benign/images/case (1).png": png(noise((24, 32), seed=1)),
        "study/benign/masks/case (1)_mask.png": _lesion(),
        "study/benign/masks/case (1)_mask_1.png": png(np.zeros((24, 32), np.uint8)),
        "study/benign/images/case (2).png": png(noise((24, 32), seed=2)),
        "study/benign/masks/case (2)_mask.png": _lesion(shape=(12, 16)),
        "study/normal/images/case [3].png": png(noise((24, 32), seed=3)),
        "study/normal/masks/case [4]_mask.png": _lesion(),
    }
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as zf:
        for name, data in entries.items():
            zf.writestr(name, data)
    store.put_bytes("datasets/3/archives/a.zip", out.getvalue())
    summary = extract_archive.apply(
        kwargs={
            "payload": {
                "site": "site-a",
                "dataset_id": 3,
                "archive_id": 9,
                "key": "datasets/3/archives/a.zip",
                "dest_prefix": "datasets/3/images/zip-9",
                "thumbnail_prefix": "datasets/3/thumbnails/",
                "segmentation": SEGMENTATION,
                "mask_prefix": "datasets/3/masks/",
            }
        }
    ).get()
    assert summary == {"images": 3, "rejected": 1}
    (_, archive), (ingest_path, ingest) = hub.posts
    assert [r["name"] for r in archive["rejected"]] == ["study/normal/masks/case [4]_mask.png"]
    assert [e["label"] for e in archive["entries"]] == ["benign", "benign", "normal"]
    assert ingest_path == "agent/datasets/3/ingest-results/"
    first, second, third = ingest["results"]
    # Two files of one reader, merged: the lesion of the first, nothing from the empty second.
    assert first["status"] == "accepted", first
    [mask] = first["masks"]
    assert mask["status"] == "accepted" and mask["key"].startswith("datasets/3/masks/")
    with Image.open(io.BytesIO(store.get_bytes(mask["key"]))) as stored:
        assert int(np.asarray(stored).sum()) == mask["stats"]["class_pixels"]["lesion"] == 48
    assert store.exists(mask["thumbnail_key"])
    # A mask of the wrong size: the image needs one, so it is rejected quoting why.
    assert second["status"] == "rejected" and second["code"] == "mask_rejected"
    assert "case (2)_mask.png: The mask is 16 x 12 pixels" in second["reason"]
    # An image with no mask at all (its mask was misnamed): told which name to give it.
    assert third["status"] == "rejected" and third["code"] == "mask_missing"
    assert "'case [3]_mask.png'" in third["reason"] and third["masks"] == []
    assert not store.exists("datasets/3/archives/a.zip")
    assert not store.exists("datasets/3/images/zip-9/normal/masks/case [4]_mask.png")
