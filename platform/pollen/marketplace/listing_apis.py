"""Marketplace endpoints: browse published models, a model's page and a version's card."""

from __future__ import annotations

from typing import Any

import django_filters
from django.db.models import Count, F, Q, QuerySet
from drf_spectacular.utils import extend_schema
from rest_framework import generics, serializers
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from pollen.accounts.caller import Caller, caller_from_request
from pollen.core.errors import ApiError, NotFound
from pollen.core.filters import FractionFilter
from pollen.core.serializers import StrictSerializer
from pollen.datasets.models import Modality
from pollen.datasets.positive_class import measured_positive_class
from pollen.marketplace import publishing, selectors
from pollen.marketplace.findings import (
    TRAINING_CHECK_TTA,
    card_positive_class,
    group_by_finding,
    measured_tta,
)
from pollen.marketplace.models import (
    LISTED_VERSION_STATUSES,
    PublishedModel,
    PublishedVersion,
    Visibility,
)


def request_caller(request: Request) -> Caller:
    caller = caller_from_request(request)
    caller.require_clinical()
    return caller


# --- Output ---------------------------------------------------------------------------------------


class VersionSummaryOut(serializers.ModelSerializer):
    positive_class = serializers.SerializerMethodField(
        help_text="The finding the model looks for (blank for three or more labels)"
    )
    task = serializers.SerializerMethodField(help_text="classification or segmentation")
    dice = serializers.SerializerMethodField(
        help_text="Outlining models: mean Dice per test image at the publishing site"
    )

    class Meta:
        model = PublishedVersion
        fields = [
            "id",
            "number",
            "status",
            "auc",
            "dice",
            "task",
            "positive_class",
            "weights_sha256",
            "published_at",
        ]

    def get_positive_class(self, version: PublishedVersion) -> str:
        return card_positive_class(version.card)

    def get_task(self, version: PublishedVersion) -> str:
        return str(version.card.get("task") or "classification")

    def get_dice(self, version: PublishedVersion) -> float | None:
        dice = (version.card.get("metrics") or {}).get("dice")
        return float(dice) if dice is not None else None


class PublishedModelOut(serializers.ModelSerializer):
    site = serializers.CharField(source="site.slug")
    site_name = serializers.CharField(source="site.name")
    named_sites = serializers.SerializerMethodField()
    latest_version = VersionSummaryOut(allow_null=True)
    version_count = serializers.SerializerMethodField()

    class Meta:
        model = PublishedModel
        fields = [
            "id",
            "name",
            "site",
            "site_name",
            "modality",
            "task",
            "architecture",
            "label_names",
            "visibility",
            "named_sites",
            "intended_use",
            "limitations",
            "latest_version",
            "version_count",
            "created_at",
            "updated_at",
        ]

    def get_version_count(self, model: PublishedModel) -> int:
        """Listed versions: the list annotates the count in its query; one model counts here."""
        annotated = getattr(model, "version_count", None)
        if annotated is not None:
            return int(annotated)
        return model.versions.filter(status__in=LISTED_VERSION_STATUSES).count()

    def get_named_sites(self, model: PublishedModel) -> list[str] | None:
        caller: Caller | None = self.context.get("caller")
        if caller is None or model.site_id not in caller.site_ids:
            return None  # who else a model is shared with is the publisher's business
        return sorted(site.slug for site in model.named_sites.all())


class PublishedVersionOut(serializers.ModelSerializer):
    published_model = serializers.IntegerField(source="published_model_id")
    model_name = serializers.CharField(source="published_model.name")
    site = serializers.CharField(source="published_model.site.slug")
    model_version = serializers.SerializerMethodField()
    status_text = serializers.CharField(source="get_status_display")
    card = serializers.SerializerMethodField()
    can_manage = serializers.SerializerMethodField(
        help_text="Whether you may deprecate or withdraw it: its publisher or an administrator "
        "of the publishing site"
    )

    class Meta:
        model = PublishedVersion
        fields = [
            "id",
            "published_model",
            "model_name",
            "site",
            "number",
            "status",
            "status_text",
            "status_reason",
            "attempt",
            "model_version",
            "weights_sha256",
            "manifest_sha256",
            "weights_bytes",
            "auc",
            "card",
            "error_code",
            "message",
            "created_at",
            "published_at",
            "status_changed_at",
            "can_manage",
        ]

    def get_can_manage(self, version: PublishedVersion) -> bool:
        caller: Caller | None = self.context.get("caller")
        return caller is not None and publishing.may_change_status(caller=caller, version=version)

    def get_model_version(self, version: PublishedVersion) -> int | None:
        caller: Caller | None = self.context.get("caller")
        own = caller is not None and version.published_model.site_id in caller.site_ids
        return version.model_version_id if own else None

    def get_card(self, version: PublishedVersion) -> dict[str, Any]:
        listing = version.published_model
        return {
            **version.card,
            "positive_class": card_positive_class(version.card),
            "name": listing.name,
            "version": version.number,
            "intended_use": listing.intended_use,
            "limitations": listing.limitations,
            "visibility": listing.visibility,
            "status": version.status,
        }


# --- Browse ---------------------------------------------------------------------------------------


class PublishedModelFilter(django_filters.FilterSet):
    modality = django_filters.ChoiceFilter(choices=Modality.choices)
    task = django_filters.CharFilter()
    architecture = django_filters.CharFilter()
    site = django_filters.CharFilter(field_name="site__slug")
    visibility = django_filters.ChoiceFilter(choices=Visibility.choices)
    labels = django_filters.CharFilter(
        method="filter_labels", help_text="Comma-separated: every label must be among the model's"
    )
    min_auc = FractionFilter(field_name="latest_version__auc", lookup_expr="gte")
    search = django_filters.CharFilter(method="filter_search")
    sort = django_filters.ChoiceFilter(
        choices=[("recent", "recent"), ("auc", "auc"), ("name", "name")], method="filter_sort"
    )

    class Meta:
        model = PublishedModel
        fields: list[str] = []

    def filter_labels(self, qs: QuerySet, name: str, value: str) -> QuerySet:
        for label in [v.strip().lower() for v in value.split(",") if v.strip()]:
            qs = qs.filter(labels_index__contains=f"|{label}|")
        return qs

    def filter_search(self, qs: QuerySet, name: str, value: str) -> QuerySet:
        for word in value.lower().split()[:10]:
            qs = qs.filter(search_text__contains=word)
        return qs

    def filter_sort(self, qs: QuerySet, name: str, value: str) -> QuerySet:
        if value == "auc":
            return qs.order_by(F("latest_version__auc").desc(nulls_last=True), "-id")
        if value == "name":
            return qs.order_by("name", "id")
        return qs


class PublishedModelListApi(generics.ListAPIView):
    serializer_class = PublishedModelOut
    filterset_class = PublishedModelFilter

    @extend_schema(
        tags=["marketplace"],
        summary="Browse and search the models you may see",
        description="Your sites' models, models shared with your site by name, and the consortium's. "
        "Sort with ?sort=auc|recent|name.",
    )
    def get(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        return super().get(request, *args, **kwargs)

    def get_serializer_context(self) -> dict[str, Any]:
        return {**super().get_serializer_context(), "caller": caller_from_request(self.request)}

    def get_queryset(self):  # type: ignore[no-untyped-def]
        if getattr(self, "swagger_fake_view", False):
            return PublishedModel.objects.none()
        caller = request_caller(self.request)
        return (
            selectors.published_model_browse(caller)
            .annotate(
                version_count=Count(
                    "versions",
                    filter=Q(versions__status__in=LISTED_VERSION_STATUSES),
                )
            )
            .order_by("-updated_at", "-id")
        )


class PublishedModelPatchIn(StrictSerializer):
    visibility = serializers.ChoiceField(choices=Visibility.choices, required=False)
    named_sites = serializers.ListField(
        child=serializers.CharField(max_length=50), required=False, max_length=200
    )
    intended_use = serializers.CharField(required=False, allow_blank=True, max_length=5000)
    limitations = serializers.CharField(required=False, allow_blank=True, max_length=5000)


def _model_detail(caller: Caller, model: PublishedModel) -> dict[str, Any]:
    versions = list(selectors.versions_for(caller=caller, model=model))
    for version in versions:
        version.published_model = model
    body = PublishedModelOut(model, context={"caller": caller}).data
    body["versions"] = PublishedVersionOut(versions, many=True, context={"caller": caller}).data
    latest = model.latest_version or (versions[0] if versions else None)
    body["card"] = (
        PublishedVersionOut(latest, context={"caller": caller}).data["card"] if latest else None
    )
    body["lineage"] = (
        selectors.lineage(caller=caller, version=latest.model_version)
        if latest
        else {"parents": [], "descendants": []}
    )
    finding = card_positive_class(latest.card) if latest else ""
    body["positive_class"] = finding
    tta = _card_tta(latest.card) if latest else TRAINING_CHECK_TTA
    body["evaluations"] = group_by_finding(_site_table(model, versions), finding, tta)
    return body


def _site_table(model: PublishedModel, versions: list[PublishedVersion]) -> list[dict[str, Any]]:
    """How each version performed at each site: the publisher's held-out test, then shared ones.

    Each row names its site by slug and display name (a site's name is public in the consortium;
    its results appear here only once that site shared them).
    """
    keys = (
        "n",
        "auc",
        "accuracy",
        "balanced_accuracy",
        "sensitivity",
        "specificity",
        *OUTLINE_KEYS,
    )
    rows = [
        {
            "site": model.site.slug,
            "site_name": model.site.name,
            "version": v.number,
            "source": "publisher_test_split",
            **_numbers(v.card.get("metrics") or {}, keys),
            "positive_class": card_positive_class(v.card),
            "tta": _card_tta(v.card),
            "ece": (v.card.get("metrics") or {}).get("calibration_error"),
            "at": v.published_at,
        }
        for v in versions
        if v.status in LISTED_VERSION_STATUSES
    ]
    numbers = {v.pk: v.number for v in versions}
    for evaluation in selectors.shared_evaluations(version_ids=list(numbers)):
        rows.append(
            {
                "site": evaluation.site.slug,
                "site_name": evaluation.site.name,
                "version": numbers[evaluation.published_version_id],
                "source": "site_evaluation",
                **_numbers(evaluation.metrics, keys),
                "positive_class": measured_positive_class(evaluation.metrics),
                "tta": measured_tta(evaluation.metrics, legacy=_SITE_DEFAULT_TTA),
                "ece": evaluation.metrics.get("ece"),
                "at": evaluation.finished_at,
            }
        )
    return rows


# An outlining model's numbers in the per-site table (ml/segmentation/metrics.py).
OUTLINE_KEYS = ("dice", "lesion_dice", "iou", "hd95_median")


def _numbers(metrics: dict[str, Any], keys: tuple[str, ...]) -> dict[str, Any]:
    """The table's numbers; an outlining model counts its images as ``images``."""
    numbers = {k: metrics.get(k) for k in keys}
    if numbers["n"] is None and metrics.get("images") is not None:
        numbers["n"] = metrics["images"]
    return numbers


# An evaluation at a site asked for TTA unless told otherwise.
_SITE_DEFAULT_TTA = measured_tta({"tta": True}, legacy="")


def _card_tta(card: dict[str, Any]) -> str:
    return measured_tta(card.get("metrics") or {}, legacy=TRAINING_CHECK_TTA)


class SiteResultOut(serializers.Serializer):
    """One row of a model's per-site table (documents ``_site_table``)."""

    site = serializers.CharField(help_text="The site's slug")
    site_name = serializers.CharField(help_text="The site's display name")
    version = serializers.IntegerField()
    source = serializers.ChoiceField(  # type: ignore[assignment]  # a name DRF stubs also use
        choices=["publisher_test_split", "site_evaluation"]
    )
    n = serializers.IntegerField(allow_null=True)
    auc = serializers.FloatField(allow_null=True)
    dice = serializers.FloatField(
        allow_null=True,
        required=False,
        help_text="Outlining models: mean Dice per image (an empty mask left empty scores 1)",
    )
    lesion_dice = serializers.FloatField(
        allow_null=True, required=False, help_text="Outlining models: over images with a finding"
    )
    iou = serializers.FloatField(allow_null=True, required=False)
    hd95_median = serializers.FloatField(
        allow_null=True, required=False, help_text="Outlining models: median HD95, pixels"
    )
    accuracy = serializers.FloatField(allow_null=True)
    balanced_accuracy = serializers.FloatField(allow_null=True)
    sensitivity = serializers.FloatField(
        allow_null=True, help_text="Of the images with positive_class, the share it found"
    )
    specificity = serializers.FloatField(
        allow_null=True, help_text="Of the images without positive_class, the share it cleared"
    )
    positive_class = serializers.CharField(
        allow_blank=True,
        help_text="The finding this row's sensitivity is about (blank for three or more labels)",
    )
    same_finding = serializers.BooleanField(
        help_text="Whether positive_class is the latest version's: rows that differ measure "
        "another finding and are listed after the others, never compared with them"
    )
    tta = serializers.CharField(
        help_text="The test-time augmentation the probabilities were averaged over: none, "
        "hflip (each image and its mirror image) or d4 (the eight flips and rotations)"
    )
    same_tta = serializers.BooleanField(
        help_text="Whether tta is that of the latest version's own check: rows computed "
        "otherwise are listed after the others, never compared with them"
    )
    ece = serializers.FloatField(allow_null=True)
    at = serializers.DateTimeField(allow_null=True)


class PublishedModelDetailOut(PublishedModelOut):
    """A model's page (documents ``_model_detail``)."""

    versions = PublishedVersionOut(many=True)
    card = serializers.DictField(allow_null=True)
    lineage = serializers.DictField()
    positive_class = serializers.CharField(
        allow_blank=True, help_text="The finding the latest version looks for"
    )
    evaluations = SiteResultOut(
        many=True,
        help_text="Per site: the publisher's test split, then results sites shared; rows about "
        "another finding than the latest version's come last (same_finding false)",
    )

    class Meta(PublishedModelOut.Meta):
        fields = [
            *PublishedModelOut.Meta.fields,
            "versions",
            "card",
            "lineage",
            "positive_class",
            "evaluations",
        ]


class PublishedModelDetailApi(APIView):
    @extend_schema(
        tags=["marketplace"],
        summary="A model's page: card, versions, lineage and per-site evaluations",
        responses=PublishedModelDetailOut,
    )
    def get(self, request: Request, pk: int) -> Response:
        caller = request_caller(request)
        model = selectors.published_model_get(caller=caller, model_id=pk)
        return Response(_model_detail(caller, model))

    @extend_schema(
        tags=["marketplace"],
        summary="Change who may see the model, or its intended use and limitations",
        request=PublishedModelPatchIn,
        responses=PublishedModelOut,
    )
    def patch(self, request: Request, pk: int) -> Response:
        caller = request_caller(request)
        model = selectors.published_model_get(caller=caller, model_id=pk)
        data = PublishedModelPatchIn(data=request.data)
        data.is_valid(raise_exception=True)
        model = publishing.published_model_update(caller=caller, model=model, **data.validated_data)
        model = selectors.published_model_get(caller=caller, model_id=model.pk)
        return Response(PublishedModelOut(model, context={"caller": caller}).data)


class PublishedVersionDetailApi(APIView):
    @extend_schema(
        tags=["marketplace"], summary="One published version", responses=PublishedVersionOut
    )
    def get(self, request: Request, pk: int) -> Response:
        caller = request_caller(request)
        version = selectors.published_version_get(caller=caller, version_id=pk)
        return Response(PublishedVersionOut(version, context={"caller": caller}).data)


def own_site(caller: Caller, slug: str | None, *, what: str = "runs this") -> int:
    """The caller's site named by ``slug``; optional for a caller who belongs to one site only."""
    if slug:
        return caller.member_site(slug)
    if len(caller.site_ids) == 1:
        return next(iter(caller.site_ids))
    if not caller.site_ids:
        raise NotFound(
            "You do not belong to any site. Ask a site administrator to add you.",
            code="site_not_found",
        )
    mine = ", ".join(sorted(caller.slugs.values()))
    raise ApiError(
        f"You belong to several sites ({mine}): name the site that {what} with 'site'.",
        code="invalid",
        fields={"site": f"Required: one of {mine}."},
    )
