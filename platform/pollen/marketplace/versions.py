"""A published version in use: who may see it, whether it is usable, where its weights are.

Shared by publishing, applying, site evaluation and exports.
"""

from __future__ import annotations

from typing import Any

from django.db.models import Model

from pollen.accounts.caller import Caller
from pollen.accounts.models import Site
from pollen.core.errors import Conflict, NotFound
from pollen.marketplace.models import (
    USABLE_VERSION_STATUSES,
    PublishedVersion,
    VersionStatus,
)

UPLOAD_URL_SECONDS = 3600
DOWNLOAD_URL_SECONDS = 300


def slug_of_site(site_id: int) -> str:
    return Site.objects.values_list("slug", flat=True).get(pk=site_id)


def require_member(caller: Caller, site_id: int) -> None:
    caller.require_clinical()
    if site_id not in caller.site_ids:
        raise NotFound("There is no such model at your sites.", code="model_not_found")


def model_prefix(version: PublishedVersion) -> str:
    return f"published/{version.published_model_id}/v{version.number}/"


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


# --- Work claimed by agents -----------------------------------------------------------------------


def finish_claimed(
    model: type[Model], pk: int, *, claim_id: str, active: set[str], **fields: Any
) -> bool:
    """Write ``fields`` only while ``claim_id`` still holds the item: a worker that lost it cannot."""
    return bool(
        model.objects.filter(pk=pk, status__in=active, claim_id=claim_id).update(**fields)  # type: ignore[attr-defined]
    )
