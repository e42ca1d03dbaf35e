"""Prediction endpoints: apply a published model to a site's images, and wait for the result."""

from __future__ import annotations

import threading
import time
from functools import cache
from typing import Any

import django_filters
from django.conf import settings
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import generics, serializers, status
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from pollen.core.errors import ApiError, ServiceUnavailable
from pollen.core.filters import IdFilter
from pollen.core.serializers import StrictSerializer
from pollen.datasets.selectors import dataset_get
from pollen.marketplace import applying, selectors
from pollen.marketplace.listing_apis import own_site, request_caller
from pollen.marketplace.models import (
    WORK_FINAL_STATUSES,
    Prediction,
    WorkStatus,
)
from pollen.training.selectors import model_version_get
from pollen_contracts.manifest import TTA_POLICIES

MAX_WAIT_SECONDS = 60
SHORT_WAIT_SECONDS = 1.0


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
    segmentation = serializers.DictField(
        required=False,
        help_text="Outlining models: mask_key (class indexes, 0 background), overlay_key (the "
        "outline over the image), probability_key and uncertainty_key (colour maps), "
        "class_pixels and area_fraction per class, regions drawn, mean_uncertainty",
    )
    segmentation_urls = serializers.DictField(
        child=serializers.CharField(allow_null=True),
        required=False,
        help_text="Short-lived links to mask, overlay, probability, uncertainty and the image "
        "itself at full size (on a finished prediction's own page only)",
    )
    sliding_window = serializers.DictField(
        required=False,
        help_text="How an image too large for one pass was read: patch_size, patches, "
        "skipped_background and max_probabilities (the answer of the patch most sure of each label)",
    )
    tta = serializers.ChoiceField(
        choices=list(TTA_POLICIES),
        required=False,
        help_text="What the probabilities were averaged over: none (the image alone), hflip (the "
        "image and its mirror image) or d4 (its 8 turns and flips); absent in older results",
    )
    error = PredictionErrorOut(required=False)


class PredictionOut(serializers.ModelSerializer):
    site = serializers.CharField(source="site.slug")
    results = PredictionResultOut(many=True, read_only=True)
    published_version = serializers.IntegerField(source="published_version_id", allow_null=True)
    model_version = serializers.SerializerMethodField()
    dataset = serializers.IntegerField(source="dataset_id", allow_null=True)
    label_names = serializers.ListField(source="model_version.label_names")
    task = serializers.CharField(
        source="model_version.task",
        read_only=True,
        help_text="classification (probabilities per label) or segmentation (outlines)",
    )
    images = serializers.SerializerMethodField()

    class Meta:
        model = Prediction
        fields = [
            "id",
            "site",
            "status",
            "attempt",
            "published_version",
            "model_version",
            "dataset",
            "label_names",
            "task",
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
    tta = serializers.BooleanField(
        default=False,
        help_text="Average each image's answers over the views the model was trained on (its "
        "manifest's policy: the image and its mirror image for models trained here)",
    )
    heatmap = serializers.BooleanField(default=False, help_text="Save where the model looked")


class PredictionFilter(django_filters.FilterSet):
    status = django_filters.ChoiceFilter(choices=WorkStatus.choices)
    published_version = IdFilter(field_name="published_version_id")

    class Meta:
        model = Prediction
        fields: list[str] = []


def _prediction_body(prediction: Prediction) -> dict[str, Any]:
    body = PredictionOut(prediction).data
    outlined = any(r.get("segmentation") for r in prediction.results)
    if prediction.status == "succeeded" and (prediction.heatmap or outlined):
        try:
            links = applying.overlay_links(prediction)
        except (ServiceUnavailable, ApiError) as exc:
            links, body["overlay_links_error"] = {}, exc.message
        body["results"] = [_with_links(r, links) for r in body["results"]]
    return body


def _with_links(result: dict[str, Any], links: dict[str, str]) -> dict[str, Any]:
    linked = {**result, "overlay_url": links.get(result.get("overlay_key") or "")}
    outline = result.get("segmentation")
    if outline:
        linked["segmentation_urls"] = {
            key.removesuffix("_key"): links.get(outline.get(key) or "")
            for key in applying.SEGMENTATION_PICTURES
        } | {"image": links.get(f"image:{result['image_id']}")}
    return linked


class PredictionListApi(generics.ListAPIView):
    serializer_class = PredictionOut
    filterset_class = PredictionFilter

    def get_queryset(self):  # type: ignore[no-untyped-def]
        if getattr(self, "swagger_fake_view", False):
            return Prediction.objects.none()
        return selectors.prediction_list(caller=request_caller(self.request))

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
        caller = request_caller(request)
        data = PredictionIn(data=request.data)
        data.is_valid(raise_exception=True)
        fields = data.validated_data
        site_id = own_site(caller, fields.get("site"))
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
        prediction = applying.prediction_create(
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
        caller = request_caller(request)
        prediction = selectors.prediction_get(caller=caller, prediction_id=pk)
        seconds = _wait_seconds(request)
        if seconds and prediction.status not in WORK_FINAL_STATUSES:
            wait_for_final(prediction.pk, seconds)
            prediction = selectors.prediction_get(caller=caller, prediction_id=pk)
        return Response(_prediction_body(prediction))
