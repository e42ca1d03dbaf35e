"""Images with masks, end to end (issue 18): a zip of real BUSI files and CHASE_DB1's two readers
uploaded to site storage, checked by a real agent, metadata back to the hub.

Each storage kind runs: the filesystem and a real S3 server with the site's own identity.
"""

from __future__ import annotations

import io

import numpy as np
import pytest
import requests
from PIL import Image as PILImage

from tests.agent.ingest.ingest_images import shared_data
from tests.hub.datasets.test_upload_flow import _import_zip, _zip
from tests.support.agent import wait_until

pytestmark = [pytest.mark.agent, pytest.mark.django_db(transaction=True)]


def _png(array: np.ndarray) -> bytes:
    out = io.BytesIO()
    PILImage.fromarray(array).save(out, format="PNG")
    return out.getvalue()


def _dataset(client, name: str, **fields) -> int:
    created = client.post(
        "/api/v1/datasets/",
        {"site": "site-a", "name": name, "task": "segmentation", **fields},
        format="json",
    )
    assert created.status_code == 201, created.content
    return created.json()["id"]


def _settled(client, ds: int) -> dict:
    wait_until(
        lambda: client.get(f"/api/v1/datasets/{ds}/").json()["pending_count"] == 0,
        timeout=90,
        what="ingest",
    )
    return client.get(f"/api/v1/datasets/{ds}/").json()


def test_a_busi_zip_pairs_masks_and_refuses_bad_ones_by_file(client_for, clinician_a, agent_a):
    busi = shared_data("busi-256")
    client = client_for(clinician_a)
    ds = _dataset(client, "BUSI lesions", mask_classes=["lesion"])
    two_parts = "benign (100)"  # one of BUSI's images whose lesion comes in two mask files
    entries = {
        f"busi/benign/images/{two_parts}.png": (
            busi / f"benign/images/{two_parts}.png"
        ).read_bytes(),
        f"busi/benign/masks/{two_parts}_mask.png": (
            busi / f"benign/masks/{two_parts}_mask.png"
        ).read_bytes(),
        f"busi/benign/masks/{two_parts}_mask_1.png": (
            busi / f"benign/masks/{two_parts}_mask_1.png"
        ).read_bytes(),
        "busi/normal/images/normal (1).png": (busi / "normal/images/normal (1).png").read_bytes(),
        "busi/normal/masks/normal (1)_mask.png": (
            busi / "normal/masks/normal (1)_mask.png"
        ).read_bytes(),
    }
    # A colour mask, a mask of the wrong size, and an image with no mask at all.
    image = np.asarray(PILImage.open(busi / "benign/images/benign (1).png").convert("L"))
    height, width = image.shape
    colour = np.zeros((height, width, 3), np.uint8)
    colour[10:20, 10:20] = (255, 0, 0)
    entries |= {
        "busi/benign/images/colour.png": _png(image),
        "busi/benign/masks/colour_mask.png": _png(colour),
        "busi/benign/images/shrunk.png": _png(image[:, ::-1].copy()),
        "busi/benign/masks/shrunk_mask.png": _png(np.zeros((height // 2, width // 2), np.uint8)),
        "busi/benign/images/alone.png": _png(image[::-1].copy()),
    }
    archive = _import_zip(client, ds, _zip(entries), add_labels=True)
    assert archive["status"] == "done", archive
    detail = _settled(client, ds)
    assert (detail["accepted_count"], detail["rejected_count"]) == (2, 3)

    images = {
        i["filename"]: i for i in client.get(f"/api/v1/datasets/{ds}/images/").json()["results"]
    }
    assert images[f"{two_parts}.png"]["label"] == "benign"
    [merged] = images[f"{two_parts}.png"]["masks"]
    assert merged["filenames"] == [f"{two_parts}_mask.png", f"{two_parts}_mask_1.png"]
    truth = np.zeros_like(np.asarray(PILImage.open(busi / f"benign/masks/{two_parts}_mask.png")))
    for part in ("_mask", "_mask_1"):
        truth |= np.asarray(PILImage.open(busi / f"benign/masks/{two_parts}{part}.png")) > 0
    assert merged["status"] == "accepted"
    assert merged["stats"]["class_pixels"]["lesion"] == int(truth.sum())  # the union
    assert merged["stats"]["components"] == 2
    [normal] = images["normal (1).png"]["masks"]
    assert normal["stats"]["empty"] is True

    for name, code in (
        ("colour.png", "mask_is_colour"),
        ("shrunk.png", "mask_size_mismatch"),
        ("alone.png", "mask_missing"),
    ):
        assert images[name]["status"] == "rejected", name
        reason = images[name]["reject_reason"]
        assert name.replace(".png", "") in reason, reason
        if code != "mask_missing":
            [mask] = images[name]["masks"]
            assert mask["reject_code"] == code, mask
    assert images["alone.png"]["reject_code"] == "mask_missing"

    stats = client.get(f"/api/v1/datasets/{ds}/stats/").json()["segmentation"]
    assert stats["images_with_mask"] == 2 and stats["empty_masks"] == 1
    assert stats["lesions"]["images_with_several"] == 1
    thumbs = client.post(
        f"/api/v1/datasets/{ds}/thumbnails/",
        {"image_ids": [i["id"] for i in images.values()]},
        format="json",
    ).json()
    assert len(thumbs["mask_urls"]) == 2
    overlay = requests.get(next(iter(thumbs["mask_urls"].values())), timeout=30)
    assert overlay.status_code == 200 and overlay.content.startswith(b"\x89PNG")


def test_two_readers_uploaded_with_their_image_are_compared(client_for, clinician_a, agent_a):
    chase = shared_data("chase-db1")
    client = client_for(clinician_a)
    ds = _dataset(client, "Vessels", mask_classes=["vessel"], reference_reader="1stHO")
    files = {
        "Image_01L.jpg": (chase / "Image_01L.jpg").read_bytes(),
        "Image_01L_1stHO.png": (chase / "Image_01L_1stHO.png").read_bytes(),
        "Image_01L_2ndHO.png": (chase / "Image_01L_2ndHO.png").read_bytes(),
    }
    body = client.post(
        f"/api/v1/datasets/{ds}/upload-slots/",
        {
            "files": [
                {
                    "filename": "Image_01L.jpg",
                    "patient_id": "01",
                    "size_bytes": len(files["Image_01L.jpg"]),
                    "masks": [
                        {
                            "filename": f"Image_01L_{r}.png",
                            "reader": r,
                            "size_bytes": len(files[f"Image_01L_{r}.png"]),
                        }
                        for r in ("1stHO", "2ndHO")
                    ],
                }
            ]
        },
        format="json",
    ).json()
    [slot] = body["slots"]
    for target in [slot, *slot["mask_slots"]]:
        put = requests.request(
            target["method"],
            target["url"],
            data=files[target["filename"]],
            headers=target["headers"],
            timeout=30,
        )
        assert put.status_code in (200, 204), put.text[:300]
    done = client.post(
        f"/api/v1/datasets/{ds}/uploads/complete/", {"image_ids": [slot["image_id"]]}, format="json"
    )
    assert done.status_code in (200, 202), done.content
    detail = _settled(client, ds)
    assert detail["accepted_count"] == 1, client.get(f"/api/v1/datasets/{ds}/images/").json()
    [image] = client.get(f"/api/v1/datasets/{ds}/images/").json()["results"]
    first, second = sorted(image["masks"], key=lambda m: m["reader"])
    a = np.asarray(PILImage.open(chase / "Image_01L_1stHO.png")) > 0
    b = np.asarray(PILImage.open(chase / "Image_01L_2ndHO.png")) > 0
    expected = 2 * np.logical_and(a, b).sum() / (a.sum() + b.sum())
    assert first["agreement_dice"] is None  # the reference reader
    assert second["agreement_dice"] == pytest.approx(expected, abs=1e-3)
    stats = client.get(f"/api/v1/datasets/{ds}/stats/").json()["segmentation"]
    assert stats["agreement"]["mean_dice"] == pytest.approx(expected, abs=1e-3)
