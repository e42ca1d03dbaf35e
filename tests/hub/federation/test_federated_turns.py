"""A site's turn in a round is a lease (``pollen.federation.turns``): its attempts are its own.

The common part (re-delivery until the attempts run out, then ``worker_lost``) is proved for
every kind of work in ``tests/hub/core/test_lease.py``; here, what is particular to turns.
"""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from pollen.federation.models import Participant
from tests.hub.federation.conftest import clock, tensors
from tests.hub.federation.flows import federated_job_started

pytestmark = pytest.mark.django_db


def _participant(body: dict, slug: str) -> dict:
    return next(p for p in body["participants"] if p["site"] == slug)


def test_each_turn_counts_its_own_attempts_and_a_new_round_starts_afresh(
    client_for, admin_a, admin_c, sent, model_store_dir, agent_for
):
    job_id, site_a, site_c = federated_job_started(
        client_for, admin_a, admin_c, agent_for, rounds=2, min_participants=2
    )

    assert site_c.claim(job_id, 1, "first").json()["claimed"]
    Participant.objects.filter(job_id=job_id, site=admin_c.site).update(
        lease_expires_at=timezone.now() - timedelta(seconds=1)
    )
    clock()  # its worker died: the turn is queued again
    assert site_c.send(job_id, 1, tensors(1.0)).status_code == 201  # a second worker does it
    view = client_for(admin_c).get(f"/api/v1/federated-jobs/{job_id}/")
    assert _participant(view.json(), "site-c")["attempt"] == 2
    assert site_a.send(job_id, 1, tensors(3.0)).status_code == 201  # the round is combined

    assert site_c.claim(job_id, 2, "round-2").json()["claimed"]
    body = client_for(admin_c).get(f"/api/v1/federated-jobs/{job_id}/").json()
    assert body["current_round"] == 2
    assert _participant(body, "site-c")["attempt"] == 1, "a new turn, a first attempt"
    texts = [e["text"] for e in body["events"] if e.get("site") == "site-c"]
    assert "Cottage Hospital started round 1 (attempt 2)." in texts
    assert texts[-1] == "Cottage Hospital started round 2."


def test_only_the_delivery_that_holds_the_turn_renews_it(
    client_for, admin_a, admin_c, sent, model_store_dir, agent_for
):
    job_id, _site_a, site_c = federated_job_started(
        client_for, admin_a, admin_c, agent_for, rounds=1, min_participants=2
    )
    progress = f"federated-jobs/{job_id}/rounds/1/progress/"
    assert site_c.claim(job_id, 1, "first").json()["claimed"]
    Participant.objects.filter(job_id=job_id, site=admin_c.site).update(
        lease_expires_at=timezone.now() - timedelta(seconds=1)
    )
    clock()  # the first worker went quiet: the turn is queued again, and taken over
    assert site_c.claim(job_id, 1, "second").json()["claimed"]

    report = {"phase": "training", "fraction": 0.5}
    late = site_c._post(progress, report | {"claim_id": "first"})
    assert late.status_code == 200 and late.json() == {"stop": True}, "not its turn any more"
    held = site_c._post(progress, report | {"claim_id": "second"})
    assert held.json() == {"stop": False}
    # An agent older than the claim id in progress reports still renews the turn it holds.
    assert site_c._post(progress, report).json() == {"stop": False}
    turn = Participant.objects.get(job_id=job_id, site=admin_c.site)
    assert turn.claim_id == "second" and "claim_id" not in turn.progress
