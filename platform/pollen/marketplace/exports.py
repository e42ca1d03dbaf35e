"""Taking a model away: download its weights, or export it to ONNX (audited at both sites)."""

from __future__ import annotations

import uuid
from typing import Any

from django.db import transaction
from django.utils import timezone

from pollen.accounts.caller import Caller
from pollen.accounts.models import Site
from pollen.audit.services import audit_record
from pollen.core.dispatch import send_on_commit
from pollen.core.errors import Conflict, NotFound
from pollen.core.model_store import model_store, sha256_bytes
from pollen.core.task_flows import require_flow
from pollen.marketplace.models import (
    ModelExport,
    PublishedVersion,
    WorkStatus,
)
from pollen.marketplace.versions import (
    DOWNLOAD_URL_SECONDS,
    UPLOAD_URL_SECONDS,
    finish_claimed,
    model_prefix,
    require_usable,
    slug_of_site,
)
from pollen.training.weights import model_ref
from pollen_contracts import queues, tasks
from pollen_contracts.specs import ExportSpec
from pollen_contracts.weights import UploadLink

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
    prefix = model_prefix(version)
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
    require_flow(published_version.model_version.task, "export")
    if site_id not in caller.site_ids:
        raise NotFound("There is no such site among your sites.", code="site_not_found")
    require_usable(published_version)
    with transaction.atomic():
        export = ModelExport.objects.create(
            site_id=site_id,
            published_version=published_version,
            created_by_id=caller.user_id if caller.token is None else None,
        )
        export.key = f"{model_prefix(published_version)}exports/{export.pk}/model.onnx"
        export.save(update_fields=["key"])
        audit_record(
            caller=caller,
            action="marketplace.export",
            site_id=site_id,
            target_type="export",
            target_id=export.pk,
            detail={"published_version": published_version.pk, "format": "onnx"},
        )
        slug = slug_of_site(site_id)
        send_on_commit(
            tasks.EXPORT,
            {"site": slug, "kind": "export", "id": export.pk},
            queue=queues.infer_queue(slug),
        )
    return export


def export_spec(export: ModelExport) -> ExportSpec:
    version = export.published_version
    require_usable(version)
    return ExportSpec(
        export_id=export.pk,
        model=model_ref(version.model_version, published=version, site_id=export.site_id),
        upload=UploadLink.from_dict(
            model_store().presign_put(export.key, expires_in=UPLOAD_URL_SECONDS)
        ),
    )


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
