"""Marketplace endpoints: publish a trained model, withdraw or deprecate a version."""

from __future__ import annotations

from typing import Any

from drf_spectacular.utils import extend_schema
from rest_framework import serializers, status
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from pollen.core.errors import ApiError
from pollen.core.serializers import StrictSerializer
from pollen.marketplace import publishing, selectors
from pollen.marketplace.listing_apis import PublishedVersionOut, request_caller
from pollen.marketplace.models import (
    VersionStatus,
    Visibility,
)
from pollen.training.models import Job
from pollen.training.selectors import job_get, model_version_get


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
        caller = request_caller(request)
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
            model_version = publishing.publishable_version(caller=caller, job=job)
        else:
            model_version = model_version_get(caller=caller, version_id=version_id)
        version = publishing.model_version_publish(
            caller=caller, model_version=model_version, **fields
        )
        version = selectors.published_version_get(caller=caller, version_id=version.pk)
        return Response(
            PublishedVersionOut(version, context={"caller": caller}).data,
            status=status.HTTP_201_CREATED,
        )


class ReasonIn(StrictSerializer):
    reason = serializers.CharField(required=False, allow_blank=True, max_length=2000)


def _status_view(target: str, summary: str) -> type[APIView]:
    class StatusApi(APIView):
        @extend_schema(
            tags=["marketplace"], summary=summary, request=ReasonIn, responses=PublishedVersionOut
        )
        def post(self, request: Request, pk: int) -> Response:
            caller = request_caller(request)
            version = selectors.published_version_get(caller=caller, version_id=pk)
            data = ReasonIn(data=request.data)
            data.is_valid(raise_exception=True)
            version = publishing.published_version_set_status(
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
