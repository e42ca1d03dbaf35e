"""Endpoints a site agent calls during its turn in a cross-site round (site-agent token).

The bodies are strict and small: a claim, progress numbers, and an update report made of a
checksum, a sample count and a few aggregate validation numbers. The weights themselves go
to the hub's model store through a presigned URL; no endpoint accepts an array.
"""

from __future__ import annotations

import contextlib

from drf_spectacular.utils import extend_schema, inline_serializer
from rest_framework import serializers
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from pollen.accounts.caller import caller_from_request
from pollen.accounts.permissions import IsSiteAgent
from pollen.core.errors import Conflict
from pollen.core.serializers import StrictSerializer
from pollen.federation import evaluation, rounds, selectors
from pollen.federation.models import FederatedJob
from pollen.marketplace.work import agent_work_get
from pollen_contracts.comparison import VERDICTS
from pollen_contracts.manifest import INFERENCE_VERSION, INTENSITY, RESIZE_METHODS, TTA_POLICIES


def _job(request: Request, pk: int) -> FederatedJob:
    return selectors.agent_federated_job_get(caller=caller_from_request(request), job_id=pk)


class ClaimIn(StrictSerializer):
    claim_id = serializers.CharField(max_length=64)
    worker = serializers.CharField(max_length=200)


class RoundClaimApi(APIView):
    permission_classes = [IsSiteAgent]

    @extend_schema(
        tags=["agent"],
        summary="Claim this site's turn in a round (one worker wins); returns the round's spec",
        request=ClaimIn,
        responses=inline_serializer(
            "FederatedClaim",
            {
                "claimed": serializers.BooleanField(),
                "reason": serializers.CharField(required=False),
                "spec": serializers.DictField(required=False),
            },
        ),
    )
    def post(self, request: Request, pk: int, number: int) -> Response:
        job = _job(request, pk)  # another site's job is 404 before the body is read
        data = ClaimIn(data=request.data)
        data.is_valid(raise_exception=True)
        return Response(
            rounds.round_claim(
                caller=caller_from_request(request),
                job=job,
                number=number,
                **data.validated_data,
            )
        )


class RoundProgressIn(StrictSerializer):
    phase = serializers.ChoiceField(choices=["loading", "training", "saving"])
    epoch = serializers.IntegerField(min_value=0, required=False)
    epochs = serializers.IntegerField(min_value=0, required=False)
    loss = serializers.FloatField(required=False, allow_null=True)
    fraction = serializers.FloatField(min_value=0, max_value=1)
    eta_seconds = serializers.FloatField(min_value=0, required=False, allow_null=True)
    claim_id = serializers.CharField(
        max_length=64,
        required=False,
        help_text="The delivery that claimed the turn: a report from another one renews nothing",
    )


class RoundProgressApi(APIView):
    permission_classes = [IsSiteAgent]

    @extend_schema(
        tags=["agent"],
        summary="Report round progress (renews the site's lease)",
        request=RoundProgressIn,
        responses=inline_serializer("FederatedProgress", {"stop": serializers.BooleanField()}),
    )
    def post(self, request: Request, pk: int, number: int) -> Response:
        job = _job(request, pk)
        data = RoundProgressIn(data=request.data)
        data.is_valid(raise_exception=True)
        return Response(
            rounds.round_progress(
                caller=caller_from_request(request),
                job=job,
                number=number,
                progress={k: v for k, v in data.validated_data.items() if k != "claim_id"},
                claim_id=data.validated_data.get("claim_id"),
            )
        )


def _metric() -> serializers.FloatField:
    return serializers.FloatField(required=False, allow_null=True)


def _score(help_text: str) -> serializers.FloatField:
    """A number between 0 and 1 (Dice, IoU), or null."""
    return serializers.FloatField(
        min_value=0, max_value=1, required=False, allow_null=True, help_text=help_text
    )


class UpdateMetricsIn(StrictSerializer):
    """Aggregate validation numbers only: one number each, never a per-image value."""

    val_auc = _metric()
    val_accuracy = _metric()
    val_balanced_accuracy = _metric()
    val_loss = _metric()
    train_loss = _metric()
    val_count = serializers.IntegerField(min_value=0, required=False)
    val_dice = _score(help_text="Segmentation: mean Dice per validation image")
    val_iou = _score(help_text="Segmentation: mean IoU per validation image")


class ModelInfoIn(StrictSerializer):
    mean = serializers.ListField(child=serializers.FloatField(), min_length=1, max_length=4)
    std = serializers.ListField(child=serializers.FloatField(), min_length=1, max_length=4)


class PreprocessMethodsIn(StrictSerializer):
    intensity = serializers.ChoiceField(choices=[INTENSITY], required=False)
    resize = serializers.ChoiceField(choices=list(RESIZE_METHODS), required=False)


class InferenceBlockIn(StrictSerializer):
    """How the site fed the model: the combined model's manifest reads images the same way."""

    tta = serializers.ChoiceField(choices=list(TTA_POLICIES), required=False)
    preprocess = PreprocessMethodsIn(required=False)
    version = serializers.ChoiceField(choices=[INFERENCE_VERSION], required=False)
    window = serializers.IntegerField(min_value=32, max_value=8192, required=False, allow_null=True)
    overlap = serializers.FloatField(min_value=0, max_value=0.95, required=False, allow_null=True)


class UpdateIn(StrictSerializer):
    weights_sha256 = serializers.RegexField(r"^[0-9a-f]{64}$")
    sample_count = serializers.IntegerField(min_value=0, max_value=10_000_000)
    metrics = UpdateMetricsIn(required=False)
    model = ModelInfoIn(required=False, help_text="Round 0 only: the model's preprocessing")
    inference = InferenceBlockIn(
        required=False, help_text="Segmentation: how the site fed the model (whole or windows)"
    )


class RoundUpdateApi(APIView):
    permission_classes = [IsSiteAgent]

    @extend_schema(
        tags=["agent"],
        summary="Report this site's update for a round (weights already uploaded; checked here)",
        request=UpdateIn,
        responses={201: inline_serializer("FederatedUpdate", {"status": serializers.CharField()})},
    )
    def post(self, request: Request, pk: int, number: int) -> Response:
        job = _job(request, pk)
        data = UpdateIn(data=request.data)
        data.is_valid(raise_exception=True)
        update = rounds.round_update_submit(
            caller=caller_from_request(request),
            job=job,
            number=number,
            body=data.validated_data,
        )
        return Response({"status": update.status}, status=201)


class RoundFailIn(StrictSerializer):
    code = serializers.CharField(max_length=50)
    message = serializers.CharField(max_length=2000)


class RoundFailApi(APIView):
    permission_classes = [IsSiteAgent]

    @extend_schema(
        tags=["agent"],
        summary="This site could not finish its round (it is left out of the round)",
        request=RoundFailIn,
        responses={204: None},
    )
    def post(self, request: Request, pk: int, number: int) -> Response:
        job = _job(request, pk)
        data = RoundFailIn(data=request.data)
        data.is_valid(raise_exception=True)
        with contextlib.suppress(Conflict):  # already reported: reporting twice is harmless
            rounds.round_fail_report(
                caller=caller_from_request(request),
                job=job,
                number=number,
                **data.validated_data,
            )
        return Response(status=204)


def _interval() -> serializers.ListField:
    return serializers.ListField(
        child=serializers.FloatField(min_value=0, max_value=1),
        min_length=2,
        max_length=2,
        required=False,
        allow_null=True,
        help_text="95 % confidence interval: [low, high]",
    )


def _rate() -> serializers.FloatField:
    return serializers.FloatField(min_value=0, max_value=1, required=False, allow_null=True)


class HeldOutMetricsIn(StrictSerializer):
    """One model on the site's held-out images: counts and aggregate numbers, never per image."""

    n = serializers.IntegerField(min_value=0, help_text="Held-out images evaluated")
    class_counts = serializers.DictField(
        child=serializers.IntegerField(min_value=0), required=False
    )
    positive_class = serializers.CharField(max_length=100, required=False, allow_blank=True)
    auc = _rate()
    auc_ci = _interval()
    accuracy = _rate()
    accuracy_ci = _interval()
    sensitivity = _rate()
    sensitivity_ci = _interval()
    specificity = _rate()
    specificity_ci = _interval()
    warnings = serializers.ListField(
        child=serializers.CharField(max_length=500), max_length=10, required=False
    )
    tta = serializers.ChoiceField(
        choices=list(TTA_POLICIES),
        required=False,
        help_text="The test-time augmentation the numbers were averaged over",
    )
    dice = _rate()
    dice_ci = _interval()
    lesion_dice = _rate()
    lesion_dice_ci = _interval()
    iou = _rate()
    hd95_median = serializers.FloatField(
        min_value=0, required=False, allow_null=True, help_text="Median HD95 in pixels"
    )


class HeldOutComparisonIn(StrictSerializer):
    """Federated minus local AUC (segmentation: Dice) on the same images, paired, with its
    95 % interval."""

    auc_difference = serializers.FloatField(min_value=-1, max_value=1, allow_null=True)
    auc_difference_ci = serializers.ListField(
        child=serializers.FloatField(min_value=-1, max_value=1),
        min_length=2,
        max_length=2,
        allow_null=True,
    )
    verdict = serializers.ChoiceField(choices=list(VERDICTS))
    dice_difference = serializers.FloatField(
        min_value=-1, max_value=1, required=False, allow_null=True
    )
    dice_difference_ci = serializers.ListField(
        child=serializers.FloatField(min_value=-1, max_value=1),
        min_length=2,
        max_length=2,
        required=False,
        allow_null=True,
    )


class HeldOutCompleteIn(StrictSerializer):
    claim_id = serializers.CharField(max_length=64)
    federated = HeldOutMetricsIn()
    local = HeldOutMetricsIn(
        required=False, allow_null=True, help_text="The site's local model, when it has one"
    )
    comparison = HeldOutComparisonIn(required=False, allow_null=True)


class HeldOutCompleteApi(APIView):
    permission_classes = [IsSiteAgent]

    @extend_schema(
        tags=["agent"],
        summary="The final cross-site model and the site's local model on its held-out images",
        request=HeldOutCompleteIn,
        responses={204: None},
    )
    def post(self, request: Request, pk: int) -> Response:
        check = agent_work_get(
            caller=caller_from_request(request), kind="held-out-evaluations", pk=pk
        )
        data = HeldOutCompleteIn(data=request.data)
        data.is_valid(raise_exception=True)
        evaluation.held_out_complete(
            check=check,
            claim_id=data.validated_data["claim_id"],
            federated=dict(data.validated_data["federated"]),
            local=dict(data.validated_data.get("local") or {}),
            comparison=dict(data.validated_data.get("comparison") or {}),
        )
        return Response(status=204)
