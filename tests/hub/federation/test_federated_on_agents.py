"""Cross-site training on real site agents, each with its own S3 identity: only weights and numbers reach the hub."""

from __future__ import annotations

import json

import numpy as np
import pytest
from botocore.exceptions import ClientError
from safetensors.numpy import load

from pollen.datasets.models import Image
from pollen.federation.models import FederatedJob
from pollen.training.models import ModelVersion
from tests.conftest import _person
from tests.hub.federation.flows import federated_job_run
from tests.hub.training.conftest import square_image
from tests.support.agent import purge_site_queues, start_agent, wait_agent_ready, wait_until
from tests.support.clock import running_clock
from tests.support.flows import upload_dataset

pytestmark = [pytest.mark.agent, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def hub_bodies(monkeypatch):
    """Every request body the hub receives from agents: its API and its model-store uploads."""
    from django.core.handlers.base import BaseHandler

    seen: list[tuple[str, str, bytes]] = []
    original = BaseHandler.get_response

    def recording(self, request):  # type: ignore[no-untyped-def]
        if request.path.startswith(("/api/v1/agent/", "/local-storage/")):
            seen.append((request.method, request.path, request.body))
        return original(self, request)

    monkeypatch.setattr(BaseHandler, "get_response", recording)
    return seen


@pytest.fixture
def two_sites(transactional_db, live_server, site_a, site_b, seaweed, settings, tmp_path):
    from pollen.accounts.services import token_create
    from pollen.core.model_store import model_store
    from pollen.zoo.builtin import ensure_builtin_entries

    ensure_builtin_entries()
    settings.LOCAL_STORAGE_ROOT = tmp_path / "hub-store"
    settings.LOCAL_STORAGE_ENABLED = True
    settings.PUBLIC_URL = live_server.url
    settings.JOB_LEASE_SECONDS = 10
    model_store.cache_clear()
    purge_site_queues(["site-a", "site-b"])
    agents = []
    for site in (site_a, site_b):
        _, plaintext = token_create(caller=None, site=site, name="agent", kind="agent")
        creds = seaweed.creds[site.slug]
        agents.append(
            start_agent(
                hub_url=live_server.url,
                tmp=tmp_path,
                sites={
                    site.slug: {
                        "token": plaintext,
                        "storage": {
                            "kind": "s3",
                            "endpoint_url": seaweed.endpoint,
                            "bucket": creds["bucket"],
                            "access_key": creds["access_key"],
                            "secret_key": creds["secret_key"],
                        },
                    }
                },
                extra_env={"POLLEN_AGENT_HEARTBEAT_SECONDS": "1"},
            )
        )
    try:
        for agent, slug in zip(agents, ("site-a", "site-b"), strict=True):
            wait_agent_ready(agent, slug)
        with running_clock():  # it moves the rounds on and combines their updates
            yield agents
    finally:
        for agent in agents:
            agent.stop()
        model_store.cache_clear()


def _squares(n: int, offset: int) -> list[tuple[str, str, bytes, str]]:
    return [
        (f"sq{i}.png", ("top", "bottom")[i % 2], square_image(i % 2, offset + i, size=24), f"P{i}")
        for i in range(n)
    ]


def test_fedavg_on_two_sites_sends_only_weights_and_numbers_to_the_hub(
    client_for, admin_a, site_b, two_sites, hub_bodies, seaweed
):
    admin_b = _person("bea-admin", site_b, "admin")
    files = {"site-a": _squares(80, 0), "site-b": _squares(80, 1000)}
    client_a, client_b = client_for(admin_a), client_for(admin_b)
    ds_a = upload_dataset(
        client_a, site="site-a", name="sq", files=files["site-a"], label_names=["top", "bottom"]
    )
    ds_b = upload_dataset(
        client_b, site="site-b", name="sq", files=files["site-b"], label_names=["top", "bottom"]
    )
    hub_bodies.clear()  # from here on: the federated flow
    job = federated_job_run(
        client_a,
        client_b,
        dataset_a=ds_a,
        dataset_b=ds_b,
        zoo_slug="small-cnn-random",
        rounds=2,
        local_epochs=1,
        advanced={"learning_rate": 0.01},
    )
    job_id = job["id"]
    assert job["status"] == "succeeded", (job["message"], job["events"], two_sites[0].log())
    assert [r["status"] for r in job["round_details"]] == ["done", "done", "done"]
    for round_ in job["round_details"][1:]:
        assert {u["site"] for u in round_["updates"]} == {"site-a", "site-b"}
        assert all(u["status"] == "accepted" and u["sample_count"] > 0 for u in round_["updates"])
    final = ModelVersion.objects.get(pk=job["final_version"])
    assert final.site.slug == "site-a" and final.storage_key.startswith("hub:")
    assert final.parent is not None and final.parent.parent is None

    # Each site checks the final model, and its own first-round model, on its held-out images.
    def checked():
        body = client_b.get(f"/api/v1/federated-jobs/{job_id}/").json()
        rows = body["held_out"]
        return (
            rows
            if len(rows) == 2 and all(r["status"] in {"succeeded", "failed"} for r in rows)
            else None
        )

    held_out = wait_until(checked, timeout=120, what="the held-out checks", interval=0.5)
    datasets = {"site-a": ds_a, "site-b": ds_b}
    for row in held_out:
        assert row["status"] == "succeeded", (row, two_sites[0].log())
        test_split = Image.objects.filter(dataset_id=datasets[row["site"]], split="test").count()
        assert row["federated"]["n"] == row["local"]["n"] == test_split > 0, "held-out images only"
        assert 0 <= row["federated"]["auc"] <= 1 and len(row["federated"]["auc_ci"]) == 2
        assert row["local_source"] == "first_round" and row["local"]["auc"] is not None
        assert row["comparison"]["verdict"] in {"better", "worse", "no_clear_difference", "too_few"}

    # Data locality: every body an agent sent the hub is a small JSON of numbers, or weights.
    layout = FederatedJob.objects.get(pk=job_id).tensor_layout
    images = [data for site in files.values() for _, _, data, _ in site]
    weights_uploads = 0
    for method, path, body in hub_bodies:
        assert b"\x89PNG" not in body, path
        assert not any(image[-64:] in body for image in images), path
        if path.startswith("/local-storage/"):
            assert path.startswith("/local-storage/_hub/federated/"), path
            if method == "PUT":
                tensors = load(body)
                assert {k: [list(v.shape), str(v.dtype)] for k, v in tensors.items()} == layout
                weights_uploads += 1
        elif body:
            _assert_numbers_only(json.loads(body), path)
    assert weights_uploads == 1 + 2 * 2, "round 0 from site A, then one update per site per round"

    # Each agent holds its own site's identity only: site A cannot read site B's images.
    key = next(
        iter(seaweed.client("admin").list_objects_v2(Bucket=seaweed.bucket("site-b"))["Contents"])
    )["Key"]
    with pytest.raises(ClientError):
        seaweed.client("site-a").get_object(Bucket=seaweed.bucket("site-b"), Key=key)


def _assert_numbers_only(value, path: str) -> None:
    if isinstance(value, dict):
        for item in value.values():
            _assert_numbers_only(item, path)
    elif isinstance(value, list):
        assert len(value) <= 4, (path, "no arrays larger than a normalisation triple")
        for item in value:
            _assert_numbers_only(item, path)
    elif isinstance(value, str):
        assert len(value) <= 2000, path
    else:
        assert value is None or isinstance(value, bool | int | float | np.floating), path
