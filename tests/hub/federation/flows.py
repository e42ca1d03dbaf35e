"""Steps that several cross-site tests take the same way."""

from __future__ import annotations

from typing import Any

from pollen.zoo.builtin import ensure_builtin_entries
from pollen.zoo.models import ZooEntry
from tests.hub.federation.conftest import FakeAgent, make_dataset, tensors


def federated_job_started(
    client_for: Any, admin_a: Any, admin_c: Any, agent_for: Any, **body: Any
) -> tuple[int, FakeAgent, FakeAgent]:
    """A FedAvg job of site A with site C, accepted, the common start prepared by A (round 0).

    Returns the job's id and the two sites' agents; round 1 is sent to both sites.
    """
    ensure_builtin_entries()
    created = client_for(admin_a).post(
        "/api/v1/federated-jobs/",
        {
            "dataset": make_dataset(admin_a.site).pk,
            "sites": ["site-c"],
            "starting_point": ZooEntry.objects.get(slug="small-cnn-random").pk,
            **body,
        },
        format="json",
    )
    assert created.status_code == 201, created.content
    job_id = int(created.json()["id"])
    accepted = client_for(admin_c).post(
        f"/api/v1/federated-jobs/{job_id}/accept/",
        {"dataset": make_dataset(admin_c.site).pk},
        format="json",
    )
    assert accepted.status_code == 200, accepted.content
    site_a, site_c = agent_for(admin_a.site), agent_for(admin_c.site)
    assert site_a.send(job_id, 0, tensors(0.0), samples=0).status_code == 201
    return job_id, site_a, site_c
