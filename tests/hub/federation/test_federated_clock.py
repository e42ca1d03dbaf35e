"""A round is combined by the hub's clock, never inside the request that completed it (issue 17)."""

from __future__ import annotations

import pytest

from pollen.federation.models import FederatedJob, Round
from pollen.ops.clock import clock_tick
from pollen.zoo.builtin import ensure_builtin_entries
from pollen.zoo.models import ZooEntry
from tests.hub.federation.conftest import make_dataset, tensors

pytestmark = pytest.mark.django_db


def test_the_last_update_only_marks_the_round_ready_and_the_clock_combines_it(
    client_for, admin_a, admin_c, sent, model_store_dir, agent_for, queued, monkeypatch
):
    ensure_builtin_entries()
    created = client_for(admin_a).post(
        "/api/v1/federated-jobs/",
        {
            "dataset": make_dataset(admin_a.site).pk,
            "sites": ["site-c"],
            "starting_point": ZooEntry.objects.get(slug="small-cnn-random").pk,
            "rounds": 1,
            "min_participants": 2,
        },
        format="json",
    )
    job_id = created.json()["id"]
    client_for(admin_c).post(
        f"/api/v1/federated-jobs/{job_id}/accept/",
        {"dataset": make_dataset(admin_c.site).pk},
        format="json",
    )
    site_a, site_c = agent_for(admin_a.site), agent_for(admin_c.site)
    assert site_a.send(job_id, 0, tensors(0.0), samples=0).status_code == 201

    # The clock is away from here on: patch the name in the module the fake agent's code reads
    # (several folders' conftest modules share the name "conftest" in sys.modules).
    monkeypatch.setitem(type(site_a)._post.__globals__, "clock", lambda: None)
    assert site_a.send(job_id, 1, tensors(1.0)).status_code == 201
    assert site_c.send(job_id, 1, tensors(3.0)).status_code == 201
    round_1 = Round.objects.get(job_id=job_id, number=1)
    assert (round_1.status, round_1.model_version) == ("aggregating", None), "ready, not combined"
    assert FederatedJob.objects.get(pk=job_id).status == "running"

    report = clock_tick()
    assert report is not None and not report.failed
    assert report.work["rounds_combined"] == {"*": [f"job {job_id} round 1"]}, "and logged"
    round_1.refresh_from_db()
    assert round_1.status == "done" and round_1.model_version is not None
    assert FederatedJob.objects.get(pk=job_id).status == "succeeded"
