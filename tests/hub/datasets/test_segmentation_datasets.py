"""Segmentation datasets at the hub (issue 18): mask classes, masks with uploads and archives,
what the agent found, statistics, and the images a training job reads.

The agent is faked here (presign answers, sent tasks recorded); tests/agent/ingest covers the
checks of the pixels, and the flow tests run both together.
"""

from __future__ import annotations

from typing import Any

import pytest

from pollen.datasets.models import Dataset, Image, ImageStatus, Mask
from pollen_contracts import tasks

pytestmark = pytest.mark.django_db

STATS = {
    "empty": False,
    "foreground_fraction": 0.12,
    "class_pixels": {"lesion": 120},
    "components": 1,
    "largest_component_px": 120,
}


@pytest.fixture
def agent_fake(monkeypatch) -> list[dict[str, Any]]:
    """Presign answers from a fake agent; tasks sent to it are recorded."""
    from pollen.core.dispatch import app

    sent: list[dict[str, Any]] = []

    def presign(slug: str, task: str, payload: dict[str, Any], **_: Any) -> dict[str, Any]:
        if task == tasks.PRESIGN_DOWNLOAD:
            return {"urls": {k: f"https://storage.test/get/{k}" for k in payload["keys"]}}
        return {
            "slots": [
                {"key": k, "url": f"https://storage.test/{k}", "method": "PUT", "headers": {}}
                for k in payload["keys"]
            ]
        }

    monkeypatch.setattr(
        app,
        "send_task",
        lambda name, kwargs, queue, **_: sent.append({"name": name, "payload": kwargs["payload"]}),
    )
    for module in ("ingest", "archives", "images", "uploads"):
        monkeypatch.setattr(f"pollen.datasets.{module}.ask_site_agent", presign)
    return sent


def _create(client, **fields: Any):
    return client.post(
        "/api/v1/datasets/", {"site": "site-a", "name": "Lesions", **fields}, format="json"
    )


@pytest.fixture
def seg(client_for, clinician_a) -> tuple[Any, int]:
    client = client_for(clinician_a)
    created = _create(client, task="segmentation", mask_classes=["lesion"], modality="ultrasound")
    assert created.status_code == 201, created.content
    return client, created.json()["id"]


def test_a_segmentation_dataset_names_its_mask_classes(client_for, clinician_a):
    client = client_for(clinician_a)
    missing = _create(client, task="segmentation")
    assert missing.status_code == 400
    assert missing.json()["error"]["code"] == "mask_classes_required"
    not_seg = _create(client, name="Chest", mask_classes=["lesion"])
    assert not_seg.json()["error"]["code"] == "mask_classes_need_segmentation"
    background = _create(client, task="segmentation", mask_classes=["Background"])
    assert background.json()["error"]["code"] == "invalid_mask_class"
    made = _create(client, task="segmentation", mask_classes=[" vessel "])
    assert made.status_code == 201, made.content
    body = made.json()
    assert body["task"] == "segmentation" and body["mask_classes"] == ["vessel"]
    assert body["masks_required"] is True


def _slots(client, dataset: int, files: list[dict[str, Any]]) -> dict[str, Any]:
    response = client.post(
        f"/api/v1/datasets/{dataset}/upload-slots/", {"files": files}, format="json"
    )
    assert response.status_code == 200, response.content
    return response.json()


def test_each_mask_gets_its_own_link_and_a_bad_one_sinks_only_its_image(seg, agent_fake):
    client, dataset = seg
    body = _slots(
        client,
        dataset,
        [
            {
                "filename": "eye.png",
                "masks": [
                    {"filename": "eye_1stHO.png", "reader": "1stHO"},
                    {"filename": "eye_2ndHO.png", "reader": "2ndHO"},
                ],
            },
            {
                "filename": "two.png",
                "masks": [{"filename": "two_mask.png"}, {"filename": "two_mask_1.png"}],
            },
            {"filename": "alone.png"},
            {"filename": "tiny.png", "masks": [{"filename": "tiny_mask.png", "size_bytes": 0}]},
        ],
    )
    by_name = {slot["filename"]: slot for slot in body["slots"]}
    assert sorted(by_name) == ["eye.png", "two.png"]
    assert [m["reader"] for m in by_name["eye.png"]["mask_slots"]] == ["1stHO", "2ndHO"]
    # Two files of one reader: one mask, two links (merged at the site).
    two = by_name["two.png"]["mask_slots"]
    assert len(two) == 2 and two[0]["mask_id"] == two[1]["mask_id"]
    assert all(m["url"].startswith("https://storage.test/") for m in two)
    refused = {r["filename"]: r for r in body["refused"]}
    assert refused["alone.png"]["code"] == "mask_missing"
    assert (
        refused["tiny.png"]["code"] == "empty_file"
        and "tiny_mask.png" in refused["tiny.png"]["reason"]
    )
    assert Mask.objects.filter(image__dataset_id=dataset).count() == 3


def test_masks_belong_in_a_segmentation_dataset(client_for, clinician_a, agent_fake):
    client = client_for(clinician_a)
    dataset = _create(client, name="Chest", label_names=["a", "b"]).json()["id"]
    body = _slots(
        client, dataset, [{"filename": "x.png", "label": "a", "masks": [{"filename": "m.png"}]}]
    )
    assert body["slots"] == []
    assert body["refused"][0]["code"] == "masks_need_segmentation"


def _uploaded(client, dataset: int, agent_fake) -> tuple[Image, dict[str, Any]]:
    body = _slots(
        client,
        dataset,
        [
            {
                "filename": "eye.png",
                "masks": [
                    {"filename": "eye_1stHO.png", "reader": "1stHO"},
                    {"filename": "eye_2ndHO.png", "reader": "2ndHO"},
                ],
            }
        ],
    )
    image = Image.objects.get(pk=body["slots"][0]["image_id"])
    return image, body


def test_finishing_an_upload_sends_the_masks_and_the_label_map(
    seg, agent_fake, django_capture_on_commit_callbacks
):
    client, dataset = seg
    image, _ = _uploaded(client, dataset, agent_fake)
    with django_capture_on_commit_callbacks(execute=True):
        done = client.post(
            f"/api/v1/datasets/{dataset}/uploads/complete/",
            {"image_ids": [image.pk]},
            format="json",
        )
    assert done.status_code in (200, 202), done.content
    [ingest] = [s for s in agent_fake if s["name"] == tasks.INGEST_IMAGES]
    payload = ingest["payload"]
    assert payload["segmentation"] == {
        "label_names": ["background", "lesion"],
        "masks_required": True,
        "reference_reader": "",
    }
    assert payload["mask_prefix"] == f"datasets/{dataset}/masks/"
    [item] = payload["images"]
    assert [m["reader"] for m in item["masks"]] == ["1stHO", "2ndHO"]
    assert item["masks"][0]["filenames"] == ["eye_1stHO.png"]
    assert item["masks"][0]["keys"][0].startswith(f"datasets/{dataset}/masks/uploads/")


def _record(dataset_id: int, image: Image, masks: list[dict[str, Any]], status: str = "accepted"):
    from pollen.datasets.ingest import ingest_results_record

    result: dict[str, Any] = {"image_id": image.pk, "status": status, "masks": masks}
    if status == "accepted":
        result |= {"sha256": "a" * 64, "width": 64, "height": 48, "channels": 3}
    else:
        result |= {"code": "mask_rejected", "reason": "eye_1stHO.png: colour."}
    return ingest_results_record(dataset=Dataset.objects.get(pk=dataset_id), results=[result])


def test_what_the_agent_found_is_kept_per_mask_and_summed_up(seg, agent_fake):
    client, dataset = seg
    image, _ = _uploaded(client, dataset, agent_fake)
    first, second = image.masks.order_by("reader")
    counts = _record(
        dataset,
        image,
        [
            {
                "mask_id": first.pk,
                "status": "accepted",
                "key": "datasets/1/masks/a.png",
                "stats": STATS,
            },
            {
                "mask_id": second.pk,
                "status": "accepted",
                "key": "datasets/1/masks/b.png",
                "stats": STATS | {"foreground_fraction": 0.1},
                "agreement_dice": 0.78,
                "thumbnail_key": "datasets/1/masks/b-thumb.png",
            },
        ],
    )
    assert counts == {"accepted": 1, "rejected": 0}
    first.refresh_from_db()
    second.refresh_from_db()
    assert first.status == second.status == ImageStatus.ACCEPTED
    assert first.storage_key == "datasets/1/masks/a.png" and second.agreement_dice == 0.78
    # A repeated report changes nothing.
    _record(dataset, image, [{"mask_id": first.pk, "status": "rejected", "reason": "late"}])
    first.refresh_from_db()
    assert first.status == ImageStatus.ACCEPTED

    listed = client.get(f"/api/v1/datasets/{dataset}/images/").json()["results"]
    assert [m["reader"] for m in listed[0]["masks"]] == ["1stHO", "2ndHO"]
    assert listed[0]["masks"][1]["agreement_dice"] == 0.78

    stats = client.get(f"/api/v1/datasets/{dataset}/stats/").json()["segmentation"]
    assert stats["images_with_mask"] == 1 and stats["empty_masks"] == 0
    assert stats["agreement"]["mean_dice"] == 0.78
    assert stats["agreement"]["worst"][0]["filename"] == "eye.png"
    assert [r["reader"] for r in stats["readers"]] == ["1stHO", "2ndHO"]
    assert sum(b["count"] for b in stats["size_histogram"]) == 1

    thumbs = client.post(
        f"/api/v1/datasets/{dataset}/thumbnails/", {"image_ids": [image.pk]}, format="json"
    ).json()
    assert list(thumbs["mask_urls"]) == [str(second.pk)]


def test_a_rejected_image_keeps_no_mask(seg, agent_fake):
    client, dataset = seg
    image, _ = _uploaded(client, dataset, agent_fake)
    first, second = image.masks.order_by("reader")
    _record(
        dataset,
        image,
        [
            {
                "mask_id": first.pk,
                "status": "rejected",
                "code": "mask_is_colour",
                "reason": "eye_1stHO.png is a colour image.",
            },
            {"mask_id": second.pk, "status": "accepted", "key": "k.png", "stats": STATS},
        ],
        status="rejected",
    )
    first.refresh_from_db()
    second.refresh_from_db()
    assert first.reject_code == "mask_is_colour" and "eye_1stHO.png" in first.reject_reason
    # The image was refused, so even the mask that passed its own checks is not kept.
    assert second.status == ImageStatus.REJECTED and second.storage_key == ""


def test_mask_classes_may_grow_but_not_change_once_masks_are_in(seg, agent_fake):
    client, dataset = seg
    image, _ = _uploaded(client, dataset, agent_fake)
    first, _second = image.masks.order_by("reader")
    _record(
        dataset, image, [{"mask_id": first.pk, "status": "accepted", "key": "k", "stats": STATS}]
    )
    renamed = client.patch(
        f"/api/v1/datasets/{dataset}/", {"mask_classes": ["tumour"]}, format="json"
    )
    assert renamed.status_code == 409 and renamed.json()["error"]["code"] == "mask_classes_in_use"
    grown = client.patch(
        f"/api/v1/datasets/{dataset}/", {"mask_classes": ["lesion", "calcification"]}, format="json"
    )
    assert grown.status_code == 200 and grown.json()["mask_classes"] == ["lesion", "calcification"]


def test_an_archive_registers_images_with_their_masks_and_a_manifest_split(seg, agent_fake):
    from pollen.datasets.archives import archive_result_record
    from pollen.datasets.models import ArchiveImport, ArchiveStatus

    _, dataset_id = seg
    dataset = Dataset.objects.get(pk=dataset_id)
    archive = ArchiveImport.objects.create(
        dataset=dataset, filename="busi.zip", storage_key="k.zip", status=ArchiveStatus.EXTRACTING
    )
    images = archive_result_record(
        dataset=dataset,
        archive=archive,
        result={
            "status": "done",
            "entries": [
                {
                    "name": "benign/images/b (1).png",
                    "key": "datasets/x/b1.png",
                    "label": "",
                    "masks": [
                        {
                            "names": [
                                "benign/masks/b (1)_mask.png",
                                "benign/masks/b (1)_mask_1.png",
                            ],
                            "keys": ["datasets/x/m1.png", "datasets/x/m2.png"],
                            "reader": "",
                        }
                    ],
                    "patient_id": "P7",
                    "split": "test",
                },
                {
                    "name": "normal/images/n.png",
                    "key": "datasets/x/n.png",
                    "label": "",
                    "masks": [],
                },
            ],
            "rejected": [],
        },
    )
    assert len(images) == 2
    first = Image.objects.get(pk=images[0]["image_id"])
    assert first.split == "test" and first.patient_id == "P7"
    [mask] = images[0]["masks"]
    assert mask["filenames"] == ["b (1)_mask.png", "b (1)_mask_1.png"]
    assert mask["keys"] == ["datasets/x/m1.png", "datasets/x/m2.png"]
    assert images[1]["masks"] == []


def test_a_training_job_reads_the_reference_readers_mask(seg, agent_fake, token_client, site_a):
    client, dataset_id = seg
    dataset = Dataset.objects.get(pk=dataset_id)
    dataset.reference_reader = "2ndHO"
    dataset.save()
    image, _ = _uploaded(client, dataset_id, agent_fake)
    first, second = image.masks.order_by("reader")
    _record(
        dataset_id,
        image,
        [
            {"mask_id": first.pk, "status": "accepted", "key": "masks/first.png", "stats": STATS},
            {"mask_id": second.pk, "status": "accepted", "key": "masks/second.png", "stats": STATS},
        ],
    )
    agent = token_client(site_a, kind="agent")
    rows = agent.get(f"/api/v1/agent/datasets/{dataset_id}/training-images/").json()["results"]
    assert [(r["id"], r["mask_key"]) for r in rows] == [(image.pk, "masks/second.png")]


def test_deleting_an_image_removes_its_mask_files(
    seg, agent_fake, django_capture_on_commit_callbacks
):
    client, dataset = seg
    image, _ = _uploaded(client, dataset, agent_fake)
    sources = [k for m in image.masks.all() for k in m.source_keys]
    with django_capture_on_commit_callbacks(execute=True):
        deleted = client.delete(f"/api/v1/datasets/{dataset}/images/{image.pk}/")
    assert deleted.status_code in (200, 202, 204), deleted.content
    [removal] = [s for s in agent_fake if s["name"] == tasks.DELETE_OBJECTS]
    assert set(sources) <= set(removal["payload"]["keys"])
    assert not Mask.objects.filter(image_id=image.pk).exists()


def test_a_resumed_upload_gets_fresh_links_for_its_masks_too(seg, agent_fake):
    client, dataset = seg
    image, body = _uploaded(client, dataset, agent_fake)
    Image.objects.filter(pk=image.pk).update(status=ImageStatus.EXPIRED)
    resumed = client.post(
        f"/api/v1/datasets/{dataset}/uploads/resume/", {"image_ids": [image.pk]}, format="json"
    )
    assert resumed.status_code == 200, resumed.content
    [slot] = resumed.json()["slots"]
    before = {m["key"] for m in body["slots"][0]["mask_slots"]}
    assert {m["key"] for m in slot["mask_slots"]} == before  # the same masks, new links
    assert [m["reader"] for m in slot["mask_slots"]] == ["1stHO", "2ndHO"]
    assert all(m["url"].startswith("https://storage.test/") for m in slot["mask_slots"])
