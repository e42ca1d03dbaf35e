"""Marketplace work whose worker died is taken over: claims are leases, renewed while working.

A worker killed mid-prediction stops renewing its claim; while the site's agent answers, the
hub's clock queues the work again, another worker claims it, and the dead worker's claim can no longer
write a result. Work whose worker dies again and again ends with a reason.
"""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from pollen.audit.models import AuditEvent
from pollen.marketplace.models import Prediction, PublishedVersion
from pollen_contracts import queues, tasks
from tests.hub.marketplace.conftest import agent_client, copy_as_agent

pytestmark = pytest.mark.django_db

HEARTBEAT = "/api/v1/agent/heartbeat/"


@pytest.fixture
def sent(sent_tasks):
    return sent_tasks


@pytest.fixture
def prediction(client_for, clinician_a, train, publish, site_images):
    version = publish(clinician_a, train(clinician_a.site))
    dataset = site_images(clinician_a.site, n=1)
    created = client_for(clinician_a).post(
        "/api/v1/predictions/",
        {"published_version": version["id"], "dataset": dataset.pk},
        format="json",
    )
    assert created.status_code == 202, created.content
    return Prediction.objects.get(pk=created.json()["id"])


def _lapse(model, pk: int, settings) -> None:
    """Make the claim look as if nobody renewed it for longer than the lease."""
    model.objects.filter(pk=pk).update(lease_expires_at=timezone.now() - timedelta(seconds=5))


def _requeued(agent, django_capture_on_commit_callbacks) -> list[str]:
    """The agent says it is alive, then the hub's clock ticks: the site's work it queued again."""
    from pollen.ops.clock import clock_tick

    with django_capture_on_commit_callbacks(execute=True):
        response = agent.post(HEARTBEAT)
        assert response.status_code == 200, response.content
        report = clock_tick()
    assert report is not None and not report.failed, report
    return list(report.work.get("work_requeued", {}).get(response.json()["site"], []))


def _result(image_id: int, claim_id: str) -> dict:
    return {
        "claim_id": claim_id,
        "results": [
            {
                "image_id": image_id,
                "probabilities": {"normal": 0.3, "pneumonia": 0.7},
                "predicted": "pneumonia",
            }
        ],
    }


def test_a_prediction_whose_worker_died_is_queued_again_and_taken_over(
    clinician_a, client_for, prediction, sent, settings, django_capture_on_commit_callbacks
):
    agent = agent_client(clinician_a.site)
    base = f"/api/v1/agent/marketplace/predictions/{prediction.pk}"
    claim = agent.post(f"{base}/claim/", {"claim_id": "d1", "worker": "w1"}, format="json").json()
    assert claim["claimed"] and claim["lease_seconds"] == settings.WORK_LEASE_SECONDS
    # A fresh claim is left alone.
    assert _requeued(agent, django_capture_on_commit_callbacks) == []
    assert sent == []

    _lapse(Prediction, prediction.pk, settings)  # the worker was killed and stopped renewing
    assert _requeued(agent, django_capture_on_commit_callbacks) == [f"prediction:{prediction.pk}"]
    slug = clinician_a.site.slug
    assert sent == [
        (
            tasks.PREDICT,
            {"site": slug, "kind": "prediction", "id": prediction.pk},
            queues.infer_queue(slug),
        )
    ]
    prediction.refresh_from_db()
    assert (prediction.status, prediction.claim_id) == ("queued", "")
    clinician_view = client_for(clinician_a).get(f"/api/v1/predictions/{prediction.pk}/").json()
    assert clinician_view["status"] == "queued"

    # The dead worker's claim is void: no renewal, no result.
    renew = agent.post(f"{base}/renew/", {"claim_id": "d1"}, format="json")
    assert renew.status_code == 200 and renew.json() == {"renewed": False}
    image_id = prediction.inputs[0]["image_id"]
    late = agent.post(f"{base}/complete/", _result(image_id, "d1"), format="json")
    assert late.status_code == 409 and late.json()["error"]["code"] == "not_running"

    # The new delivery takes it over and finishes it.
    again = agent.post(f"{base}/claim/", {"claim_id": "d2", "worker": "w2"}, format="json").json()
    assert again["claimed"]
    done = agent.post(f"{base}/complete/", _result(image_id, "d2"), format="json")
    assert done.status_code == 204, done.content
    prediction.refresh_from_db()
    assert (prediction.status, prediction.attempt) == ("succeeded", 2)
    # Nothing is left to take over.
    assert _requeued(agent, django_capture_on_commit_callbacks) == []


def test_renewing_keeps_long_work_from_being_taken_over(
    clinician_a, prediction, sent, settings, django_capture_on_commit_callbacks
):
    agent = agent_client(clinician_a.site)
    base = f"/api/v1/agent/marketplace/predictions/{prediction.pk}"
    agent.post(f"{base}/claim/", {"claim_id": "d1", "worker": "w1"}, format="json")
    _lapse(Prediction, prediction.pk, settings)
    renew = agent.post(f"{base}/renew/", {"claim_id": "d1"}, format="json")
    assert renew.json() == {"renewed": True}
    assert _requeued(agent, django_capture_on_commit_callbacks) == []
    other = agent.post(f"{base}/claim/", {"claim_id": "d2", "worker": "w2"}, format="json")
    assert other.json() == {"claimed": False}
    prediction.refresh_from_db()
    assert (prediction.status, prediction.claim_id, prediction.attempt) == ("running", "d1", 1)
    assert sent == []


def test_a_lapsed_claim_may_be_taken_over_by_a_redelivered_message_directly(
    clinician_a, prediction, settings
):
    agent = agent_client(clinician_a.site)
    base = f"/api/v1/agent/marketplace/predictions/{prediction.pk}"
    agent.post(f"{base}/claim/", {"claim_id": "d1", "worker": "w1"}, format="json")
    retry = agent.post(f"{base}/claim/", {"claim_id": "d1", "worker": "w1"}, format="json")
    assert retry.json()["claimed"]  # the same delivery retrying is not a new attempt
    _lapse(Prediction, prediction.pk, settings)
    taken = agent.post(f"{base}/claim/", {"claim_id": "d2", "worker": "w2"}, format="json")
    assert taken.json()["claimed"]
    prediction.refresh_from_db()
    assert (prediction.claim_id, prediction.attempt) == ("d2", 2)


def test_work_whose_worker_keeps_dying_fails_with_a_reason_instead_of_looping(
    clinician_a, client_for, prediction, sent, settings, django_capture_on_commit_callbacks
):
    agent = agent_client(clinician_a.site)
    base = f"/api/v1/agent/marketplace/predictions/{prediction.pk}"
    agent.post(f"{base}/claim/", {"claim_id": "d1", "worker": "w1"}, format="json")
    Prediction.objects.filter(pk=prediction.pk).update(attempt=settings.LEASE_MAX_ATTEMPTS)
    _lapse(Prediction, prediction.pk, settings)
    late = agent.post(f"{base}/claim/", {"claim_id": "d9", "worker": "w9"}, format="json")
    assert late.json() == {"claimed": False}, (
        "a redelivered message gets no attempt beyond the last"
    )
    assert _requeued(agent, django_capture_on_commit_callbacks) == []
    assert sent == []
    body = client_for(clinician_a).get(f"/api/v1/predictions/{prediction.pk}/").json()
    assert body["status"] == "failed"
    assert body["error_code"] == "worker_lost"
    assert f"stopped {settings.LEASE_MAX_ATTEMPTS} times" in body["message"]
    assert "site IT" in body["message"]
    assert AuditEvent.objects.filter(
        action="marketplace.prediction_failed", target_id=str(prediction.pk)
    ).exists()


def test_a_publication_copy_whose_worker_died_is_sent_again(
    clinician_a, client_for, train, store, sent, settings, django_capture_on_commit_callbacks
):
    trained = train(clinician_a.site)
    version = (
        client_for(clinician_a)
        .post("/api/v1/marketplace/versions/", {"model_version": trained.version.pk}, format="json")
        .json()
    )
    agent = agent_client(clinician_a.site)
    base = f"/api/v1/agent/marketplace/publications/{version['id']}"
    assert agent.post(f"{base}/claim/", {"claim_id": "d1", "worker": "w1"}, format="json").json()[
        "claimed"
    ]
    _lapse(PublishedVersion, version["id"], settings)
    assert _requeued(agent, django_capture_on_commit_callbacks) == [f"publication:{version['id']}"]
    assert [name for name, _, _ in sent] == [tasks.PUBLISH]
    steps = copy_as_agent(clinician_a.site, version["id"], trained, claim_id="d2")
    assert steps["done"]["status"] == "published"


def test_renewal_is_checked_and_stays_within_the_agents_site(clinician_a, outsider, prediction):
    base = f"/api/v1/agent/marketplace/predictions/{prediction.pk}"
    own = agent_client(clinician_a.site)
    own.post(f"{base}/claim/", {"claim_id": "d1", "worker": "w1"}, format="json")
    missing = own.post(f"{base}/renew/", {}, format="json")
    assert missing.status_code == 400
    assert "claim_id" in missing.json()["error"]["fields"]
    stranger = agent_client(outsider.site).post(f"{base}/renew/", {"claim_id": "d1"}, format="json")
    assert stranger.status_code == 404
    assert stranger.json()["error"]["code"] == "not_found"
    clinician = own.post(f"{base}/renew/", {"claim_id": "d1", "extra": 1}, format="json")
    assert clinician.status_code == 400


def _resent(agent, django_capture_on_commit_callbacks) -> list[str]:
    from pollen.ops.clock import clock_tick

    with django_capture_on_commit_callbacks(execute=True):
        response = agent.post(HEARTBEAT)
        report = clock_tick()
    assert report is not None and not report.failed, report
    return list(report.work.get("work_resent", {}).get(response.json()["site"], []))


def test_queued_work_whose_message_was_lost_is_sent_again_while_the_site_is_idle(
    clinician_a, prediction, sent, settings, django_capture_on_commit_callbacks
):
    agent = agent_client(clinician_a.site)
    settings.JOB_RESEND_SECONDS = 60
    Prediction.objects.filter(pk=prediction.pk).update(
        last_sent_at=timezone.now() - timedelta(seconds=30)
    )
    assert _resent(agent, django_capture_on_commit_callbacks) == [], "not yet: it may be on its way"

    # A broker restart lost the message: nobody claims the work; after a while it is sent again.
    Prediction.objects.filter(pk=prediction.pk).update(
        last_sent_at=timezone.now() - timedelta(seconds=61)
    )
    busy = Prediction.objects.create(
        site=clinician_a.site, model_version=prediction.model_version, status="running"
    )
    Prediction.objects.filter(pk=busy.pk).update(
        claim_id="d9", lease_expires_at=timezone.now() + timedelta(minutes=1)
    )
    assert _resent(agent, django_capture_on_commit_callbacks) == [], "a busy worker explains a wait"
    Prediction.objects.filter(pk=busy.pk).update(status="succeeded")
    assert _resent(agent, django_capture_on_commit_callbacks) == [f"prediction:{prediction.pk}"]
    slug = clinician_a.site.slug
    assert sent == [
        (
            tasks.PREDICT,
            {"site": slug, "kind": "prediction", "id": prediction.pk},
            queues.infer_queue(slug),
        )
    ]
    assert _resent(agent, django_capture_on_commit_callbacks) == [], (
        "once per while, not every tick"
    )
    claim = agent.post(
        f"/api/v1/agent/marketplace/predictions/{prediction.pk}/claim/",
        {"claim_id": "d1", "worker": "w1"},
        format="json",
    )
    assert claim.json()["claimed"], "the message that arrives is claimed as usual"


def test_a_publication_that_ran_out_of_attempts_gets_them_all_again_when_published_again(
    clinician_a, client_for, train, store, settings
):
    trained = train(clinician_a.site)
    client = client_for(clinician_a)
    body = {"model_version": trained.version.pk}
    version = client.post("/api/v1/marketplace/versions/", body, format="json").json()
    PublishedVersion.objects.filter(pk=version["id"]).update(
        status="failed", error_code="worker_lost", attempt=settings.LEASE_MAX_ATTEMPTS
    )
    again = client.post("/api/v1/marketplace/versions/", body, format="json")
    assert again.status_code == 201, again.content
    assert (again.json()["id"], again.json()["attempt"]) == (version["id"], 0)
    claim = copy_as_agent(clinician_a.site, version["id"], trained, claim_id="d2")["claim"]
    assert claim["claimed"]
    assert PublishedVersion.objects.get(pk=version["id"]).attempt == 1
