"""Marketplace endpoints: browse, publish, apply, evaluate at my site, download and export."""

from __future__ import annotations

import threading
import time
from functools import cache
from typing import Any

import django_filters
from django.conf import settings
from django.db.models import Count, F, Q, QuerySet
from drf_spectacular.utils import OpenApiParameter, extend_schema, inline_serializer
from rest_framework import generics, serializers, status
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from pollen.accounts.caller import Caller, caller_from_request
from pollen.core.errors import ApiError, NotFound, ServiceUnavailable
from pollen.core.filters import FractionFilter, IdFilter
from pollen.core.serializers import StrictSerializer
from pollen.datasets.models import Modality
from pollen.datasets.positive_class import measured_positive_class
from pollen.datasets.selectors import dataset_get
from pollen.marketplace import selectors, services
from pollen.marketplace.findings import card_positive_class, group_by_finding
from pollen.marketplace.models import (
    LISTED_VERSION_STATUSES,
    WORK_FINAL_STATUSES,
    ModelExport,
    Prediction,
    PublishedModel,
    PublishedVersion,
    SiteEvaluation,
    VersionStatus,
    Visibility,
    WorkStatus,
)
from pollen.training.models import Job
from pollen.training.selectors import job_get, model_version_get

MAX_WAIT_SECONDS = 60
SHORT_WAIT_SECONDS = 1.0


def _caller(request: Request) -> Caller:
    caller = caller_from_request(request)
    caller.require_clinical()
    return caller


# --- Output ---------------------------------------------------------------------------------------


class VersionSummaryOut(serializers.ModelSerializer):
    positive_class = serializers.SerializerMethodField(
        help_text="The finding the model looks for (blank for three or more labels)"
    )

    class Meta:
        model = PublishedVersion
        fields = [
            "id",
            "number",
            "status",
            "auc",
            "positive_class",
            "weights_sha256",
            "published_at",
        ]

    def get_positive_class(self, version: PublishedVersion) -> str:
        return card_positive_class(version.card)


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
        return caller is not None and services.may_change_status(caller=caller, version=version)

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


class PredictionErrorOut(serializers.Serializer):
    code = serializers.CharField()
    message = serializers.CharField(help_text="Why the model could not read this image")


class PredictionResultOut(serializers.Serializer):
    """One image's answer, as the site agent reported it (metadata only: no pixels)."""

    image_id = serializers.IntegerField()
    filename = serializers.CharField(
        required=False,
        allow_null=True,
        help_text="The file's name as it was uploaded (absent from results stored before names "
        "were kept)",
    )
    probabilities = serializers.DictField(child=serializers.FloatField(), required=False)
    predicted = serializers.CharField(required=False)
    overlay_key = serializers.CharField(required=False)
    overlay_url = serializers.CharField(
        required=False,
        allow_null=True,
        help_text="A short-lived link to the heatmap (on a finished prediction's own page only)",
    )
    width = serializers.IntegerField(required=False)
    height = serializers.IntegerField(required=False)
    sliding_window = serializers.DictField(required=False)
    error = PredictionErrorOut(required=False)


class PredictionOut(serializers.ModelSerializer):
    site = serializers.CharField(source="site.slug")
    results = PredictionResultOut(many=True, read_only=True)
    published_version = serializers.IntegerField(source="published_version_id", allow_null=True)
    model_version = serializers.SerializerMethodField()
    dataset = serializers.IntegerField(source="dataset_id", allow_null=True)
    label_names = serializers.ListField(source="model_version.label_names")
    images = serializers.SerializerMethodField()

    class Meta:
        model = Prediction
        fields = [
            "id",
            "site",
            "status",
            "published_version",
            "model_version",
            "dataset",
            "label_names",
            "tta",
            "heatmap",
            "images",
            "results",
            "timings",
            "error_code",
            "message",
            "created_at",
            "finished_at",
        ]

    def get_model_version(self, prediction: Prediction) -> int | None:
        return None if prediction.published_version_id else prediction.model_version_id

    def get_images(self, prediction: Prediction) -> int:
        return len(prediction.inputs)


class EvaluationOut(serializers.ModelSerializer):
    site = serializers.CharField(source="site.slug")
    published_version = serializers.IntegerField(source="published_version_id")
    published_model = serializers.IntegerField(source="published_version.published_model_id")
    dataset = serializers.IntegerField(source="dataset_id", allow_null=True)

    class Meta:
        model = SiteEvaluation
        fields = [
            "id",
            "site",
            "status",
            "published_version",
            "published_model",
            "dataset",
            "metrics",
            "shared",
            "shared_at",
            "error_code",
            "message",
            "created_at",
            "finished_at",
        ]


class ExportOut(serializers.ModelSerializer):
    site = serializers.CharField(source="site.slug")
    published_version = serializers.IntegerField(source="published_version_id")

    class Meta:
        model = ModelExport
        fields = [
            "id",
            "site",
            "status",
            "published_version",
            "format",
            "sha256",
            "size_bytes",
            "details",
            "error_code",
            "message",
            "created_at",
            "finished_at",
        ]


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


class PublishIn(StrictSerializer):
    exactly_one_of = (("model_version", "job"),)

    model_version = serializers.IntegerField(
        required=False, help_text="A model trained at your site"
    )
    job = serializers.IntegerField(required=False, help_text="Or the training job that made it")
    name = serializers.CharField(
        max_length=200,
        required=False,
        allow_blank=True,
        help_text="Listing name (new version if it exists)",
    )
    visibility = serializers.ChoiceField(choices=Visibility.choices, required=False)
    named_sites = serializers.ListField(
        child=serializers.CharField(max_length=50), required=False, max_length=200
    )
    intended_use = serializers.CharField(required=False, allow_blank=True, max_length=5000)
    limitations = serializers.CharField(required=False, allow_blank=True, max_length=5000)
    acknowledge_comparison = serializers.BooleanField(
        required=False,
        default=False,
        help_text="Publish a fine-tuned model although it did worse than the model it started "
        "from, or could not be shown not to (too few check images, or not compared). Without "
        "it such a model answers 409 comparison_warning; the acknowledgement is audited.",
    )


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
        caller = _caller(self.request)
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


class PublishApi(APIView):
    @extend_schema(
        tags=["marketplace"],
        summary="Publish a trained model (a new version of its listing)",
        description="The site agent copies the weights (safetensors) into the marketplace store; "
        "the version is 'pending' until the hub has checked their checksum, then 'published'.",
        request=PublishIn,
        responses={201: PublishedVersionOut},
    )
    def post(self, request: Request) -> Response:
        caller = _caller(request)
        data = PublishIn(data=request.data)
        data.is_valid(raise_exception=True)
        fields: dict[str, Any] = dict(data.validated_data)
        version_id, job_id = fields.pop("model_version", None), fields.pop("job", None)
        if (version_id is None) == (job_id is None):
            raise ApiError(
                "Name the model to publish: its model_version or the job that trained it.",
                code="invalid",
                fields={"model_version": "Give model_version or job."},
            )
        if job_id is not None:
            job: Job = job_get(caller=caller, job_id=job_id)
            model_version = services.publishable_version(caller=caller, job=job)
        else:
            model_version = model_version_get(caller=caller, version_id=version_id)
        version = services.model_version_publish(
            caller=caller, model_version=model_version, **fields
        )
        version = selectors.published_version_get(caller=caller, version_id=version.pk)
        return Response(
            PublishedVersionOut(version, context={"caller": caller}).data,
            status=status.HTTP_201_CREATED,
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
    body["evaluations"] = group_by_finding(_site_table(model, versions), finding)
    return body


def _site_table(model: PublishedModel, versions: list[PublishedVersion]) -> list[dict[str, Any]]:
    """How each version performed at each site: the publisher's held-out test, then shared ones.

    Each row names its site by slug and display name (a site's name is public in the consortium;
    its results appear here only once that site shared them).
    """
    keys = ("n", "auc", "accuracy", "balanced_accuracy", "sensitivity", "specificity")
    rows = [
        {
            "site": model.site.slug,
            "site_name": model.site.name,
            "version": v.number,
            "source": "publisher_test_split",
            **{k: (v.card.get("metrics") or {}).get(k) for k in keys},
            "positive_class": card_positive_class(v.card),
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
                **{k: evaluation.metrics.get(k) for k in keys},
                "positive_class": measured_positive_class(evaluation.metrics),
                "ece": evaluation.metrics.get("ece"),
                "at": evaluation.finished_at,
            }
        )
    return rows


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
        caller = _caller(request)
        model = selectors.published_model_get(caller=caller, model_id=pk)
        return Response(_model_detail(caller, model))

    @extend_schema(
        tags=["marketplace"],
        summary="Change who may see the model, or its intended use and limitations",
        request=PublishedModelPatchIn,
        responses=PublishedModelOut,
    )
    def patch(self, request: Request, pk: int) -> Response:
        caller = _caller(request)
        model = selectors.published_model_get(caller=caller, model_id=pk)
        data = PublishedModelPatchIn(data=request.data)
        data.is_valid(raise_exception=True)
        model = services.published_model_update(caller=caller, model=model, **data.validated_data)
        model = selectors.published_model_get(caller=caller, model_id=model.pk)
        return Response(PublishedModelOut(model, context={"caller": caller}).data)


class PublishedVersionDetailApi(APIView):
    @extend_schema(
        tags=["marketplace"], summary="One published version", responses=PublishedVersionOut
    )
    def get(self, request: Request, pk: int) -> Response:
        caller = _caller(request)
        version = selectors.published_version_get(caller=caller, version_id=pk)
        return Response(PublishedVersionOut(version, context={"caller": caller}).data)


class ReasonIn(StrictSerializer):
    reason = serializers.CharField(required=False, allow_blank=True, max_length=2000)


def _status_view(target: str, summary: str) -> type[APIView]:
    class StatusApi(APIView):
        @extend_schema(
            tags=["marketplace"], summary=summary, request=ReasonIn, responses=PublishedVersionOut
        )
        def post(self, request: Request, pk: int) -> Response:
            caller = _caller(request)
            version = selectors.published_version_get(caller=caller, version_id=pk)
            data = ReasonIn(data=request.data)
            data.is_valid(raise_exception=True)
            version = services.published_version_set_status(
                caller=caller,
                version=version,
                status=target,
                reason=data.validated_data.get("reason", ""),
            )
            version = selectors.published_version_get(caller=caller, version_id=pk)
            return Response(PublishedVersionOut(version, context={"caller": caller}).data)

    StatusApi.__name__ = StatusApi.__qualname__ = f"Version{target.title()}Api"
    return StatusApi


VersionWithdrawApi = _status_view(
    VersionStatus.WITHDRAWN,
    "Withdraw a version: it can no longer be applied, fine-tuned or downloaded",
)
VersionDeprecateApi = _status_view(
    VersionStatus.DEPRECATED, "Deprecate a version: still usable, but a newer one is advised"
)


_SITE_PARAMETER = OpenApiParameter(
    "site",
    str,
    description="Your site you download for (slug); required if you belong to several",
)


class VersionDownloadApi(APIView):
    @extend_schema(
        tags=["marketplace"],
        summary="Short-lived links to the weights (safetensors), manifest and card (audited)",
        description="The download is recorded in the audit log of the site you download for, "
        "with your name, and, for another site's model, in the publishing site's log as a "
        "download by your site (without your name).",
        parameters=[_SITE_PARAMETER],
        responses=inline_serializer(
            "Download",
            {
                "weights_url": serializers.URLField(),
                "weights_sha256": serializers.CharField(),
                "manifest_url": serializers.URLField(),
                "manifest_sha256": serializers.CharField(),
                "card_url": serializers.URLField(),
                "expires_in": serializers.IntegerField(),
            },
        ),
    )
    def get(self, request: Request, pk: int) -> Response:
        caller = _caller(request)
        version = selectors.published_version_get(caller=caller, version_id=pk)
        site_id = _own_site(caller, request.query_params.get("site"), what="downloads it for")
        return Response(services.version_download(caller=caller, version=version, site_id=site_id))


class ExportIn(StrictSerializer):
    site = serializers.CharField(
        max_length=50, required=False, help_text="Your site that runs the export"
    )
    format = serializers.ChoiceField(choices=["onnx"], default="onnx")


def _own_site(caller: Caller, slug: str | None, *, what: str = "runs this") -> int:
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


class VersionExportApi(APIView):
    @extend_schema(
        tags=["marketplace"],
        summary="Export a version to ONNX at your site (checked against PyTorch)",
        request=ExportIn,
        responses={202: ExportOut},
    )
    def post(self, request: Request, pk: int) -> Response:
        caller = _caller(request)
        version = selectors.published_version_get(caller=caller, version_id=pk)
        data = ExportIn(data=request.data)
        data.is_valid(raise_exception=True)
        export = services.export_create(
            caller=caller,
            site_id=_own_site(caller, data.validated_data.get("site")),
            published_version=version,
        )
        export = selectors.export_get(caller=caller, export_id=export.pk)
        return Response(ExportOut(export).data, status=status.HTTP_202_ACCEPTED)


class ExportDetailApi(APIView):
    @extend_schema(tags=["marketplace"], summary="An ONNX export", responses=ExportOut)
    def get(self, request: Request, pk: int) -> Response:
        caller = _caller(request)
        return Response(ExportOut(selectors.export_get(caller=caller, export_id=pk)).data)


class ExportDownloadApi(APIView):
    @extend_schema(
        tags=["marketplace"],
        summary="A short-lived link to the ONNX file (audited)",
        description="For the site that made the export. Recorded like a download of the "
        "weights: in that site's audit log, and as a download by that site in the publisher's.",
        parameters=[
            OpenApiParameter(
                "site",
                str,
                description="Your site that made the export (optional: the export names it)",
            )
        ],
        responses=inline_serializer(
            "ExportDownload",
            {
                "onnx_url": serializers.URLField(),
                "sha256": serializers.CharField(),
                "expires_in": serializers.IntegerField(),
            },
        ),
    )
    def get(self, request: Request, pk: int) -> Response:
        caller = _caller(request)
        slug = request.query_params.get("site")
        site_id = caller.member_site(slug) if slug else None
        export = selectors.export_get(caller=caller, export_id=pk, site_id=site_id)
        return Response(services.export_download(caller=caller, export=export))


# --- Apply ----------------------------------------------------------------------------------------


class ImageRefIn(StrictSerializer):
    exactly_one_of = (("image_id", "key"),)

    image_id = serializers.IntegerField(required=False)
    key = serializers.CharField(max_length=512, required=False)

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        if ("image_id" in attrs) == ("key" in attrs):
            raise serializers.ValidationError("Give an image_id or a storage key.")
        return attrs


class PredictionIn(StrictSerializer):
    exactly_one_of = (("published_version", "model_version"),)

    published_version = serializers.IntegerField(
        required=False, help_text="A marketplace version you may see"
    )
    model_version = serializers.IntegerField(
        required=False, help_text="Or a model trained at your site"
    )
    site = serializers.CharField(
        max_length=50, required=False, help_text="Your site, where the images are"
    )
    images = ImageRefIn(many=True, required=False)
    dataset = serializers.IntegerField(
        required=False, help_text="Or every accepted image of a dataset"
    )
    tta = serializers.BooleanField(default=False, help_text="Average over flips and rotations")
    heatmap = serializers.BooleanField(default=False, help_text="Save where the model looked")


class PredictionFilter(django_filters.FilterSet):
    status = django_filters.ChoiceFilter(choices=WorkStatus.choices)
    published_version = IdFilter(field_name="published_version_id")

    class Meta:
        model = Prediction
        fields: list[str] = []


def _prediction_body(prediction: Prediction) -> dict[str, Any]:
    body = PredictionOut(prediction).data
    if prediction.status == "succeeded" and prediction.heatmap:
        try:
            links = services.overlay_links(prediction)
        except (ServiceUnavailable, ApiError) as exc:
            links, body["overlay_links_error"] = {}, exc.message
        body["results"] = [
            {**r, "overlay_url": links.get(r.get("overlay_key", ""))} for r in body["results"]
        ]
    return body


class PredictionListApi(generics.ListAPIView):
    serializer_class = PredictionOut
    filterset_class = PredictionFilter

    def get_queryset(self):  # type: ignore[no-untyped-def]
        if getattr(self, "swagger_fake_view", False):
            return Prediction.objects.none()
        return selectors.prediction_list(caller=_caller(self.request))

    @extend_schema(tags=["predictions"], summary="Predictions run at my sites")
    def get(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        return super().get(request, *args, **kwargs)

    @extend_schema(
        tags=["predictions"],
        summary="Apply a model to images already in your site's storage",
        description=(
            "Upload images through a dataset's upload slots, then name them here (image_id or "
            "storage key) or give the dataset. The model runs at your site; fetch the result with "
            "GET /api/v1/predictions/{id}/?wait=30."
        ),
        request=PredictionIn,
        responses={202: PredictionOut},
    )
    def post(self, request: Request) -> Response:
        caller = _caller(request)
        data = PredictionIn(data=request.data)
        data.is_valid(raise_exception=True)
        fields = data.validated_data
        site_id = _own_site(caller, fields.get("site"))
        published = (
            selectors.published_version_get(caller=caller, version_id=fields["published_version"])
            if fields.get("published_version") is not None
            else None
        )
        own = (
            model_version_get(caller=caller, version_id=fields["model_version"])
            if fields.get("model_version") is not None
            else None
        )
        dataset = (
            dataset_get(caller=caller, dataset_id=fields["dataset"])
            if fields.get("dataset") is not None
            else None
        )
        prediction = services.prediction_create(
            caller=caller,
            site_id=site_id,
            published_version=published,
            model_version=own,
            images=fields.get("images"),
            dataset=dataset,
            tta=fields["tta"],
            heatmap=fields["heatmap"],
        )
        prediction = selectors.prediction_get(caller=caller, prediction_id=prediction.pk)
        return Response(PredictionOut(prediction).data, status=status.HTTP_202_ACCEPTED)


def _wait_seconds(request: Request) -> float:
    raw = request.query_params.get("wait", "0")
    try:
        value = float(raw)
    except ValueError:
        raise ApiError(
            "'wait' must be a number of seconds.", code="invalid_filter", fields={"wait": raw}
        ) from None
    if not 0 <= value <= MAX_WAIT_SECONDS:  # NaN and infinities fail too
        raise ApiError(
            f"'wait' must be a number of seconds from 0 to {MAX_WAIT_SECONDS}.",
            code="invalid_filter",
            fields={"wait": raw},
        )
    return value


@cache
def _long_wait_slots(threads: int) -> threading.BoundedSemaphore:
    return threading.BoundedSemaphore(max(1, threads - 1))


def wait_for_final(prediction_id: int, seconds: float) -> None:
    """Wait until the prediction is final or ``seconds`` pass.

    A wait holds one of this process's request threads, and requests queue for a thread. If
    every thread waited, the agent's report of the very result being waited for would queue
    behind the waiters until their deadlines. So at most ``WEB_THREADS - 1`` requests of a
    process wait long; the others wait a second at most and answer the current state, which
    the client asks for again.
    """
    slots = _long_wait_slots(settings.WEB_THREADS)
    if not slots.acquire(blocking=False):
        _poll_until_final(prediction_id, min(seconds, SHORT_WAIT_SECONDS))
        return
    try:
        _poll_until_final(prediction_id, seconds)
    finally:
        slots.release()


def _poll_until_final(prediction_id: int, seconds: float) -> None:
    """Poll the row until it is final or the deadline passes (no sleep beyond the next poll)."""
    deadline = time.monotonic() + seconds
    interval = 0.02
    while time.monotonic() < deadline:
        state = Prediction.objects.filter(pk=prediction_id).values_list("status", flat=True).first()
        if state in WORK_FINAL_STATUSES:
            return
        time.sleep(min(interval, max(0.0, deadline - time.monotonic())))
        interval = min(interval * 1.5, 0.25)


class PredictionDetailApi(APIView):
    @extend_schema(
        tags=["predictions"],
        summary="A prediction: class probabilities per image and heatmap links",
        parameters=[
            OpenApiParameter(
                "wait",
                {"type": "number", "minimum": 0, "maximum": MAX_WAIT_SECONDS},
                description=(
                    f"Wait up to this many seconds (at most {MAX_WAIT_SECONDS}) for it to finish. "
                    "A busy hub may answer sooner with the current status: ask again."
                ),
            )
        ],
        responses=PredictionOut,
    )
    def get(self, request: Request, pk: int) -> Response:
        caller = _caller(request)
        prediction = selectors.prediction_get(caller=caller, prediction_id=pk)
        seconds = _wait_seconds(request)
        if seconds and prediction.status not in WORK_FINAL_STATUSES:
            wait_for_final(prediction.pk, seconds)
            prediction = selectors.prediction_get(caller=caller, prediction_id=pk)
        return Response(_prediction_body(prediction))


# --- Evaluate at my site --------------------------------------------------------------------------


class EvaluationIn(StrictSerializer):
    published_version = serializers.IntegerField()
    dataset = serializers.IntegerField(help_text="A labelled dataset at your site")
    tta = serializers.BooleanField(default=True)


class EvaluationFilter(django_filters.FilterSet):
    published_model = IdFilter(
        field_name="published_version__published_model_id", help_text="A marketplace model"
    )
    published_version = IdFilter(
        field_name="published_version_id", help_text="One version of a marketplace model"
    )
    site = django_filters.CharFilter(
        field_name="site__slug",
        help_text="One of your sites (slug); any other value matches nothing",
    )
    status = django_filters.ChoiceFilter(choices=WorkStatus.choices)
    shared = django_filters.BooleanFilter()

    class Meta:
        model = SiteEvaluation
        fields: list[str] = []


class EvaluationListApi(generics.ListAPIView):
    serializer_class = EvaluationOut
    filterset_class = EvaluationFilter

    def get_queryset(self):  # type: ignore[no-untyped-def]
        if getattr(self, "swagger_fake_view", False):
            return SiteEvaluation.objects.none()
        return selectors.evaluation_list(caller=_caller(self.request))

    @extend_schema(
        tags=["marketplace"],
        summary="Evaluations run at my sites (private unless shared)",
        description="Filter with ?published_model=&published_version=&site=&status=&shared=.",
    )
    def get(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        return super().get(request, *args, **kwargs)

    @extend_schema(
        tags=["marketplace"],
        summary="Evaluate a published model on a labelled dataset at your site",
        description="Uses every accepted image whose label the model knows. Metrics stay private "
        "to your site until you share them; per-image results never leave the site.",
        request=EvaluationIn,
        responses={202: EvaluationOut},
    )
    def post(self, request: Request) -> Response:
        caller = _caller(request)
        data = EvaluationIn(data=request.data)
        data.is_valid(raise_exception=True)
        fields = data.validated_data
        version = selectors.published_version_get(
            caller=caller, version_id=fields["published_version"]
        )
        dataset = dataset_get(caller=caller, dataset_id=fields["dataset"])
        evaluation = services.evaluation_create(
            caller=caller, published_version=version, dataset=dataset, tta=fields["tta"]
        )
        evaluation = selectors.evaluation_get(caller=caller, evaluation_id=evaluation.pk)
        return Response(EvaluationOut(evaluation).data, status=status.HTTP_202_ACCEPTED)


class EvaluationDetailApi(APIView):
    @extend_schema(
        tags=["marketplace"], summary="An evaluation at my site", responses=EvaluationOut
    )
    def get(self, request: Request, pk: int) -> Response:
        caller = _caller(request)
        return Response(
            EvaluationOut(selectors.evaluation_get(caller=caller, evaluation_id=pk)).data
        )


class ShareIn(StrictSerializer):
    shared = serializers.BooleanField(default=True)


class EvaluationShareApi(APIView):
    @extend_schema(
        tags=["marketplace"],
        summary="Share this evaluation's aggregate metrics in the model's per-site table",
        request=ShareIn,
        responses=EvaluationOut,
    )
    def post(self, request: Request, pk: int) -> Response:
        caller = _caller(request)
        evaluation = selectors.evaluation_get(caller=caller, evaluation_id=pk)
        data = ShareIn(data=request.data)
        data.is_valid(raise_exception=True)
        evaluation = services.evaluation_share(
            caller=caller, evaluation=evaluation, shared=data.validated_data["shared"]
        )
        return Response(
            EvaluationOut(selectors.evaluation_get(caller=caller, evaluation_id=pk)).data
        )
