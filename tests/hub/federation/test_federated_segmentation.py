"""Cross-site training of an outlining (segmentation) model (issue 18), the agent played by the test.

Every site must bring masks of the same classes in the same order; each round's spec carries
the task and the label map; sites report Dice; the combined model is an outlining model whose
manifest reads images as the sites fed them, and whose held-out check reports Dice.
"""

from __future__ import annotations

from typing import Any

import pytest

from pollen.core.model_store import model_store
from pollen.federation.models import FederatedJob, HeldOutEvaluation
from pollen.training.models import ModelVersion
from pollen.zoo.builtin import ensure_builtin_entries
from pollen.zoo.models import ZooEntry
from pollen_contracts.manifest import manifest_parse
from pollen_contracts.specs import HeldOutSpec, RoundClaimed
from tests.hub.federation.conftest import make_dataset, make_masked_dataset, tensors

pytestmark = pytest.mark.django_db

# How a site that trained on whole letterboxed images fed the U-Net (the agent's manifest block).
LETTERBOXED = {
    "tta": "hflip",
    "preprocess": {"intensity": "min_max_stretch", "resize": "letterbox"},
    "version": 1,
}


def _zoo(slug: str) -> int:
    ensure_builtin_entries()
    return ZooEntry.objects.get(slug=slug).pk


def _propose(client: Any, dataset: Any, slug: str = "unet-lite0-random", **extra: Any) -> Any:
    body = {
        "dataset": dataset.pk,
        "sites": ["site-c"],
        "starting_point": _zoo(slug),
        "strategy": "fedavg",
        "rounds": 1,
        "min_participants": 2,
        **extra,
    }
    return client.post("/api/v1/federated-jobs/", body, format="json")


def _accept(client: Any, job_id: int, dataset: Any) -> Any:
    return client.post(
        f"/api/v1/federated-jobs/{job_id}/accept/", {"dataset": dataset.pk}, format="json"
    )


@pytest.fixture
def proposed(client_for, admin_a):
    """An outlining job proposed by site A on its lesion masks; returns its id."""
    created = _propose(client_for(admin_a), make_masked_dataset(admin_a.site))
    assert created.status_code == 201, created.content
    return int(created.json()["id"])


def test_an_outlining_job_trains_on_background_and_the_mask_classes_in_order(
    client_for, admin_a, admin_c, proposed, sent, model_store_dir, agent_for
):
    body = client_for(admin_a).get(f"/api/v1/federated-jobs/{proposed}/").json()
    assert body["task"] == "segmentation" and body["label_names"] == ["background", "lesion"]
    initiator = next(p for p in body["participants"] if p["site"] == "site-a")
    assert initiator["train_count"] == 16, "training images with a mask"

    accepted = _accept(client_for(admin_c), proposed, make_masked_dataset(admin_c.site, n=30))
    assert accepted.status_code == 200, accepted.content
    site_a = agent_for(admin_a.site)
    claim = site_a.claim(proposed, 0).json()
    spec = RoundClaimed.from_dict(claim).spec
    assert spec.task == "segmentation" and spec.label_names == ["background", "lesion"]
    assert spec.architecture == "unet_efficientnet_lite0" and spec.positive_class is None
    assert spec.batch_size == 8, "a U-Net's batch when the job chooses none"


def test_a_dataset_of_the_other_task_cannot_join_and_the_refusal_is_logged(
    client_for, admin_a, admin_c, proposed
):
    labelled = make_dataset(admin_c.site, name="squares")
    refused = _accept(client_for(admin_c), proposed, labelled)
    assert refused.status_code == 400
    error = refused.json()["error"]
    assert error["code"] == "task_mismatch"
    assert "'squares' is labelled for classification" in error["message"]
    assert "segmentation" in error["message"]
    job = FederatedJob.objects.get(pk=proposed)
    assert job.status == "pending"
    assert any(e.get("code") == "task_mismatch" for e in job.events)

    # And the other way round: masks cannot join a classifier's training.
    classifier = _propose(client_for(admin_a), make_dataset(admin_a.site), "small-cnn-random")
    assert classifier.status_code == 201, classifier.content
    masks = make_masked_dataset(admin_c.site, name="masks")
    refused = _accept(client_for(admin_c), classifier.json()["id"], masks)
    assert refused.status_code == 400 and refused.json()["error"]["code"] == "task_mismatch"


@pytest.mark.parametrize(
    ("job_classes", "site_classes"),
    [
        (("lesion",), ("tumour",)),
        (("lesion",), ("lesion", "cyst")),
        # The same classes in another order: a mask's value would mean another class there.
        (("lesion", "cyst"), ("cyst", "lesion")),
    ],
    ids=["other_name", "one_more", "other_order"],
)
def test_masks_of_other_classes_are_refused_naming_both(
    client_for, admin_a, admin_c, job_classes, site_classes, sent
):
    created = _propose(client_for(admin_a), make_masked_dataset(admin_a.site, classes=job_classes))
    job_id = created.json()["id"]
    site_dataset = make_masked_dataset(admin_c.site, classes=site_classes)
    refused = _accept(client_for(admin_c), job_id, site_dataset)
    assert refused.status_code == 400
    error = refused.json()["error"]
    assert error["code"] == "mask_classes_mismatch"
    assert f"mark {', '.join(site_classes)};" in error["message"]
    assert f"masks mark {', '.join(job_classes)}, in that order" in error["message"]
    participant = FederatedJob.objects.get(pk=job_id).participants.get(site=admin_c.site)
    assert participant.status == "invited"
    assert sent.tasks == []


def test_a_starting_point_of_the_other_task_is_refused_at_creation(client_for, admin_a, admin_c):
    refused = _propose(client_for(admin_a), make_masked_dataset(admin_a.site), "small-cnn-random")
    assert refused.status_code == 400
    assert refused.json()["error"]["code"] == "task_mismatch"
    assert FederatedJob.objects.count() == 0


def _dice_metrics(dice: float) -> dict[str, Any]:
    return {"val_dice": dice, "val_iou": dice - 0.1, "val_loss": 0.3, "val_count": 2}


@pytest.mark.parametrize("strategy", ["fedavg", "relay"])
def test_sites_report_dice_and_the_combined_model_is_an_outlining_model(
    client_for, admin_a, admin_c, strategy, sent, model_store_dir, agent_for, queued, token_client
):
    created = _propose(client_for(admin_a), make_masked_dataset(admin_a.site), strategy=strategy)
    proposed = created.json()["id"]
    assert _accept(client_for(admin_c), proposed, make_masked_dataset(admin_c.site, n=30))
    site_a, site_c = agent_for(admin_a.site), agent_for(admin_c.site)
    assert site_a.send(proposed, 0, tensors(0.0), samples=0).status_code == 201
    sent_a = site_a.send(
        proposed, 1, tensors(1.0), samples=10, metrics=_dice_metrics(0.6), inference=LETTERBOXED
    )
    assert sent_a.status_code == 201, sent_a.content
    sent_c = site_c.send(
        proposed, 1, tensors(3.0), samples=20, metrics=_dice_metrics(0.9), inference=LETTERBOXED
    )
    assert sent_c.status_code == 201, sent_c.content

    body = client_for(admin_a).get(f"/api/v1/federated-jobs/{proposed}/").json()
    assert body["status"] == "succeeded", body["events"]
    round_1 = body["round_details"][1]
    assert round_1["metrics"]["val_dice"] == pytest.approx((0.6 * 10 + 0.9 * 20) / 30)
    assert round_1["metrics"]["per_site"]["site-c"]["val_dice"] == 0.9
    assert {u["site"]: u["metrics"]["val_dice"] for u in round_1["updates"]} == {
        "site-a": 0.6,
        "site-c": 0.9,
    }
    texts = [e["text"] for e in body["events"]]
    assert any("sent round 1: 20 training images, Dice 0.900 on tuning images" in t for t in texts)
    assert any("combined into one; Dice 0.800 on tuning images" in t for t in texts)

    final = ModelVersion.objects.get(pk=body["final_version"])
    assert final.task == "segmentation" and final.positive_class == ""
    assert final.label_names == ["background", "lesion"]
    manifest = manifest_parse(
        model_store().get_bytes(final.storage_key.removeprefix("hub:") + "manifest.json")
    )
    assert manifest.task == "segmentation" and manifest.positive_class is None
    assert manifest.inference is not None and manifest.inference.preprocess.resize == "letterbox"
    assert manifest.metrics == {"val_dice": pytest.approx(0.8), "val_iou": pytest.approx(0.7)}

    # Each site's held-out check is an outlining check, beside its own round-1 model where it
    # has one (in a relay only the first site trained from the common start alone).
    for persona, own_model in ((admin_a, True), (admin_c, strategy == "fedavg")):
        check = HeldOutEvaluation.objects.get(job_id=proposed, site=persona.site)
        claim = token_client(persona.site, kind="agent").post(
            f"/api/v1/agent/marketplace/held-out-evaluations/{check.pk}/claim/",
            {"claim_id": "k1", "worker": "w"},
            format="json",
        )
        spec = HeldOutSpec.from_dict(claim.json()["spec"])
        assert spec.task == "segmentation" and spec.label_names == ["background", "lesion"]
        assert (spec.local is not None) == own_model


def test_a_site_that_fed_a_classifier_reports_no_inference_and_the_manifest_keeps_flips(
    client_for, admin_a, admin_c, sent, model_store_dir, agent_for, queued
):
    """A classifier's round reports no inference block: the combined model is read as before."""
    created = _propose(client_for(admin_a), make_dataset(admin_a.site), "small-cnn-random")
    job_id = created.json()["id"]
    assert _accept(client_for(admin_c), job_id, make_dataset(admin_c.site)).status_code == 200
    site_a, site_c = agent_for(admin_a.site), agent_for(admin_c.site)
    assert site_a.send(job_id, 0, tensors(0.0), samples=0).status_code == 201
    assert site_a.send(job_id, 1, tensors(1.0)).status_code == 201
    assert site_c.send(job_id, 1, tensors(3.0)).status_code == 201
    final = FederatedJob.objects.get(pk=job_id).final_version
    manifest = manifest_parse(
        model_store().get_bytes(final.storage_key.removeprefix("hub:") + "manifest.json")
    )
    assert final.task == "classification" and manifest.task == "classification"
    assert manifest.inference is not None and manifest.inference.preprocess.resize == (
        "bilinear_squash"
    )
    assert set(manifest.metrics) == {"val_auc", "val_accuracy"}


@pytest.mark.parametrize(
    "bad",
    [{"val_dice": 1.5}, {"val_iou": -0.1}, {"val_dice": [0.5, 0.6]}],
    ids=["above_one", "below_zero", "per_image"],
)
def test_dice_outside_zero_to_one_or_per_image_is_refused(
    client_for, admin_a, admin_c, proposed, sent, model_store_dir, agent_for, bad
):
    assert _accept(client_for(admin_c), proposed, make_masked_dataset(admin_c.site))
    site_a, site_c = agent_for(admin_a.site), agent_for(admin_c.site)
    assert site_a.send(proposed, 0, tensors(0.0), samples=0).status_code == 201
    refused = site_c.send(proposed, 1, tensors(1.0), metrics=bad)
    assert refused.status_code == 400, refused.content
