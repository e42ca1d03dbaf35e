"""What the hub shows for a refused or rejected file names the user's own file (issue 16, item 13)."""

from __future__ import annotations

import io

import numpy as np
import pytest
import requests

from tests.support.agent import wait_until


def _bare_dicom() -> bytes:
    """A CT image as a PACS exports it: the dataset alone, no 128-byte preamble, no 'DICM'."""
    from pydicom.dataset import Dataset, FileMetaDataset
    from pydicom.filewriter import dcmwrite
    from pydicom.uid import CTImageStorage, generate_uid

    ds = Dataset()
    ds.file_meta = FileMetaDataset()
    ds.SOPClassUID, ds.SOPInstanceUID = CTImageStorage, generate_uid()
    ds.Modality = "CT"
    ds.Rows, ds.Columns = 16, 16
    ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 12, 11, 0
    ds.PixelData = np.arange(256, dtype="<u2").reshape(16, 16).tobytes()
    out = io.BytesIO()
    dcmwrite(out, ds, implicit_vr=True, little_endian=True)
    return out.getvalue()


@pytest.mark.django_db
def test_a_name_over_255_characters_is_refused_stating_the_limit(client_for, clinician_a):
    client = client_for(clinician_a)
    ds = client.post(
        "/api/v1/datasets/", {"site": "site-a", "name": "long", "label_names": ["x"]}, format="json"
    ).json()["id"]
    name = "x" * 252 + ".png"
    body = client.post(
        f"/api/v1/datasets/{ds}/upload-slots/",
        {"files": [{"filename": name, "label": "x", "size_bytes": 10}]},
        format="json",
    ).json()
    [refused] = body["refused"]
    assert refused["code"] == "invalid_filename"
    assert "at most 255 characters" in refused["reason"] and "256 characters" in refused["reason"]


@pytest.mark.agent
@pytest.mark.django_db(transaction=True)
def test_the_rejection_listing_names_the_users_file_and_reads_a_dicom_without_preamble(
    client_for, clinician_a, agent_a
):
    client = client_for(clinician_a)
    ds = client.post(
        "/api/v1/datasets/", {"site": "site-a", "name": "PACS", "label_names": ["x"]}, format="json"
    ).json()["id"]
    files = {
        "Left breast, view 2.png": b"this is a text file, not an image",
        "broken.jpg": b"\xff\xd8\xff" + b"\x00" * 64,
        "CT export 0001": _bare_dicom(),  # PACS exports often carry no extension either
    }
    slots = client.post(
        f"/api/v1/datasets/{ds}/upload-slots/",
        {"files": [{"filename": n, "label": "x", "size_bytes": len(d)} for n, d in files.items()]},
        format="json",
    ).json()["slots"]
    for slot in slots:
        put = requests.request(
            slot["method"],
            slot["url"],
            data=files[slot["filename"]],
            headers=slot["headers"],
            timeout=30,
        )
        assert put.status_code in (200, 204), put.text[:200]
    client.post(
        f"/api/v1/datasets/{ds}/uploads/complete/",
        {"image_ids": [s["image_id"] for s in slots]},
        format="json",
    )
    wait_until(
        lambda: client.get(f"/api/v1/datasets/{ds}/").json()["pending_count"] == 0,
        timeout=60,
        what="ingest",
    )
    images = {
        i["filename"]: i for i in client.get(f"/api/v1/datasets/{ds}/images/").json()["results"]
    }
    assert images["CT export 0001"]["status"] == "accepted", images["CT export 0001"]
    assert images["CT export 0001"]["modality"] == "CT"
    keys = {s["filename"]: s["key"].rsplit("/", 1)[-1].split(".")[0] for s in slots}
    for name in ("Left breast, view 2.png", "broken.jpg"):
        reason = images[name]["reject_reason"]
        assert images[name]["status"] == "rejected"
        assert reason.startswith(f"{name}: ") and reason.count(name) == 1, reason
        assert keys[name] not in reason and "datasets/" not in reason, reason
        assert "_io." not in reason and " at 0x" not in reason, reason
