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


def federated_job_run(
    client_a: Any, client_b: Any, *, dataset_a: int, dataset_b: int, zoo_slug: str, **body: Any
) -> dict[str, Any]:
    """Site A proposes a job with site B (FedAvg unless ``body`` says), B accepts with its
    dataset; returns the job as site A reads it once it has ended (real agents train it)."""
    from tests.support.agent import wait_until

    zoo = {e["slug"]: e["id"] for e in client_a.get("/api/v1/zoo/?page_size=100").json()["results"]}
    created = client_a.post(
        "/api/v1/federated-jobs/",
        {
            "dataset": dataset_a,
            "sites": ["site-b"],
            "starting_point": zoo[zoo_slug],
            "strategy": "fedavg",
            "min_participants": 2,
            **body,
        },
        format="json",
    )
    assert created.status_code == 201, created.content
    job_id = created.json()["id"]
    accepted = client_b.post(
        f"/api/v1/federated-jobs/{job_id}/accept/", {"dataset": dataset_b}, format="json"
    )
    assert accepted.status_code == 200, accepted.content

    def finished() -> dict[str, Any] | None:
        job = client_a.get(f"/api/v1/federated-jobs/{job_id}/").json()
        return job if job["status"] in {"succeeded", "failed", "cancelled"} else None

    return wait_until(finished, timeout=300, what="the federated job", interval=0.5)
