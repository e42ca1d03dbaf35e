"""Epoch records reach the history exactly once, and a job says "Resumed" only when it did.

An agent that lost the hub for a while sends its epoch records again when the hub is back,
and a worker that takes a job over sends the records its checkpoint carries: none of that
may duplicate an epoch, and claiming a job must not claim that a checkpoint was resumed.
"""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone
from rest_framework.test import APIClient

from pollen.accounts.caller import caller_for_token, caller_for_user
from pollen.accounts.services import token_create
from pollen.datasets.models import Dataset
from pollen.training import claims, progress, services
from pollen.training.models import Job
from pollen.zoo.models import ZooEntry

pytestmark = pytest.mark.django_db


@pytest.fixture
def job(clinician_a, labelled_rows):
    dataset = Dataset.objects.create(
        site=clinician_a.site, name="squares", label_names=["left", "right"]
    )
    labelled_rows(dataset)
    return services.job_create(
        caller=caller_for_user(clinician_a.user),
        dataset=dataset,
        starting_point=ZooEntry.objects.get(slug="small-cnn-random"),
    )


def _claim(job: Job, delivery: str) -> APIClient:
    """Claim as the site's agent would; a client with the job token the claim hands out."""
    token, _ = token_create(caller=None, site=job.site, name="agent", kind="agent")
    claimed = claims.job_claim(
        caller=caller_for_token(token), job=job, claim_id=delivery, worker="gpu@site-a"
    )
    assert claimed is not None
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {claimed['job_token']}")
    return client


def _lapse_and_requeue(job: Job) -> None:
    Job.objects.filter(pk=job.pk).update(lease_expires_at=timezone.now() - timedelta(seconds=1))
    assert services.jobs_requeue_abandoned(site_id=job.site_id) == [job.pk]


def _record(epoch: int, attempt: int, loss: float = 0.5) -> dict:
    return {"epoch": epoch, "train_loss": loss, "val_auc": 0.7, "attempt": attempt}


def _epochs(job: Job) -> list[tuple[int, int]]:
    job.refresh_from_db()
    return [(h["epoch"], h["attempt"]) for h in job.history]


def test_an_epoch_record_sent_again_is_stored_once(job):
    client = _claim(job, "d1")
    for _ in range(2):  # the first answer was lost on the way back: the agent sends it again
        answer = client.post(f"/api/v1/agent/jobs/{job.pk}/epochs/", _record(1, 1), format="json")
        assert answer.status_code == 204, answer.content
    client.post(f"/api/v1/agent/jobs/{job.pk}/epochs/", _record(2, 1), format="json")
    assert _epochs(job) == [(1, 1), (2, 1)]
    assert job.checkpoint_epoch == 2


def test_a_late_record_from_an_earlier_attempt_does_not_replace_the_newer_one(job):
    first = _claim(job, "d1")
    first.post(f"/api/v1/agent/jobs/{job.pk}/epochs/", _record(1, 1), format="json")
    _lapse_and_requeue(job)
    second = _claim(job, "d2")
    second.post(f"/api/v1/agent/jobs/{job.pk}/training-start/", {"from_epoch": 0}, format="json")
    second.post(f"/api/v1/agent/jobs/{job.pk}/epochs/", _record(1, 2, loss=0.4), format="json")
    progress.job_epoch_record(job=job, record=_record(1, 1, loss=0.9))  # stale, arrives late
    assert _epochs(job) == [(1, 2)]
    assert job.history[0]["train_loss"] == 0.4


def test_claiming_a_job_again_does_not_say_it_resumed(job):
    _claim(job, "d1")
    _lapse_and_requeue(job)
    _claim(job, "d2")
    job.refresh_from_db()
    assert job.attempt == 2
    assert "Picked up again" in job.events[-1]["text"]
    assert not any("Resumed" in e["text"] for e in job.events), job.events


def test_a_loaded_checkpoint_says_resumed_and_brings_the_epochs_the_hub_never_got(job):
    first = _claim(job, "d1")
    first.post(f"/api/v1/agent/jobs/{job.pk}/epochs/", _record(1, 1), format="json")
    first.post(f"/api/v1/agent/jobs/{job.pk}/epochs/", _record(2, 1), format="json")
    # Epoch 3's checkpoint was saved, but the hub was away when its record was sent.
    _lapse_and_requeue(job)
    second = _claim(job, "d2")
    answer = second.post(
        f"/api/v1/agent/jobs/{job.pk}/training-start/",
        {"from_epoch": 3, "epochs": [_record(1, 1), _record(2, 1), _record(3, 1)]},
        format="json",
    )
    assert answer.status_code == 204, answer.content
    second.post(f"/api/v1/agent/jobs/{job.pk}/epochs/", _record(4, 2), format="json")
    assert _epochs(job) == [(1, 1), (2, 1), (3, 1), (4, 2)]
    assert job.events[-1]["text"].startswith("Resumed from epoch 3")
    assert sum("Resumed" in e["text"] for e in job.events) == 1


def test_starting_again_without_a_checkpoint_says_so_and_drops_the_abandoned_epochs(job):
    first = _claim(job, "d1")
    first.post(f"/api/v1/agent/jobs/{job.pk}/epochs/", _record(1, 1), format="json")
    _lapse_and_requeue(job)
    second = _claim(job, "d2")  # and the checkpoint turned out unreadable
    second.post(f"/api/v1/agent/jobs/{job.pk}/training-start/", {"from_epoch": 0}, format="json")
    assert _epochs(job) == []
    assert job.checkpoint_epoch is None
    assert "started again from epoch 1" in job.events[-1]["text"]
    assert not any("Resumed" in e["text"] for e in job.events)


def test_a_first_start_from_the_beginning_adds_no_event(job):
    client = _claim(job, "d1")
    before = len(Job.objects.get(pk=job.pk).events)
    client.post(f"/api/v1/agent/jobs/{job.pk}/training-start/", {"from_epoch": 0}, format="json")
    assert len(Job.objects.get(pk=job.pk).events) == before


def test_training_start_refuses_epochs_after_the_checkpoint(job):
    client = _claim(job, "d1")
    answer = client.post(
        f"/api/v1/agent/jobs/{job.pk}/training-start/",
        {"from_epoch": 1, "epochs": [_record(1, 1), _record(2, 1)]},
        format="json",
    )
    assert answer.status_code == 400
    assert answer.json()["error"]["code"] == "invalid_epochs"
    assert _epochs(job) == []


def test_the_old_workers_token_cannot_write_after_another_worker_took_the_job(job):
    old = _claim(job, "d1")
    _lapse_and_requeue(job)
    _claim(job, "d2")
    answer = old.post(f"/api/v1/agent/jobs/{job.pk}/epochs/", _record(1, 1), format="json")
    assert answer.status_code == 401
    assert answer.json()["error"]["code"] == "token_revoked"
    assert _epochs(job) == []


def test_records_for_a_requeued_job_are_refused_so_the_old_worker_stops(job):
    old = _claim(job, "d1")
    _lapse_and_requeue(job)
    answer = old.post(f"/api/v1/agent/jobs/{job.pk}/epochs/", _record(1, 1), format="json")
    assert answer.status_code == 409
    assert answer.json()["error"]["code"] == "job_not_running"
    progress = old.post(
        f"/api/v1/agent/jobs/{job.pk}/progress/", {"phase": "training", "fraction": 0.5}
    ).json()
    assert progress["status"] == "queued"
