from __future__ import annotations

import pytest

from pollen.datasets.models import Image, ImageStatus
from pollen.datasets.splits import split_for

pytestmark = pytest.mark.django_db


@pytest.fixture
def dataset(client_for, clinician_a):
    response = client_for(clinician_a).post(
        "/api/v1/datasets/",
        {"site": "site-a", "name": "Chest", "label_names": ["normal", "pneumonia"]},
        format="json",
    )
    assert response.status_code == 201, response.content
    from pollen.datasets.models import Dataset

    return Dataset.objects.get(pk=response.json()["id"])


def _images(dataset, n: int, *, patients: int | None = None, status=ImageStatus.ACCEPTED):
    rows = []
    for i in range(n):
        patient = f"P{i % patients}" if patients else ""
        key = f"datasets/{dataset.pk}/images/{i}.png"
        rows.append(
            Image(
                dataset=dataset,
                filename=f"img{i}.png",
                storage_key=key,
                status=status,
                label="normal" if i % 3 else "pneumonia",
                patient_id=patient,
                width=64 + i % 300,
                height=64,
                sha256=f"{i:064x}",
                split=split_for(seed=dataset.split_seed, patient_id=patient, fallback_key=key),
            )
        )
    return Image.objects.bulk_create(rows, batch_size=5000)


def test_no_patient_lands_in_two_splits(dataset):
    _images(dataset, 600, patients=90)
    splits_per_patient = {}
    for patient, split in Image.objects.filter(dataset=dataset).values_list("patient_id", "split"):
        splits_per_patient.setdefault(patient, set()).add(split)
    assert all(len(s) == 1 for s in splits_per_patient.values())
    assert {s for v in splits_per_patient.values() for s in v} == {"train", "val", "test"}


def test_split_is_stable_when_images_are_added():
    before = {
        p: split_for(seed=7, patient_id=p, fallback_key="") for p in [f"P{i}" for i in range(200)]
    }
    after = {
        p: split_for(seed=7, patient_id=p, fallback_key="") for p in [f"P{i}" for i in range(400)]
    }
    assert all(after[p] == s for p, s in before.items())
    fractions = [list(after.values()).count(s) / 400 for s in ("train", "val", "test")]
    assert 0.6 < fractions[0] < 0.8 and 0.08 < fractions[1] < 0.22 and 0.08 < fractions[2] < 0.22


def test_manifest_sets_labels_and_patients_and_reports_unmatched_rows(
    client_for, clinician_a, dataset
):
    _images(dataset, 3, status=ImageStatus.ACCEPTED)
    csv_text = "\ufefffilename,label,patient_id,scanner\nimg0.png,normal,A1,x\nimg1.png,pneumonia,A1,y\nmissing.png,normal,A2,z\nimg0.png,normal,A9,w\n"
    response = client_for(clinician_a).post(
        f"/api/v1/datasets/{dataset.pk}/manifest/", {"csv": csv_text}, format="json"
    )
    assert response.status_code == 200, response.content
    body = response.json()
    assert body["updated"] == 2
    assert body["unknown_columns"] == ["scanner"]
    reasons = " ".join(p["reason"] for p in body["problems"])
    assert "appears twice" in reasons and "No image with this filename" in reasons
    img0, img1 = Image.objects.filter(
        dataset=dataset, filename__in=["img0.png", "img1.png"]
    ).order_by("filename")
    assert (img0.patient_id, img1.patient_id) == ("A1", "A1") and img0.split == img1.split


@pytest.mark.parametrize("newline", ["\r", "\n", "\r\n"], ids=["CR", "LF", "CRLF"])
def test_manifest_lines_may_end_with_cr_lf_or_crlf(client_for, clinician_a, dataset, newline):
    _images(dataset, 2, status=ImageStatus.ACCEPTED)
    rows = ["filename,label,patient_id", "img0.png,normal,B1", 'img1.png,normal,"B\n2"']
    response = client_for(clinician_a).post(
        f"/api/v1/datasets/{dataset.pk}/manifest/",
        {"csv": newline.join(rows) + newline},
        format="json",
    )
    assert response.status_code == 200, response.content
    assert response.json()["updated"] == 2
    assert set(Image.objects.filter(dataset=dataset).values_list("patient_id", flat=True)) == {
        "B1",
        "B\n2",
    }


def test_manifest_with_unknown_label_is_refused_whole(client_for, clinician_a, dataset):
    _images(dataset, 1)
    response = client_for(clinician_a).post(
        f"/api/v1/datasets/{dataset.pk}/manifest/",
        {"csv": "filename,label\nimg0.png,cancer\n"},
        format="json",
    )
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "unknown_label"
    assert Image.objects.get(filename="img0.png").label == "pneumonia"


def test_manifest_without_header_gets_clear_error(client_for, clinician_a, dataset):
    response = client_for(clinician_a).post(
        f"/api/v1/datasets/{dataset.pk}/manifest/", {"csv": "img0.png,normal\n"}, format="json"
    )
    assert response.json()["error"]["code"] == "invalid_manifest"


def test_bulk_label_and_removing_a_used_label(client_for, clinician_a, dataset):
    images = _images(dataset, 4)
    client = client_for(clinician_a)
    response = client.post(
        f"/api/v1/datasets/{dataset.pk}/images/bulk-label/",
        {"image_ids": [i.pk for i in images], "label": "normal"},
        format="json",
    )
    assert response.json() == {"updated": 4}
    removed = client.patch(
        f"/api/v1/datasets/{dataset.pk}/", {"label_names": ["pneumonia"]}, format="json"
    )
    assert removed.status_code == 409 and removed.json()["error"]["code"] == "label_in_use"
    bad = client.patch(
        f"/api/v1/datasets/{dataset.pk}/images/{images[0].pk}/", {"label": "cancer"}, format="json"
    )
    assert bad.json()["error"]["code"] == "unknown_label"


def test_duplicate_dataset_name_is_a_409(client_for, clinician_a, dataset):
    response = client_for(clinician_a).post(
        "/api/v1/datasets/", {"site": "site-a", "name": "Chest"}, format="json"
    )
    assert response.status_code == 409 and response.json()["error"]["code"] == "dataset_exists"


def test_creating_a_dataset_at_another_site_is_a_404(client_for, clinician_a, outsider):
    response = client_for(clinician_a).post(
        "/api/v1/datasets/", {"site": "site-b", "name": "x"}, format="json"
    )
    assert response.status_code == 404 and response.json()["error"]["code"] == "site_not_found"


def test_outsider_gets_404_on_every_dataset_endpoint(client_for, outsider, dataset):
    images = _images(dataset, 1)
    client = client_for(outsider)
    base = f"/api/v1/datasets/{dataset.pk}"
    for method, url, body in [
        ("get", f"{base}/", None),
        ("patch", f"{base}/", {"name": "x"}),
        ("delete", f"{base}/", None),
        ("get", f"{base}/stats/", None),
        ("get", f"{base}/images/", None),
        ("get", f"{base}/images/{images[0].pk}/", None),
        ("patch", f"{base}/images/{images[0].pk}/", {"label": ""}),
        ("delete", f"{base}/images/{images[0].pk}/", None),
        ("post", f"{base}/upload-slots/", {"files": [{"filename": "a.png"}]}),
        ("post", f"{base}/uploads/complete/", {"image_ids": [images[0].pk]}),
        ("post", f"{base}/images/bulk-label/", {"image_ids": [images[0].pk], "label": ""}),
        ("post", f"{base}/manifest/", {"csv": "filename\na"}),
        ("post", f"{base}/thumbnails/", {"image_ids": [1]}),
    ]:
        response = getattr(client, method)(url, body, format="json")
        assert response.status_code == 404, (method, url, response.content)
        assert response.json()["error"]["code"] == "dataset_not_found"
    assert Image.objects.filter(pk=images[0].pk).exists()


def test_site_agent_offline_is_a_clear_503(client_for, clinician_a, dataset, settings):
    settings.AGENT_ANSWER_TIMEOUT = 0.5
    response = client_for(clinician_a).post(
        f"/api/v1/datasets/{dataset.pk}/upload-slots/",
        {"files": [{"filename": "a.png", "size_bytes": 10}]},
        format="json",
    )
    assert response.status_code == 503
    assert response.json()["error"]["code"] == "site_agent_offline"
    assert "agent" in response.json()["error"]["message"]
    assert not Image.objects.filter(dataset=dataset).exists()


def test_image_list_and_stats_stay_constant_in_queries_at_scale(
    client_for, clinician_a, dataset, django_assert_max_num_queries
):
    _images(dataset, 20_000, patients=3000)
    client = client_for(clinician_a)
    with django_assert_max_num_queries(8):
        page = client.get(
            f"/api/v1/datasets/{dataset.pk}/images/?label=normal&split=train&page_size=200"
        )
    assert page.status_code == 200 and len(page.json()["results"]) == 200
    with django_assert_max_num_queries(14):
        stats = client.get(f"/api/v1/datasets/{dataset.pk}/stats/").json()
    assert sum(label["count"] for label in stats["labels"]) == 20_000
    assert stats["patients"]["count"] == 3000
    assert sum(b["count"] for b in stats["sizes"]["longest_side_histogram"]) == 20_000
    with django_assert_max_num_queries(8):
        listing = client.get("/api/v1/datasets/")
    assert listing.json()["results"][0]["accepted_count"] == 20_000
