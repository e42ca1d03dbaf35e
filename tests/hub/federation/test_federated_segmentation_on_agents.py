"""A U-Net trained across two real site agents (issue 18), each with its own S3 identity.

Each site uploads discs with their masks (``tests/support/discs.py``); the sites train in
parallel (FedAvg) through a segmentation job's own steps, report validation Dice, the hub
averages every tensor of the U-Net, and each site checks the final outlining model, beside its
own first-round model, on its held-out images and masks. Only weights and numbers reach the hub.
"""

from __future__ import annotations

import json

import pytest
from safetensors.numpy import load

from pollen.federation.models import FederatedJob
from pollen.training.models import ModelVersion
from tests.conftest import _person
from tests.hub.federation.flows import federated_job_run
from tests.hub.federation.test_federated_on_agents import (  # noqa: F401 - fixtures
    _assert_numbers_only,
    hub_bodies,
    two_sites,
)
from tests.hub.marketplace.test_segmentation_marketplace_on_agent import _disc_dataset
from tests.support.agent import wait_until
from tests.support.discs import SIDE

pytestmark = [pytest.mark.agent, pytest.mark.django_db(transaction=True)]


def test_a_unet_trained_across_two_sites_reports_dice_at_every_step(
    client_for,
    admin_a,
    site_b,
    settings,
    two_sites,  # noqa: F811
    hub_bodies,  # noqa: F811
):
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = None  # the recorder reads each U-Net upload whole
    admin_b = _person("bea-admin", site_b, "admin")
    client_a, client_b = client_for(admin_a), client_for(admin_b)
    ds_a = _disc_dataset(client_a, "site-a", seed=0)
    ds_b = _disc_dataset(client_b, "site-b", seed=1000)
    hub_bodies.clear()  # from here on: the cross-site flow
    job = federated_job_run(
        client_a,
        client_b,
        dataset_a=ds_a,
        dataset_b=ds_b,
        zoo_slug="unet-lite0-imagenet",
        rounds=2,
        local_epochs=2,
        advanced={"input_size": SIDE, "seed": 1, "learning_rate": 0.003},
    )
    job_id = job["id"]
    assert job["status"] == "succeeded", (job["message"], job["events"], two_sites[0].log())
    assert job["task"] == "segmentation" and job["label_names"] == ["background", "disc"]
    for round_ in job["round_details"][1:]:
        assert {u["site"] for u in round_["updates"]} == {"site-a", "site-b"}
        for update in round_["updates"]:
            assert update["status"] == "accepted" and update["sample_count"] == 32
            assert 0 <= update["metrics"]["val_dice"] <= 1 and "val_auc" not in update["metrics"]
        assert 0 <= round_["metrics"]["val_dice"] <= 1
    final = ModelVersion.objects.get(pk=job["final_version"])
    assert final.task == "segmentation" and final.label_names == ["background", "disc"]
    assert final.storage_key.startswith("hub:") and final.positive_class == ""

    def checked():
        rows = client_b.get(f"/api/v1/federated-jobs/{job_id}/").json()["held_out"]
        done = len(rows) == 2 and all(r["status"] in {"succeeded", "failed"} for r in rows)
        return rows if done else None

    for row in wait_until(checked, timeout=120, what="the held-out checks", interval=0.5):
        assert row["status"] == "succeeded", (row, two_sites[0].log())
        final_check, own = row["federated"], row["local"]
        assert final_check["n"] == own["n"] == 8, "the test split's images only"
        assert final_check["class_counts"]["disc"] == 7, "one disc image in five is empty"
        # Drawing nothing scores 0 on an image with a disc: the combined model outlines them.
        assert final_check["lesion_dice"] > 0.3, (
            final_check,
            own,
            [r["metrics"] for r in job["round_details"]],
        )
        assert final_check["dice_ci"][0] <= final_check["dice"] <= final_check["dice_ci"][1]
        assert final_check.get("auc") is None and own["dice"] is not None
        assert row["local_source"] == "first_round"
        comparison = row["comparison"]
        assert comparison["auc_difference"] is None
        assert comparison["dice_difference"] == pytest.approx(final_check["dice"] - own["dice"])
        assert comparison["verdict"] == "too_few", "8 check images cannot rank two models"

    # Only the U-Net's tensors and small JSON of numbers reached the hub: no mask, no image.
    layout = FederatedJob.objects.get(pk=job_id).tensor_layout
    uploads = 0
    for method, path, body in hub_bodies:
        assert b"\x89PNG" not in body, path
        if path.startswith("/local-storage/") and method == "PUT":
            assert {k: [list(v.shape), str(v.dtype)] for k, v in load(body).items()} == layout
            uploads += 1
        elif body and not path.startswith("/local-storage/"):
            _assert_numbers_only(json.loads(body), path)
    assert uploads == 1 + 2 * 2, "the common start, then one update per site per round"
