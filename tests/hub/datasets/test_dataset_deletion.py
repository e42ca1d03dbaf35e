"""Deleting a dataset: a site-admin action that names what depends on it, keeps models usable,
and ends in the same state on the hub and the agent however often either side repeats itself."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from django.utils import timezone
from rest_framework.test import APIClient

from pollen.audit.models import AuditEvent
from pollen.datasets.models import Dataset, DatasetStatus, Image, ImageStatus
from pollen.training.models import Job, JobStatus, ModelVersion
from pollen_contracts import tasks

pytestmark = pytest.mark.django_db


@pytest.fixture
def sent(monkeypatch) -> list[dict[str, Any]]:
    """Tasks the hub sends to site agents (no agent runs in these tests)."""
    from pollen.celery import app

    out: list[dict[str, Any]] = []

    def send_task(name: str, kwargs: dict[str, Any], queue: str, **_: Any) -> None:
        out.append({"name": name, "payload": kwargs["payload"], "queue": queue})

    monkeypatch.setattr(app, "send_task", send_task)
    return out


@pytest.fixture
def dataset(site_a) -> Dataset:
    ds = Dataset.objects.create(site=site_a, name="Demo chest", label_names=["normal", "pneumonia"])
    Image.objects.bulk_create(
        Image(
            dataset=ds,
            filename=f"{i}.png",
            storage_key=f"datasets/{ds.pk}/images/{i}.png",
            thumbnail_key=f"datasets/{ds.pk}/thumbnails/{i}.png",
            status=ImageStatus.ACCEPTED,
            label=["normal", "pneumonia"][i % 2],
            patient_id=f"P{i}",
            split="train" if i < 4 else "test",
            sha256=f"{i:064x}",
        )
        for i in range(6)
    )
    return ds


def _model(dataset: Dataset, *, status: str = JobStatus.SUCCEEDED) -> Job:
    job = Job.objects.create(
        site=dataset.site, dataset=dataset, name="Screen", status=status, label_names=["a", "b"]
    )
    if status == JobStatus.SUCCEEDED:
        ModelVersion.objects.create(
            site=dataset.site,
            job=job,
            name="Screen",
            architecture="small_cnn",
            label_names=["normal", "pneumonia"],
            input_size=32,
            weights_sha256="0" * 64,
            storage_key=f"models/job-{job.pk}/",
        )
    return job


def _agent(site: Any) -> APIClient:
    from pollen.accounts.services import token_create

    _, plaintext = token_create(caller=None, site=site, name="agent", kind="agent")
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {plaintext}")
    return client


def _delete(client: APIClient, dataset: Dataset, capture) -> Any:
    with capture(execute=True):
        return client.delete(f"/api/v1/datasets/{dataset.pk}/")


def test_clinician_cannot_delete_a_dataset_and_is_told_who_can(
    client_for, clinician_a, dataset, sent
):
    response = client_for(clinician_a).delete(f"/api/v1/datasets/{dataset.pk}/")
    assert response.status_code == 403, response.content
    error = response.json()["error"]
    assert error["code"] == "admin_required"
    assert "administrator" in error["message"]
    assert Dataset.objects.get(pk=dataset.pk).status == DatasetStatus.ACTIVE
    assert sent == []
    impact = client_for(clinician_a).get(f"/api/v1/datasets/{dataset.pk}/deletion-impact/")
    assert impact.status_code == 403


def test_admin_sees_every_job_model_publication_and_evaluation_that_depends_on_it(
    client_for, admin_a, dataset
):
    from pollen.marketplace.models import PublishedModel, PublishedVersion, SiteEvaluation

    job = _model(dataset)
    published = PublishedModel.objects.create(
        site=dataset.site, name="Chest screen", architecture="small_cnn"
    )
    pv = PublishedVersion.objects.create(
        published_model=published,
        model_version=job.model_version,
        number=1,
        status="published",
        weights_key="w",
        manifest_key="m",
        weights_sha256="0" * 64,
    )
    SiteEvaluation.objects.create(site=dataset.site, published_version=pv, dataset=dataset)
    response = client_for(admin_a).get(f"/api/v1/datasets/{dataset.pk}/deletion-impact/")
    assert response.status_code == 200, response.content
    impact = response.json()
    assert impact["images"] == 6
    assert [j["id"] for j in impact["jobs"]] == [job.pk]
    assert [m["id"] for m in impact["model_versions"]] == [job.model_version.pk]
    assert [p["model_name"] for p in impact["published_versions"]] == ["Chest screen"]
    assert len(impact["evaluations"]) == 1
    # The evaluation above is still queued: it reads these images, so deletion waits for it.
    assert impact["can_delete"] is False
    assert any("evaluation" in reason for reason in impact["blocking"])
    assert "stay usable" in impact["summary"]


def test_deletion_is_refused_while_a_job_still_reads_the_images(client_for, admin_a, dataset):
    job = _model(dataset, status=JobStatus.RUNNING)
    response = client_for(admin_a).delete(f"/api/v1/datasets/{dataset.pk}/")
    assert response.status_code == 409, response.content
    error = response.json()["error"]
    assert error["code"] == "dataset_in_use"
    assert job.name in error["message"]
    assert Dataset.objects.get(pk=dataset.pk).status == DatasetStatus.ACTIVE


def test_deleting_a_dataset_with_trained_models_keeps_the_models_and_their_lineage(
    client_for, admin_a, clinician_a, dataset, sent, django_capture_on_commit_callbacks
):
    job = _model(dataset)
    response = _delete(client_for(admin_a), dataset, django_capture_on_commit_callbacks)
    assert response.status_code == 202, response.content
    assert response.json()["status"] == "deleting"
    assert [s["name"] for s in sent] == [tasks.DELETE_OBJECTS]
    assert sent[0]["payload"]["prefixes"] == [f"datasets/{dataset.pk}/"]
    # Hidden from lists and from new work at once.
    clinician = client_for(clinician_a)
    assert clinician.get(f"/api/v1/datasets/{dataset.pk}/").status_code == 404
    assert dataset.pk not in [d["id"] for d in clinician.get("/api/v1/datasets/").json()["results"]]
    train = clinician.post("/api/v1/jobs/", {"dataset": dataset.pk}, format="json")
    assert train.status_code == 404

    purged = _agent(dataset.site).post(f"/api/v1/agent/datasets/{dataset.pk}/purged/")
    assert purged.status_code == 200, purged.content

    tombstone = Dataset.objects.get(pk=dataset.pk)
    assert tombstone.status == DatasetStatus.DELETED
    assert tombstone.label_names == ["normal", "pneumonia"]
    assert tombstone.deleted_summary["images"] == 6
    assert tombstone.deleted_summary["per_split"] == {"train": 4, "test": 2}
    assert not Image.objects.filter(dataset=dataset).exists()  # patient ids and labels are gone
    model = clinician.get(f"/api/v1/models/{job.model_version.pk}/")
    assert model.status_code == 200, model.content
    job_view = clinician.get(f"/api/v1/jobs/{job.pk}/").json()
    assert job_view["dataset_name"] == "Demo chest"
    # The name is free again for new data.
    again = clinician.post(
        "/api/v1/datasets/", {"site": "site-a", "name": "Demo chest"}, format="json"
    )
    assert again.status_code == 201, again.content


def test_deletion_is_audited_with_what_depended_on_it(
    client_for, admin_a, dataset, sent, django_capture_on_commit_callbacks
):
    job = _model(dataset)
    _delete(client_for(admin_a), dataset, django_capture_on_commit_callbacks)
    _agent(dataset.site).post(f"/api/v1/agent/datasets/{dataset.pk}/purged/")
    event = AuditEvent.objects.get(action="dataset.delete", target_id=str(dataset.pk))
    assert event.actor_user_id == admin_a.user.pk
    assert event.detail["images"] == 6
    assert event.detail["jobs"] == [job.pk]
    assert event.detail["model_versions"] == [job.model_version.pk]
    assert (
        AuditEvent.objects.filter(action="dataset.purged", target_id=str(dataset.pk)).count() == 1
    )


def test_a_second_purged_report_is_a_harmless_200(
    client_for, admin_a, dataset, sent, django_capture_on_commit_callbacks
):
    _delete(client_for(admin_a), dataset, django_capture_on_commit_callbacks)
    agent = _agent(dataset.site)
    first = agent.post(f"/api/v1/agent/datasets/{dataset.pk}/purged/")
    second = agent.post(f"/api/v1/agent/datasets/{dataset.pk}/purged/")
    assert (first.status_code, second.status_code) == (200, 200), second.content
    assert first.json()["status"] == second.json()["status"] == "deleted"
    assert (
        AuditEvent.objects.filter(action="dataset.purged", target_id=str(dataset.pk)).count() == 1
    )


def test_purged_report_for_an_active_dataset_is_refused_without_harm(dataset):
    response = _agent(dataset.site).post(f"/api/v1/agent/datasets/{dataset.pk}/purged/")
    assert response.status_code == 409
    assert response.json()["error"]["code"] == "not_deleting"
    assert Image.objects.filter(dataset=dataset).count() == 6


def test_a_purge_the_agent_never_confirmed_is_sent_again_later(
    client_for, admin_a, dataset, sent, django_capture_on_commit_callbacks
):
    from pollen.datasets.deletion import datasets_purge_resend

    _delete(client_for(admin_a), dataset, django_capture_on_commit_callbacks)
    assert len(sent) == 1
    now = timezone.now()
    with django_capture_on_commit_callbacks(execute=True):
        assert datasets_purge_resend(site_id=dataset.site_id, now=now) == []
    assert len(sent) == 1  # too soon: the agent may still be working on it
    later = now + timedelta(hours=1)
    with django_capture_on_commit_callbacks(execute=True):
        assert datasets_purge_resend(site_id=dataset.site_id, now=later) == [dataset.pk]
    assert len(sent) == 2 and sent[1]["payload"] == sent[0]["payload"]
    with django_capture_on_commit_callbacks(execute=True):
        assert datasets_purge_resend(site_id=dataset.site_id, now=later) == []  # once per period


def test_the_clock_resends_lapsed_purges_while_the_agent_answers(
    client_for, admin_a, dataset, sent, django_capture_on_commit_callbacks
):
    from pollen.ops.clock import clock_tick

    _delete(client_for(admin_a), dataset, django_capture_on_commit_callbacks)
    Dataset.objects.filter(pk=dataset.pk).update(purge_sent_at=timezone.now() - timedelta(hours=2))
    with django_capture_on_commit_callbacks(execute=True):
        clock_tick()
    assert len(sent) == 1, "no agent has been heard from: nobody would receive it"
    with django_capture_on_commit_callbacks(execute=True):
        beat = _agent(dataset.site).post("/api/v1/agent/heartbeat/")
        assert beat.status_code == 200
        assert beat.json()["requeued_jobs"] == [], "the heartbeat itself does no maintenance"
        assert len(sent) == 1
        clock_tick()
    assert [s["name"] for s in sent] == [tasks.DELETE_OBJECTS, tasks.DELETE_OBJECTS]


def test_outsider_gets_404_for_deletion_impact_and_delete(client_for, outsider, dataset):
    client = client_for(outsider)
    assert client.get(f"/api/v1/datasets/{dataset.pk}/deletion-impact/").status_code == 404
    assert client.delete(f"/api/v1/datasets/{dataset.pk}/").status_code == 404
