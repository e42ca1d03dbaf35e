"""A fine-tune is shown beside the model it started from, and publishing a worse one needs a yes.

- clinician_a: site A, which fine-tunes its own model and publishes the result
"""

from __future__ import annotations

from typing import Any

import pytest

from pollen.audit.models import AuditEvent
from pollen.marketplace.models import PublishedVersion
from pollen.training.models import Job, JobStatus, ModelVersion
from tests.hub.marketplace.conftest import agent_client

pytestmark = pytest.mark.django_db

PUBLISH = "/api/v1/marketplace/versions/"


def _metrics(auc: float) -> dict[str, Any]:
    return {
        "auc": auc,
        "auc_ci": [auc - 0.05, min(1.0, auc + 0.05)],
        "accuracy": 0.7,
        "accuracy_ci": [0.6, 0.8],
        "balanced_accuracy": 0.7,
        "sensitivity": 0.7,
        "sensitivity_ci": [0.55, 0.82],
        "specificity": 0.7,
        "specificity_ci": [0.55, 0.82],
    }


def _comparison(
    child_auc: float, parent_auc: float, ci: list[float], per_label: int = 50, **extra: Any
) -> dict[str, Any]:
    return {
        "check_images": 2 * per_label,
        "images_per_label": {"normal": per_label, "pneumonia": per_label},
        "confidence_level": 0.95,
        "child": _metrics(child_auc),
        "parent": _metrics(parent_auc),
        "auc_difference": child_auc - parent_auc,
        "auc_difference_ci": ci,
        "resamples": 1000,
        "seed": 0,
        "verdict": "better",  # the hub names the verdict again from the numbers
        **extra,
    }


def _fine_tune(site: Any, parent: ModelVersion, comparison: dict[str, Any] | None) -> Any:
    """A running fine-tune of ``parent`` that the site's agent completes through the agent API."""
    job = Job.objects.create(
        site=site,
        dataset=parent.job.dataset,
        name="Fine-tuned screen",
        status=JobStatus.RUNNING,
        label_names=list(parent.label_names),
        parent_version=parent,
    )
    body: dict[str, Any] = {
        "evaluation": {"auc": 0.5, "n": 100, "label_names": list(parent.label_names)},
        "model": {
            "architecture": "small_cnn",
            "label_names": list(parent.label_names),
            "input_size": 32,
            "mean": [0.5] * 3,
            "std": [0.5] * 3,
            "weights_sha256": "c" * 64,
            "storage_key": f"models/job-{job.pk}/",
            "training_summary": {},
        },
    }
    if comparison is not None:
        body["parent_comparison"] = comparison
    return agent_client(site).post(f"/api/v1/agent/jobs/{job.pk}/complete/", body, format="json")


def _child(response: Any) -> ModelVersion:
    assert response.status_code == 200, response.content
    return ModelVersion.objects.get(pk=response.json()["model_version"])


def test_a_worse_fine_tune_is_shown_beside_its_parent_on_the_job_and_the_model(
    client_for, clinician_a, train
):
    parent = train(clinician_a.site).version
    child = _child(_fine_tune(clinician_a.site, parent, _comparison(0.55, 0.85, [-0.4, -0.2])))
    client = client_for(clinician_a)
    for shown in (
        client.get(f"/api/v1/jobs/{child.job_id}/").json()["parent_comparison"],
        client.get(f"/api/v1/models/{child.pk}/").json()["parent_comparison"],
    ):
        assert shown["verdict"] == "worse", "named again from the interval, not the agent's word"
        assert shown["verdict_text"].startswith("Worse than the model it started from")
        assert shown["child"]["auc"] == 0.55 and shown["parent"]["auc"] == 0.85
        assert shown["auc_difference_ci"] == [-0.4, -0.2]


def test_publishing_a_worse_fine_tune_needs_an_acknowledgement_that_is_audited(
    client_for, clinician_a, train, store
):
    parent = train(clinician_a.site).version
    child = _child(_fine_tune(clinician_a.site, parent, _comparison(0.55, 0.85, [-0.4, -0.2])))
    client = client_for(clinician_a)
    refused = client.post(PUBLISH, {"model_version": child.pk}, format="json")
    assert refused.status_code == 409
    error = refused.json()["error"]
    assert error["code"] == "comparison_warning"
    assert "Worse than the model it started from" in error["message"]
    assert "0.55" in error["message"] and "0.85" in error["message"]
    assert "acknowledge_comparison: true" in error["message"]
    assert not PublishedVersion.objects.exists()

    accepted = client.post(
        PUBLISH, {"model_version": child.pk, "acknowledge_comparison": True}, format="json"
    )
    assert accepted.status_code == 201, accepted.content
    event = AuditEvent.objects.get(
        action="marketplace.publish", target_id=str(accepted.json()["id"])
    )
    assert event.detail["acknowledged_comparison"] == "worse"
    assert event.actor_user_id == clinician_a.user.pk


@pytest.mark.parametrize(
    ("per_label", "ci", "verdict"),
    [
        (3, [-0.6, -0.1], "too_few"),  # 6 check images: wholly below zero still tells little
        (40, [-0.3, 0.2], "too_few"),  # enough images, but an interval spanning half the scale
    ],
)
def test_a_fine_tune_too_little_checked_to_tell_needs_an_acknowledgement(
    client_for, clinician_a, train, store, per_label, ci, verdict
):
    parent = train(clinician_a.site).version
    child = _child(
        _fine_tune(clinician_a.site, parent, _comparison(0.6, 0.7, ci, per_label=per_label))
    )
    assert child.parent_comparison["verdict"] == verdict
    refused = client_for(clinician_a).post(PUBLISH, {"model_version": child.pk}, format="json")
    assert refused.status_code == 409
    assert refused.json()["error"]["code"] == "comparison_warning"
    assert "Too few check images" in refused.json()["error"]["message"]


def test_a_fine_tune_never_compared_needs_an_acknowledgement_and_says_why(
    client_for, clinician_a, train, store
):
    parent = train(clinician_a.site).version
    child = _child(_fine_tune(clinician_a.site, parent, None))
    shown = client_for(clinician_a).get(f"/api/v1/models/{child.pk}/").json()
    assert shown["parent_comparison"]["verdict"] == "not_compared"
    refused = client_for(clinician_a).post(PUBLISH, {"job": child.job_id}, format="json")
    assert refused.status_code == 409
    assert refused.json()["error"]["code"] == "comparison_warning"
    assert "not compared" in refused.json()["error"]["message"]


@pytest.mark.parametrize(
    ("ci", "verdict"), [([0.05, 0.2], "better"), ([-0.05, 0.06], "no_clear_difference")]
)
def test_a_fine_tune_at_least_as_good_publishes_without_a_question(
    client_for, clinician_a, train, store, ci, verdict
):
    parent = train(clinician_a.site).version
    child = _child(_fine_tune(clinician_a.site, parent, _comparison(0.85, 0.8, ci)))
    assert child.parent_comparison["verdict"] == verdict
    published = client_for(clinician_a).post(PUBLISH, {"model_version": child.pk}, format="json")
    assert published.status_code == 201, published.content
    event = AuditEvent.objects.get(action="marketplace.publish")
    assert "acknowledged_comparison" not in event.detail


def test_a_model_that_is_not_a_fine_tune_has_no_comparison_and_no_question(
    client_for, clinician_a, train, store
):
    trained = train(clinician_a.site)
    client = client_for(clinician_a)
    assert client.get(f"/api/v1/models/{trained.version.pk}/").json()["parent_comparison"] is None
    assert client.get(f"/api/v1/jobs/{trained.job.pk}/").json()["parent_comparison"] is None
    published = client.post(PUBLISH, {"model_version": trained.version.pk}, format="json")
    assert published.status_code == 201, published.content


def test_an_unknown_verdict_from_the_agent_is_refused(clinician_a, train):
    parent = train(clinician_a.site).version
    response = _fine_tune(clinician_a.site, parent, {"verdict": "great"})
    assert response.status_code == 400
    assert "parent_comparison" in response.json()["error"]["fields"]
    assert Job.objects.get(parent_version=parent).status == JobStatus.RUNNING
