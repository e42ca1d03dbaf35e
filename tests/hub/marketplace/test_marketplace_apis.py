"""Publishing, visibility, applying, evaluating and downloading through the API, with personas.

- admin_a / clinician_a: site A, which publishes
- outsider: administrator at site B
"""

from __future__ import annotations

import hashlib
import time

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from pollen.audit.models import AuditEvent
from pollen.core.model_store import model_store
from pollen.marketplace.models import Prediction, PublishedVersion, SiteEvaluation
from pollen.training.models import JobStatus, ModelVersion
from tests.hub.marketplace.conftest import agent_client, copy_as_agent

pytestmark = pytest.mark.django_db

MODELS = "/api/v1/marketplace/models/"
PUBLISH = "/api/v1/marketplace/versions/"


@pytest.mark.parametrize("status", [JobStatus.FAILED, JobStatus.CANCELLED, JobStatus.RUNNING])
def test_publishing_a_job_that_did_not_succeed_is_refused(
    client_for, clinician_a, train, store, status
):
    trained = train(clinician_a.site, status=status)
    response = client_for(clinician_a).post(PUBLISH, {"job": trained.job.pk}, format="json")
    assert response.status_code == 409
    assert response.json()["error"]["code"] == "job_not_succeeded"
    assert "finished successfully" in response.json()["error"]["message"]
    assert not PublishedVersion.objects.exists()


def test_clinician_publishes_and_the_agent_copy_is_checked_before_it_is_published(
    client_for, clinician_a, train, store
):
    trained = train(clinician_a.site)
    client = client_for(clinician_a)
    response = client.post(
        PUBLISH,
        {
            "job": trained.job.pk,
            "visibility": "consortium",
            "intended_use": "Adult chest X-rays, screening support.",
            "limitations": "Not validated on children.",
        },
        format="json",
    )
    assert response.status_code == 201, response.content
    version = response.json()
    assert version["status"] == "pending" and version["number"] == 1

    steps = copy_as_agent(clinician_a.site, version["id"], trained)
    spec = steps["claim"]["spec"]
    assert spec["weights_sha256"] == trained.version.weights_sha256
    assert spec["uploads"]["weights"]["method"] == "PUT"
    assert steps["done"]["status"] == "published"

    row = PublishedVersion.objects.get(pk=version["id"])
    assert row.manifest_sha256 == hashlib.sha256(trained.manifest).hexdigest()
    assert model_store().exists(row.weights_key.rsplit("/", 1)[0] + "/card.json")
    detail = client.get(f"{MODELS}{row.published_model_id}/").json()
    card = detail["card"]
    assert card["architecture"] == "small_cnn" and card["labels"] == ["normal", "pneumonia"]
    assert card["input"]["size"] == 32 and "resized" in card["input"]["preprocessing"]
    assert card["training_data"]["total_images"] == 70
    assert card["training_data"]["modality"] == "xray"
    assert card["site"]["slug"] == "site-a" and card["metrics"]["auc"] == 0.9
    assert card["licence"] and card["intended_use"].startswith("Adult")
    assert card["limitations"] == "Not validated on children."
    assert "samples" not in str(card), "per-image samples never reach the card"
    assert AuditEvent.objects.filter(action="marketplace.publish", target_id=str(row.pk)).exists()
    assert AuditEvent.objects.filter(action="marketplace.published").exists()


def test_a_tampered_copy_in_the_model_store_is_not_published(client_for, clinician_a, train, store):
    trained = train(clinician_a.site)
    version = client_for(clinician_a).post(
        PUBLISH, {"model_version": trained.version.pk}, format="json"
    )
    steps = copy_as_agent(
        clinician_a.site, version.json()["id"], trained, weights=trained.weights + b"tampered"
    )
    assert steps["done"] == {"status": "failed", "error_code": "checksum_mismatch"}
    listing = client_for(clinician_a).get(MODELS).json()["results"][0]
    assert listing["latest_version"] is None


def test_only_one_agent_worker_wins_the_claim(client_for, clinician_a, train, store):
    trained = train(clinician_a.site)
    pk = (
        client_for(clinician_a)
        .post(PUBLISH, {"model_version": trained.version.pk}, format="json")
        .json()["id"]
    )
    agent = agent_client(clinician_a.site)
    url = f"/api/v1/agent/marketplace/publications/{pk}/claim/"
    first = agent.post(url, {"claim_id": "d1", "worker": "w1"}, format="json").json()
    second = agent.post(url, {"claim_id": "d2", "worker": "w2"}, format="json").json()
    again = agent.post(url, {"claim_id": "d1", "worker": "w1"}, format="json").json()
    assert first["claimed"] and not second["claimed"] and again["claimed"]


def test_outsider_gets_404_for_a_private_model(
    client_for, clinician_a, outsider, train, publish, site_images
):
    trained = train(clinician_a.site)
    version = publish(clinician_a, trained)  # visibility defaults to this site only
    model_id = version["published_model"]
    client = client_for(outsider)
    assert client.get(MODELS).json()["count"] == 0
    for url in (
        f"{MODELS}{model_id}/",
        f"{PUBLISH}{version['id']}/",
        f"{PUBLISH}{version['id']}/download/",
    ):
        response = client.get(url)
        assert response.status_code == 404, url
        assert "another site" not in response.json()["error"]["message"]
    dataset = site_images(outsider.site)
    response = client.post(
        "/api/v1/predictions/",
        {"published_version": version["id"], "dataset": dataset.pk},
        format="json",
    )
    assert response.status_code == 404
    response = client.post(
        "/api/v1/marketplace/evaluations/",
        {"published_version": version["id"], "dataset": dataset.pk},
        format="json",
    )
    assert response.status_code == 404
    assert client.post(f"{PUBLISH}{version['id']}/withdraw/", {}, format="json").status_code == 404
    assert (
        client.patch(
            f"{MODELS}{model_id}/", {"visibility": "consortium"}, format="json"
        ).status_code
        == 404
    )


def test_consortium_model_is_seen_and_applied_by_another_site(
    client_for, clinician_a, outsider, train, publish, site_images
):
    trained = train(clinician_a.site)
    version = publish(clinician_a, trained, visibility="consortium")
    client = client_for(outsider)
    listing = client.get(MODELS).json()["results"]
    assert [m["id"] for m in listing] == [version["published_model"]]
    assert listing[0]["named_sites"] is None, "who else it is shared with stays private"
    detail = client.get(f"{PUBLISH}{version['id']}/").json()
    assert detail["model_version"] is None, "the publisher's internal ids stay private"
    dataset = site_images(outsider.site, n=2)
    image = dataset.images.first()
    response = client.post(
        "/api/v1/predictions/",
        {
            "published_version": version["id"],
            "site": "site-b",
            "images": [{"image_id": image.pk}, {"key": dataset.images.last().storage_key}],
            "heatmap": True,
            "tta": True,
        },
        format="json",
    )
    assert response.status_code == 202, response.content
    body = response.json()
    assert body["status"] == "queued" and body["images"] == 2 and body["site"] == "site-b"
    prediction = Prediction.objects.get(pk=body["id"])
    assert prediction.model_version_id == trained.version.pk
    # The prediction belongs to site B: site A cannot see it.
    assert client_for(clinician_a).get(f"/api/v1/predictions/{body['id']}/").status_code == 404


def test_named_visibility_reaches_only_the_named_sites(
    client_for, clinician_a, outsider, train, publish
):
    from pollen.accounts.services import site_create
    from tests.conftest import _person

    third = _person("tess-third", site_create(slug="site-c", name="Coastal"), "clinician")
    trained = train(clinician_a.site)
    version = publish(clinician_a, trained, visibility="named", named_sites=["site-b"])
    assert client_for(outsider).get(MODELS).json()["count"] == 1
    assert client_for(third).get(MODELS).json()["count"] == 0
    owner_view = client_for(clinician_a).get(f"{MODELS}{version['published_model']}/").json()
    assert owner_view["named_sites"] == ["site-b"]
    bad = client_for(clinician_a).post(
        PUBLISH,
        {
            "model_version": train(clinician_a.site, name="Other", seed=2).version.pk,
            "visibility": "named",
        },
        format="json",
    )
    assert bad.status_code == 400 and "named_sites" in bad.json()["error"]["fields"]


def test_new_versions_deprecation_and_withdrawal(
    client_for, admin_a, clinician_a, outsider, train, publish, site_images
):
    first = publish(clinician_a, train(clinician_a.site, seed=1), visibility="consortium")
    second = publish(clinician_a, train(clinician_a.site, seed=2, auc=0.95))
    assert (first["published_model"], second["number"]) == (second["published_model"], 2)
    clinician, outside = client_for(clinician_a), client_for(outsider)
    deprecated = clinician.post(f"{PUBLISH}{first['id']}/deprecate/", {}, format="json")
    assert deprecated.json()["status"] == "deprecated"
    # A clinician who did not publish cannot withdraw; the site admin can.
    other = client_for(outsider).post(f"{PUBLISH}{second['id']}/withdraw/", {}, format="json")
    assert other.status_code == 404
    withdrawn = client_for(admin_a).post(
        f"{PUBLISH}{second['id']}/withdraw/", {"reason": "Label leak found."}, format="json"
    )
    assert withdrawn.status_code == 200 and withdrawn.json()["status"] == "withdrawn"
    listing = outside.get(MODELS).json()["results"][0]
    assert listing["latest_version"]["number"] == 1, "the newest usable version is listed"

    dataset = site_images(outsider.site)
    refused = [
        outside.post(
            "/api/v1/predictions/",
            {"published_version": second["id"], "dataset": dataset.pk},
            format="json",
        ),
        outside.post(
            "/api/v1/marketplace/evaluations/",
            {"published_version": second["id"], "dataset": dataset.pk},
            format="json",
        ),
        outside.post(
            "/api/v1/jobs/",
            {"dataset": dataset.pk, "published_version": second["id"]},
            format="json",
        ),
        outside.get(f"{PUBLISH}{second['id']}/download/"),
        outside.post(f"{PUBLISH}{second['id']}/exports/", {}, format="json"),
    ]
    for response in refused:
        assert response.status_code == 409, response.content
        assert response.json()["error"]["code"] == "model_withdrawn"
        assert "Label leak found." in response.json()["error"]["message"]
    assert AuditEvent.objects.filter(action="marketplace.withdraw").count() == 1


def test_browse_filters_sorts_and_keeps_a_constant_query_count(
    client_for, clinician_a, outsider, train, publish
):
    publish(
        clinician_a,
        train(clinician_a.site, name="Chest screen", auc=0.8, seed=1),
        visibility="consortium",
    )
    publish(
        clinician_a,
        train(
            clinician_a.site,
            name="Skin lesions",
            auc=0.95,
            seed=2,
            modality="dermatology",
            labels=("benign", "melanoma"),
        ),
        visibility="consortium",
    )
    client = client_for(outsider)

    def names(query: str) -> list[str]:
        response = client.get(f"{MODELS}?{query}")
        assert response.status_code == 200, response.content
        return [m["name"] for m in response.json()["results"]]

    assert names("sort=auc") == ["Skin lesions", "Chest screen"]
    assert names("modality=dermatology") == ["Skin lesions"]
    assert names("labels=Melanoma") == ["Skin lesions"]
    assert names("labels=normal,pneumonia") == ["Chest screen"]
    assert names("min_auc=0.9") == ["Skin lesions"]
    assert names("search=chest") == ["Chest screen"]
    assert names("site=site-a&architecture=small_cnn&sort=name") == ["Chest screen", "Skin lesions"]
    assert client.get(f"{MODELS}?min_auc=high").json()["error"]["code"] == "invalid_filter"

    with CaptureQueriesContext(connection) as two:
        client.get(MODELS)
    for seed in range(3, 6):
        publish(
            clinician_a,
            train(clinician_a.site, name=f"Model {seed}", seed=seed),
            visibility="named",
            named_sites=["site-b"],
        )
    with CaptureQueriesContext(connection) as five:
        assert client.get(MODELS).json()["count"] == 5
    assert len(five) == len(two)


def test_prediction_wait_returns_the_result_or_the_current_state_at_the_deadline(
    client_for, clinician_a, train, publish, site_images
):
    trained = train(clinician_a.site)
    version = publish(clinician_a, trained)
    dataset = site_images(clinician_a.site, n=1)
    client = client_for(clinician_a)
    created = client.post(
        "/api/v1/predictions/",
        {"published_version": version["id"], "dataset": dataset.pk},
        format="json",
    ).json()
    pending = client.get(f"/api/v1/predictions/{created['id']}/?wait=0.2").json()
    assert pending["status"] == "queued"
    assert client.get(f"/api/v1/predictions/{created['id']}/?wait=soon").status_code == 400
    listed = client.get("/api/v1/predictions/?status=queued").json()["results"]
    assert [p["id"] for p in listed] == [created["id"]]
    assert client.get("/api/v1/predictions/?status=running").json()["results"] == []
    refused = client.get("/api/v1/predictions/?status=done")
    assert refused.status_code == 400 and refused.json()["error"]["code"] == "invalid_filter"

    agent = agent_client(clinician_a.site)
    base = f"/api/v1/agent/marketplace/predictions/{created['id']}"
    spec = agent.post(f"{base}/claim/", {"claim_id": "d1", "worker": "w"}, format="json").json()
    # Own site's model: read from site storage, not the marketplace store.
    assert spec["spec"]["model"]["weights"]["kind"] == "site_model"
    image_id = dataset.images.first().pk
    done = agent.post(
        f"{base}/complete/",
        {
            "claim_id": "d1",
            "results": [
                {
                    "image_id": image_id,
                    "probabilities": {"normal": 0.2, "pneumonia": 0.8},
                    "predicted": "pneumonia",
                },
                {"image_id": 999999, "probabilities": {"normal": 1.0}},
            ],
        },
        format="json",
    )
    assert done.status_code == 204, done.content
    result = client.get(f"/api/v1/predictions/{created['id']}/?wait=30").json()
    assert result["status"] == "succeeded"
    assert [r["image_id"] for r in result["results"]] == [image_id], "unknown ids are dropped"
    assert result["results"][0]["probabilities"]["pneumonia"] == 0.8


def test_waits_beyond_the_spare_threads_answer_soon_so_the_agent_is_never_stuck_behind_them(
    client_for, clinician_a, train, publish, site_images, settings, monkeypatch
):
    from pollen.marketplace import applying_apis

    settings.WEB_THREADS = 2  # one thread may wait long; the other stays free
    monkeypatch.setattr(applying_apis, "SHORT_WAIT_SECONDS", 0.05)
    version = publish(clinician_a, train(clinician_a.site))
    client = client_for(clinician_a)
    created = client.post(
        "/api/v1/predictions/",
        {"published_version": version["id"], "dataset": site_images(clinician_a.site, n=1).pk},
        format="json",
    ).json()
    url = f"/api/v1/predictions/{created['id']}/?wait=3"
    slots = applying_apis._long_wait_slots(2)
    assert slots.acquire(blocking=False), "another request is waiting long"
    try:
        started = time.monotonic()
        assert client.get(url).json()["status"] == "queued"
        assert time.monotonic() - started < 2.5
    finally:
        slots.release()
    started = time.monotonic()
    assert client.get(url).json()["status"] == "queued"
    assert time.monotonic() - started >= 3, "with a thread to spare, the wait is long again"


def test_prediction_input_problems_are_clear(
    client_for, clinician_a, outsider, train, publish, site_images
):
    trained = train(clinician_a.site)
    version = publish(clinician_a, trained, visibility="consortium")
    client = client_for(outsider)
    mine = site_images(outsider.site, n=1)
    theirs = site_images(clinician_a.site, n=1)
    not_mine = client.post(
        "/api/v1/predictions/",
        {"published_version": version["id"], "images": [{"image_id": theirs.images.first().pk}]},
        format="json",
    )
    assert not_mine.status_code == 400 and not_mine.json()["error"]["code"] == "image_not_found"
    mine.images.update(status="pending")
    pending = client.post(
        "/api/v1/predictions/",
        {"published_version": version["id"], "images": [{"image_id": mine.images.first().pk}]},
        format="json",
    )
    assert pending.status_code == 409 and pending.json()["error"]["code"] == "image_not_ready"
    both = client.post(
        "/api/v1/predictions/",
        {"published_version": version["id"], "images": [{"image_id": 1, "key": "a.png"}]},
        format="json",
    )
    assert both.status_code == 400
    nothing = client.post(
        "/api/v1/predictions/", {"published_version": version["id"]}, format="json"
    )
    assert nothing.status_code == 400


def test_evaluation_metrics_stay_private_until_the_site_shares_them(
    client_for, clinician_a, outsider, train, publish, site_images
):
    trained = train(clinician_a.site)
    version = publish(clinician_a, trained, visibility="consortium")
    client = client_for(outsider)
    dataset = site_images(outsider.site, n=4)
    created = client.post(
        "/api/v1/marketplace/evaluations/",
        {"published_version": version["id"], "dataset": dataset.pk},
        format="json",
    )
    assert created.status_code == 202, created.content
    evaluation_id = created.json()["id"]
    agent = agent_client(outsider.site)
    base = f"/api/v1/agent/marketplace/evaluations/{evaluation_id}"
    claim = agent.post(f"{base}/claim/", {"claim_id": "e1", "worker": "w"}, format="json").json()
    assert claim["spec"]["model"]["weights"]["kind"] == "published"
    assert claim["spec"]["model"]["weights"]["sha256"] == trained.version.weights_sha256
    agent.post(
        f"{base}/complete/",
        {
            "claim_id": "e1",
            "metrics": {"n": 4, "auc": 0.77, "accuracy": 0.75, "per_image": [0.1, 0.9]},
        },
        format="json",
    )
    row = SiteEvaluation.objects.get(pk=evaluation_id)
    assert row.status == "succeeded" and "per_image" not in row.metrics

    def site_rows(persona):
        body = client_for(persona).get(f"{MODELS}{version['published_model']}/").json()
        return {r["site"]: r for r in body["evaluations"]}

    assert set(site_rows(clinician_a)) == {"site-a"}, "private until shared"
    assert (
        client_for(clinician_a).get(f"/api/v1/marketplace/evaluations/{evaluation_id}/").status_code
        == 404
    )
    shared = client.post(
        f"/api/v1/marketplace/evaluations/{evaluation_id}/share/", {}, format="json"
    )
    assert shared.status_code == 200 and shared.json()["shared"]
    rows = site_rows(clinician_a)
    assert rows["site-b"]["auc"] == 0.77 and rows["site-b"]["source"] == "site_evaluation"
    assert rows["site-a"]["source"] == "publisher_test_split"


def test_fine_tuning_a_published_model_records_lineage_both_ways(
    client_for, clinician_a, outsider, train, publish, labelled_dataset
):
    trained = train(clinician_a.site)
    version = publish(clinician_a, trained, visibility="consortium")
    dataset = labelled_dataset(outsider.site)
    client = client_for(outsider)
    # The old way (another site's model version) is still refused...
    refused = client.post(
        "/api/v1/jobs/",
        {"dataset": dataset.pk, "parent_version": trained.version.pk},
        format="json",
    )
    assert refused.status_code == 404
    # ...and the marketplace way works.
    created = client.post(
        "/api/v1/jobs/",
        {"dataset": dataset.pk, "published_version": version["id"]},
        format="json",
    )
    assert created.status_code == 201, created.content
    job_id = created.json()["id"]
    assert created.json()["parent_version"] == trained.version.pk

    from pollen.accounts.caller import caller_for_token
    from pollen.accounts.services import token_create
    from pollen.training import claims
    from pollen.training.models import Job

    token, _ = token_create(caller=None, site=outsider.site, name="agent", kind="agent")
    claim = claims.job_claim(
        caller=caller_for_token(token), job=Job.objects.get(pk=job_id), claim_id="d", worker="w"
    )
    weights = claim["spec"]["weights"]
    assert weights["kind"] == "published" and weights["sha256"] == trained.version.weights_sha256
    assert weights["manifest_sha256"] and weights["manifest_url"]

    child = ModelVersion.objects.create(
        site=outsider.site,
        job=Job.objects.get(pk=job_id),
        name="Fine-tuned at B",
        architecture="small_cnn",
        label_names=["normal", "pneumonia"],
        input_size=32,
        mean=[0.5] * 3,
        std=[0.5] * 3,
        weights_sha256="b" * 64,
        storage_key="models/x/",
        parent=trained.version,
    )
    page_for_a = client_for(clinician_a).get(f"{MODELS}{version['published_model']}/").json()
    assert page_for_a["lineage"]["descendants"] == [
        {"visible": False, "description": "A model at another site", "generation": 1}
    ]
    page_for_b = client.get(f"{MODELS}{version['published_model']}/").json()
    assert page_for_b["lineage"]["descendants"][0]["model_version"] == child.pk
    assert ModelVersion.objects.get(pk=child.pk).parent_id == trained.version.pk


def test_download_gives_short_lived_links_and_is_audited(
    client_for, clinician_a, outsider, train, publish
):
    trained = train(clinician_a.site)
    version = publish(clinician_a, trained, visibility="consortium")
    links = client_for(outsider).get(f"{PUBLISH}{version['id']}/download/").json()
    assert links["weights_sha256"] == trained.version.weights_sha256
    assert links["expires_in"] <= 300 and "sig=" in links["weights_url"]
    event = AuditEvent.objects.get(action="marketplace.download")
    assert event.target_id == str(version["id"]) and event.site_id == outsider.site.pk


def test_agent_endpoints_refuse_people_and_other_sites(
    client_for, clinician_a, outsider, train, publish
):
    trained = train(clinician_a.site)
    version = publish(clinician_a, trained)
    url = f"/api/v1/agent/marketplace/publications/{version['id']}/claim/"
    body = {"claim_id": "x", "worker": "w"}
    assert client_for(clinician_a).post(url, body, format="json").status_code == 403
    assert agent_client(outsider.site).post(url, body, format="json").status_code == 404


def test_a_cross_site_round_kept_in_the_hub_store_is_published_by_the_hub_itself(
    client_for, admin_a, store, django_capture_on_commit_callbacks
):
    """Rounds of federated training live in the hub's model store, not at a site."""
    import json

    from pollen.training.weights import model_version_weights
    from tests.hub.marketplace.conftest import weights_bytes

    weights = weights_bytes(7)
    sha = hashlib.sha256(weights).hexdigest()
    folder = "federated/99/round-2"
    store.put_bytes(f"{folder}/weights.safetensors", weights)
    store.put_bytes(f"{folder}/manifest.json", json.dumps({"weights_sha256": sha}).encode())
    version = ModelVersion.objects.create(
        site=admin_a.site,
        name="Chest x-ray, 3 hospitals",
        architecture="small_cnn",
        label_names=["normal", "pneumonia"],
        input_size=32,
        mean=[0.5] * 3,
        std=[0.5] * 3,
        weights_sha256=sha,
        storage_key=f"hub:{folder}/",
    )
    spec = model_version_weights(version)
    assert spec.kind == "published" and spec.sha256 == sha and spec.manifest_sha256
    with django_capture_on_commit_callbacks(execute=True):
        response = client_for(admin_a).post(PUBLISH, {"model_version": version.pk}, format="json")
    assert response.status_code == 201, response.content
    published = PublishedVersion.objects.get(pk=response.json()["id"])
    assert published.status == "published", (published.error_code, published.message)
    assert store.get_bytes(published.weights_key) == weights


def _finished_evaluation(client, site, version_id: int, dataset, *, auc: float = 0.7) -> int:
    """An evaluation made through the API and finished the way the site's agent finishes it."""
    created = client.post(
        "/api/v1/marketplace/evaluations/",
        {"published_version": version_id, "dataset": dataset.pk},
        format="json",
    )
    assert created.status_code == 202, created.content
    evaluation_id = created.json()["id"]
    base = f"/api/v1/agent/marketplace/evaluations/{evaluation_id}"
    agent = agent_client(site)
    agent.post(f"{base}/claim/", {"claim_id": "e", "worker": "w"}, format="json")
    done = agent.post(
        f"{base}/complete/", {"claim_id": "e", "metrics": {"n": 3, "auc": auc}}, format="json"
    )
    assert done.status_code in (200, 204), done.content
    return evaluation_id


def test_evaluations_filter_by_model_version_site_status_and_shared(
    client_for, clinician_a, outsider, train, publish, site_images
):
    from pollen.accounts.services import site_create
    from tests.conftest import _person

    chest_1 = publish(clinician_a, train(clinician_a.site, seed=1), visibility="consortium")
    chest_2 = publish(clinician_a, train(clinician_a.site, seed=2))
    skin = publish(
        clinician_a, train(clinician_a.site, name="Skin", seed=3), visibility="consortium"
    )
    # Bea works at site B and site C; each site checks the models on its own images.
    site_c = site_create(slug="site-c", name="Cottage Hospital")
    bea = _person("bea-two-sites", outsider.site, "clinician")
    _person("bea-two-sites", site_c, "clinician")
    client = client_for(bea)
    at_b, at_c = site_images(outsider.site), site_images(site_c)
    b_chest_1 = _finished_evaluation(client, outsider.site, chest_1["id"], at_b)
    b_chest_2 = _finished_evaluation(client, outsider.site, chest_2["id"], at_b)
    c_chest_1 = _finished_evaluation(client, site_c, chest_1["id"], at_c)
    b_skin = _finished_evaluation(client, outsider.site, skin["id"], at_b)
    queued = client.post(
        "/api/v1/marketplace/evaluations/",
        {"published_version": skin["id"], "dataset": at_c.pk},
        format="json",
    ).json()["id"]
    client.post(f"/api/v1/marketplace/evaluations/{b_chest_1}/share/", {}, format="json")

    def ids(query: str) -> set[int]:
        response = client.get(f"/api/v1/marketplace/evaluations/?{query}")
        assert response.status_code == 200, response.content
        return {e["id"] for e in response.json()["results"]}

    chest = chest_1["published_model"]
    assert ids("") == {b_chest_1, b_chest_2, c_chest_1, b_skin, queued}
    assert ids(f"published_model={chest}") == {b_chest_1, b_chest_2, c_chest_1}
    assert ids(f"published_version={chest_1['id']}") == {b_chest_1, c_chest_1}
    assert ids(f"published_model={chest}&site=site-b") == {b_chest_1, b_chest_2}
    assert ids(f"published_version={skin['id']}&status=queued") == {queued}
    assert ids("shared=true") == {b_chest_1}
    # Site A published the model and can see that these evaluations exist on its page only once
    # shared; Bea is not at site A, so naming it (or a site that does not exist) finds nothing.
    assert ids("site=site-a") == set() and ids("site=no-such-site") == set()
    assert ids(f"published_model={chest + 1000}") == set()
    for bad in ("published_model=chest", "published_version=1.5x", "status=done"):
        response = client.get(f"/api/v1/marketplace/evaluations/?{bad}")
        assert response.status_code == 400, bad
        assert response.json()["error"]["code"] == "invalid_filter"
    # Site A's people never see site B's or C's evaluations, filtered or not.
    assert (
        client_for(clinician_a)
        .get(f"/api/v1/marketplace/evaluations/?published_model={chest}")
        .json()["count"]
        == 0
    )

    with CaptureQueriesContext(connection) as few:
        client.get(f"/api/v1/marketplace/evaluations/?published_model={chest}")
    with CaptureQueriesContext(connection) as many:
        assert len(client.get("/api/v1/marketplace/evaluations/").json()["results"]) == 5
    assert len(many) == len(few)


def test_per_site_results_name_each_site_without_a_query_per_row(
    client_for, clinician_a, outsider, train, publish, site_images
):
    from pollen.accounts.services import site_create
    from tests.conftest import _person

    version = publish(clinician_a, train(clinician_a.site), visibility="consortium")
    url = f"{MODELS}{version['published_model']}/"
    client = client_for(clinician_a)
    b_id = _finished_evaluation(
        client_for(outsider), outsider.site, version["id"], site_images(outsider.site)
    )
    client_for(outsider).post(f"/api/v1/marketplace/evaluations/{b_id}/share/", {}, format="json")
    private = _finished_evaluation(
        client_for(outsider), outsider.site, version["id"], site_images(outsider.site)
    )
    rows = client.get(url).json()["evaluations"]
    assert [(r["site"], r["site_name"], r["source"]) for r in rows] == [
        ("site-a", "St Anne's Hospital", "publisher_test_split"),
        ("site-b", "Borough General", "site_evaluation"),
    ], f"the unshared evaluation {private} stays out"

    with CaptureQueriesContext(connection) as one_site:
        client.get(url)
    for n in range(3):
        site = site_create(slug=f"site-x{n}", name=f"Extra {n}")
        person = _person(f"extra-{n}", site, "clinician")
        shared = _finished_evaluation(client_for(person), site, version["id"], site_images(site))
        client_for(person).post(
            f"/api/v1/marketplace/evaluations/{shared}/share/", {}, format="json"
        )
    with CaptureQueriesContext(connection) as four_sites:
        rows = client.get(url).json()["evaluations"]
    assert {r["site_name"] for r in rows} >= {"Extra 0", "Extra 1", "Extra 2"}
    assert len(four_sites) == len(one_site)


@pytest.mark.parametrize("action", ["deprecate", "withdraw"])
def test_only_the_publisher_or_a_site_admin_deprecates_or_withdraws(
    client_for, admin_a, clinician_a, outsider, train, publish, action
):
    from tests.conftest import _person

    colleague = _person("cleo-clinician", clinician_a.site, "clinician")
    private = publish(clinician_a, train(clinician_a.site, seed=1))
    shared = publish(
        clinician_a, train(clinician_a.site, name="Shared", seed=2), visibility="consortium"
    )

    def post(persona, version):
        return client_for(persona).post(
            f"{PUBLISH}{version['id']}/{action}/", {"reason": "r"}, format="json"
        )

    refused = post(colleague, private)
    assert refused.status_code == 403
    error = refused.json()["error"]
    assert error["code"] == "admin_required"
    assert (
        f"Only the person who published this version or an administrator of St Anne's "
        f"Hospital can {action} it" in error["message"]
    )
    # Outsiders: 404 for the private model (as if it did not exist), and for the shared one too.
    assert post(outsider, private).status_code == 404
    assert post(outsider, private).json()["error"]["code"] == "version_not_found"
    assert post(outsider, shared).status_code == 404
    assert PublishedVersion.objects.filter(status="published").count() == 2

    assert post(admin_a, private).status_code == 200, "an administrator of the publishing site"
    assert post(clinician_a, shared).status_code == 200, "the person who published it"
    done = {"deprecate": "deprecated", "withdraw": "withdrawn"}[action]
    assert set(PublishedVersion.objects.values_list("status", flat=True)) == {done}
    assert AuditEvent.objects.filter(action=f"marketplace.{action}").count() == 2


def test_each_version_says_whether_the_caller_may_manage_it(
    client_for, admin_a, clinician_a, outsider, train, publish
):
    from tests.conftest import _person

    colleague = _person("cleo-clinician", clinician_a.site, "clinician")
    version = publish(clinician_a, train(clinician_a.site), visibility="consortium")

    def can_manage(persona) -> tuple[bool, bool]:
        client = client_for(persona)
        detail = client.get(f"{MODELS}{version['published_model']}/").json()
        one = client.get(f"{PUBLISH}{version['id']}/").json()
        return detail["versions"][0]["can_manage"], one["can_manage"]

    assert can_manage(admin_a) == (True, True)
    assert can_manage(clinician_a) == (True, True)
    assert can_manage(colleague) == (False, False)
    assert can_manage(outsider) == (False, False)


def test_each_prediction_result_names_the_file_the_user_uploaded(
    client_for, clinician_a, train, publish, site_images
):
    trained = train(clinician_a.site)
    version = publish(clinician_a, trained)
    dataset = site_images(clinician_a.site, n=2)
    images = list(dataset.images.order_by("pk"))
    images[0].filename = "left breast CC.png"
    images[0].save(update_fields=["filename"])
    client = client_for(clinician_a)
    created = client.post(
        "/api/v1/predictions/",
        {"published_version": version["id"], "dataset": dataset.pk},
        format="json",
    ).json()
    base = f"/api/v1/agent/marketplace/predictions/{created['id']}"
    agent = agent_client(clinician_a.site)
    agent.post(f"{base}/claim/", {"claim_id": "f1", "worker": "w"}, format="json")
    done = agent.post(
        f"{base}/complete/",
        {
            "claim_id": "f1",
            "results": [
                {"image_id": img.pk, "probabilities": {"normal": 0.4, "pneumonia": 0.6}}
                for img in images
            ],
        },
        format="json",
    )
    assert done.status_code == 204, done.content

    result = client.get(f"/api/v1/predictions/{created['id']}/").json()
    by_id = {r["image_id"]: r["filename"] for r in result["results"]}
    assert by_id == {images[0].pk: "left breast CC.png", images[1].pk: images[1].filename}
    listed = client.get("/api/v1/predictions/").json()["results"][0]["results"]
    assert {r["image_id"]: r["filename"] for r in listed} == by_id
