"""Stopping a running job: after a round of learning ended, the best model so far is kept.

The agent finishes the best epoch's weights into a model and reports it with stop_reason
"cancelled"; the job ends cancelled with that model, which says it was stopped early. A job
stopped before any round ended keeps nothing, and says so.
"""

from __future__ import annotations

import pytest
from rest_framework.test import APIClient

from pollen.accounts.caller import caller_for_token, caller_for_user
from pollen.accounts.services import token_create
from pollen.audit.models import AuditEvent
from pollen.datasets.models import Dataset
from pollen.training import claims, services
from pollen.training.models import Job, ModelVersion
from pollen.zoo.models import ZooEntry

pytestmark = pytest.mark.django_db


@pytest.fixture
def running(clinician_a, labelled_rows) -> tuple[Job, APIClient]:
    dataset = Dataset.objects.create(
        site=clinician_a.site, name="squares", label_names=["left", "right"]
    )
    labelled_rows(dataset)
    job = services.job_create(
        caller=caller_for_user(clinician_a.user),
        dataset=dataset,
        starting_point=ZooEntry.objects.get(slug="small-cnn-random"),
        name="Chest X-ray model",
    )
    token, _ = token_create(caller=None, site=job.site, name="agent", kind="agent")
    claimed = claims.job_claim(caller=caller_for_token(token), job=job, claim_id="d", worker="w")
    assert claimed is not None
    agent = APIClient()
    agent.credentials(HTTP_AUTHORIZATION=f"Bearer {claimed['job_token']}")
    return job, agent


def _result(stop_reason: str) -> dict:
    return {
        "evaluation": {
            "label_names": ["left", "right"],
            "auc": 0.81,
            "epochs_run": 3,
            "kept_epoch": 2,
            "planned_epochs": 25,
            "stop_reason": stop_reason,
        },
        "model": {
            "architecture": "small_cnn",
            "label_names": ["left", "right"],
            "input_size": 64,
            "mean": [0.5],
            "std": [0.25],
            "weights_sha256": "a" * 64,
            "storage_key": "models/job-1/",
            "training_summary": {"stopped_early": {"epochs_run": 3, "planned_epochs": 25}},
        },
    }


def test_a_run_stopped_after_some_rounds_ends_cancelled_with_its_best_model(
    running, client_for, clinician_a
):
    job, agent = running
    client = client_for(clinician_a)
    assert client.post(f"/api/v1/jobs/{job.pk}/cancel/").json()["cancel_requested"] is True
    answer = agent.post(
        f"/api/v1/agent/jobs/{job.pk}/complete/", _result("cancelled"), format="json"
    )
    assert answer.status_code == 200, answer.content
    body = client.get(f"/api/v1/jobs/{job.pk}/").json()
    assert body["status"] == "cancelled"
    assert body["model_version"] == answer.json()["model_version"]
    assert body["message"].startswith("Stopped by a user after 3 of 25 rounds of learning.")
    assert "round 2" in body["message"] and "stopped early" in body["message"]
    assert body["progress"]["eta_seconds"] == 0
    model = client.get(f"/api/v1/models/{body['model_version']}/").json()
    assert model["metrics"]["stop_reason"] == "cancelled"
    assert model["training_summary"]["stopped_early"] == {"epochs_run": 3, "planned_epochs": 25}
    assert AuditEvent.objects.filter(action="job.cancelled", target_id=str(job.pk)).exists()


def test_a_run_that_finished_still_succeeds(running, client_for, clinician_a):
    job, agent = running
    answer = agent.post(
        f"/api/v1/agent/jobs/{job.pk}/complete/", _result("early_stopping"), format="json"
    )
    assert answer.status_code == 200, answer.content
    job.refresh_from_db()
    assert (job.status, job.message, job.progress["fraction"]) == ("succeeded", "", 1.0)


def test_a_run_stopped_before_any_round_ended_keeps_nothing_and_says_so(
    running, client_for, clinician_a
):
    job, agent = running
    client_for(clinician_a).post(f"/api/v1/jobs/{job.pk}/cancel/")
    message = "Stopped by a user before the first round of learning ended, so no model was kept."
    fail = {"code": "cancelled", "message": message}
    assert agent.post(f"/api/v1/agent/jobs/{job.pk}/fail/", fail, format="json").status_code == 204
    body = client_for(clinician_a).get(f"/api/v1/jobs/{job.pk}/").json()
    assert (body["status"], body["model_version"], body["message"]) == ("cancelled", None, message)
    assert not ModelVersion.objects.filter(job_id=job.pk).exists()
