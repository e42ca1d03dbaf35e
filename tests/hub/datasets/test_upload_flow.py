"""Upload straight to site storage, ingest on a real agent, metadata only back to the hub."""

from __future__ import annotations

import io
import struct
import zlib

import numpy as np
import pytest
import requests
from PIL import Image as PILImage

from tests.support.agent import wait_until

pytestmark = [pytest.mark.agent, pytest.mark.django_db(transaction=True)]


def png_bytes(seed: int, size: int = 48) -> bytes:
    rng = np.random.default_rng(seed)
    buf = io.BytesIO()
    PILImage.fromarray(rng.integers(0, 255, (size, size), dtype=np.uint8)).save(buf, format="PNG")
    return buf.getvalue()


def bomb_png() -> bytes:
    """A valid PNG header that claims 100,000 x 100,000 pixels."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return (
            struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
        )

    ihdr = struct.pack(">IIBBBBB", 100_000, 100_000, 8, 0, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", ihdr)
        + chunk(b"IDAT", zlib.compress(b"\x00" * 100))
        + chunk(b"IEND", b"")
    )


def _upload(
    client, dataset_id: int, files: list[tuple[str, str, bytes]], patient=lambda i: f"P{i}"
):
    request = {
        "files": [
            {"filename": name, "label": label, "patient_id": patient(i), "size_bytes": len(data)}
            for i, (name, label, data) in enumerate(files)
        ]
    }
    response = client.post(f"/api/v1/datasets/{dataset_id}/upload-slots/", request, format="json")
    assert response.status_code == 200, response.content
    body = response.json()
    by_name = {name: data for name, _, data in files}
    for slot in body["slots"]:
        put = requests.request(
            slot["method"],
            slot["url"],
            data=by_name[slot["filename"]],
            headers=slot["headers"],
            timeout=30,
        )
        assert put.status_code in (200, 204), (put.status_code, put.text[:300])
    return body


def test_clinician_uploads_images_and_each_file_is_judged_on_its_own(
    client_for, clinician_a, outsider, agent_a, storage_kind, live_server
):
    client = client_for(clinician_a)
    created = client.post(
        "/api/v1/datasets/",
        {"site": "site-a", "name": "Breast US", "label_names": ["benign", "malignant"]},
        format="json",
    )
    assert created.status_code == 201, created.content
    ds = created.json()["id"]
    good = [png_bytes(i) for i in range(3)]
    files = [
        ("a.png", "benign", good[0]),
        ("b.png", "malignant", good[1]),
        ("c.png", "benign", good[2]),
        ("copy-of-a.png", "benign", good[0]),
        ("truncated.png", "benign", good[1][: len(good[1]) // 2]),
        ("notes.png", "benign", b"this is a text file, not an image"),
        ("bomb.png", "benign", bomb_png()),
        ("wrong-label.png", "cancer", good[2]),
        ("empty.png", "benign", b""),
    ]
    body = _upload(client, ds, files)
    refused = {r["filename"]: r["code"] for r in body["refused"]}
    assert refused == {"wrong-label.png": "unknown_label", "empty.png": "empty_file"}
    # The bytes went to site storage, not to the hub's API.
    for slot in body["slots"]:
        assert "/api/" not in slot["url"]
        if storage_kind == "s3":
            assert not slot["url"].startswith(live_server.url)

    done = client.post(
        f"/api/v1/datasets/{ds}/uploads/complete/",
        {"image_ids": [s["image_id"] for s in body["slots"]]},
        format="json",
    )
    assert done.status_code == 202, done.content

    def ingested():
        detail = client.get(f"/api/v1/datasets/{ds}/").json()
        return detail if detail["pending_count"] == 0 else None

    detail = wait_until(ingested, timeout=60, what="ingest to finish")
    assert (detail["accepted_count"], detail["rejected_count"]) == (3, 4)
    rejected = client.get(f"/api/v1/datasets/{ds}/images/?status=rejected").json()["results"]
    codes = {r["filename"]: r["reject_code"] for r in rejected}
    assert codes["copy-of-a.png"] == "duplicate"
    assert set(codes) == {"copy-of-a.png", "truncated.png", "notes.png", "bomb.png"}
    assert all(r["reject_reason"] for r in rejected)

    accepted = client.get(f"/api/v1/datasets/{ds}/images/?status=accepted").json()["results"]
    assert {(a["width"], a["height"]) for a in accepted} == {(48, 48)}
    assert all(len(a["sha256"]) == 64 for a in accepted)

    stats = client.get(f"/api/v1/datasets/{ds}/stats/").json()
    assert {label["label"]: label["count"] for label in stats["labels"]} == {
        "benign": 2,
        "malignant": 1,
    }
    assert stats["patients"]["count"] == 3

    thumbs = client.post(
        f"/api/v1/datasets/{ds}/thumbnails/",
        {"image_ids": [a["id"] for a in accepted]},
        format="json",
    ).json()["urls"]
    assert len(thumbs) == 3
    fetched = requests.get(next(iter(thumbs.values())), timeout=30)
    assert fetched.status_code == 200 and fetched.content.startswith(b"\x89PNG")

    # An outsider cannot see that the dataset exists.
    assert client_for(outsider).get(f"/api/v1/datasets/{ds}/").status_code == 404
    assert client_for(outsider).get("/api/v1/datasets/").json()["count"] == 0


def test_tampered_or_expired_upload_link_is_refused(client_for, clinician_a, agent_a):
    client = client_for(clinician_a)
    ds = client.post("/api/v1/datasets/", {"site": "site-a", "name": "t"}, format="json").json()[
        "id"
    ]
    slot = (
        _upload(client, ds, [])["slots"]
        if False
        else client.post(
            f"/api/v1/datasets/{ds}/upload-slots/",
            {"files": [{"filename": "x.png", "size_bytes": 10}]},
            format="json",
        ).json()["slots"][0]
    )
    tampered = slot["url"].replace("Signature=", "Signature=0").replace("sig=", "sig=0")
    assert (
        requests.put(tampered, data=b"0123456789", headers=slot["headers"], timeout=30).status_code
        == 403
    )
    other_key = slot["url"].replace("/images/", "/images/x")
    assert (
        requests.put(other_key, data=b"0123456789", headers=slot["headers"], timeout=30).status_code
        == 403
    )


def test_deleting_an_image_removes_its_file_from_site_storage(
    client_for, clinician_a, agent_a, storage_kind, request, settings
):
    client = client_for(clinician_a)
    ds = client.post(
        "/api/v1/datasets/", {"site": "site-a", "name": "d", "label_names": ["x"]}, format="json"
    ).json()["id"]
    body = _upload(client, ds, [("one.png", "x", png_bytes(7))])
    image_id = body["slots"][0]["image_id"]
    key = body["slots"][0]["key"]
    client.post(
        f"/api/v1/datasets/{ds}/uploads/complete/", {"image_ids": [image_id]}, format="json"
    )
    wait_until(
        lambda: client.get(f"/api/v1/datasets/{ds}/").json()["accepted_count"] == 1,
        timeout=60,
        what="ingest",
    )

    if storage_kind == "fs":
        path = settings.LOCAL_STORAGE_ROOT / "site-a" / key

        def exists() -> bool:
            return path.exists()
    else:
        seaweed = request.getfixturevalue("seaweed")
        s3 = seaweed.client("admin")

        def exists() -> bool:
            return (
                s3.list_objects_v2(Bucket=seaweed.bucket("site-a"), Prefix=key).get("KeyCount", 0)
                > 0
            )

    assert exists()
    assert client.delete(f"/api/v1/datasets/{ds}/images/{image_id}/").status_code == 204
    wait_until(lambda: not exists(), timeout=60, what="the file to be removed from site storage")
    from pollen.audit.models import AuditEvent

    assert AuditEvent.objects.filter(action="image.delete", target_id=str(ds)).exists()


def _zip(entries: dict[str, bytes]) -> bytes:
    import zipfile

    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, data in entries.items():
            archive.writestr(name, data)
    return buf.getvalue()


def _import_zip(client, ds: int, data: bytes, *, add_labels: bool):
    slot = client.post(
        f"/api/v1/datasets/{ds}/archives/",
        {"filename": "import.zip", "size_bytes": len(data), "add_labels": add_labels},
        format="json",
    )
    assert slot.status_code == 201, slot.content
    body = slot.json()
    put = requests.request(
        body["method"], body["url"], data=data, headers=body["headers"], timeout=30
    )
    assert put.status_code in (200, 204)
    started = client.post(f"/api/v1/datasets/{ds}/archives/{body['archive_id']}/import/")
    assert started.status_code == 202, started.content
    return wait_until(
        lambda: (lambda a: a if a["status"] in {"done", "failed"} else None)(
            client.get(f"/api/v1/datasets/{ds}/archives/{body['archive_id']}/").json()
        ),
        timeout=60,
        what="unpacking",
    )


def test_zip_with_one_folder_per_label_is_imported_and_unsafe_entries_refused(
    client_for, clinician_a, agent_a
):
    client = client_for(clinician_a)
    ds = client.post(
        "/api/v1/datasets/",
        {"site": "site-a", "name": "zipped", "label_names": ["benign"]},
        format="json",
    ).json()["id"]
    data = _zip(
        {
            "benign/a.png": png_bytes(1),
            "malignant/b.png": png_bytes(2),
            "malignant/c.png": png_bytes(3),
            "../escape.png": png_bytes(4),
            "benign/notes.png": b"not an image",
        }
    )
    archive = _import_zip(client, ds, data, add_labels=True)
    assert archive["status"] == "done", archive
    assert archive["image_count"] == 4
    assert any("escape" in r["filename"] for r in archive["rejected"])
    wait_until(
        lambda: client.get(f"/api/v1/datasets/{ds}/").json()["pending_count"] == 0,
        timeout=60,
        what="ingest",
    )
    detail = client.get(f"/api/v1/datasets/{ds}/").json()
    assert set(detail["label_names"]) == {"benign", "malignant"}
    assert (detail["accepted_count"], detail["rejected_count"]) == (3, 1)


def test_zip_bomb_and_non_zip_are_refused_whole_with_a_reason(client_for, clinician_a, agent_a):
    client = client_for(clinician_a)
    ds = client.post(
        "/api/v1/datasets/",
        {"site": "site-a", "name": "bombs", "label_names": ["x"]},
        format="json",
    ).json()["id"]
    bomb = _zip({f"x/{i}.png": b"\0" * (60 * 1024 * 1024) for i in range(2)})
    archive = _import_zip(client, ds, bomb, add_labels=False)
    assert archive["status"] in {"failed", "done"}
    if archive["status"] == "done":
        assert archive["image_count"] == 0 and archive["rejected"]
    else:
        assert archive["message"]
    broken = _import_zip(client, ds, b"PK\x03\x04 this is not really a zip", add_labels=False)
    assert broken["status"] == "failed" and broken["message"]
    assert client.get(f"/api/v1/datasets/{ds}/").json()["image_count"] == 0


def _storage_probe(storage_kind, request, settings):
    """exists(key) and remove(key) on site A's storage, as site IT would see it."""
    if storage_kind == "fs":
        root = settings.LOCAL_STORAGE_ROOT / "site-a"
        return (lambda key: (root / key).exists()), (lambda key: (root / key).unlink())
    seaweed = request.getfixturevalue("seaweed")
    s3, bucket = seaweed.client("admin"), seaweed.bucket("site-a")

    def exists(key: str) -> bool:
        return s3.list_objects_v2(Bucket=bucket, Prefix=key).get("KeyCount", 0) > 0

    return exists, (lambda key: s3.delete_object(Bucket=bucket, Key=key))


def test_a_dataset_deletion_the_agent_died_during_is_sent_again_and_completes(
    client_for, admin_a, clinician_a, agent_a, storage_kind, settings, request, monkeypatch
):
    from datetime import timedelta

    from django.utils import timezone

    from pollen.datasets.deletion import datasets_purge_resend
    from pollen.datasets.models import Dataset, Image

    client = client_for(clinician_a)
    ds = client.post(
        "/api/v1/datasets/", {"site": "site-a", "name": "gone", "label_names": ["x"]}, format="json"
    ).json()["id"]
    body = _upload(client, ds, [("one.png", "x", png_bytes(9)), ("two.png", "x", png_bytes(10))])
    client.post(
        f"/api/v1/datasets/{ds}/uploads/complete/",
        {"image_ids": [s["image_id"] for s in body["slots"]]},
        format="json",
    )
    wait_until(
        lambda: client.get(f"/api/v1/datasets/{ds}/").json()["accepted_count"] == 2,
        timeout=60,
        what="ingest",
    )
    keys = [s["key"] for s in body["slots"]]
    exists, remove = _storage_probe(storage_kind, request, settings)
    assert all(exists(k) for k in keys)

    assert client.delete(f"/api/v1/datasets/{ds}/").status_code == 403  # clinicians may not
    # The agent took the request and died after removing one file: the request died with it.
    with monkeypatch.context() as m:
        m.setattr("pollen.datasets.deletion.send_on_commit", lambda *a, **k: None)
        assert client_for(admin_a).delete(f"/api/v1/datasets/{ds}/").status_code == 202
    remove(keys[0])
    assert client.get(f"/api/v1/datasets/{ds}/").status_code == 404

    later = timezone.now() + timedelta(hours=1)
    assert datasets_purge_resend(site_id=admin_a.site.pk, now=later) == [ds]
    wait_until(
        lambda: Dataset.objects.get(pk=ds).status == "deleted",
        timeout=60,
        what="the agent to confirm the purge",
    )
    assert not any(exists(k) for k in keys)
    assert not Image.objects.filter(dataset_id=ds).exists()
    assert Dataset.objects.get(pk=ds).deleted_summary["accepted"] == 2


def test_an_upload_left_unfinished_expires_and_the_agent_removes_its_file(
    client_for, clinician_a, agent_a, storage_kind, settings, request
):
    from datetime import timedelta

    from django.utils import timezone

    from pollen.datasets.uploads import upload_slots_expire

    client = client_for(clinician_a)
    ds = client.post(
        "/api/v1/datasets/", {"site": "site-a", "name": "left", "label_names": ["x"]}, format="json"
    ).json()["id"]
    # The file reached storage, but the user left before telling the hub the upload was done.
    body = _upload(client, ds, [("one.png", "x", png_bytes(11))])
    key = body["slots"][0]["key"]
    exists, _ = _storage_probe(storage_kind, request, settings)
    assert exists(key)

    later = timezone.now() + timedelta(seconds=settings.UPLOAD_SLOT_EXPIRY_SECONDS + 1)
    assert upload_slots_expire(now=later) == 1
    wait_until(lambda: not exists(key), timeout=60, what="the agent to remove the file")
    image = client.get(f"/api/v1/datasets/{ds}/images/").json()["results"][0]
    assert image["status"] == "expired"
