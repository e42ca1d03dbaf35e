"""Abandoned uploads: unfinished slots expire, show as "upload not finished", can be resumed or
discarded, and their files are removed from site storage by the agent."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from django.utils import timezone

from pollen.audit.models import AuditEvent
from pollen.datasets.models import Dataset, Image, ImageStatus
from pollen_contracts import tasks

pytestmark = pytest.mark.django_db

HOUR = 3600


@pytest.fixture
def sent(monkeypatch) -> list[dict[str, Any]]:
    """Tasks sent to site agents; presign questions are answered as the agent would."""
    from pollen.celery import app

    out: list[dict[str, Any]] = []

    def send_task(name: str, kwargs: dict[str, Any], queue: str, **_: Any) -> None:
        out.append({"name": name, "payload": kwargs["payload"], "queue": queue})

    def presign(slug: str, task: str, payload: dict[str, Any], **_: Any) -> dict[str, Any]:
        assert task == tasks.PRESIGN_UPLOAD
        return {
            "slots": [
                {"key": k, "url": f"https://storage.test/{k}", "method": "PUT", "headers": {}}
                for k in payload["keys"]
            ]
        }

    monkeypatch.setattr(app, "send_task", send_task)
    monkeypatch.setattr("pollen.datasets.ingest.ask_site_agent", presign)
    monkeypatch.setattr("pollen.datasets.uploads.ask_site_agent", presign)
    return out


@pytest.fixture
def expiry(settings):
    settings.UPLOAD_SLOT_EXPIRY_SECONDS = HOUR
    return HOUR


@pytest.fixture
def slots(client_for, clinician_a, expiry, sent, django_capture_on_commit_callbacks):
    """Three upload slots; the user finished only the first one, then left."""
    client = client_for(clinician_a)
    dataset = Dataset.objects.create(site=clinician_a.site, name="Chest", label_names=["x"])
    body = client.post(
        f"/api/v1/datasets/{dataset.pk}/upload-slots/",
        {"files": [{"filename": f"{i}.png", "label": "x", "size_bytes": 10} for i in range(3)]},
        format="json",
    ).json()
    with django_capture_on_commit_callbacks(execute=True):
        done = client.post(
            f"/api/v1/datasets/{dataset.pk}/uploads/complete/",
            {"image_ids": [body["slots"][0]["image_id"]]},
            format="json",
        )
    assert done.status_code == 202
    sent.clear()
    return dataset, body["slots"]


def _expire(now, capture) -> int:
    from pollen.datasets.uploads import upload_slots_expire

    with capture(execute=True):
        return upload_slots_expire(now=now)


def test_the_default_expiry_is_a_day():
    from django.conf import settings

    assert settings.UPLOAD_SLOT_EXPIRY_SECONDS == 24 * HOUR


def test_slots_still_waiting_for_their_file_are_not_counted_as_being_checked(
    client_for, clinician_a, slots
):
    dataset, _ = slots
    client = client_for(clinician_a)
    detail = client.get(f"/api/v1/datasets/{dataset.pk}/").json()
    # Only the finished upload is being checked; the page stops saying so (and polling) once done.
    assert (detail["pending_count"], detail["uploading_count"]) == (1, 2)
    images = {
        i["filename"]: i
        for i in client.get(f"/api/v1/datasets/{dataset.pk}/images/").json()["results"]
    }
    assert images["0.png"]["upload_expires_at"] is None
    assert images["1.png"]["upload_expires_at"] is not None


def test_unfinished_uploads_expire_after_the_configured_time_and_their_files_are_removed(
    client_for, clinician_a, slots, sent, django_capture_on_commit_callbacks
):
    dataset, issued = slots
    now = timezone.now()
    assert _expire(now + timedelta(minutes=30), django_capture_on_commit_callbacks) == 0
    assert sent == []
    assert _expire(now + timedelta(hours=2), django_capture_on_commit_callbacks) == 2

    statuses = dict(Image.objects.filter(dataset=dataset).values_list("filename", "status"))
    assert statuses == {"0.png": "pending", "1.png": "expired", "2.png": "expired"}
    assert [s["name"] for s in sent] == [tasks.DELETE_OBJECTS]
    assert sent[0]["queue"] == "site.site-a.io"
    assert sorted(sent[0]["payload"]["keys"]) == sorted(s["key"] for s in issued[1:])
    assert "dataset_id" not in sent[0]["payload"]
    event = AuditEvent.objects.get(action="dataset.uploads_expired")
    assert event.detail["count"] == 2 and event.actor_user_id is None

    assert _expire(now + timedelta(hours=3), django_capture_on_commit_callbacks) == 0  # once only
    client = client_for(clinician_a)
    assert client.get(f"/api/v1/datasets/{dataset.pk}/").json()["unfinished_count"] == 2
    listed = client.get(f"/api/v1/datasets/{dataset.pk}/images/", {"status": "expired"}).json()
    assert sorted(i["filename"] for i in listed["results"]) == ["1.png", "2.png"]
    stats = client.get(f"/api/v1/datasets/{dataset.pk}/stats/").json()
    assert stats["status"]["expired"] == 2


def test_an_expired_upload_can_be_resumed_with_a_new_link_for_the_same_image(
    client_for, clinician_a, slots, sent, django_capture_on_commit_callbacks
):
    dataset, issued = slots
    _expire(timezone.now() + timedelta(hours=2), django_capture_on_commit_callbacks)
    client = client_for(clinician_a)
    ids = [s["image_id"] for s in issued]
    response = client.post(
        f"/api/v1/datasets/{dataset.pk}/uploads/resume/", {"image_ids": ids}, format="json"
    )
    assert response.status_code == 200, response.content
    body = response.json()
    assert sorted(s["image_id"] for s in body["slots"]) == ids[1:]
    # A new key: a removal of the old file that is still on its way can never hit the new one.
    old = {s["image_id"]: s["key"] for s in issued}
    assert all(s["key"] != old[s["image_id"]] and s["url"] for s in body["slots"])
    assert [r["code"] for r in body["refused"]] == ["upload_finished"]
    assert set(Image.objects.filter(pk__in=ids[1:]).values_list("status", flat=True)) == {"pending"}
    # The clock starts again from the resume.
    assert _expire(timezone.now() + timedelta(minutes=30), django_capture_on_commit_callbacks) == 0
    complete = client.post(
        f"/api/v1/datasets/{dataset.pk}/uploads/complete/", {"image_ids": ids[1:]}, format="json"
    )
    assert complete.status_code == 202


def test_unfinished_uploads_can_be_discarded_and_finished_images_are_kept(
    client_for, clinician_a, slots, sent, django_capture_on_commit_callbacks
):
    dataset, issued = slots
    _expire(timezone.now() + timedelta(hours=2), django_capture_on_commit_callbacks)
    sent.clear()
    ids = [s["image_id"] for s in issued]
    with django_capture_on_commit_callbacks(execute=True):
        response = client_for(clinician_a).post(
            f"/api/v1/datasets/{dataset.pk}/uploads/discard/", {"image_ids": ids}, format="json"
        )
    assert response.status_code == 200, response.content
    assert response.json() == {"discarded": 2}
    assert list(Image.objects.filter(dataset=dataset).values_list("pk", flat=True)) == ids[:1]
    assert [s["name"] for s in sent] == [tasks.DELETE_OBJECTS]
    assert sorted(sent[0]["payload"]["keys"]) == sorted(s["key"] for s in issued[1:])


def test_the_clock_expires_lapsed_slots(slots, sent, django_capture_on_commit_callbacks):
    from pollen.ops.clock import clock_tick

    dataset, _ = slots
    Image.objects.filter(dataset=dataset, status=ImageStatus.PENDING).exclude(
        upload_expires_at=None
    ).update(upload_expires_at=timezone.now() - timedelta(seconds=1))
    with django_capture_on_commit_callbacks(execute=True):
        report = clock_tick()
    assert report is not None and report.work["uploads_expired"] == {"*": 2}
    assert Image.objects.filter(dataset=dataset, status=ImageStatus.EXPIRED).count() == 2


def test_outsider_gets_404_on_resume_and_discard(client_for, outsider, slots):
    dataset, issued = slots
    client = client_for(outsider)
    for action in ("resume", "discard"):
        response = client.post(
            f"/api/v1/datasets/{dataset.pk}/uploads/{action}/",
            {"image_ids": [issued[1]["image_id"]]},
            format="json",
        )
        assert response.status_code == 404
