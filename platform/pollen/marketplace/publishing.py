"""Publishing: publish a trained model, edit its listing, withdraw or deprecate a version.

Every write checks the caller, runs in a transaction, records an audit event, and queues
agent work on commit with ids only (on the site's infer queue). The hub re-reads what an agent
put in the model store and checks its sha256 before trusting it.
"""

from __future__ import annotations

import json
import struct

from django.db import transaction
from django.db.models import Max
from django.utils import timezone

from pollen.accounts.caller import Caller
from pollen.accounts.models import Site
from pollen.audit.services import audit_record
from pollen.core.dispatch import send_on_commit
from pollen.core.errors import ApiError, Conflict, Forbidden
from pollen.core.model_store import model_store, sha256_bytes
from pollen.core.task_flows import require_flow
from pollen.marketplace.cards import card_of, index_fields
from pollen.marketplace.models import (
    USABLE_VERSION_STATUSES,
    PublishedModel,
    PublishedVersion,
    VersionStatus,
    Visibility,
)
from pollen.marketplace.versions import (
    UPLOAD_URL_SECONDS,
    finish_claimed,
    model_prefix,
    require_member,
)
from pollen.training.comparison import publish_warning, publish_warning_message
from pollen.training.models import Job, JobStatus, ModelVersion
from pollen.training.weights import hub_folder, in_hub_store
from pollen_contracts import queues, tasks
from pollen_contracts.contract import contract_task
from pollen_contracts.specs import PublicationSpec, PublicationUploads
from pollen_contracts.weights import UploadLink

# --- Publish -------------------------------------------------------------------------------------


def publishable_version(*, caller: Caller, job: Job) -> ModelVersion:
    """The model version a job produced; a job that did not succeed has nothing to publish."""
    require_member(caller, job.site_id)
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
    require_flow(model_version.task, "publish")
    require_member(caller, model_version.site_id)
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
        listing.task = model_version.task
        listing.label_names = list(model_version.label_names)
        listing.modality = dataset_modality
        if visibility is not None:
            listing.visibility = visibility
        if intended_use is not None:
            listing.intended_use = intended_use
        if limitations is not None:
            listing.limitations = limitations
        listing.site = Site.objects.get(pk=model_version.site_id)
        index_fields(listing)
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
            # Publishing again is new work: its lease starts afresh (pollen.core.lease).
            version.attempt, version.lease_expires_at = 0, None
            version.last_sent_at = timezone.now()
        else:
            number = (listing.versions.aggregate(n=Max("number"))["n"] or 0) + 1
            version = PublishedVersion(published_model=listing, model_version=model_version)
            version.number = number
        prefix = model_prefix(version)
        version.weights_key = prefix + "weights.safetensors"
        version.manifest_key = prefix + "manifest.json"
        version.weights_sha256 = model_version.weights_sha256
        version.card = card_of(model_version, dataset_modality)
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
    require_member(caller, model.site_id)
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
        index_fields(model)
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
    require_member(caller, site_id)
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


def publication_spec(version: PublishedVersion) -> PublicationSpec:
    store = model_store()
    mv = version.model_version

    def link(key: str) -> UploadLink:
        return UploadLink.from_dict(store.presign_put(key, expires_in=UPLOAD_URL_SECONDS))

    return PublicationSpec(
        published_version_id=version.pk,
        storage_key=mv.storage_key,
        weights_sha256=mv.weights_sha256,
        uploads=PublicationUploads(
            weights=link(version.weights_key), manifest=link(version.manifest_key)
        ),
        task=contract_task(mv.task),
    )


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
                model_prefix(version) + "card.json",
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
