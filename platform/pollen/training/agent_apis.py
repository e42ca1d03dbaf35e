"""Endpoints the site agent calls while it runs a job (claim with the site token, then the job token)."""

from __future__ import annotations

import contextlib
from typing import Any

from drf_spectacular.utils import extend_schema, inline_serializer
from rest_framework import serializers
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from pollen.accounts.caller import JobScopeKind, caller_from_request
from pollen.accounts.permissions import IsSiteAgent
from pollen.core.errors import Conflict
from pollen.core.serializers import StrictSerializer
from pollen.training import claims, finishing, progress, selectors
from pollen.training.comparison import ParentComparisonSerializer


def _job(request: Request, pk: int):  # type: ignore[no-untyped-def]
    return selectors.agent_job_get(caller=caller_from_request(request), job_id=pk)


class JobClaimIn(StrictSerializer):
    claim_id = serializers.CharField(max_length=64)
    worker = serializers.CharField(max_length=200)


class ClaimApi(APIView):
    permission_classes = [IsSiteAgent]

    @extend_schema(
        tags=["agent"],
        summary="Claim a queued job (only one worker can win)",
        request=JobClaimIn,
        responses=inline_serializer(
            "Claim",
            {
                "claimed": serializers.BooleanField(),
                "job_token": serializers.CharField(required=False),
                "spec": serializers.DictField(required=False),
            },
        ),
    )
    def post(self, request: Request, pk: int) -> Response:
        job = _job(request, pk)  # another site's job is 404 before the body is read
        data = JobClaimIn(data=request.data)
        data.is_valid(raise_exception=True)
        claimed = claims.job_claim(
            caller=caller_from_request(request), job=job, **data.validated_data
        )
        return Response({"claimed": False} if claimed is None else {"claimed": True, **claimed})


class ProgressIn(StrictSerializer):
    phase = serializers.ChoiceField(choices=["loading", "training", "evaluating", "saving"])
    epoch = serializers.IntegerField(min_value=0, required=False)
    epochs = serializers.IntegerField(min_value=0, required=False)
    step = serializers.IntegerField(min_value=0, required=False)
    steps = serializers.IntegerField(min_value=0, required=False)
    loss = serializers.FloatField(required=False, allow_null=True)
    fraction = serializers.FloatField(min_value=0, max_value=1)
    eta_seconds = serializers.FloatField(min_value=0, required=False, allow_null=True)
    images_per_second = serializers.FloatField(min_value=0, required=False, allow_null=True)


class ProgressApi(APIView):
    permission_classes = [IsSiteAgent]
    job_scope: JobScopeKind = "job"  # the job's own token reports here

    @extend_schema(
        tags=["agent"],
        summary="Report progress (renews the job's lease)",
        request=ProgressIn,
        responses=inline_serializer(
            "ProgressAnswer",
            {"cancel_requested": serializers.BooleanField(), "status": serializers.CharField()},
        ),
    )
    def post(self, request: Request, pk: int) -> Response:
        job = _job(request, pk)
        data = ProgressIn(data=request.data)
        data.is_valid(raise_exception=True)
        return Response(progress.job_progress(job=job, progress=data.validated_data))


class EpochIn(StrictSerializer):
    epoch = serializers.IntegerField(min_value=1)
    train_loss = serializers.FloatField()
    val_loss = serializers.FloatField(required=False, allow_null=True)
    val_auc = serializers.FloatField(required=False, allow_null=True)
    val_accuracy = serializers.FloatField(required=False, allow_null=True)
    val_balanced_accuracy = serializers.FloatField(required=False, allow_null=True)
    val_dice = serializers.FloatField(required=False, allow_null=True, min_value=0, max_value=1)
    val_iou = serializers.FloatField(required=False, allow_null=True, min_value=0, max_value=1)
    seconds = serializers.FloatField(required=False, allow_null=True)
    checkpoint_sha256 = serializers.CharField(required=False, allow_blank=True, max_length=64)
    attempt = serializers.IntegerField(min_value=1, required=False)


class EpochApi(APIView):
    permission_classes = [IsSiteAgent]
    job_scope: JobScopeKind = "job"  # the job's own token reports here

    @extend_schema(
        tags=["agent"],
        summary="An epoch finished and its checkpoint is saved",
        description=(
            "Idempotent per (job, epoch): a record sent again, because the agent never heard "
            "the answer, changes nothing."
        ),
        request=EpochIn,
        responses={204: None},
    )
    def post(self, request: Request, pk: int) -> Response:
        job = _job(request, pk)
        data = EpochIn(data=request.data)
        data.is_valid(raise_exception=True)
        progress.job_epoch_record(job=job, record=data.validated_data)
        return Response(status=204)


class TrainingStartIn(StrictSerializer):
    from_epoch = serializers.IntegerField(
        min_value=0,
        max_value=10_000,
        help_text="The epoch of the checkpoint the worker loaded; 0 when it starts from the beginning.",
    )
    epochs = serializers.ListField(
        child=EpochIn(),
        required=False,
        max_length=10_000,
        help_text="The records of epochs 1 to from_epoch that the checkpoint carries.",
    )


class TrainingStartApi(APIView):
    permission_classes = [IsSiteAgent]
    job_scope: JobScopeKind = "job"  # the job's own token reports here

    @extend_schema(
        tags=["agent"],
        summary="Training starts, from a loaded checkpoint or from the beginning",
        description=(
            "Sent once the worker has looked for the job's checkpoint. The history is made to "
            "match the run that goes on (each epoch once), and only a loaded checkpoint makes "
            "the job say that it resumed."
        ),
        request=TrainingStartIn,
        responses={204: None},
    )
    def post(self, request: Request, pk: int) -> Response:
        job = _job(request, pk)
        data = TrainingStartIn(data=request.data)
        data.is_valid(raise_exception=True)
        progress.job_training_start(
            job=job,
            from_epoch=data.validated_data["from_epoch"],
            records=data.validated_data.get("epochs", []),
        )
        return Response(status=204)


class ModelIn(StrictSerializer):
    architecture = serializers.CharField(max_length=50)
    label_names = serializers.ListField(child=serializers.CharField(max_length=100), min_length=2)
    input_size = serializers.IntegerField(min_value=8)
    mean = serializers.ListField(child=serializers.FloatField())
    std = serializers.ListField(child=serializers.FloatField())
    weights_sha256 = serializers.RegexField(r"^[0-9a-f]{64}$")
    storage_key = serializers.CharField(max_length=512)
    licence = serializers.CharField(required=False, allow_blank=True)
    training_summary = serializers.DictField()
    positive_class = serializers.CharField(
        required=False,
        allow_blank=True,
        max_length=100,
        help_text="The label the model's sensitivity is about (its manifest's); blank for 3+ labels",
    )

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        finding = attrs.get("positive_class") or ""
        if finding and finding not in attrs["label_names"]:
            raise serializers.ValidationError(
                {"positive_class": "Must be one of the model's label_names."}
            )
        return attrs


class CompleteIn(StrictSerializer):
    evaluation = serializers.DictField()
    model = ModelIn()
    timings = serializers.DictField(required=False)
    parent_comparison = ParentComparisonSerializer(
        required=False, help_text="A fine-tune only: the model it started from, measured alike"
    )


class CompleteApi(APIView):
    permission_classes = [IsSiteAgent]
    job_scope: JobScopeKind = "job"  # the job's own token reports here

    @extend_schema(
        tags=["agent"],
        summary="The job succeeded: evaluation and model manifest (no weights)",
        request=CompleteIn,
        responses=inline_serializer("Completed", {"model_version": serializers.IntegerField()}),
    )
    def post(self, request: Request, pk: int) -> Response:
        job = _job(request, pk)
        data = CompleteIn(data=request.data)
        data.is_valid(raise_exception=True)
        version = finishing.job_complete(job=job, result=data.validated_data)
        return Response({"model_version": version.pk})


class FailIn(StrictSerializer):
    code = serializers.CharField(max_length=50)
    message = serializers.CharField(max_length=2000)


class FailApi(APIView):
    permission_classes = [IsSiteAgent]
    job_scope: JobScopeKind = "job"  # the job's own token reports here

    @extend_schema(
        tags=["agent"],
        summary="The job failed or was cancelled",
        request=FailIn,
        responses={204: None},
    )
    def post(self, request: Request, pk: int) -> Response:
        job = _job(request, pk)
        data = FailIn(data=request.data)
        data.is_valid(raise_exception=True)
        with contextlib.suppress(Conflict):  # already final: reporting twice is harmless
            finishing.job_fail(job=job, **data.validated_data)
        return Response(status=204)
