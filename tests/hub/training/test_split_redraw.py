"""Drawing a small dataset's patient split again, so a one-click job can start."""

from __future__ import annotations

from collections import Counter

import pytest

from pollen.audit.models import AuditEvent
from pollen.datasets.models import Dataset, Image, ImageStatus
from pollen.datasets.splits import first_seed_meeting, split_for
from pollen.training.models import Job, JobStatus
from pollen.training.split_redraw import REDRAW_MINIMUM

pytestmark = pytest.mark.django_db


def _patients(n_per_label: int, labels=("benign", "malignant"), images_each: int = 2):
    """(label, patient_id, key) rows: ``images_each`` images per patient."""
    return [
        (label, f"{label[0]}{p}", f"k/{label}/{p}/{i}.png")
        for label in labels
        for p in range(n_per_label)
        for i in range(images_each)
    ]


def _meets(seed: int, rows) -> bool:
    got: Counter[tuple[str, str]] = Counter()
    for label, patient, key in rows:
        got[(label, split_for(seed=seed, patient_id=patient, fallback_key=key))] += 1
    labels = {label for label, _, _ in rows}
    return all(got[(label, s)] >= need for label in labels for s, need in REDRAW_MINIMUM.items())


def _unlucky_seed(rows) -> int:
    """A seed whose hash split leaves some label short (small datasets hit one often)."""
    return next(seed for seed in range(10_000) if not _meets(seed, rows))


def _dataset(site, rows, seed: int) -> Dataset:
    dataset = Dataset.objects.create(
        site=site,
        name=f"small {Dataset.objects.count()}",
        label_names=sorted({r[0] for r in rows}),
        split_seed=seed,
    )
    Image.objects.bulk_create(
        Image(
            dataset=dataset,
            filename=key.replace("/", "_"),
            storage_key=key,
            status=ImageStatus.ACCEPTED,
            label=label,
            patient_id=patient,
            sha256=f"{i:064x}",
            width=28,
            height=28,
            split=split_for(seed=seed, patient_id=patient, fallback_key=key),
        )
        for i, (label, patient, key) in enumerate(rows)
    )
    return dataset


def _url(dataset: Dataset) -> str:
    return f"/api/v1/datasets/{dataset.pk}/redraw-split/"


def test_first_seed_meeting_keeps_a_working_seed_and_finds_one_that_works():
    rows = _patients(6)
    good = next(seed for seed in range(10_000) if _meets(seed, rows))
    assert first_seed_meeting(rows, REDRAW_MINIMUM, start=good) == good
    bad = _unlucky_seed(rows)
    found = first_seed_meeting(rows, REDRAW_MINIMUM, start=bad)
    assert found is not None and found != bad and _meets(found, rows)
    # Two patients cannot fill three sets, however the seed falls.
    assert first_seed_meeting(_patients(2), REDRAW_MINIMUM, start=0) is None


def test_an_unlucky_small_dataset_is_redrawn_and_can_then_be_trained(client_for, clinician_a):
    rows = _patients(10)  # 20 patients, 40 images: the size of a first try
    dataset = _dataset(clinician_a.site, rows, _unlucky_seed(rows))
    client = client_for(clinician_a)
    refused = client.post("/api/v1/jobs/", {"dataset": dataset.pk}, format="json")
    assert refused.json()["error"]["code"] == "dataset_not_ready"
    assert "Draw the split again" in refused.json()["error"]["message"]

    response = client.post(_url(dataset))
    assert response.status_code == 200, response.content
    body = response.json()
    assert body["moved_images"] > 0
    for row in body["labels"]:
        assert row["train"] >= 2 and row["val"] >= 1 and row["test"] >= 1, row
    dataset.refresh_from_db()
    # Every image follows the new seed, and a patient's images stay in one set.
    for image in dataset.images.all():
        assert image.split == split_for(
            seed=dataset.split_seed, patient_id=image.patient_id, fallback_key=image.storage_key
        )
    per_patient = {(i.patient_id, i.split) for i in dataset.images.all()}
    assert len(per_patient) == len({i.patient_id for i in dataset.images.all()})
    event = AuditEvent.objects.get(action="dataset.split_redrawn", target_id=str(dataset.pk))
    assert event.detail["moved_images"] == body["moved_images"]
    started = client.post("/api/v1/jobs/", {"dataset": dataset.pk}, format="json")
    assert started.status_code == 201, started.content


def test_a_split_that_already_works_does_not_move(client_for, clinician_a):
    rows = _patients(10)
    seed = next(s for s in range(10_000) if _meets(s, rows))
    dataset = _dataset(clinician_a.site, rows, seed)
    body = client_for(clinician_a).post(_url(dataset)).json()
    assert body["moved_images"] == 0
    dataset.refresh_from_db()
    assert dataset.split_seed == seed


@pytest.mark.parametrize("status", [JobStatus.SUCCEEDED, JobStatus.RUNNING, JobStatus.QUEUED])
def test_the_split_is_frozen_once_a_model_is_trained_on_it(client_for, clinician_a, status):
    rows = _patients(10)
    dataset = _dataset(clinician_a.site, rows, _unlucky_seed(rows))
    Job.objects.create(site=clinician_a.site, dataset=dataset, name="first model", status=status)
    before = sorted(dataset.images.values_list("id", "split"))
    response = client_for(clinician_a).post(_url(dataset))
    assert response.status_code == 409
    error = response.json()["error"]
    assert error["code"] == "split_frozen"
    assert "first model" in error["message"] and "new dataset" in error["message"]
    assert sorted(dataset.images.values_list("id", "split")) == before


def test_a_failed_job_does_not_freeze_the_split(client_for, clinician_a):
    rows = _patients(10)
    dataset = _dataset(clinician_a.site, rows, _unlucky_seed(rows))
    Job.objects.create(site=clinician_a.site, dataset=dataset, status=JobStatus.FAILED)
    assert client_for(clinician_a).post(_url(dataset)).status_code == 200


def test_too_few_patients_is_explained_and_nothing_moves(client_for, clinician_a):
    rows = _patients(10, labels=("benign",)) + _patients(2, labels=("malignant",))
    dataset = _dataset(clinician_a.site, rows, 0)
    seed_before = dataset.split_seed
    response = client_for(clinician_a).post(_url(dataset))
    assert response.status_code == 409
    error = response.json()["error"]
    assert error["code"] == "split_impossible"
    assert "'malignant' (2)" in error["message"] and "more patients" in error["message"]
    dataset.refresh_from_db()
    assert dataset.split_seed == seed_before


def test_one_label_is_refused_and_other_sites_cannot_see_the_dataset(
    client_for, clinician_a, outsider
):
    single = _dataset(clinician_a.site, _patients(10, labels=("benign",)), 0)
    response = client_for(clinician_a).post(_url(single))
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "dataset_not_ready"
    rows = _patients(10)
    dataset = _dataset(clinician_a.site, rows, _unlucky_seed(rows))
    stranger = client_for(outsider).post(_url(dataset))
    assert stranger.status_code == 404
    assert client_for(None).post(_url(dataset)).status_code in {401, 403}
    assert not AuditEvent.objects.filter(action="dataset.split_redrawn").exists()
