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
from pollen.federation import selectors, services
from pollen.federation.models import FederatedJob


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
            services.round_claim(
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
            services.round_progress(
                caller=caller_from_request(request),
                job=job,
                number=number,
                progress=data.validated_data,
            )
        )


def _metric() -> serializers.FloatField:
    return serializers.FloatField(required=False, allow_null=True)


class UpdateMetricsIn(StrictSerializer):
    """Aggregate validation numbers only: one number each, never a per-image value."""

    val_auc = _metric()
    val_accuracy = _metric()
    val_balanced_accuracy = _metric()
    val_loss = _metric()
    train_loss = _metric()
    val_count = serializers.IntegerField(min_value=0, required=False)


class ModelInfoIn(StrictSerializer):
    mean = serializers.ListField(child=serializers.FloatField(), min_length=1, max_length=4)
    std = serializers.ListField(child=serializers.FloatField(), min_length=1, max_length=4)


class UpdateIn(StrictSerializer):
    weights_sha256 = serializers.RegexField(r"^[0-9a-f]{64}$")
    sample_count = serializers.IntegerField(min_value=0, max_value=10_000_000)
    metrics = UpdateMetricsIn(required=False)
    model = ModelInfoIn(required=False, help_text="Round 0 only: the model's preprocessing")


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
        update = services.round_update_submit(
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
            services.round_fail_report(
                caller=caller_from_request(request),
                job=job,
                number=number,
                **data.validated_data,
            )
        return Response(status=204)
