"""A job fixes the finding its model looks for, sends it to the agent and keeps the model's record."""

from __future__ import annotations

import pytest
from rest_framework.test import APIClient

from pollen.accounts.caller import caller_for_token
from pollen.accounts.services import token_create
from pollen.datasets.models import Dataset
from pollen.training import claims
from pollen.training.models import Job, ModelVersion
from pollen.zoo.models import ZooEntry

pytestmark = pytest.mark.django_db

MODEL = {
    "architecture": "small_cnn",
    "label_names": ["malignant", "benign or normal"],
    "input_size": 32,
    "mean": [0.5, 0.5, 0.5],
    "std": [0.5, 0.5, 0.5],
    "weights_sha256": "a" * 64,
    "storage_key": "models/job-1/",
    "training_summary": {},
}


@pytest.fixture
def claimed(client_for, clinician_a, labelled_rows):
    labels = ["malignant", "benign or normal"]
    response = client_for(clinician_a).post(
        "/api/v1/datasets/",
        {"site": "site-a", "name": "Breast", "label_names": labels},
        format="json",
    )
    dataset = Dataset.objects.get(pk=response.json()["id"])
    labelled_rows(dataset, labels=tuple(labels))
    created = client_for(clinician_a).post(
        "/api/v1/jobs/",
        {"dataset": dataset.pk, "starting_point": ZooEntry.objects.get(slug="small-cnn-random").pk},
        format="json",
    )
    assert created.status_code == 201, created.content
    token, _ = token_create(caller=None, site=clinician_a.site, name="agent", kind="agent")
    job = Job.objects.get(pk=created.json()["id"])
    claim = claims.job_claim(caller=caller_for_token(token), job=job, claim_id="d", worker="w")
    assert claim is not None
    return job, claim


def test_the_job_sends_the_datasets_finding_whatever_its_place(claimed):
    job, claim = claimed
    assert job.positive_class == "malignant"
    assert claim["spec"]["positive_class"] == "malignant"
    assert claim["spec"]["label_names"] == ["malignant", "benign or normal"]


def test_the_model_version_keeps_the_finding_and_shows_it(claimed, client_for, clinician_a):
    job, claim = claimed
    agent = APIClient()
    agent.credentials(HTTP_AUTHORIZATION=f"Bearer {claim['job_token']}")
    url = f"/api/v1/agent/jobs/{job.pk}/complete/"
    wrong = agent.post(
        url,
        {"evaluation": {}, "model": MODEL | {"positive_class": "pneumonia"}},
        format="json",
    )
    assert wrong.status_code == 400, wrong.content
    done = agent.post(
        url,
        {
            "evaluation": {"positive_class": "malignant", "sensitivity": 0.75},
            "model": MODEL | {"positive_class": "malignant"},
        },
        format="json",
    )
    assert done.status_code == 200, done.content
    version = ModelVersion.objects.get(pk=done.json()["model_version"])
    assert version.positive_class == "malignant"
    shown = client_for(clinician_a).get(f"/api/v1/models/{version.pk}/").json()
    assert shown["positive_class"] == "malignant"
    job_page = client_for(clinician_a).get(f"/api/v1/jobs/{job.pk}/").json()
    assert job_page["positive_class"] == "malignant"
