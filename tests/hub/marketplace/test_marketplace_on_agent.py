"""The marketplace end to end, with a real site agent serving two hospitals.

Site A trains a tiny model and publishes it to the consortium. Site B applies it to its own
uploaded images (heatmaps, a large image through sliding windows), evaluates and shares the
metrics, downloads and exports it, and fine-tunes it. Then a tampered copy and a withdrawal
are refused with clear reasons.
"""

from __future__ import annotations

import hashlib
import io

import numpy as np
import pytest
import requests
from PIL import Image as PILImage

from pollen.datasets.models import Image
from pollen.marketplace.models import PublishedVersion
from pollen.training.models import ModelVersion
from tests.hub.training.conftest import square_image
from tests.support.agent import start_agent, wait_agent_ready, wait_until
from tests.support.flows import upload_dataset, wait_job

pytestmark = [pytest.mark.agent, pytest.mark.django_db(transaction=True)]

LABELS = ["top", "bottom"]


@pytest.fixture
def two_site_agent(transactional_db, live_server, site_a, site_b, settings, tmp_path):
    from pollen.accounts.services import token_create
    from pollen.core.model_store import model_store
    from pollen.zoo.builtin import ensure_builtin_entries
    from tests.support.agent import purge_site_queues

    root = tmp_path / "storage"
    settings.LOCAL_STORAGE_ROOT = root
    settings.LOCAL_STORAGE_ENABLED = True
    settings.PUBLIC_URL = live_server.url
    model_store.cache_clear()
    ensure_builtin_entries()
    purge_site_queues(["site-a", "site-b"])
    sites = {}
    for site in (site_a, site_b):
        _, plaintext = token_create(caller=None, site=site, name="agent", kind="agent")
        sites[site.slug] = {
            "token": plaintext,
            "storage": {
                "kind": "fs",
                "root": str(root),
                "base_url": live_server.url,
                "secret": settings.LOCAL_STORAGE_SECRET,
                "site": site.slug,
            },
        }
    agent = start_agent(hub_url=live_server.url, sites=sites, tmp=tmp_path)
    try:
        wait_agent_ready(agent, "site-a")
        wait_agent_ready(agent, "site-b")
        yield root
    finally:
        agent.stop()
        model_store.cache_clear()


def _squares(n: int, prefix: str, offset: int = 0) -> list[tuple[str, str, bytes, str]]:
    return [
        (f"{prefix}{i}.png", LABELS[i % 2], square_image(i % 2, offset + i), f"{prefix}P{i}")
        for i in range(n)
    ]


def _large_image() -> bytes:
    rng = np.random.default_rng(7)
    array = rng.integers(0, 60, (2100, 2100), dtype=np.uint8)
    array[:, 1500:] = 255  # glass: background patches are skipped
    buf = io.BytesIO()
    PILImage.fromarray(array).save(buf, format="PNG")
    return buf.getvalue()


def _wait_prediction(client, prediction_id: int) -> dict:
    def final():
        body = client.get(f"/api/v1/predictions/{prediction_id}/?wait=20").json()
        return body if body["status"] in {"succeeded", "failed"} else None

    return wait_until(final, timeout=180, what=f"prediction {prediction_id}")


def test_a_model_travels_from_site_a_to_site_b_and_back_in_the_lineage(
    client_for, clinician_a, outsider, two_site_agent
):
    storage_root = two_site_agent
    a, b = client_for(clinician_a), client_for(outsider)

    # Site A trains and publishes to the consortium.
    dataset_a = upload_dataset(
        a, site="site-a", name="squares", files=_squares(60, "a"), label_names=LABELS
    )
    zoo = {e["slug"]: e["id"] for e in a.get("/api/v1/zoo/?page_size=100").json()["results"]}
    job = a.post(
        "/api/v1/jobs/",
        {
            "dataset": dataset_a,
            "starting_point": zoo["small-cnn-random"],
            "advanced": {"epochs": 6, "seed": 1, "learning_rate": 0.01},
        },
        format="json",
    ).json()
    job = wait_job(a, job["id"], statuses={"succeeded", "failed"}, timeout=300)
    assert job["status"] == "succeeded", (job["error_code"], job["message"])
    published = a.post(
        "/api/v1/marketplace/versions/",
        {
            "job": job["id"],
            "name": "Square finder",
            "visibility": "consortium",
            "intended_use": "Demonstration only.",
        },
        format="json",
    )
    assert published.status_code == 201, published.content
    version_id = published.json()["id"]
    version = wait_until(
        lambda: (
            (v := a.get(f"/api/v1/marketplace/versions/{version_id}/").json())["status"]
            != "pending"
            and v
        ),
        timeout=120,
        what="publication",
    )
    assert version["status"] == "published", (version["error_code"], version["message"])
    model_id = version["published_model"]
    row = PublishedVersion.objects.get(pk=version_id)
    store_file = storage_root / "_hub" / row.weights_key
    assert hashlib.sha256(store_file.read_bytes()).hexdigest() == job_weights_sha(job)

    # Site B finds it and applies it to its own images, with heatmaps.
    found = b.get("/api/v1/marketplace/models/?search=square&sort=auc").json()["results"]
    assert [m["id"] for m in found] == [model_id]
    files = [*_squares(30, "b", offset=500), ("slide.png", "top", _large_image(), "bP99")]
    dataset_b = upload_dataset(b, site="site-b", name="incoming", files=files, label_names=LABELS)
    images = b.get(f"/api/v1/datasets/{dataset_b}/images/?page_size=100").json()["results"]
    by_name = {img["filename"]: img for img in images}
    chosen = [by_name["b0.png"], by_name["b1.png"], by_name["slide.png"]]

    # A tampered copy in the model store is refused before it is loaded. (This comes first:
    # once site B's worker has loaded the genuine weights it keeps them, by checksum.)
    original = store_file.read_bytes()
    store_file.write_bytes(original[:-8] + b"tampered")
    tampered = b.post(
        "/api/v1/predictions/",
        {"published_version": version_id, "images": [{"image_id": chosen[0]["id"]}]},
        format="json",
    ).json()
    tampered = _wait_prediction(b, tampered["id"])
    assert (tampered["status"], tampered["error_code"]) == ("failed", "checksum_mismatch")
    assert "not loaded" in tampered["message"]
    store_file.write_bytes(original)

    created = b.post(
        "/api/v1/predictions/",
        {
            "published_version": version_id,
            "site": "site-b",
            "images": [
                {"image_id": chosen[0]["id"]},
                {"image_id": chosen[1]["id"]},
                # A hospital system may name the storage key its upload slot gave it.
                {"key": Image.objects.get(pk=chosen[2]["id"]).storage_key},
            ],
            "tta": True,
            "heatmap": True,
        },
        format="json",
    )
    assert created.status_code == 202, created.content
    result = _wait_prediction(b, created.json()["id"])
    assert result["status"] == "succeeded", (result["error_code"], result["message"])
    for item in result["results"]:
        assert "error" not in item, item
        assert abs(sum(item["probabilities"].values()) - 1) < 1e-4
        assert item["predicted"] in LABELS
        overlay = requests.get(item["overlay_url"], timeout=30)
        assert overlay.status_code == 200 and overlay.content.startswith(b"\x89PNG")
        assert (storage_root / "site-b" / item["overlay_key"]).is_file(), "overlay at site B"
    slide = result["results"][2]
    assert slide["sliding_window"]["patches"] > 1
    assert slide["sliding_window"]["skipped_background"] > 0
    # (No check of which class won: test-time flips and rotations blur a top/bottom task.)

    # Site B evaluates on its own labelled data and shares the metrics.
    evaluation = b.post(
        "/api/v1/marketplace/evaluations/",
        {"published_version": version_id, "dataset": dataset_b, "tta": False},
        format="json",
    ).json()
    evaluation = wait_until(
        lambda: (
            (e := b.get(f"/api/v1/marketplace/evaluations/{evaluation['id']}/").json())["status"]
            in {"succeeded", "failed"}
            and e
        ),
        timeout=180,
        what="evaluation",
    )
    assert evaluation["status"] == "succeeded", evaluation["message"]
    assert evaluation["metrics"]["n"] == 31 and evaluation["metrics"]["auc"] is not None
    page = a.get(f"/api/v1/marketplace/models/{model_id}/").json()
    assert {r["site"] for r in page["evaluations"]} == {"site-a"}
    b.post(f"/api/v1/marketplace/evaluations/{evaluation['id']}/share/", {}, format="json")
    page = a.get(f"/api/v1/marketplace/models/{model_id}/").json()
    shared = [r for r in page["evaluations"] if r["site"] == "site-b"]
    assert shared and shared[0]["auc"] == evaluation["metrics"]["auc"] and shared[0]["n"] == 31

    # Download the weights, and an ONNX export made at site B.
    links = b.get(f"/api/v1/marketplace/versions/{version_id}/download/").json()
    weights = requests.get(links["weights_url"], timeout=30).content
    assert hashlib.sha256(weights).hexdigest() == links["weights_sha256"]
    export = b.post(f"/api/v1/marketplace/versions/{version_id}/exports/", {}, format="json")
    assert export.status_code == 202, export.content
    export = wait_until(
        lambda: (
            (x := b.get(f"/api/v1/marketplace/exports/{export.json()['id']}/").json())["status"]
            in {"succeeded", "failed"}
            and x
        ),
        timeout=180,
        what="ONNX export",
    )
    assert export["status"] == "succeeded", export["message"]
    assert export["details"]["max_abs_diff"] <= export["details"]["atol"]
    onnx = b.get(f"/api/v1/marketplace/exports/{export['id']}/download/").json()
    assert (
        hashlib.sha256(requests.get(onnx["onnx_url"], timeout=30).content).hexdigest()
        == (export["sha256"])
    )

    # Site B fine-tunes it; the lineage shows both ways.
    tune = b.post(
        "/api/v1/jobs/",
        {"dataset": dataset_b, "published_version": version_id, "advanced": {"epochs": 1}},
        format="json",
    )
    assert tune.status_code == 201, tune.content
    tuned = wait_job(b, tune.json()["id"], statuses={"succeeded", "failed"}, timeout=300)
    assert tuned["status"] == "succeeded", (tuned["error_code"], tuned["message"])
    child = ModelVersion.objects.get(pk=tuned["model_version"])
    assert child.parent_id == row.model_version_id
    # The agent measured the parent on the same check images; so few of them cannot tell.
    comparison = tuned["parent_comparison"]
    assert comparison["check_images"] == sum(comparison["images_per_label"].values()) > 0
    assert comparison["parent_model_version"] == row.model_version_id
    for side in ("parent", "child"):
        assert {"auc", "accuracy", "accuracy_ci"} <= set(comparison[side])
    assert comparison["verdict"] == "too_few", comparison
    refused = b.post("/api/v1/marketplace/versions/", {"job": tuned["id"]}, format="json")
    assert refused.status_code == 409 and refused.json()["error"]["code"] == "comparison_warning"
    seen_by_a = a.get(f"/api/v1/marketplace/models/{model_id}/").json()["lineage"]
    assert seen_by_a["descendants"] == [
        {"visible": False, "description": "A model at another site", "generation": 1}
    ]
    seen_by_b = b.get(f"/api/v1/marketplace/models/{model_id}/").json()["lineage"]
    assert seen_by_b["descendants"][0]["model_version"] == child.pk

    # Once withdrawn, it can no longer be applied.
    assert (
        a.post(
            f"/api/v1/marketplace/versions/{version_id}/withdraw/", {}, format="json"
        ).status_code
        == 200
    )
    refused = b.post(
        "/api/v1/predictions/",
        {"published_version": version_id, "images": [{"image_id": chosen[0]["id"]}]},
        format="json",
    )
    assert refused.status_code == 409 and refused.json()["error"]["code"] == "model_withdrawn"


def job_weights_sha(job: dict) -> str:
    return ModelVersion.objects.get(pk=job["model_version"]).weights_sha256
