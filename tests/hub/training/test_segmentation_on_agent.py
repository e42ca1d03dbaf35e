"""A U-Net trained on a real site agent (issue 18): images and masks in, an outline model out.

The images are discs on noisy backgrounds (tests/support/discs.py), with a mask of each disc
and a few empty ones; the split comes from a CSV manifest in the zip.
"""

from __future__ import annotations

import io
import json

import numpy as np
import pytest
import requests
from PIL import Image as PILImage

from pollen.training.models import ModelVersion
from tests.hub.datasets.test_upload_flow import _import_zip
from tests.hub.training.test_training_on_agent import agent_factory, storage_root  # noqa: F401
from tests.support.agent import wait_until
from tests.support.discs import SIDE, disc, disc_zip
from tests.support.flows import wait_job

pytestmark = [pytest.mark.agent, pytest.mark.django_db(transaction=True)]


def test_a_unet_learns_to_outline_and_its_model_says_how_to_read_images(
    client_for,
    clinician_a,
    agent_factory,  # noqa: F811 - the fixtures of test_training_on_agent
    storage_root,  # noqa: F811
):
    agent_factory()
    client = client_for(clinician_a)
    ds = client.post(
        "/api/v1/datasets/",
        {"site": "site-a", "name": "discs", "task": "segmentation", "mask_classes": ["disc"]},
        format="json",
    ).json()["id"]
    archive = _import_zip(client, ds, disc_zip(48), add_labels=False)
    assert archive["status"] == "done", archive
    wait_until(
        lambda: client.get(f"/api/v1/datasets/{ds}/").json()["pending_count"] == 0,
        timeout=90,
        what="ingest",
    )
    splits = client.get(f"/api/v1/datasets/{ds}/stats/").json()
    assert splits["status"]["accepted"] == 48, splits

    created = client.post(
        "/api/v1/jobs/",
        {"dataset": ds, "advanced": {"epochs": 6, "input_size": SIDE, "seed": 1}},
        format="json",
    )
    assert created.status_code == 201, created.content
    job = wait_job(client, created.json()["id"], statuses={"succeeded", "failed"}, timeout=420)
    assert job["status"] == "succeeded", (job["error_code"], job["message"])
    assert job["task"] == "segmentation" and job["label_names"] == ["background", "disc"]
    assert [h["epoch"] for h in job["history"]] == list(range(1, 7))
    assert all(h["val_dice"] is not None for h in job["history"])

    evaluation = job["evaluation"]
    assert evaluation["evaluated_on"] == "test" and evaluation["images"] == 8
    # Drawing nothing scores 0 on a disc and 1 on an empty image; drawing everything ~0.1.
    assert evaluation["lesion_dice"] > 0.6, evaluation["lesion_dice"]
    assert evaluation["dice_ci"][0] <= evaluation["dice"] <= evaluation["dice_ci"][1]
    assert evaluation["detection"]["found"] >= 1
    assert evaluation["empty_images"] >= 1
    assert len(evaluation["per_image"]) == 8 and "_masks" not in evaluation
    assert sum(evaluation["dice_histogram"]["counts"]) == 8

    samples = client.get(f"/api/v1/jobs/{job['id']}/samples/").json()["samples"]
    assert samples and all("dice" in s for s in samples)
    assert all(s["filename"].startswith("d") for s in samples)
    picture = requests.get(samples[0]["overlay_url"], timeout=30)
    assert picture.status_code == 200 and picture.content.startswith(b"\x89PNG")

    version = ModelVersion.objects.get(job_id=job["id"])
    assert version.task == "segmentation"
    manifest = json.loads(
        (storage_root / "site-a" / version.storage_key / "manifest.json").read_text()
    )
    assert manifest["task"] == "segmentation"
    assert manifest["inference"]["preprocess"]["resize"] == "letterbox"
    assert manifest["metrics"]["dice"] == pytest.approx(evaluation["dice"])

    # Applied to images of the site: an outline, its maps and areas; a missing file fails alone.
    images = client.get(f"/api/v1/datasets/{ds}/images/?split=test").json()["results"]
    shown = next(i for i in images if not i["masks"][0]["stats"]["empty"])
    gone = next(i for i in images if i["id"] != shown["id"])
    from pollen.datasets.models import Image

    (storage_root / "site-a" / Image.objects.get(pk=gone["id"]).storage_key).unlink()
    applied = client.post(
        "/api/v1/predictions/",
        {
            "model_version": version.pk,
            "site": "site-a",
            "images": [{"image_id": shown["id"]}, {"image_id": gone["id"]}],
            "tta": True,
        },
        format="json",
    )
    assert applied.status_code == 202, applied.content
    prediction_id = applied.json()["id"]
    done = wait_until(
        lambda: (lambda p: p if p["status"] in {"succeeded", "failed"} else None)(
            client.get(f"/api/v1/predictions/{prediction_id}/").json()
        ),
        timeout=120,
        what="the outlines",
    )
    assert done["status"] == "succeeded", done
    assert done["task"] == "segmentation"
    outlined, missing = done["results"]
    assert missing["error"]["code"] and "segmentation" not in missing
    answer = outlined["segmentation"]
    assert (outlined["width"], outlined["height"]) == (SIDE, SIDE) and outlined["tta"] != "none"
    assert answer["regions"] >= 1 and 0 <= answer["mean_uncertainty"] <= 1
    links = outlined["segmentation_urls"]
    assert set(links) == {"mask", "overlay", "probability", "uncertainty", "image"}
    plain = PILImage.open(io.BytesIO(requests.get(links["image"], timeout=30).content))
    assert plain.size == (SIDE, SIDE)  # the image itself, at full size, to lay the outline over
    mask = PILImage.open(io.BytesIO(requests.get(links["mask"], timeout=30).content))
    assert mask.size == (SIDE, SIDE)
    drawn = np.asarray(mask)
    assert set(np.unique(drawn)) <= {0, 1} and drawn.sum() == answer["class_pixels"]["disc"]
    assert answer["area_fraction"]["disc"] == pytest.approx(drawn.mean())
    # One inference path: the outline applied here is the one the job's test check scored.
    index = int(shown["filename"].removeprefix("d").removesuffix(".png"))
    truth = np.asarray(PILImage.open(io.BytesIO(disc(index, empty=False)[1]))) > 0
    dice = 2 * np.logical_and(drawn > 0, truth).sum() / ((drawn > 0).sum() + truth.sum())
    [checked] = [r for r in evaluation["per_image"] if r["image_id"] == str(shown["id"])]
    assert dice == pytest.approx(checked["dice"], abs=1e-6)
