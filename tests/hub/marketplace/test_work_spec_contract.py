"""Each kind of marketplace work's claim hands the agent a spec its contract type reads back.

The hub builds every spec as a ``pollen_contracts`` type; these tests claim real work through
the agent's API and rebuild the answer as the agent does, so a field renamed on one side only
fails here (and ``tests/hub/core/test_agent_contract.py`` holds the request side).
"""

from __future__ import annotations

import pytest

from pollen.marketplace.models import ModelExport, Prediction, SiteEvaluation
from pollen_contracts.contract import CONTRACT_VERSION
from pollen_contracts.specs import (
    WORK_SPECS,
    ExportSpec,
    PredictionSpec,
    PublicationSpec,
    WorkClaimed,
)
from tests.hub.marketplace.conftest import agent_client

pytestmark = pytest.mark.django_db

PUBLISH = "/api/v1/marketplace/versions/"


def _claim(site, kind: str, pk: int):
    answer = agent_client(site).post(
        f"/api/v1/agent/marketplace/{kind}/{pk}/claim/",
        {"claim_id": f"{kind}-{pk}", "worker": "w1"},
        format="json",
    )
    assert answer.status_code == 200, answer.content
    body = answer.json()
    claimed = WorkClaimed.from_dict(body)
    assert body["spec"]["contract_version"] == CONTRACT_VERSION
    assert body["spec"]["task"] == "classification"
    spec = WORK_SPECS[kind].from_dict(claimed.spec)
    assert type(spec).from_dict(spec.to_dict()) == spec, "the spec round-trips"
    return spec


def test_publication_prediction_evaluation_and_export_specs_read_back(
    client_for, clinician_a, outsider, train, store, site_images, labelled_dataset
):
    trained = train(clinician_a.site)
    created = client_for(clinician_a).post(
        PUBLISH, {"model_version": trained.version.pk, "visibility": "consortium"}, format="json"
    )
    assert created.status_code == 201, created.content
    version_id = created.json()["id"]
    publication = _claim(clinician_a.site, "publications", version_id)
    assert isinstance(publication, PublicationSpec)
    assert publication.weights_sha256 == trained.version.weights_sha256
    assert publication.uploads.weights.method == "PUT" and publication.uploads.weights.url

    from tests.hub.marketplace.conftest import copy_as_agent

    copy_as_agent(clinician_a.site, version_id, trained, claim_id=f"publications-{version_id}")

    # At its own site a model runs from the site's folder; elsewhere from the checked copy.
    own = client_for(clinician_a).post(
        "/api/v1/predictions/",
        {"model_version": trained.version.pk, "dataset": site_images(clinician_a.site, n=2).pk},
        format="json",
    )
    assert own.status_code == 202, own.content
    spec = _claim(clinician_a.site, "predictions", own.json()["id"])
    assert isinstance(spec, PredictionSpec)
    assert spec.model.weights.kind == "site_model"
    assert spec.model.weights.key == trained.version.storage_key
    assert [i.image_id for i in spec.inputs] == [
        i["image_id"] for i in Prediction.objects.get(pk=own.json()["id"]).inputs
    ]

    other = client_for(outsider).post(
        "/api/v1/predictions/",
        {"published_version": version_id, "dataset": site_images(outsider.site, n=1).pk},
        format="json",
    )
    assert other.status_code == 202, other.content
    spec = _claim(outsider.site, "predictions", other.json()["id"])
    assert spec.model.weights.kind == "published"
    assert spec.model.weights.sha256 == trained.version.weights_sha256
    assert spec.model.weights.manifest_url and spec.model.weights.manifest_sha256

    evaluation = client_for(outsider).post(
        "/api/v1/marketplace/evaluations/",
        {"published_version": version_id, "dataset": labelled_dataset(outsider.site).pk},
        format="json",
    )
    assert evaluation.status_code in (201, 202), evaluation.content
    spec = _claim(outsider.site, "evaluations", evaluation.json()["id"])
    assert spec.model.weights.kind == "published" and spec.tta is True
    assert SiteEvaluation.objects.filter(pk=evaluation.json()["id"]).exists()

    export = client_for(outsider).post(f"{PUBLISH}{version_id}/exports/", {}, format="json")
    assert export.status_code in (201, 202), export.content
    spec = _claim(outsider.site, "exports", export.json()["id"])
    assert isinstance(spec, ExportSpec) and spec.upload.url
    assert ModelExport.objects.filter(pk=export.json()["id"]).exists()
