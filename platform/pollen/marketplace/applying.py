"""Applying a published model to a site's images: a prediction (one image, a list, or a dataset)."""

from __future__ import annotations

from typing import Any

from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from pollen.accounts.caller import Caller
from pollen.audit.services import audit_record
from pollen.core.dispatch import send_on_commit
from pollen.core.errors import ApiError, Conflict, NotFound
from pollen.core.task_flows import require_flow
from pollen.datasets.models import Dataset, DatasetStatus, Image, ImageStatus
from pollen.marketplace.models import (
    Prediction,
    PublishedVersion,
    WorkStatus,
)
from pollen.marketplace.versions import finish_claimed, require_usable, slug_of_site
from pollen.training.models import ModelVersion
from pollen.training.weights import model_ref
from pollen_contracts import queues, tasks
from pollen_contracts.contract import contract_task
from pollen_contracts.specs import ImageRef, PredictionSpec

MAX_PREDICTION_IMAGES = 1000


# --- Apply (predictions) --------------------------------------------------------------------------


def _resolve_images(
    *, site_id: int, images: list[dict[str, Any]] | None, dataset: Dataset | None
) -> list[Image]:
    base = Image.objects.filter(
        dataset__site_id=site_id, dataset__status=DatasetStatus.ACTIVE
    ).order_by("id")
    if dataset is not None:
        if dataset.site_id != site_id:
            raise ApiError(
                "The dataset must be at the site that runs the prediction.",
                code="invalid",
                fields={"dataset": "At another site."},
            )
        rows = list(
            base.filter(dataset=dataset, status=ImageStatus.ACCEPTED)[: MAX_PREDICTION_IMAGES + 1]
        )
        if not rows:
            raise ApiError(
                "This dataset has no accepted images to run the model on.", code="no_images"
            )
        if len(rows) > MAX_PREDICTION_IMAGES:
            raise ApiError(
                f"At most {MAX_PREDICTION_IMAGES} images a request; split the dataset.",
                code="too_many_images",
            )
        return rows
    items = images or []
    if not items:
        raise ApiError(
            "Name the images to run the model on, or a dataset.",
            code="invalid",
            fields={"images": "Required without a dataset."},
        )
    if len(items) > MAX_PREDICTION_IMAGES:
        raise ApiError(f"At most {MAX_PREDICTION_IMAGES} images a request.", code="too_many_images")
    ids = [i["image_id"] for i in items if i.get("image_id") is not None]
    keys = [i["key"] for i in items if i.get("key")]
    found = list(base.filter(Q(pk__in=ids) | Q(storage_key__in=keys)))
    by_id = {img.pk: img for img in found}
    by_key = {img.storage_key: img for img in found}
    chosen: list[Image] = []
    missing: list[str] = []
    for item in items:
        image = (
            by_id.get(item["image_id"])
            if item.get("image_id") is not None
            else by_key.get(item.get("key", ""))
        )
        if image is None:
            missing.append(str(item.get("image_id") or item.get("key")))
        elif image not in chosen:
            chosen.append(image)
    if missing:
        raise ApiError(
            f"These images are not in this site's datasets: {', '.join(missing[:10])}. Upload them "
            "through upload slots first.",
            code="image_not_found",
            fields={"images": missing[:50]},
        )
    not_ready = [img for img in chosen if img.status != ImageStatus.ACCEPTED]
    if not_ready:
        reasons = {
            str(img.pk): img.reject_reason or "Still being checked; try again in a moment."
            for img in not_ready[:50]
        }
        raise Conflict(
            "Some images are not ready: they were rejected or are still being checked.",
            code="image_not_ready",
            fields={"images": reasons},
        )
    return chosen


def prediction_create(
    *,
    caller: Caller,
    site_id: int,
    published_version: PublishedVersion | None = None,
    model_version: ModelVersion | None = None,
    images: list[dict[str, Any]] | None = None,
    dataset: Dataset | None = None,
    tta: bool = False,
    heatmap: bool = False,
) -> Prediction:
    """Queue a model on the caller's own images at their site (the images never leave it)."""
    caller.require_clinical()
    chosen = published_version.model_version if published_version else model_version
    if chosen is not None:
        require_flow(chosen.task, "apply")
    if site_id not in caller.site_ids:
        raise NotFound("There is no such site among your sites.", code="site_not_found")
    if (published_version is None) == (model_version is None):
        raise ApiError(
            "Choose one model: a marketplace version (published_version) or a model trained at "
            "your site (model_version).",
            code="invalid",
        )
    if published_version is not None:
        require_usable(published_version)
        model_version = published_version.model_version
    assert model_version is not None
    if published_version is None and model_version.site_id != site_id:
        raise ApiError(
            "A model trained at another of your sites must be published before it can run here.",
            code="invalid",
            fields={"model_version": "At another site."},
        )
    rows = _resolve_images(site_id=site_id, images=images, dataset=dataset)
    with transaction.atomic():
        prediction = Prediction.objects.create(
            site_id=site_id,
            published_version=published_version,
            model_version=model_version,
            dataset=dataset,
            inputs=[{"image_id": img.pk, "key": img.storage_key} for img in rows],
            tta=tta,
            heatmap=heatmap,
            created_by_id=caller.user_id if caller.token is None else None,
        )
        audit_record(
            caller=caller,
            action="marketplace.predict",
            site_id=site_id,
            target_type="prediction",
            target_id=prediction.pk,
            detail={
                "published_version": published_version.pk if published_version else None,
                "model_version": model_version.pk,
                "images": len(rows),
            },
        )
        slug = slug_of_site(site_id)
        send_on_commit(
            tasks.PREDICT,
            {"site": slug, "kind": "prediction", "id": prediction.pk},
            queue=queues.infer_queue(slug),
        )
    return prediction


def prediction_spec(prediction: Prediction) -> PredictionSpec:
    published = prediction.published_version
    if published is not None:
        require_usable(published)
    return PredictionSpec(
        prediction_id=prediction.pk,
        model=model_ref(prediction.model_version, published=published, site_id=prediction.site_id),
        inputs=[ImageRef(image_id=i["image_id"], key=i["key"]) for i in prediction.inputs],
        tta=prediction.tta,
        heatmap=prediction.heatmap,
        overlay_prefix=f"predictions/{prediction.pk}/",
        task=contract_task(prediction.model_version.task),
    )


# An outlining model's pictures of each image (``reports.SegmentationAnswer``).
SEGMENTATION_PICTURES = ("mask_key", "overlay_key", "probability_key", "uncertainty_key")


def overlay_links(prediction: Prediction) -> dict[str, str]:
    """Short-lived links to the heatmap overlays, presigned by the site's own agent."""
    from pollen.core.dispatch import ask_site_agent

    keys = [r["overlay_key"] for r in prediction.results if r.get("overlay_key")]
    # An outline is read over its image: the image's own link goes along (the site's own
    # storage, to the site's own clinician), named "image:<id>".
    sources = {i["image_id"]: i["key"] for i in prediction.inputs}
    images = {}
    for result in prediction.results:
        outline = result.get("segmentation") or {}
        keys += [outline[k] for k in SEGMENTATION_PICTURES if outline.get(k)]
        if outline and result["image_id"] in sources:
            images[f"image:{result['image_id']}"] = sources[result["image_id"]]
    keys += list(images.values())
    if not keys:
        return {}
    slug = prediction.site.slug
    answer = ask_site_agent(
        slug, tasks.PRESIGN_DOWNLOAD, {"site": slug, "keys": keys, "expires_in": 300}
    )
    urls = dict(answer.get("urls", {}))
    return urls | {name: urls[key] for name, key in images.items() if key in urls}


# --- The agent's results (claims, renewals and takeovers are in marketplace.work) ---------


def prediction_complete(
    *, prediction: Prediction, claim_id: str, results: list[dict[str, Any]], timings: dict
) -> Prediction:
    """Record the agent's results, each named by the file the person uploaded (never by an id).

    The names are stored with the results, so that every later read costs no query and the
    result still says which file it was about after its image is deleted.
    """
    ids = [r["image_id"] for r in results]
    names = dict(Image.objects.filter(pk__in=ids).values_list("pk", "filename"))
    results = [{**r, "filename": names.get(r["image_id"])} for r in results]
    if not finish_claimed(
        Prediction,
        prediction.pk,
        claim_id=claim_id,
        active={WorkStatus.RUNNING},
        status=WorkStatus.SUCCEEDED,
        results=results,
        timings=timings,
        finished_at=timezone.now(),
    ):
        raise Conflict("This prediction is not running.", code="not_running")
    prediction.refresh_from_db()
    return prediction
