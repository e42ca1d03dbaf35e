"""Marketplace writes: publish, withdraw, apply, evaluate, export, download.

Every write checks the caller, runs in a transaction, records an audit event, and queues
agent work on commit with ids only (on the site's infer queue). Agents claim work with a compare-and-set, and the hub
re-reads what an agent put in the model store and checks its sha256 before trusting it.
"""

from __future__ import annotations

import json
import struct
import uuid
from typing import Any

from django.db import transaction
from django.db.models import Max, Model, Q
from django.utils import timezone

from pollen.accounts.caller import Caller
from pollen.accounts.models import Site
from pollen.audit.services import audit_record
from pollen.core.dispatch import send_on_commit
from pollen.core.errors import ApiError, Conflict, Forbidden, NotFound
from pollen.core.model_store import model_store, sha256_bytes
from pollen.datasets.models import Dataset, DatasetStatus, Image, ImageStatus
from pollen.marketplace.models import (
    USABLE_VERSION_STATUSES,
    ModelExport,
    Prediction,
    PublishedModel,
    PublishedVersion,
    SiteEvaluation,
    VersionStatus,
    Visibility,
    WorkStatus,
)
from pollen.training.comparison import publish_warning, publish_warning_message
from pollen.training.models import Job, JobStatus, ModelVersion
from pollen.training.weights import hub_folder, in_hub_store, model_version_weights
from pollen_contracts import queues, tasks

MAX_PREDICTION_IMAGES = 1000
UPLOAD_URL_SECONDS = 3600
FETCH_URL_SECONDS = 3600
DOWNLOAD_URL_SECONDS = 300
CARD_METRICS = (
    "n",
    "auc",
    "accuracy",
    "balanced_accuracy",
    "sensitivity",
    "specificity",
    "positive_class",
    "calibration_error",
    "class_counts",
    "evaluated_on",
)
SHAREABLE_METRICS = frozenset(
    {
        "n",
        "label_names",
        "class_counts",
        "threshold",
        "warnings",
        "accuracy",
        "balanced_accuracy",
        "confusion_matrix",
        "auc",
        "roc",
        "per_class",
        "sensitivity",
        "specificity",
        "positive_class",
        "ece",
        "skipped_images",
        "evaluated_on",
        "tta",
    }
)
PREPROCESSING = (
    "Each image is resized to {size}x{size} pixels (squashed, not cropped), scaled to 0-1 and "
    "normalised with the mean and standard deviation below. Greyscale images are repeated to "
    "three channels. Images longer than 2048 pixels on a side are read in sliding-window patches."
)


def _site_slug(site_id: int) -> str:
    return Site.objects.values_list("slug", flat=True).get(pk=site_id)


def _require_member(caller: Caller, site_id: int) -> None:
    caller.require_clinical()
    if site_id not in caller.site_ids:
        raise NotFound("There is no such model at your sites.", code="model_not_found")


def _model_prefix(version: PublishedVersion) -> str:
    return f"published/{version.published_model_id}/v{version.number}/"


# --- Publish -------------------------------------------------------------------------------------


def publishable_version(*, caller: Caller, job: Job) -> ModelVersion:
    """The model version a job produced; a job that did not succeed has nothing to publish."""
    _require_member(caller, job.site_id)
    if job.status != JobStatus.SUCCEEDED:
        raise Conflict(
            f"This training job {job.get_status_display().lower()} (status '{job.status}'), so it "
            "produced no model to publish. Publish a job that finished successfully.",
            code="job_not_succeeded",
        )
    version = ModelVersion.objects.filter(job_id=job.pk).first()
    if version is None:
        raise Conflict("This job has no saved model to publish.", code="job_not_succeeded")
    return version


def _named_site_ids(slugs: list[str], own_site_id: int) -> list[int]:
    found = dict(Site.objects.filter(slug__in=slugs).values_list("slug", "pk"))
    missing = sorted(set(slugs) - set(found))
    if missing:
        raise ApiError(
            f"There is no site called {', '.join(repr(s) for s in missing)}. Check the site names.",
            code="invalid",
            fields={"named_sites": f"Unknown: {', '.join(missing)}."},
        )
    return [pk for pk in found.values() if pk != own_site_id]


def _check_visibility(visibility: str, named_sites: list[str] | None) -> None:
    if visibility == Visibility.NAMED and not named_sites:
        raise ApiError(
            "Name at least one site to share with, or choose another visibility.",
            code="invalid",
            fields={"named_sites": "Required when visibility is 'named'."},
        )


def _card(version: ModelVersion, dataset_modality: str) -> dict[str, Any]:
    """The automatic part of the model card: counts and aggregate metrics only."""
    summary = version.training_summary or {}
    per_split = summary.get("images_per_split") or {}
    totals: dict[str, int] = {}
    for counts in per_split.values():
        for label, n in (counts or {}).items():
            totals[label] = totals.get(label, 0) + int(n)
    entry = version.starting_point
    parent = version.parent
    return {
        "architecture": version.architecture,
        "task": "classification",
        "labels": list(version.label_names),
        # The finding the model looks for: its sensitivity ("cases found") is about this label.
        "positive_class": version.positive_class or None,
        "input": {
            "size": version.input_size,
            "channels": len(version.mean),
            "mean": version.mean,
            "std": version.std,
            "preprocessing": PREPROCESSING.format(size=version.input_size),
        },
        "training_data": {
            "modality": dataset_modality,
            "images_per_split": per_split,
            "images_per_label": totals,
            "total_images": sum(totals.values()),
            "recipe": summary.get("recipe"),
        },
        "site": {"slug": version.site.slug, "name": version.site.name},
        "metrics": {k: version.metrics.get(k) for k in CARD_METRICS if k in version.metrics},
        "lineage": {
            "weights_sha256": version.weights_sha256,
            "starting_point": (
                {"slug": entry.slug, "name": entry.name, "source": entry.source} if entry else None
            ),
            "parent": (
                {"site": parent.site.slug, "weights_sha256": parent.weights_sha256}
                if parent
                else None
            ),
        },
        "licence": version.licence or (entry.licence if entry else ""),
        "trained_at": version.created_at.isoformat(timespec="seconds"),
    }


def _index_fields(model: PublishedModel) -> None:
    labels = [str(label).lower() for label in model.label_names]
    model.labels_index = "|" + "|".join(labels) + "|"
    model.search_text = " ".join(
        [
            model.name,
            model.architecture,
            model.modality,
            model.site.name,
            model.site.slug,
            *labels,
            model.intended_use,
        ]
    ).lower()


def model_version_publish(
    *,
    caller: Caller,
    model_version: ModelVersion,
    name: str = "",
    visibility: str | None = None,
    named_sites: list[str] | None = None,
    intended_use: str | None = None,
    limitations: str | None = None,
    acknowledge_comparison: bool = False,
) -> PublishedVersion:
    """Publish a trained model as a new version of its listing; the site agent copies the weights.

    The listing (one per name at a site) is created on first publication; later publications
    add versions. The version stays 'pending' until the hub has checked the copied weights.
    A fine-tune that did worse than its parent, or could not be shown not to, is published
    only with ``acknowledge_comparison`` (409 ``comparison_warning`` without it).
    """
    _require_member(caller, model_version.site_id)
    job = model_version.job
    if job is not None and job.status != JobStatus.SUCCEEDED:
        raise Conflict(
            "Only a model from a finished job can be published.", code="job_not_succeeded"
        )
    warning = publish_warning(model_version)
    if warning is not None and not acknowledge_comparison:
        raise Conflict(publish_warning_message(warning), code="comparison_warning")
    name = (name or model_version.name).strip()[:200]
    with transaction.atomic():
        listing = (
            PublishedModel.objects.select_for_update()
            .filter(site_id=model_version.site_id, name=name)
            .first()
        )
        if listing is None:
            if visibility is None:
                visibility = Visibility.SITE
            listing = PublishedModel(site_id=model_version.site_id, name=name)
        current_named = (
            list(listing.named_sites.values_list("slug", flat=True)) if listing.pk else []
        )
        _check_visibility(
            visibility or listing.visibility,
            named_sites if named_sites is not None else current_named,
        )
        dataset_modality = job.dataset.modality if job is not None else listing.modality or "other"
        listing.architecture = model_version.architecture
        listing.label_names = list(model_version.label_names)
        listing.modality = dataset_modality
        if visibility is not None:
            listing.visibility = visibility
        if intended_use is not None:
            listing.intended_use = intended_use
        if limitations is not None:
            listing.limitations = limitations
        listing.site = Site.objects.get(pk=model_version.site_id)
        _index_fields(listing)
        listing.save()
        if named_sites is not None:
            listing.named_sites.set(_named_site_ids(named_sites, listing.site_id))
        existing = PublishedVersion.objects.filter(
            published_model=listing, model_version=model_version
        ).first()
        if existing is not None and existing.status != VersionStatus.FAILED:
            raise Conflict(
                f"This model is already version {existing.number} of '{listing.name}'.",
                code="already_published",
            )
        if existing is not None:
            version = existing
            version.status, version.claim_id, version.error_code, version.message = (
                VersionStatus.PENDING,
                "",
                "",
                "",
            )
        else:
            number = (listing.versions.aggregate(n=Max("number"))["n"] or 0) + 1
            version = PublishedVersion(published_model=listing, model_version=model_version)
            version.number = number
        prefix = _model_prefix(version)
        version.weights_key = prefix + "weights.safetensors"
        version.manifest_key = prefix + "manifest.json"
        version.weights_sha256 = model_version.weights_sha256
        version.card = _card(model_version, dataset_modality)
        auc = model_version.metrics.get("auc")
        version.auc = float(auc) if isinstance(auc, int | float) else None
        version.published_by_id = caller.user_id if caller.token is None else None
        version.save()
        audit_record(
            caller=caller,
            action="marketplace.publish",
            site_id=listing.site_id,
            target_type="published_version",
            target_id=version.pk,
            detail={
                "model_version": model_version.pk,
                "published_model": listing.pk,
                "number": version.number,
                "visibility": listing.visibility,
                "weights_sha256": version.weights_sha256,
                **({"acknowledged_comparison": warning["verdict"]} if warning is not None else {}),
            },
        )
        if in_hub_store(model_version):
            # A cross-site training round already lives in the hub's store: copy it here.
            transaction.on_commit(lambda: _publish_from_hub_store(version.pk))
            return version
        slug = listing.site.slug
        send_on_commit(
            tasks.PUBLISH,
            {"site": slug, "kind": "publication", "id": version.pk},
            queue=queues.infer_queue(slug),
        )
    return version


def _publish_from_hub_store(version_id: int) -> None:
    version = PublishedVersion.objects.select_related("model_version").get(pk=version_id)
    store, folder = model_store(), hub_folder(version.model_version)
    claim_id = f"hub-copy-{version.pk}"
    PublishedVersion.objects.filter(pk=version.pk, status=VersionStatus.PENDING).update(
        claim_id=claim_id
    )
    store.put_bytes(version.weights_key, store.get_bytes(f"{folder}/weights.safetensors"))
    store.put_bytes(version.manifest_key, store.get_bytes(f"{folder}/manifest.json"))
    publication_complete(version=version, claim_id=claim_id)


def published_model_update(
    *,
    caller: Caller,
    model: PublishedModel,
    visibility: str | None = None,
    named_sites: list[str] | None = None,
    intended_use: str | None = None,
    limitations: str | None = None,
) -> PublishedModel:
    """Change who may see a listing, or its intended use and limitations."""
    _require_member(caller, model.site_id)
    with transaction.atomic():
        current_named = list(model.named_sites.values_list("slug", flat=True))
        _check_visibility(
            visibility or model.visibility,
            named_sites if named_sites is not None else current_named,
        )
        if visibility is not None:
            model.visibility = visibility
        if intended_use is not None:
            model.intended_use = intended_use
        if limitations is not None:
            model.limitations = limitations
        _index_fields(model)
        model.save()
        if named_sites is not None:
            model.named_sites.set(_named_site_ids(named_sites, model.site_id))
        audit_record(
            caller=caller,
            action="marketplace.update",
            site_id=model.site_id,
            target_type="published_model",
            target_id=model.pk,
            detail={"visibility": model.visibility, "named_sites": named_sites},
        )
    return model


def _refresh_latest(listing_id: int) -> None:
    latest = (
        PublishedVersion.objects.filter(
            published_model_id=listing_id, status__in=USABLE_VERSION_STATUSES
        )
        .order_by("-number")
        .first()
    )
    PublishedModel.objects.filter(pk=listing_id).update(
        latest_version=latest, updated_at=timezone.now()
    )


def may_change_status(*, caller: Caller, version: PublishedVersion) -> bool:
    """Whether the caller may deprecate or withdraw this version: its publisher or a site admin."""
    site_id = version.published_model.site_id
    if site_id not in caller.site_ids:
        return False
    publisher = caller.token is None and version.published_by_id == caller.user_id
    return caller.is_admin_of(site_id) or publisher


def published_version_set_status(
    *, caller: Caller, version: PublishedVersion, status: str, reason: str = ""
) -> PublishedVersion:
    """Deprecate (still usable, a newer version is advised) or withdraw (no longer usable).

    Both are for the person who published the version or an administrator of the publishing
    site; other members get 403, and everyone else 404 (the model is not theirs).
    """
    site_id = version.published_model.site_id
    _require_member(caller, site_id)
    verb = "withdraw" if status == VersionStatus.WITHDRAWN else "deprecate"
    if not may_change_status(caller=caller, version=version):
        site_name = Site.objects.values_list("name", flat=True).get(pk=site_id)
        raise Forbidden(
            f"Only the person who published this version or an administrator of {site_name} "
            f"can {verb} it. Ask them, or your site administrator.",
            code="admin_required",
        )
    allowed_from = {
        VersionStatus.DEPRECATED: {VersionStatus.PUBLISHED},
        VersionStatus.WITHDRAWN: {
            VersionStatus.PUBLISHED,
            VersionStatus.DEPRECATED,
            VersionStatus.PENDING,
        },
    }[VersionStatus(status)]
    with transaction.atomic():
        if not PublishedVersion.objects.filter(pk=version.pk, status__in=allowed_from).update(
            status=status, status_changed_at=timezone.now(), status_reason=reason[:2000]
        ):
            raise Conflict(
                f"This version is {version.get_status_display().lower()}; it cannot be {status}.",
                code="invalid_status",
            )
        _refresh_latest(version.published_model_id)
        audit_record(
            caller=caller,
            action=f"marketplace.{verb}",
            site_id=site_id,
            target_type="published_version",
            target_id=version.pk,
            detail={"reason": reason[:500]},
        )
    version.refresh_from_db()
    return version


def require_usable(version: PublishedVersion) -> None:
    """Refuse a version that was withdrawn or never finished publishing, with a clear reason."""
    if version.status == VersionStatus.WITHDRAWN:
        raise Conflict(
            "This model version was withdrawn by its publisher and can no longer be used."
            + (f" Reason: {version.status_reason}" if version.status_reason else "")
            + " Choose another version.",
            code="model_withdrawn",
        )
    if version.status not in USABLE_VERSION_STATUSES:
        raise Conflict(
            "This model version is not published yet. Wait until it is published.",
            code="model_not_published",
        )


def published_weights(version: PublishedVersion, *, expires_in: int = FETCH_URL_SECONDS) -> dict:
    """Presigned GETs for an agent to fetch published weights (verified by sha256 before use)."""
    store = model_store()
    return {
        "kind": "published",
        "url": store.presign_get(version.weights_key, expires_in=expires_in),
        "sha256": version.weights_sha256,
        "manifest_url": store.presign_get(version.manifest_key, expires_in=expires_in),
        "manifest_sha256": version.manifest_sha256,
    }


def _model_spec(
    model_version: ModelVersion, published: PublishedVersion | None, site_id: int
) -> dict[str, Any]:
    spec = {
        "architecture": model_version.architecture,
        "label_names": model_version.label_names,
        "input_size": model_version.input_size,
        "mean": model_version.mean,
        "std": model_version.std,
    }
    if published is not None and model_version.site_id != site_id:
        return {**spec, **published_weights(published)}
    return {**spec, **model_version_weights(model_version)}


# --- Work claimed by agents -----------------------------------------------------------------------


def finish_claimed(
    model: type[Model], pk: int, *, claim_id: str, active: set[str], **fields: Any
) -> bool:
    """Write ``fields`` only while ``claim_id`` still holds the item: a worker that lost it cannot."""
    return bool(
        model.objects.filter(pk=pk, status__in=active, claim_id=claim_id).update(**fields)  # type: ignore[attr-defined]
    )


def publication_spec(version: PublishedVersion) -> dict[str, Any]:
    store = model_store()
    mv = version.model_version
    return {
        "published_version_id": version.pk,
        "storage_key": mv.storage_key,
        "weights_sha256": mv.weights_sha256,
        "uploads": {
            "weights": store.presign_put(version.weights_key, expires_in=UPLOAD_URL_SECONDS),
            "manifest": store.presign_put(version.manifest_key, expires_in=UPLOAD_URL_SECONDS),
        },
    }


def _safetensors_header_ok(data: bytes) -> bool:
    """A safetensors file starts with a little-endian u64 header length and a JSON header."""
    if len(data) < 8:
        return False
    (length,) = struct.unpack("<Q", data[:8])
    if length <= 0 or 8 + length > len(data):
        return False
    try:
        return isinstance(json.loads(data[8 : 8 + length]), dict)
    except ValueError:
        return False


def publication_complete(*, version: PublishedVersion, claim_id: str) -> PublishedVersion:
    """Check what the agent copied into the model store; publish only if it is what was trained."""
    store = model_store()
    expected = version.model_version.weights_sha256
    problem = ""
    try:
        weights = store.get_bytes(version.weights_key)
        manifest_bytes = store.get_bytes(version.manifest_key)
    except Exception:
        weights, manifest_bytes = b"", b""
        problem = "The weights were not found in the marketplace store after the copy."
    if not problem and sha256_bytes(weights) != expected:
        problem = (
            "The copied weights do not match the checksum recorded when the model was trained."
        )
    if not problem and not _safetensors_header_ok(weights):
        problem = "The copied weights are not a safetensors file."
    if not problem:
        try:
            manifest = json.loads(manifest_bytes)
        except ValueError:
            manifest = None
        if not isinstance(manifest, dict) or manifest.get("weights_sha256") != expected:
            problem = "The copied manifest does not describe these weights."
    with transaction.atomic():
        if problem:
            finish_claimed(
                PublishedVersion,
                version.pk,
                claim_id=claim_id,
                active={VersionStatus.PENDING},
                status=VersionStatus.FAILED,
                error_code="checksum_mismatch",
                message=problem + " Publish it again.",
            )
        else:
            now = timezone.now()
            if not finish_claimed(
                PublishedVersion,
                version.pk,
                claim_id=claim_id,
                active={VersionStatus.PENDING},
                status=VersionStatus.PUBLISHED,
                manifest_sha256=sha256_bytes(manifest_bytes),
                weights_bytes=len(weights),
                published_at=now,
                status_changed_at=now,
            ):
                raise Conflict("This publication is not waiting for a copy.", code="not_pending")
            store.put_bytes(
                _model_prefix(version) + "card.json",
                json.dumps(version.card, indent=2, sort_keys=True).encode(),
            )
            _refresh_latest(version.published_model_id)
        audit_record(
            caller=None,
            action="marketplace.published" if not problem else "marketplace.publish_failed",
            site_id=version.published_model.site_id,
            target_type="published_version",
            target_id=version.pk,
            detail={"weights_sha256": expected, "problem": problem},
        )
    version.refresh_from_db()
    return version


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
        slug = _site_slug(site_id)
        send_on_commit(
            tasks.PREDICT,
            {"site": slug, "kind": "prediction", "id": prediction.pk},
            queue=queues.infer_queue(slug),
        )
    return prediction


def prediction_spec(prediction: Prediction) -> dict[str, Any]:
    published = prediction.published_version
    if published is not None:
        require_usable(published)
    return {
        "prediction_id": prediction.pk,
        "model": _model_spec(prediction.model_version, published, prediction.site_id),
        "inputs": prediction.inputs,
        "tta": prediction.tta,
        "heatmap": prediction.heatmap,
        "overlay_prefix": f"predictions/{prediction.pk}/",
    }


def overlay_links(prediction: Prediction) -> dict[str, str]:
    """Short-lived links to the heatmap overlays, presigned by the site's own agent."""
    from pollen.core.dispatch import ask_site_agent

    keys = [r["overlay_key"] for r in prediction.results if r.get("overlay_key")]
    if not keys:
        return {}
    slug = prediction.site.slug
    answer = ask_site_agent(
        slug, tasks.PRESIGN_DOWNLOAD, {"site": slug, "keys": keys, "expires_in": 300}
    )
    return dict(answer.get("urls", {}))


# --- Evaluate at my site --------------------------------------------------------------------------


def evaluation_create(
    *, caller: Caller, published_version: PublishedVersion, dataset: Dataset, tta: bool = True
) -> SiteEvaluation:
    """Run a published model on the caller's labelled dataset at their site; metrics stay private.

    Every accepted, labelled image whose label the model knows is used (not just the test split):
    the model never saw this site's images, so all of them are unseen data.
    """
    caller.require_clinical()
    if dataset.site_id not in caller.site_ids:
        raise NotFound("There is no such dataset at your sites.", code="dataset_not_found")
    require_usable(published_version)
    known = set(published_version.model_version.label_names)
    usable = (
        dataset.images.filter(status=ImageStatus.ACCEPTED, label__in=known)
        .values("label")
        .distinct()
    )
    if not usable.exists():
        raise ApiError(
            "None of this dataset's labelled images has a label the model knows "
            f"({', '.join(sorted(known))}). Label the images with the model's label names.",
            code="no_matching_labels",
        )
    with transaction.atomic():
        evaluation = SiteEvaluation.objects.create(
            site_id=dataset.site_id,
            published_version=published_version,
            dataset=dataset,
            created_by_id=caller.user_id if caller.token is None else None,
            metrics={"tta": tta},
        )
        audit_record(
            caller=caller,
            action="marketplace.evaluate",
            site_id=dataset.site_id,
            target_type="evaluation",
            target_id=evaluation.pk,
            detail={"published_version": published_version.pk, "dataset": dataset.pk},
        )
        slug = _site_slug(dataset.site_id)
        send_on_commit(
            tasks.EVALUATE,
            {"site": slug, "kind": "evaluation", "id": evaluation.pk},
            queue=queues.infer_queue(slug),
        )
    return evaluation


def evaluation_spec(evaluation: SiteEvaluation) -> dict[str, Any]:
    version = evaluation.published_version
    require_usable(version)
    if evaluation.dataset_id is None:
        raise Conflict("The dataset of this evaluation was deleted.", code="dataset_not_found")
    return {
        "evaluation_id": evaluation.pk,
        "dataset_id": evaluation.dataset_id,
        "tta": bool(evaluation.metrics.get("tta", True)),
        "model": _model_spec(version.model_version, version, evaluation.site_id),
        # Sensitivity at this site is about the same finding as on the model's card.
        "positive_class": version.model_version.positive_class,
    }


def evaluation_share(
    *, caller: Caller, evaluation: SiteEvaluation, shared: bool = True
) -> SiteEvaluation:
    """Show (or hide again) this site's aggregate metrics in the model's per-site table."""
    _require_member(caller, evaluation.site_id)
    if evaluation.status != WorkStatus.SUCCEEDED:
        raise Conflict("Only a finished evaluation can be shared.", code="evaluation_not_finished")
    with transaction.atomic():
        SiteEvaluation.objects.filter(pk=evaluation.pk).update(
            shared=shared, shared_at=timezone.now() if shared else None
        )
        audit_record(
            caller=caller,
            action="marketplace.evaluation_share" if shared else "marketplace.evaluation_unshare",
            site_id=evaluation.site_id,
            target_type="evaluation",
            target_id=evaluation.pk,
        )
    evaluation.refresh_from_db()
    return evaluation


def clean_metrics(metrics: dict[str, Any]) -> dict[str, Any]:
    """Aggregate numbers only: anything that could carry per-image results is dropped."""
    return {k: v for k, v in metrics.items() if k in SHAREABLE_METRICS}


# --- Download and export --------------------------------------------------------------------------


def version_download(*, caller: Caller, version: PublishedVersion, site_id: int) -> dict[str, Any]:
    """Short-lived links to the weights and manifest (and card) for one of the caller's sites.

    Every download is audited at the site it was made for and, for another site's model, at
    the publishing site too (see ``_audit_download``).
    """
    caller.require_clinical()
    if site_id not in caller.site_ids:
        raise NotFound("There is no such site among your sites.", code="site_not_found")
    require_usable(version)
    store = model_store()
    prefix = _model_prefix(version)
    links = {
        "weights_url": store.presign_get(version.weights_key, expires_in=DOWNLOAD_URL_SECONDS),
        "weights_sha256": version.weights_sha256,
        "manifest_url": store.presign_get(version.manifest_key, expires_in=DOWNLOAD_URL_SECONDS),
        "manifest_sha256": version.manifest_sha256,
        "card_url": store.presign_get(prefix + "card.json", expires_in=DOWNLOAD_URL_SECONDS),
        "expires_in": DOWNLOAD_URL_SECONDS,
    }
    _audit_download(caller=caller, version=version, site_id=site_id, file_format="safetensors")
    return links


def _audit_download(
    *,
    caller: Caller,
    version: PublishedVersion,
    site_id: int,
    file_format: str,
    detail: dict[str, Any] | None = None,
) -> None:
    """Record a download in the downloading site's log, and in the publisher's for its model.

    The downloading site's event names the person or token, as every event does. The
    publisher's event names only the site that downloaded (``site:<slug>``), which version and
    in which format: who at another site did it is that site's business, as the rest of its
    log is. Both events carry one ``reference``, so the two sites' administrators can match
    them if they need to look into a download together.
    """
    listing = version.published_model
    publisher = listing.site
    common = {
        "format": file_format,
        "published_model": listing.pk,
        "number": version.number,
        "weights_sha256": version.weights_sha256,
        "reference": uuid.uuid4().hex[:16],
    }
    with transaction.atomic():
        audit_record(
            caller=caller,
            action="marketplace.download",
            site_id=site_id,
            target_type="published_version",
            target_id=version.pk,
            detail={**common, "publisher_site": publisher.slug, **(detail or {})},
        )
        if publisher.pk == site_id:
            return
        downloader = Site.objects.only("slug", "name").get(pk=site_id)
        audit_record(
            caller=None,
            actor_label=f"site:{downloader.slug}",
            action="marketplace.downloaded_by_site",
            site_id=publisher.pk,
            target_type="published_version",
            target_id=version.pk,
            detail={
                **common,
                "downloader_site": downloader.slug,
                "downloader_site_name": downloader.name,
            },
        )


def export_create(
    *, caller: Caller, site_id: int, published_version: PublishedVersion
) -> ModelExport:
    """Export a published version to ONNX at the caller's site; checked against PyTorch there."""
    caller.require_clinical()
    if site_id not in caller.site_ids:
        raise NotFound("There is no such site among your sites.", code="site_not_found")
    require_usable(published_version)
    with transaction.atomic():
        export = ModelExport.objects.create(
            site_id=site_id,
            published_version=published_version,
            created_by_id=caller.user_id if caller.token is None else None,
        )
        export.key = f"{_model_prefix(published_version)}exports/{export.pk}/model.onnx"
        export.save(update_fields=["key"])
        audit_record(
            caller=caller,
            action="marketplace.export",
            site_id=site_id,
            target_type="export",
            target_id=export.pk,
            detail={"published_version": published_version.pk, "format": "onnx"},
        )
        slug = _site_slug(site_id)
        send_on_commit(
            tasks.EXPORT,
            {"site": slug, "kind": "export", "id": export.pk},
            queue=queues.infer_queue(slug),
        )
    return export


def export_spec(export: ModelExport) -> dict[str, Any]:
    version = export.published_version
    require_usable(version)
    return {
        "export_id": export.pk,
        "model": _model_spec(version.model_version, version, export.site_id),
        "upload": model_store().presign_put(export.key, expires_in=UPLOAD_URL_SECONDS),
    }


def export_complete(*, export: ModelExport, claim_id: str, result: dict[str, Any]) -> ModelExport:
    """Accept the ONNX file only if the bytes in the model store hash to what the agent reported."""
    try:
        data = model_store().get_bytes(export.key)
    except Exception:
        data = b""
    ok = bool(data) and sha256_bytes(data) == result["sha256"]
    fields: dict[str, Any] = (
        {"status": WorkStatus.SUCCEEDED, "sha256": result["sha256"], "size_bytes": len(data)}
        if ok
        else {
            "status": WorkStatus.FAILED,
            "error_code": "checksum_mismatch",
            "message": "The exported file in the model store does not match its checksum. Export again.",
        }
    )
    if not finish_claimed(
        ModelExport,
        export.pk,
        claim_id=claim_id,
        active={WorkStatus.RUNNING},
        finished_at=timezone.now(),
        details={k: result.get(k) for k in ("opset", "max_abs_diff", "atol")},
        **fields,
    ):
        raise Conflict("This export is not running.", code="not_running")
    export.refresh_from_db()
    return export


def export_download(*, caller: Caller, export: ModelExport) -> dict[str, Any]:
    """A short-lived link to a finished ONNX file, for the site that made it; audited like
    a download of the weights (at that site, and at the publishing site)."""
    caller.require_clinical()
    if export.site_id not in caller.site_ids:
        raise NotFound("There is no such export at your sites.", code="export_not_found")
    if export.status != WorkStatus.SUCCEEDED:
        raise Conflict("This export has not finished.", code="export_not_finished")
    require_usable(export.published_version)
    url = model_store().presign_get(export.key, expires_in=DOWNLOAD_URL_SECONDS)
    _audit_download(
        caller=caller,
        version=export.published_version,
        site_id=export.site_id,
        file_format="onnx",
        detail={"export": export.pk, "sha256": export.sha256},
    )
    return {"onnx_url": url, "sha256": export.sha256, "expires_in": DOWNLOAD_URL_SECONDS}


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


def evaluation_complete(
    *, evaluation: SiteEvaluation, claim_id: str, metrics: dict[str, Any]
) -> SiteEvaluation:
    if not finish_claimed(
        SiteEvaluation,
        evaluation.pk,
        claim_id=claim_id,
        active={WorkStatus.RUNNING},
        status=WorkStatus.SUCCEEDED,
        metrics=clean_metrics(metrics),
        finished_at=timezone.now(),
    ):
        raise Conflict("This evaluation is not running.", code="not_running")
    evaluation.refresh_from_db()
    return evaluation
