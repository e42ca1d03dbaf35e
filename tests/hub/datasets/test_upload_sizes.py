"""Declared sizes: a bad one is refused alone, and a link takes exactly the declared size.

Issue 16, item 11: one negative ``size_bytes`` aborted the whole batch of upload slots, and a
PUT link took 256 MiB whatever size was declared. Each storage backend is tested: the
filesystem (signed local URLs) and a real S3 server (SeaweedFS).
"""

from __future__ import annotations

import pytest
import requests

pytestmark = [pytest.mark.agent, pytest.mark.django_db(transaction=True)]


def _dataset(client) -> int:
    created = client.post(
        "/api/v1/datasets/",
        {"site": "site-a", "name": "Sizes", "label_names": ["normal", "pneumonia"]},
        format="json",
    )
    assert created.status_code == 201, created.content
    return created.json()["id"]


def test_a_negative_size_is_refused_alone_and_the_rest_get_slots(client_for, clinician_a, agent_a):
    client = client_for(clinician_a)
    dataset = _dataset(client)
    response = client.post(
        f"/api/v1/datasets/{dataset}/upload-slots/",
        {
            "files": [
                {"filename": "minus.png", "label": "normal", "size_bytes": -5},
                {"filename": "good.png", "label": "normal", "size_bytes": 10},
            ]
        },
        format="json",
    )
    assert response.status_code == 200, response.content
    body = response.json()
    assert [s["filename"] for s in body["slots"]] == ["good.png"]
    [refused] = body["refused"]
    assert refused["filename"] == "minus.png" and refused["code"] == "invalid_size"
    assert "-5" in refused["reason"] and refused["reason"].endswith(".")


def test_a_link_refuses_a_body_longer_than_declared(client_for, clinician_a, agent_a):
    client = client_for(clinician_a)
    dataset = _dataset(client)
    slots = client.post(
        f"/api/v1/datasets/{dataset}/upload-slots/",
        {"files": [{"filename": "ten.png", "label": "normal", "size_bytes": 10}]},
        format="json",
    ).json()["slots"]
    [slot] = slots
    for body in (b"x" * 11, b"x" * (1024 * 1024)):
        put = requests.request(
            slot["method"], slot["url"], data=body, headers=slot["headers"], timeout=30
        )
        assert put.status_code in {400, 403, 411, 413}, (len(body), put.status_code, put.text[:200])
    put = requests.request(
        slot["method"], slot["url"], data=b"x" * 10, headers=slot["headers"], timeout=30
    )
    assert put.status_code in {200, 204}, put.text[:300]


@pytest.mark.django_db
def test_ingest_rejects_a_file_whose_stored_size_differs_from_the_declared_one(site_a):
    from pollen.datasets.ingest import ingest_results_record
    from pollen.datasets.models import Dataset, Image, ImageStatus

    dataset = Dataset.objects.create(site=site_a, name="Sizes", label_names=["normal"])
    declared = {
        name: Image.objects.create(
            dataset=dataset, filename=name, storage_key=f"k/{name}", split="train", size_bytes=10
        )
        for name in ("short.png", "exact.png")
    }
    result = {"status": "accepted", "sha256": "a" * 64, "width": 4, "height": 4, "channels": 1}
    ingest_results_record(
        dataset=dataset,
        results=[
            {**result, "image_id": declared["short.png"].pk, "size_bytes": 9},
            {**result, "image_id": declared["exact.png"].pk, "size_bytes": 10, "sha256": "b" * 64},
        ],
    )
    short, exact = (Image.objects.get(pk=declared[n].pk) for n in ("short.png", "exact.png"))
    assert exact.status == ImageStatus.ACCEPTED
    assert short.status == ImageStatus.REJECTED and short.reject_code == "size_mismatch"
    assert "9 bytes" in short.reject_reason and "10 bytes" in short.reject_reason


def test_an_archive_link_refuses_a_body_longer_than_declared(client_for, clinician_a, agent_a):
    client = client_for(clinician_a)
    dataset = _dataset(client)
    slot = client.post(
        f"/api/v1/datasets/{dataset}/archives/",
        {"filename": "scans.zip", "size_bytes": 10},
        format="json",
    )
    assert slot.status_code == 201, slot.content
    slot = slot.json()
    longer = requests.request(
        slot["method"], slot["url"], data=b"z" * 4096, headers=slot["headers"], timeout=30
    )
    assert longer.status_code in {400, 403, 411, 413}, (longer.status_code, longer.text[:200])
