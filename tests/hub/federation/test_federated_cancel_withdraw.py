"""Who may stop a federated job (issue 16, item 4).

Only an administrator of the initiating site cancels the whole job. An invited site declines;
a site that accepted may withdraw its own part, and the run treats that as a dropout: the round
finishes with the sites that answered.
"""

from __future__ import annotations

import pytest

from pollen.audit.models import AuditEvent
from pollen.federation.models import FederatedJob, Participant, Round
from pollen.zoo.builtin import ensure_builtin_entries
from pollen.zoo.models import ZooEntry
from tests.hub.federation.conftest import clock, make_dataset, tensors

pytestmark = pytest.mark.django_db


@pytest.fixture
def zoo_id(db):
    ensure_builtin_entries()
    return ZooEntry.objects.get(slug="small-cnn-random").pk


@pytest.fixture
def propose(client_for, admin_a, admin_c, zoo_id):
    """Site A proposes a job to the named sites; returns its id."""
    dataset_a = make_dataset(admin_a.site)

    def make(sites=("site-c",), **extra) -> int:
        body = {
            "dataset": dataset_a.pk,
            "sites": list(sites),
            "starting_point": zoo_id,
            "strategy": "fedavg",
            "rounds": 2,
            "min_participants": 2,
            **extra,
        }
        created = client_for(admin_a).post("/api/v1/federated-jobs/", body, format="json")
        assert created.status_code == 201, created.content
        return int(created.json()["id"])

    return make


def _accept(client, job_id: int, dataset) -> None:
    response = client.post(
        f"/api/v1/federated-jobs/{job_id}/accept/", {"dataset": dataset.pk}, format="json"
    )
    assert response.status_code == 200, response.content


@pytest.fixture
def running(propose, client_for, admin_a, admin_c, sent, model_store_dir, agent_for):
    """Sites A and C both accepted; the starting weights are prepared; round 1 is under way."""

    def start(**extra):
        job_id = propose(**extra)
        _accept(client_for(admin_c), job_id, make_dataset(admin_c.site, n=60))
        site_a = agent_for(admin_a.site)
        assert site_a.send(job_id, 0, tensors(0.0), samples=0).status_code == 201
        return job_id, site_a, agent_for(admin_c.site)

    return start


def _post(client, job_id: int, action: str, body: dict | None = None):
    return client.post(f"/api/v1/federated-jobs/{job_id}/{action}/", body or {}, format="json")


# --- cancel --------------------------------------------------------------------------------


def test_an_invited_site_that_has_not_accepted_cannot_cancel_the_initiators_job(
    propose, client_for, admin_c
):
    job_id = propose()
    response = _post(client_for(admin_c), job_id, "cancel")
    assert response.status_code == 403, response.content
    error = response.json()["error"]
    assert error["code"] == "initiator_admin_required"
    assert "decline" in error["message"] and "withdraw" in error["message"]
    assert FederatedJob.objects.get(pk=job_id).status == "pending"
    assert not AuditEvent.objects.filter(action="federated_job.cancel").exists()


def test_a_site_that_accepted_cannot_cancel_the_initiators_job_either(running, client_for, admin_c):
    job_id, _site_a, _site_c = running()
    response = _post(client_for(admin_c), job_id, "cancel")
    assert response.status_code == 403
    assert response.json()["error"]["code"] == "initiator_admin_required"
    assert FederatedJob.objects.get(pk=job_id).status == "running"


def test_a_clinician_at_the_initiating_site_cannot_cancel(propose, client_for, clinician_a):
    job_id = propose()
    response = _post(client_for(clinician_a), job_id, "cancel")
    assert response.status_code == 403
    assert response.json()["error"]["code"] == "initiator_admin_required"
    assert FederatedJob.objects.get(pk=job_id).status == "pending"


def test_the_initiating_sites_administrator_cancels_and_it_is_audited(propose, client_for, admin_a):
    job_id = propose()
    response = _post(client_for(admin_a), job_id, "cancel")
    assert response.status_code == 200, response.content
    assert response.json()["status"] == "cancelled"
    event = AuditEvent.objects.get(action="federated_job.cancel")
    assert event.site_id == admin_a.site.pk and event.target_id == str(job_id)


# --- withdraw ------------------------------------------------------------------------------


def test_a_site_that_withdraws_mid_round_is_a_dropout_and_the_round_finishes_without_it(
    running, client_for, admin_c, sent
):
    job_id, site_a, site_c = running(min_participants=1)
    assert site_c.claim(job_id, 1).json()["claimed"]
    assert site_a.send(job_id, 1, tensors(1.0)).status_code == 201
    assert Round.objects.get(job_id=job_id, number=1).status == "running", "waits for site C"

    response = _post(client_for(admin_c), job_id, "withdraw")
    assert response.status_code == 200, response.content
    body = response.json()
    assert {p["site"]: p["status"] for p in body["participants"]}["site-c"] == "withdrawn"
    assert body["status"] == "running", "the job goes on with the sites that remain"
    round_1 = Round.objects.get(job_id=job_id, number=1)
    assert round_1.status == "aggregating", "no wait for the deadline of a site that withdrew"
    clock()  # the hub's clock combines the round, off the request path
    round_1.refresh_from_db()
    assert round_1.status == "done"
    assert round_1.metrics["sites"] == 1
    assert any("Cottage Hospital withdrew" in e["text"] for e in body["events"])
    audit = AuditEvent.objects.get(action="federated_job.withdraw")
    assert audit.site_id == admin_c.site.pk

    # Site C's worker is told to stop, its late update is refused, and it gets no more rounds.
    progress = site_c._post(
        f"federated-jobs/{job_id}/rounds/1/progress/", {"phase": "training", "fraction": 0.5}
    )
    assert progress.json() == {"stop": True}
    assert site_c.send(job_id, 1, tensors(9.0), claim=False).status_code == 409
    assert [t["site"] for t in sent.tasks if t["round"] == 2] == ["site-a"]
    assert not site_c.claim(job_id, 2).json()["claimed"]
    assert site_a.send(job_id, 2, tensors(2.0)).status_code == 201
    assert FederatedJob.objects.get(pk=job_id).status == "succeeded"


def test_a_withdrawal_that_leaves_too_few_sites_fails_the_round_with_the_reason(
    running, client_for, admin_c
):
    job_id, site_a, _site_c = running(min_participants=2)
    site_a.send(job_id, 1, tensors(1.0))
    assert _post(client_for(admin_c), job_id, "withdraw").status_code == 200
    clock()
    job = FederatedJob.objects.get(pk=job_id)
    assert job.status == "failed" and job.error_code == "not_enough_updates"
    assert "needs at least 2" in job.message


def test_a_site_withdraws_before_the_start_and_the_job_starts_without_it(
    propose, client_for, admin_c, outsider, sent, model_store_dir
):
    job_id = propose(sites=("site-c", "site-b"))
    _accept(client_for(admin_c), job_id, make_dataset(admin_c.site))
    assert _post(client_for(admin_c), job_id, "withdraw").status_code == 200
    assert FederatedJob.objects.get(pk=job_id).status == "pending", "site B has not answered"
    _accept(client_for(outsider), job_id, make_dataset(outsider.site))
    job = FederatedJob.objects.get(pk=job_id)
    assert job.status == "running"
    statuses = dict(Participant.objects.filter(job=job).values_list("site__slug", "status"))
    assert statuses == {"site-a": "accepted", "site-b": "accepted", "site-c": "withdrawn"}


def test_an_invited_site_declines_rather_than_withdraws(propose, client_for, admin_c):
    job_id = propose()
    response = _post(client_for(admin_c), job_id, "withdraw")
    assert response.status_code == 409
    assert response.json()["error"]["code"] == "not_accepted"
    assert "decline" in response.json()["error"]["message"].lower()


def test_the_initiating_site_cancels_rather_than_withdraws(propose, client_for, admin_a):
    job_id = propose()
    response = _post(client_for(admin_a), job_id, "withdraw")
    assert response.status_code == 409
    assert response.json()["error"]["code"] == "initiator_cannot_withdraw"
    assert FederatedJob.objects.get(pk=job_id).status == "pending"


def test_a_clinician_cannot_withdraw_their_site(running, client_for, clinician_c):
    job_id, _site_a, _site_c = running()
    response = _post(client_for(clinician_c), job_id, "withdraw")
    assert response.status_code == 403
    assert response.json()["error"]["code"] == "admin_required"
    assert Participant.objects.get(job_id=job_id, site__slug="site-c").status == "accepted"


def test_a_site_withdraws_only_once_and_not_from_an_ended_job(
    running, client_for, admin_a, admin_c
):
    job_id, _site_a, _site_c = running(min_participants=1)
    assert _post(client_for(admin_c), job_id, "withdraw").status_code == 200
    again = _post(client_for(admin_c), job_id, "withdraw")
    assert again.status_code == 409 and again.json()["error"]["code"] == "not_accepted"


def test_an_outsider_cannot_withdraw_or_cancel_and_learns_nothing(propose, client_for, outsider):
    job_id = propose()
    for action in ("withdraw", "cancel"):
        response = _post(client_for(outsider), job_id, action)
        assert response.status_code == 404, action
        assert response.json()["error"]["code"] == "federated_job_not_found"


def test_a_relay_passes_over_a_site_that_withdrew(
    propose, client_for, admin_a, admin_c, outsider, sent, model_store_dir, agent_for
):
    job_id = propose(sites=("site-c", "site-b"), strategy="relay", rounds=1)
    _accept(client_for(admin_c), job_id, make_dataset(admin_c.site))
    _accept(client_for(outsider), job_id, make_dataset(outsider.site))
    site_a, site_b = agent_for(admin_a.site), agent_for(outsider.site)
    assert site_a.send(job_id, 0, tensors(0.0), samples=0).status_code == 201
    assert _post(client_for(admin_c), job_id, "withdraw").status_code == 200
    assert site_a.send(job_id, 1, tensors(1.0)).status_code == 201
    assert [t["site"] for t in sent.tasks if t["round"] == 1] == ["site-a", "site-b"]
    assert site_b.send(job_id, 1, tensors(3.0)).status_code == 201
    job = FederatedJob.objects.get(pk=job_id)
    assert job.status == "succeeded", job.message
    assert Round.objects.get(job_id=job_id, number=1).metrics["sites"] == 2
