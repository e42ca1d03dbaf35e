"""Per-site results name the finding their sensitivity is about and never mix two findings."""

from __future__ import annotations

import pytest

from pollen.training.models import ModelVersion
from tests.hub.marketplace.conftest import agent_client

pytestmark = pytest.mark.django_db

MODELS = "/api/v1/marketplace/models/"


def _looking_for(trained, finding: str, sensitivity: float):
    ModelVersion.objects.filter(pk=trained.version.pk).update(
        positive_class=finding,
        metrics={"auc": 0.9, "n": 10, "sensitivity": sensitivity, "positive_class": finding},
    )
    trained.version.refresh_from_db()
    return trained


def test_versions_that_look_for_different_findings_are_kept_apart(
    client_for, clinician_a, train, publish
):
    first = publish(
        clinician_a,
        _looking_for(train(clinician_a.site, seed=1), "normal", 0.5),
        visibility="consortium",
    )
    second = publish(clinician_a, _looking_for(train(clinician_a.site, seed=2), "pneumonia", 0.8))
    body = client_for(clinician_a).get(f"{MODELS}{first['published_model']}/").json()
    assert body["positive_class"] == "pneumonia"
    assert body["card"]["positive_class"] == "pneumonia"
    assert body["latest_version"]["positive_class"] == "pneumonia"
    rows = body["evaluations"]
    assert [(r["version"], r["positive_class"], r["same_finding"]) for r in rows] == [
        (second["number"], "pneumonia", True),
        (first["number"], "normal", False),
    ]


def test_a_site_evaluation_measures_the_models_finding(
    client_for, clinician_a, outsider, train, publish, site_images
):
    trained = _looking_for(train(clinician_a.site), "pneumonia", 0.8)
    version = publish(clinician_a, trained, visibility="consortium")
    dataset = site_images(outsider.site, n=4)
    created = client_for(outsider).post(
        "/api/v1/marketplace/evaluations/",
        {"published_version": version["id"], "dataset": dataset.pk},
        format="json",
    )
    base = f"/api/v1/agent/marketplace/evaluations/{created.json()['id']}"
    agent = agent_client(outsider.site)
    claim = agent.post(f"{base}/claim/", {"claim_id": "e", "worker": "w"}, format="json").json()
    assert claim["spec"]["positive_class"] == "pneumonia"
    metrics = {"n": 4, "auc": 0.7, "sensitivity": 0.5, "positive_class": "pneumonia"}
    agent.post(f"{base}/complete/", {"claim_id": "e", "metrics": metrics}, format="json")
    client_for(outsider).post(
        f"/api/v1/marketplace/evaluations/{created.json()['id']}/share/", {}, format="json"
    )
    rows = client_for(clinician_a).get(f"{MODELS}{version['published_model']}/").json()
    by_site = {r["site"]: r for r in rows["evaluations"]}
    assert by_site["site-b"]["positive_class"] == "pneumonia"
    assert by_site["site-b"]["same_finding"] is True


def test_results_stored_before_the_finding_was_recorded_name_the_second_label(
    client_for, clinician_a, train, publish
):
    """Such numbers measured the second label; the row says so instead of guessing."""
    trained = train(clinician_a.site, labels=("malignant", "benign or normal"))
    version = publish(clinician_a, trained, visibility="consortium")
    from pollen.marketplace.models import PublishedVersion

    row = PublishedVersion.objects.get(pk=version["id"])
    row.card = {k: v for k, v in row.card.items() if k != "positive_class"}
    row.save(update_fields=["card"])
    body = client_for(clinician_a).get(f"{MODELS}{version['published_model']}/").json()
    assert body["evaluations"][0]["positive_class"] == "benign or normal"
