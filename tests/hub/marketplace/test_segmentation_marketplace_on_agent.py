"""An outlining model travels (issue 18): trained and published at site A, evaluated on site B's
own masks, applied to site B's images and fine-tuned there, on real agents. Only weights and
aggregate numbers cross sites.
"""

from __future__ import annotations

import pytest

from tests.hub.datasets.test_upload_flow import _import_zip
from tests.hub.marketplace.test_marketplace_on_agent import two_site_agent  # noqa: F401
from tests.support.agent import wait_until
from tests.support.discs import SIDE, disc_zip
from tests.support.flows import wait_job

pytestmark = [pytest.mark.agent, pytest.mark.django_db(transaction=True)]


def _disc_dataset(client, site: str, *, seed: int) -> int:
    ds = client.post(
        "/api/v1/datasets/",
        {"site": site, "name": "discs", "task": "segmentation", "mask_classes": ["disc"]},
        format="json",
    ).json()["id"]
    archive = _import_zip(client, ds, disc_zip(48, seed=seed), add_labels=False)
    assert archive["status"] == "done", archive
    wait_until(
        lambda: client.get(f"/api/v1/datasets/{ds}/").json()["pending_count"] == 0,
        timeout=90,
        what="ingest",
    )
    return ds


def _train(client, ds: int, **start) -> dict:
    created = client.post(
        "/api/v1/jobs/",
        {"dataset": ds, "advanced": {"epochs": 6, "input_size": SIDE, "seed": 1}, **start},
        format="json",
    )
    assert created.status_code == 201, created.content
    job = wait_job(client, created.json()["id"], statuses={"succeeded", "failed"}, timeout=420)
    assert job["status"] == "succeeded", (job["error_code"], job["message"])
    return job


def _finished(client, path: str) -> dict:
    return wait_until(
        lambda: (
            lambda body: body if body["status"] not in {"pending", "queued", "running"} else None
        )(client.get(path).json()),
        timeout=180,
        what=path,
    )


def test_an_outline_model_is_published_evaluated_applied_and_fine_tuned_elsewhere(
    client_for,
    clinician_a,
    outsider,
    two_site_agent,  # noqa: F811
):
    a, b = client_for(clinician_a), client_for(outsider)
    job = _train(a, _disc_dataset(a, "site-a", seed=0))
    published = a.post(
        "/api/v1/marketplace/versions/",
        {"job": job["id"], "name": "Disc outliner", "visibility": "consortium"},
        format="json",
    )
    assert published.status_code == 201, published.content
    version = _finished(a, f"/api/v1/marketplace/versions/{published.json()['id']}/")
    assert version["status"] == "published", (version["error_code"], version["message"])
    card = version["card"]
    assert card["task"] == "segmentation" and card["labels"] == ["disc"]
    assert card["metrics"]["dice"] == pytest.approx(job["evaluation"]["dice"])
    assert "per_image" not in card["metrics"] and "worst" not in card["metrics"]
    assert all(isinstance(d, float) for d in card["metrics"]["worst_dice"])
    assert card["input"]["mode"] == "whole" and "black square" in card["input"]["preprocessing"]

    # Site B scores it on its own masks; the numbers stay at B until B shares them.
    dataset_b = _disc_dataset(b, "site-b", seed=1000)
    evaluation = b.post(
        "/api/v1/marketplace/evaluations/",
        {"published_version": version["id"], "dataset": dataset_b},
        format="json",
    )
    assert evaluation.status_code in (201, 202), evaluation.content
    scored = _finished(b, f"/api/v1/marketplace/evaluations/{evaluation.json()['id']}/")
    assert scored["status"] == "succeeded", scored
    metrics = scored["metrics"]
    # The same kind of images at another site: the model outlines them about as well.
    at_a = job["evaluation"]["lesion_dice"]
    assert metrics["images"] == 48, metrics
    assert metrics["lesion_dice"] > 0.5 and abs(metrics["lesion_dice"] - at_a) < 0.2, (
        metrics["lesion_dice"],
        at_a,
    )
    assert "per_image" not in metrics and "worst" not in metrics

    # Shared, B's Dice joins the model page's per-site table beside A's own test check.
    shared = b.post(f"/api/v1/marketplace/evaluations/{scored['id']}/share/", {}, format="json")
    assert shared.status_code == 200, shared.content
    page = a.get(f"/api/v1/marketplace/models/{version['published_model']}/").json()
    rows = page["evaluations"]
    by_site = {row["site"]: row for row in rows}
    assert by_site["site-a"]["dice"] == pytest.approx(job["evaluation"]["dice"])
    assert by_site["site-b"]["dice"] == pytest.approx(metrics["dice"])
    assert by_site["site-b"]["n"] == 48
    assert page["latest_version"]["task"] == page["task"] == "segmentation"
    assert page["latest_version"]["dice"] == pytest.approx(job["evaluation"]["dice"])

    # A classification dataset is refused in words.
    labelled = b.post(
        "/api/v1/datasets/",
        {"site": "site-b", "name": "labels", "label_names": ["x", "y"]},
        format="json",
    ).json()["id"]
    wrong = b.post(
        "/api/v1/marketplace/evaluations/",
        {"published_version": version["id"], "dataset": labelled},
        format="json",
    )
    assert wrong.status_code == 400 and wrong.json()["error"]["code"] == "task_mismatch"

    # Applied to one of B's images, then fine-tuned on B's masks from the published weights.
    image = b.get(f"/api/v1/datasets/{dataset_b}/images/").json()["results"][0]
    applied = b.post(
        "/api/v1/predictions/",
        {
            "published_version": version["id"],
            "site": "site-b",
            "images": [{"image_id": image["id"]}],
        },
        format="json",
    )
    assert applied.status_code == 202, applied.content
    outlined = _finished(b, f"/api/v1/predictions/{applied.json()['id']}/")
    assert outlined["status"] == "succeeded", outlined
    assert outlined["results"][0]["segmentation"]["mask_key"].startswith("predictions/")

    # Exported to ONNX at site B, with any image size, checked against PyTorch there.
    export = b.post(f"/api/v1/marketplace/versions/{version['id']}/exports/", {}, format="json")
    assert export.status_code == 202, export.content
    exported = _finished(b, f"/api/v1/marketplace/exports/{export.json()['id']}/")
    assert exported["status"] == "succeeded", exported["message"]
    assert exported["details"]["max_abs_diff"] <= exported["details"]["atol"]

    tuned = _train(b, dataset_b, published_version=version["id"])
    assert tuned["task"] == "segmentation"
    assert tuned["evaluation"]["lesion_dice"] > 0.5
    # Measured beside the published model on the same 8 check images: too few to call it.
    comparison = tuned["parent_comparison"]
    assert comparison["metric"] == "dice" and comparison["check_images"] == 8, comparison
    assert comparison["verdict"] == "too_few"
    assert comparison["child"]["dice"] == pytest.approx(tuned["evaluation"]["dice"])
    assert comparison["dice_difference"] == pytest.approx(
        comparison["child"]["dice"] - comparison["parent"]["dice"]
    )
