"""Reads for the marketplace, scoped to what the caller may see.

A site sees its own models, models named for it, and models shared with the consortium.
Anything else answers 404, exactly like a model that does not exist.
"""

from __future__ import annotations

from typing import Any

from django.db.models import Exists, OuterRef, Q, QuerySet

from pollen.accounts.caller import Caller
from pollen.core.errors import NotFound
from pollen.marketplace.models import (
    LISTED_VERSION_STATUSES,
    ModelExport,
    Prediction,
    PublishedModel,
    PublishedVersion,
    SiteEvaluation,
    Visibility,
)
from pollen.training.models import ModelVersion

NAMED_THROUGH = PublishedModel.named_sites.through


def _visible_q(caller: Caller) -> Q:
    """Own sites' listings, and others' that were ever published to the caller (withdrawn
    versions stay visible, so using one answers 'withdrawn' rather than 'not found')."""
    named_for_me = Exists(
        NAMED_THROUGH.objects.filter(publishedmodel_id=OuterRef("pk"), site_id__in=caller.site_ids)
    )
    was_published = Exists(
        PublishedVersion.objects.filter(
            published_model_id=OuterRef("pk"), status__in=LISTED_VERSION_STATUSES
        )
    )
    return Q(site_id__in=caller.site_ids) | (
        was_published
        & (Q(visibility=Visibility.CONSORTIUM) | (Q(visibility=Visibility.NAMED) & named_for_me))
    )


def published_model_list(caller: Caller) -> QuerySet[PublishedModel]:
    """Listings the caller may see: theirs in any state, others' once published."""
    return (
        PublishedModel.objects.filter(_visible_q(caller))
        .select_related("site", "latest_version", "latest_version__model_version")
        .prefetch_related("named_sites")
    )


def published_model_browse(caller: Caller) -> QuerySet[PublishedModel]:
    """What the marketplace lists: others' models only while a version is usable."""
    return published_model_list(caller).filter(
        Q(site_id__in=caller.site_ids) | Q(latest_version__isnull=False)
    )


def published_model_get(*, caller: Caller, model_id: int) -> PublishedModel:
    model = published_model_list(caller).filter(pk=model_id).first()
    if model is None:
        raise NotFound("There is no such model in the marketplace.", code="model_not_found")
    return model


def versions_for(*, caller: Caller, model: PublishedModel) -> QuerySet[PublishedVersion]:
    versions = PublishedVersion.objects.filter(published_model=model).select_related(
        "model_version", "published_by"
    )
    if model.site_id not in caller.site_ids:
        versions = versions.filter(status__in=LISTED_VERSION_STATUSES)
    return versions


def published_version_get(*, caller: Caller, version_id: int) -> PublishedVersion:
    """A version of a model the caller may see (withdrawn ones too: using them is refused later)."""
    version = (
        PublishedVersion.objects.filter(pk=version_id)
        .select_related(
            "published_model", "published_model__site", "model_version", "model_version__site"
        )
        .first()
    )
    if version is not None:
        visible = published_model_list(caller).filter(pk=version.published_model_id).exists()
        own = version.published_model.site_id in caller.site_ids
        if visible and (own or version.status in LISTED_VERSION_STATUSES):
            return version
    raise NotFound("There is no such model version in the marketplace.", code="version_not_found")


def lineage(*, caller: Caller, version: ModelVersion) -> dict[str, Any]:
    """Ancestors and descendants of a model version, across sites.

    A model at a site the caller cannot see is named only as "a model at another site".
    """
    ancestors: list[ModelVersion] = []
    seen = {version.pk}
    current = version
    while current.parent_id is not None and current.parent_id not in seen:
        parent = ModelVersion.objects.select_related("site").get(pk=current.parent_id)
        seen.add(parent.pk)
        ancestors.append(parent)
        current = parent
    descendants: list[tuple[ModelVersion, int]] = []
    frontier = [version.pk]
    depth = 0
    while frontier and depth < 20:
        depth += 1
        children = list(
            ModelVersion.objects.filter(parent_id__in=frontier)
            .exclude(pk__in=seen)
            .select_related("site")
        )
        for child in children:
            seen.add(child.pk)
            descendants.append((child, depth))
        frontier = [c.pk for c in children]
    everyone = [*ancestors, *(d for d, _ in descendants)]
    visible = _visible_publications(caller, [v.pk for v in everyone])
    return {
        "parents": [_lineage_node(caller, v, visible) for v in ancestors],  # type: ignore[arg-type]
        "descendants": [
            {**_lineage_node(caller, v, visible), "generation": depth} for v, depth in descendants
        ],
    }


def _visible_publications(caller: Caller, version_ids: list[int]) -> dict[int, PublishedVersion]:
    visible_models = published_model_list(caller).values("pk")
    rows = PublishedVersion.objects.filter(
        model_version_id__in=version_ids,
        published_model_id__in=visible_models,
        status__in=LISTED_VERSION_STATUSES,
    ).select_related("published_model")
    return {row.model_version_id: row for row in rows}


def _lineage_node(
    caller: Caller, version: ModelVersion, visible: dict[int, PublishedVersion]
) -> dict[str, Any]:
    own = version.site_id in caller.site_ids
    publication = visible.get(version.pk)
    if not own and publication is None:
        return {"visible": False, "description": "A model at another site"}
    node: dict[str, Any] = {
        "visible": True,
        "site": version.site.slug,
        "name": version.name,
        "architecture": version.architecture,
        "weights_sha256": version.weights_sha256,
        "model_version": version.pk if own else None,
        "published_model": publication.published_model_id if publication else None,
        "published_version": publication.pk if publication else None,
        "version_number": publication.number if publication else None,
    }
    return node


def shared_evaluations(*, version_ids: list[int]) -> QuerySet[SiteEvaluation]:
    return (
        SiteEvaluation.objects.filter(published_version_id__in=version_ids, shared=True)
        .select_related("site", "published_version")
        .order_by("site__slug", "-finished_at")
    )


def prediction_list(*, caller: Caller) -> QuerySet[Prediction]:
    return Prediction.objects.filter(site_id__in=caller.site_ids).select_related(
        "site", "published_version", "model_version"
    )


def prediction_get(*, caller: Caller, prediction_id: int) -> Prediction:
    prediction = prediction_list(caller=caller).filter(pk=prediction_id).first()
    if prediction is None:
        raise NotFound("There is no such prediction at your sites.", code="prediction_not_found")
    return prediction


def evaluation_list(*, caller: Caller) -> QuerySet[SiteEvaluation]:
    return SiteEvaluation.objects.filter(site_id__in=caller.site_ids).select_related(
        "site", "published_version", "published_version__published_model", "dataset"
    )


def evaluation_get(*, caller: Caller, evaluation_id: int) -> SiteEvaluation:
    evaluation = evaluation_list(caller=caller).filter(pk=evaluation_id).first()
    if evaluation is None:
        raise NotFound("There is no such evaluation at your sites.", code="evaluation_not_found")
    return evaluation


def export_get(*, caller: Caller, export_id: int, site_id: int | None = None) -> ModelExport:
    """An export at the caller's sites (at ``site_id`` only, when given)."""
    site_ids = caller.site_ids if site_id is None else caller.site_ids & {site_id}
    export = (
        ModelExport.objects.filter(site_id__in=site_ids, pk=export_id)
        .select_related("site", "published_version", "published_version__published_model__site")
        .first()
    )
    if export is None:
        raise NotFound("There is no such export at your sites.", code="export_not_found")
    return export
