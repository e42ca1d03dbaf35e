"""Endpoints the site agent calls for marketplace work: claim, renew, complete, fail.

One set per kind of work (publications, predictions, evaluations, exports). The agent
sends metadata only: checksums, class probabilities, aggregate metrics, storage keys.
"""

from __future__ import annotations

from typing import Any

from drf_spectacular.utils import extend_schema, inline_serializer
from rest_framework import serializers
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from pollen.accounts.caller import caller_from_request
from pollen.accounts.permissions import IsSiteAgent
from pollen.core.serializers import StrictSerializer
from pollen.federation.agent_apis import HeldOutCompleteApi
from pollen.marketplace import applying, evaluating, exports, publishing, work
from pollen_contracts.manifest import TTA_POLICIES


def _item(request: Request, kind: str, pk: int) -> Any:
    return work.agent_work_get(caller=caller_from_request(request), kind=kind, pk=pk)


class WorkClaimIn(StrictSerializer):
    claim_id = serializers.CharField(max_length=64)
    worker = serializers.CharField(max_length=200)


class WorkRenewIn(StrictSerializer):
    claim_id = serializers.CharField(max_length=64)


class WorkFailIn(StrictSerializer):
    claim_id = serializers.CharField(max_length=64)
    code = serializers.CharField(max_length=50)
    message = serializers.CharField(max_length=2000)


class _AgentWorkApi(APIView):
    permission_classes = [IsSiteAgent]
    kind = ""


def claim_view(kind: str) -> type[APIView]:
    class ClaimApi(_AgentWorkApi):
        @extend_schema(
            tags=["agent"],
            summary=f"Claim queued marketplace work ({kind}); only one worker wins",
            request=WorkClaimIn,
            responses=inline_serializer(
                f"MarketplaceClaim{kind.title()}",
                {
                    "claimed": serializers.BooleanField(),
                    "spec": serializers.DictField(required=False),
                    "lease_seconds": serializers.IntegerField(required=False),
                    "failed": serializers.CharField(required=False),
                },
            ),
        )
        def post(self, request: Request, pk: int) -> Response:
            item = _item(request, kind, pk)  # another site's work is 404 before the body is read
            data = WorkClaimIn(data=request.data)
            data.is_valid(raise_exception=True)
            return Response(
                work.agent_work_claim(
                    caller=caller_from_request(request),
                    kind=kind,
                    item=item,
                    claim_id=data.validated_data["claim_id"],
                    worker=data.validated_data["worker"],
                )
            )

    ClaimApi.__name__ = ClaimApi.__qualname__ = f"{kind.title()}ClaimApi"
    return ClaimApi


def renew_view(kind: str) -> type[APIView]:
    class RenewApi(_AgentWorkApi):
        @extend_schema(
            tags=["agent"],
            summary=f"Keep a claim on marketplace work ({kind}) alive while the worker works",
            request=WorkRenewIn,
            responses=inline_serializer(
                f"MarketplaceRenew{kind.title()}", {"renewed": serializers.BooleanField()}
            ),
        )
        def post(self, request: Request, pk: int) -> Response:
            item = _item(request, kind, pk)
            data = WorkRenewIn(data=request.data)
            data.is_valid(raise_exception=True)
            return Response(
                work.agent_work_renew(
                    kind=kind,
                    item=item,
                    claim_id=data.validated_data["claim_id"],
                )
            )

    RenewApi.__name__ = RenewApi.__qualname__ = f"{kind.title()}RenewApi"
    return RenewApi


def fail_view(kind: str) -> type[APIView]:
    class FailApi(_AgentWorkApi):
        @extend_schema(
            tags=["agent"],
            summary=f"Marketplace work ({kind}) failed with a clear reason",
            request=WorkFailIn,
            responses={204: None},
        )
        def post(self, request: Request, pk: int) -> Response:
            item = _item(request, kind, pk)
            data = WorkFailIn(data=request.data)
            data.is_valid(raise_exception=True)
            work.agent_work_fail(kind=kind, item=item, **data.validated_data)
            return Response(status=204)

    FailApi.__name__ = FailApi.__qualname__ = f"{kind.title()}FailApi"
    return FailApi


class PublicationCompleteIn(StrictSerializer):
    claim_id = serializers.CharField(max_length=64)
    weights_sha256 = serializers.RegexField(r"^[0-9a-f]{64}$")
    manifest_sha256 = serializers.RegexField(r"^[0-9a-f]{64}$")
    weights_bytes = serializers.IntegerField(min_value=0)


class PublicationCompleteApi(_AgentWorkApi):
    @extend_schema(
        tags=["agent"],
        summary="The weights are copied: the hub checks them and publishes the version",
        request=PublicationCompleteIn,
        responses=inline_serializer("PublicationDone", {"status": serializers.CharField()}),
    )
    def post(self, request: Request, pk: int) -> Response:
        version = _item(request, "publications", pk)
        data = PublicationCompleteIn(data=request.data)
        data.is_valid(raise_exception=True)
        version = publishing.publication_complete(
            version=version, claim_id=data.validated_data["claim_id"]
        )
        return Response({"status": version.status, "error_code": version.error_code})


class SlidingWindowIn(StrictSerializer):
    """How an image too large for one pass was read: in patches, background patches skipped."""

    patch_size = serializers.IntegerField(min_value=1)
    patches = serializers.IntegerField(min_value=0)
    skipped_background = serializers.IntegerField(min_value=0)
    max_probabilities = serializers.DictField(child=serializers.FloatField())


class ImageErrorIn(StrictSerializer):
    code = serializers.CharField(max_length=50)
    message = serializers.CharField(max_length=2000)


class SegmentationAnswerIn(StrictSerializer):
    mask_key = serializers.CharField(max_length=512)
    overlay_key = serializers.CharField(max_length=512)
    probability_key = serializers.CharField(max_length=512)
    uncertainty_key = serializers.CharField(max_length=512)
    class_pixels = serializers.DictField(child=serializers.IntegerField(min_value=0))
    area_fraction = serializers.DictField(child=serializers.FloatField(min_value=0, max_value=1))
    regions = serializers.IntegerField(min_value=0)
    mean_uncertainty = serializers.FloatField(min_value=0, max_value=1)


class ImageResultIn(StrictSerializer):
    image_id = serializers.IntegerField()
    probabilities = serializers.DictField(child=serializers.FloatField(), required=False)
    predicted = serializers.CharField(max_length=100, required=False)
    overlay_key = serializers.CharField(max_length=512, required=False)
    width = serializers.IntegerField(required=False, min_value=1)
    height = serializers.IntegerField(required=False, min_value=1)
    sliding_window = SlidingWindowIn(required=False)
    tta = serializers.ChoiceField(
        choices=list(TTA_POLICIES),
        required=False,
        help_text="The test-time augmentation the probabilities were averaged over",
    )
    error = ImageErrorIn(required=False)
    segmentation = SegmentationAnswerIn(required=False)


class PredictionCompleteIn(StrictSerializer):
    claim_id = serializers.CharField(max_length=64)
    results = ImageResultIn(many=True)
    timings = serializers.DictField(required=False)


class PredictionCompleteApi(_AgentWorkApi):
    @extend_schema(
        tags=["agent"],
        summary="Class probabilities per image and overlay keys (no pixels)",
        request=PredictionCompleteIn,
        responses={204: None},
    )
    def post(self, request: Request, pk: int) -> Response:
        prediction = _item(request, "predictions", pk)
        data = PredictionCompleteIn(data=request.data)
        data.is_valid(raise_exception=True)
        known = {item["image_id"] for item in prediction.inputs}
        results = [r for r in data.validated_data["results"] if r["image_id"] in known]
        applying.prediction_complete(
            prediction=prediction,
            claim_id=data.validated_data["claim_id"],
            results=results,
            timings=data.validated_data.get("timings", {}),
        )
        return Response(status=204)


class EvaluationCompleteIn(StrictSerializer):
    claim_id = serializers.CharField(max_length=64)
    metrics = serializers.DictField()


class EvaluationCompleteApi(_AgentWorkApi):
    @extend_schema(
        tags=["agent"],
        summary="Aggregate metrics of an evaluation at the site (no per-image results)",
        request=EvaluationCompleteIn,
        responses={204: None},
    )
    def post(self, request: Request, pk: int) -> Response:
        evaluation = _item(request, "evaluations", pk)
        data = EvaluationCompleteIn(data=request.data)
        data.is_valid(raise_exception=True)
        evaluating.evaluation_complete(evaluation=evaluation, **data.validated_data)
        return Response(status=204)


class ExportCompleteIn(StrictSerializer):
    claim_id = serializers.CharField(max_length=64)
    sha256 = serializers.RegexField(r"^[0-9a-f]{64}$")
    bytes = serializers.IntegerField(min_value=0)
    opset = serializers.IntegerField(required=False)
    max_abs_diff = serializers.FloatField(required=False)
    atol = serializers.FloatField(required=False)


class ExportCompleteApi(_AgentWorkApi):
    @extend_schema(
        tags=["agent"],
        summary="The ONNX file is in the model store: the hub checks its checksum",
        request=ExportCompleteIn,
        responses=inline_serializer("ExportDone", {"status": serializers.CharField()}),
    )
    def post(self, request: Request, pk: int) -> Response:
        export = _item(request, "exports", pk)
        data = ExportCompleteIn(data=request.data)
        data.is_valid(raise_exception=True)
        fields = dict(data.validated_data)
        claim_id = fields.pop("claim_id")
        export = exports.export_complete(export=export, claim_id=claim_id, result=fields)
        return Response({"status": export.status, "error_code": export.error_code})


COMPLETE_VIEWS: dict[str, type[APIView]] = {
    "publications": PublicationCompleteApi,
    "predictions": PredictionCompleteApi,
    "evaluations": EvaluationCompleteApi,
    "exports": ExportCompleteApi,
    "held-out-evaluations": HeldOutCompleteApi,
}
