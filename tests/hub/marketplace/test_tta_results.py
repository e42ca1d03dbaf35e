"""Per-site results name how their probabilities were averaged and never mix two policies."""

from __future__ import annotations

import pytest

from pollen.training.models import ModelVersion
from tests.hub.marketplace.conftest import agent_client

pytestmark = pytest.mark.django_db

MODELS = "/api/v1/marketplace/models/"


def _shared_evaluation(client_for, user, version: dict, dataset, metrics: dict) -> None:
    created = client_for(user).post(
        "/api/v1/marketplace/evaluations/",
        {"published_version": version["id"], "dataset": dataset.pk},
        format="json",
    )
    base = f"/api/v1/agent/marketplace/evaluations/{created.json()['id']}"
    agent = agent_client(user.site)
    agent.post(f"{base}/claim/", {"claim_id": "e", "worker": "w"}, format="json")
    agent.post(f"{base}/complete/", {"claim_id": "e", "metrics": metrics}, format="json")
    client_for(user).post(
        f"/api/v1/marketplace/evaluations/{created.json()['id']}/share/", {}, format="json"
    )


def test_a_site_result_averaged_otherwise_is_never_grouped_with_the_models_own(
    client_for, clinician_a, outsider, train, publish, site_images
):
    trained = train(clinician_a.site)
    ModelVersion.objects.filter(pk=trained.version.pk).update(
        metrics={"auc": 0.9, "n": 10, "positive_class": "", "tta": "hflip"}
    )
    trained.version.refresh_from_db()
    version = publish(clinician_a, trained, visibility="consortium")
    # An agent from before the policy was recorded: "tta": true meant the eight views.
    _shared_evaluation(
        client_for,
        outsider,
        version,
        site_images(outsider.site, n=4),
        {"n": 4, "auc": 0.7, "tta": True},
    )
    body = client_for(clinician_a).get(f"{MODELS}{version['published_model']}/").json()
    rows = [(r["source"], r["tta"], r["same_tta"]) for r in body["evaluations"]]
    assert rows == [("publisher_test_split", "hflip", True), ("site_evaluation", "d4", False)]


def test_a_site_result_with_the_models_policy_sits_beside_its_own(
    client_for, clinician_a, outsider, train, publish, site_images
):
    version = publish(clinician_a, train(clinician_a.site), visibility="consortium")
    _shared_evaluation(
        client_for,
        outsider,
        version,
        site_images(outsider.site, n=4),
        {"n": 4, "auc": 0.7, "tta": "hflip"},
    )
    body = client_for(clinician_a).get(f"{MODELS}{version['published_model']}/").json()
    # The publisher's check from before the policy was recorded averaged flips too.
    assert [(r["tta"], r["same_tta"]) for r in body["evaluations"]] == [
        ("hflip", True),
        ("hflip", True),
    ]


def test_an_evaluation_names_its_policy_and_a_queued_one_promises_none(
    client_for, clinician_a, outsider, train, publish, site_images
):
    version = publish(clinician_a, train(clinician_a.site), visibility="consortium")
    client = client_for(outsider)
    queued = client.post(
        "/api/v1/marketplace/evaluations/",
        {"published_version": version["id"], "dataset": site_images(outsider.site, n=2).pk},
        format="json",
    ).json()
    shown = client.get(f"/api/v1/marketplace/evaluations/{queued['id']}/").json()
    assert "tta" not in shown["metrics"], "a request's choice is not a measurement"
    # A result from an agent from before the policy was recorded: true meant the eight views.
    _shared_evaluation(
        client_for, outsider, version, site_images(outsider.site, n=2), {"n": 2, "tta": True}
    )
    (older,) = [
        e
        for e in client.get("/api/v1/marketplace/evaluations/").json()["results"]
        if e["status"] == "succeeded"
    ]
    assert older["metrics"]["tta"] == "d4"


def test_each_predicted_image_says_what_it_was_averaged_over(
    client_for, clinician_a, train, site_images
):
    trained = train(clinician_a.site)
    dataset = site_images(clinician_a.site, n=1)
    created = (
        client_for(clinician_a)
        .post(
            "/api/v1/predictions/",
            {"model_version": trained.version.pk, "dataset": dataset.pk, "tta": True},
            format="json",
        )
        .json()
    )
    base = f"/api/v1/agent/marketplace/predictions/{created['id']}"
    agent = agent_client(clinician_a.site)
    agent.post(f"{base}/claim/", {"claim_id": "p", "worker": "w"}, format="json")
    image_id = dataset.images.first().pk
    answer = {"image_id": image_id, "probabilities": {"a": 0.4, "b": 0.6}, "tta": "hflip"}
    done = agent.post(f"{base}/complete/", {"claim_id": "p", "results": [answer]}, format="json")
    assert done.status_code == 204, done.content
    shown = client_for(clinician_a).get(f"/api/v1/predictions/{created['id']}/").json()
    assert shown["results"][0]["tta"] == "hflip"
    refused = agent.post(
        f"{base}/complete/",
        {"claim_id": "p", "results": [answer | {"tta": "rot45"}]},
        format="json",
    )
    assert refused.status_code == 400
