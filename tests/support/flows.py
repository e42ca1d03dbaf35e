"""Whole flows through the public API, shared by end-to-end tests."""

from __future__ import annotations

from typing import Any

import requests

from tests.support.agent import wait_until


def upload_dataset(
    client: Any,
    *,
    site: str,
    name: str,
    files: list[tuple[str, str, bytes, str]],
    label_names: list[str],
    timeout: float = 120,
    pin_splits: bool = True,
) -> int:
    """Create a dataset, upload (filename, label, bytes, patient) straight to storage, wait for ingest.

    With ``pin_splits`` (needs the hub's database in this process) the dataset's split seed is
    set, before any image arrives, to one under which every label has the images training
    needs in each split: with a few dozen images a random seed sometimes leaves a label out of
    validation, and the hub rightly refuses to train, which made tests fail at random.
    """
    created = client.post(
        "/api/v1/datasets/", {"site": site, "name": name, "label_names": label_names}, format="json"
    )
    assert created.status_code == 201, created.content
    dataset_id = created.json()["id"]
    if pin_splits:
        from pollen.datasets.models import Dataset

        seed = trainable_split_seed([(label, patient) for _, label, _, patient in files])
        Dataset.objects.filter(pk=dataset_id).update(split_seed=seed)
    image_ids = []
    for start in range(0, len(files), 200):
        chunk = files[start : start + 200]
        body = client.post(
            f"/api/v1/datasets/{dataset_id}/upload-slots/",
            {
                "files": [
                    {"filename": f, "label": label, "patient_id": patient, "size_bytes": len(data)}
                    for f, label, data, patient in chunk
                ]
            },
            format="json",
        )
        assert body.status_code == 200, body.content
        by_name = {f: data for f, _, data, _ in chunk}
        with requests.Session() as http:
            for slot in body.json()["slots"]:
                put = http.request(
                    slot["method"],
                    slot["url"],
                    data=by_name[slot["filename"]],
                    headers=slot["headers"],
                    timeout=30,
                )
                assert put.status_code in (200, 204), put.text[:200]
                image_ids.append(slot["image_id"])
    done = client.post(
        f"/api/v1/datasets/{dataset_id}/uploads/complete/", {"image_ids": image_ids}, format="json"
    )
    assert done.status_code == 202, done.content
    wait_until(
        lambda: client.get(f"/api/v1/datasets/{dataset_id}/").json()["pending_count"] == 0,
        timeout=timeout,
        what="ingest",
    )
    return dataset_id


def trainable_split_seed(images: list[tuple[str, str]]) -> int:
    """The first split seed under which the (label, patient id) ``images`` meet the hub's
    minimum images per label for training, and give every label a test image (so that an
    evaluation has each label); found with the hub's own split function."""
    from collections import Counter

    from pollen.datasets.splits import split_for
    from pollen.training.services import MIN_IMAGES_PER_LABEL

    labels = {label for label, _ in images}
    for seed in range(10_000):
        counts = Counter(
            (label, split_for(seed=seed, patient_id=patient, fallback_key=""))
            for label, patient in images
        )
        if all(
            counts[label, split] >= minimum
            for label in labels
            for split, minimum in {**MIN_IMAGES_PER_LABEL, "test": 1}.items()
        ):
            return seed
    raise AssertionError(f"no split seed gives every label enough images: {len(images)} images")


def wait_job(client: Any, job_id: int, *, statuses: set[str], timeout: float) -> dict[str, Any]:
    def done() -> dict[str, Any] | None:
        body = client.get(f"/api/v1/jobs/{job_id}/").json()
        return body if body["status"] in statuses else None

    return wait_until(
        done, timeout=timeout, what=f"job {job_id} to reach {statuses}", interval=0.25
    )
