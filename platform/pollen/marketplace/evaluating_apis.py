"""Site evaluation endpoints: check a published model on your site's labelled images, share the result."""

from __future__ import annotations

from typing import Any

import django_filters
from drf_spectacular.utils import extend_schema
from rest_framework import generics, serializers, status
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from pollen.core.filters import IdFilter
from pollen.core.serializers import StrictSerializer
from pollen.datasets.selectors import dataset_get
from pollen.marketplace import evaluating, selectors
from pollen.marketplace.findings import TRAINING_CHECK_TTA, measured_tta
from pollen.marketplace.listing_apis import request_caller
from pollen.marketplace.models import (
    SiteEvaluation,
    WorkStatus,
)


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
            "attempt",
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

    def to_representation(self, instance: SiteEvaluation) -> dict[str, Any]:
        """``metrics.tta`` always names a policy: older results kept the request's true/false."""
        data = super().to_representation(instance)
        metrics = dict(data.get("metrics") or {})
        if isinstance(metrics.get("tta"), bool):
            if instance.status == WorkStatus.SUCCEEDED:
                metrics["tta"] = measured_tta(metrics, legacy=TRAINING_CHECK_TTA)
            else:  # the request's choice, not yet a measurement
                metrics.pop("tta")
            data["metrics"] = metrics
        return data


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
        return selectors.evaluation_list(caller=request_caller(self.request))

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
        caller = request_caller(request)
        data = EvaluationIn(data=request.data)
        data.is_valid(raise_exception=True)
        fields = data.validated_data
        version = selectors.published_version_get(
            caller=caller, version_id=fields["published_version"]
        )
        dataset = dataset_get(caller=caller, dataset_id=fields["dataset"])
        evaluation = evaluating.evaluation_create(
            caller=caller, published_version=version, dataset=dataset, tta=fields["tta"]
        )
        evaluation = selectors.evaluation_get(caller=caller, evaluation_id=evaluation.pk)
        return Response(EvaluationOut(evaluation).data, status=status.HTTP_202_ACCEPTED)


class EvaluationDetailApi(APIView):
    @extend_schema(
        tags=["marketplace"], summary="An evaluation at my site", responses=EvaluationOut
    )
    def get(self, request: Request, pk: int) -> Response:
        caller = request_caller(request)
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
        caller = request_caller(request)
        evaluation = selectors.evaluation_get(caller=caller, evaluation_id=pk)
        data = ShareIn(data=request.data)
        data.is_valid(raise_exception=True)
        evaluation = evaluating.evaluation_share(
            caller=caller, evaluation=evaluation, shared=data.validated_data["shared"]
        )
        return Response(
            EvaluationOut(selectors.evaluation_get(caller=caller, evaluation_id=pk)).data
        )
