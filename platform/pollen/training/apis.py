"""Training endpoints for clinicians and hospital systems."""

from __future__ import annotations

from typing import Any

import django_filters
from drf_spectacular.utils import extend_schema, extend_schema_field, inline_serializer
from rest_framework import generics, serializers, status
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from pollen.accounts.caller import caller_from_request
from pollen.core.filters import IdFilter
from pollen.core.serializers import StrictSerializer
from pollen.datasets.selectors import dataset_get
from pollen.marketplace.selectors import published_version_get
from pollen.training import claims, selectors, services
from pollen.training.comparison import ParentComparisonSerializer, version_comparison
from pollen.training.models import Job, JobStatus, ModelVersion, Recipe
from pollen.training.queue_place import queue_places
from pollen.training.split_redraw import split_redraw
from pollen.zoo.models import ZooEntry
from pollen.zoo.selectors import zoo_entry_get


class ModelVersionOut(serializers.ModelSerializer):
    site = serializers.CharField(source="site.slug")
    job = serializers.IntegerField(source="job_id", allow_null=True)
    parent = serializers.IntegerField(source="parent_id", allow_null=True)  # type: ignore[assignment]  # a field name DRF stubs also use
    starting_point = serializers.CharField(
        source="starting_point.slug", allow_null=True, default=None
    )
    parent_comparison = serializers.SerializerMethodField()

    class Meta:
        model = ModelVersion
        fields = [
            "id",
            "site",
            "name",
            "job",
            "architecture",
            "task",
            "label_names",
            "positive_class",
            "input_size",
            "mean",
            "std",
            "weights_sha256",
            "parent",
            "starting_point",
            "licence",
            "training_summary",
            "metrics",
            "parent_comparison",
            "created_at",
        ]

    @extend_schema_field(ParentComparisonSerializer(allow_null=True))
    def get_parent_comparison(self, version: ModelVersion) -> dict[str, Any] | None:
        """A fine-tune beside the model it started from (null for other models)."""
        return version_comparison(version)


class QueuePlaceOut(serializers.Serializer):
    position = serializers.IntegerField(help_text="1 for the next job to start")
    jobs_ahead = serializers.IntegerField()
    running = serializers.ListField(
        child=serializers.CharField(), help_text="What the site's worker is busy with now"
    )
    text = serializers.CharField(help_text="Its place and what it waits for, in plain words")


class JobOut(serializers.ModelSerializer):
    site = serializers.CharField(source="site.slug")
    dataset = serializers.IntegerField(source="dataset_id")
    dataset_name = serializers.CharField(source="dataset.name")
    starting_point = serializers.IntegerField(source="starting_point_id", allow_null=True)
    starting_point_name = serializers.CharField(
        source="starting_point.name", allow_null=True, default=None
    )
    parent_version = serializers.IntegerField(source="parent_version_id", allow_null=True)
    model_version = serializers.SerializerMethodField()
    status_text = serializers.CharField(source="get_status_display")
    queue = serializers.SerializerMethodField()
    parent_comparison = serializers.SerializerMethodField()

    class Meta:
        model = Job
        fields = [
            "id",
            "site",
            "name",
            "dataset",
            "dataset_name",
            "task",
            "recipe",
            "starting_point",
            "starting_point_name",
            "parent_version",
            "config",
            "label_names",
            "positive_class",
            "status",
            "status_text",
            "queue",
            "attempt",
            "cancel_requested",
            "progress",
            "history",
            "evaluation",
            "timings",
            "events",
            "checkpoint_epoch",
            "error_code",
            "message",
            "model_version",
            "parent_comparison",
            "created_at",
            "started_at",
            "finished_at",
        ]

    def get_model_version(self, job: Job) -> int | None:
        version = getattr(job, "model_version", None)
        return version.pk if version else None

    @extend_schema_field(ParentComparisonSerializer(allow_null=True))
    def get_parent_comparison(self, job: Job) -> dict[str, Any] | None:
        """A fine-tune's model beside the model it started from (null otherwise, or until it ends)."""
        version = getattr(job, "model_version", None)
        return version_comparison(version) if version else None

    @extend_schema_field(QueuePlaceOut(allow_null=True))
    def get_queue(self, job: Job) -> dict[str, Any] | None:
        """A queued job's place in its site's line (null once it has started)."""
        places = self.context.get("queue_places")
        if places is None:
            places = queue_places([job])
        return places.get(job.pk)


class JobFilter(django_filters.FilterSet):
    site = django_filters.CharFilter(field_name="site__slug")
    status = django_filters.ChoiceFilter(choices=JobStatus.choices)
    dataset = IdFilter(field_name="dataset_id")
    recipe = django_filters.ChoiceFilter(choices=Recipe.choices)

    class Meta:
        model = Job
        fields: list[str] = []


class TrainingAdvancedIn(StrictSerializer):
    epochs = serializers.IntegerField(required=False)
    batch_size = serializers.IntegerField(required=False)
    input_size = serializers.IntegerField(required=False)
    learning_rate = serializers.FloatField(required=False)
    seed = serializers.IntegerField(required=False)
    max_minutes = serializers.IntegerField(required=False)
    freeze_encoder = serializers.BooleanField(
        required=False,
        help_text="Segmentation: train the decoder only, keeping the encoder's pre-trained "
        "weights (a first outline model in minutes)",
    )


class JobIn(StrictSerializer):
    dataset = serializers.IntegerField()
    starting_point = serializers.IntegerField(required=False, help_text="A zoo entry id")
    parent_version = serializers.IntegerField(
        required=False, help_text="A model version at your site"
    )
    published_version = serializers.IntegerField(
        required=False, help_text="A marketplace version (fine-tune another site's model)"
    )
    recipe = serializers.ChoiceField(choices=Recipe.choices, default=Recipe.FULL)
    name = serializers.CharField(max_length=200, required=False, allow_blank=True)
    advanced = TrainingAdvancedIn(required=False)


class JobListApi(generics.ListAPIView):
    serializer_class = JobOut
    filterset_class = JobFilter

    def get_queryset(self):  # type: ignore[no-untyped-def]
        if getattr(self, "swagger_fake_view", False):
            return Job.objects.none()
        caller = caller_from_request(self.request)
        caller.require_clinical()
        return selectors.job_list(caller=caller)

    def list(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        # The places of a page's queued jobs come from one look at their sites' lines.
        page = self.paginate_queryset(self.filter_queryset(self.get_queryset()))
        assert page is not None  # every list is paginated
        context = {**self.get_serializer_context(), "queue_places": queue_places(page)}
        return self.get_paginated_response(JobOut(page, many=True, context=context).data)

    @extend_schema(
        tags=["training"],
        summary="Train a model on a dataset (one click: dataset + starting point)",
        request=JobIn,
        responses={201: JobOut},
    )
    def post(self, request: Request) -> Response:
        caller = caller_from_request(request)
        caller.require_clinical()
        data = JobIn(data=request.data)
        data.is_valid(raise_exception=True)
        fields: dict[str, Any] = dict(data.validated_data)
        dataset = dataset_get(caller=caller, dataset_id=fields.pop("dataset"))
        entry_id = fields.pop("starting_point", None)
        parent_id = fields.pop("parent_version", None)
        published_id = fields.pop("published_version", None)
        entry: ZooEntry | None
        if entry_id is None and parent_id is None and published_id is None:
            entry = services.recommended_starting_point(dataset.task)
        else:
            entry = zoo_entry_get(entry_id=entry_id) if entry_id is not None else None
        parent = (
            selectors.model_version_get(caller=caller, version_id=parent_id)
            if parent_id is not None
            else None
        )
        published = (
            published_version_get(caller=caller, version_id=published_id)
            if published_id is not None
            else None
        )
        job = services.job_create(
            caller=caller,
            dataset=dataset,
            starting_point=entry,
            parent_version=parent,
            published_version=published,
            **fields,
        )
        return Response(
            JobOut(selectors.job_get(caller=caller, job_id=job.pk)).data,
            status=status.HTTP_201_CREATED,
        )


class JobDetailApi(APIView):
    @extend_schema(
        tags=["training"],
        summary="A job with its progress, curves and evaluation",
        responses=JobOut,
    )
    def get(self, request: Request, pk: int) -> Response:
        caller = caller_from_request(request)
        caller.require_clinical()
        return Response(JobOut(selectors.job_get(caller=caller, job_id=pk)).data)


class JobCancelApi(APIView):
    @extend_schema(
        tags=["training"], summary="Stop a job (within one batch)", request=None, responses=JobOut
    )
    def post(self, request: Request, pk: int) -> Response:
        caller = caller_from_request(request)
        job = services.job_cancel(caller=caller, job=selectors.job_get(caller=caller, job_id=pk))
        return Response(JobOut(selectors.job_get(caller=caller, job_id=job.pk)).data)


class SplitRedrawApi(APIView):
    @extend_schema(
        tags=["datasets"],
        summary="Draw the patient split again so every label has training, validation and test images",
        description=(
            "Possible until a model is trained on the dataset. Keeps each patient's images "
            "together; the first seed from the current one on that works is kept, so a split "
            "that already works does not change. Errors: split_frozen (a job used the dataset), "
            "split_impossible (a label has too few patients), dataset_not_ready."
        ),
        request=None,
        responses=inline_serializer(
            "SplitRedraw",
            {
                "moved_images": serializers.IntegerField(),
                "labels": serializers.ListField(child=serializers.DictField()),
            },
        ),
    )
    def post(self, request: Request, pk: int) -> Response:
        caller = caller_from_request(request)
        caller.require_clinical()
        dataset = dataset_get(caller=caller, dataset_id=pk)
        return Response(split_redraw(caller=caller, dataset=dataset))


class JobSamplesApi(APIView):
    @extend_schema(
        tags=["training"],
        summary="Short-lived links to the evaluation's heatmap overlays",
        responses=inline_serializer(
            "JobSamples", {"samples": serializers.ListField(child=serializers.DictField())}
        ),
    )
    def get(self, request: Request, pk: int) -> Response:
        caller = caller_from_request(request)
        caller.require_clinical()
        job = selectors.job_get(caller=caller, job_id=pk)
        return Response({"samples": claims.job_samples_presign(job=job)})


class ModelVersionListApi(generics.ListAPIView):
    serializer_class = ModelVersionOut
    filterset_fields = ["architecture"]

    @extend_schema(tags=["training"], summary="Models trained at my sites")
    def get(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        return super().get(request, *args, **kwargs)

    def get_queryset(self):  # type: ignore[no-untyped-def]
        if getattr(self, "swagger_fake_view", False):
            return ModelVersion.objects.none()
        caller = caller_from_request(self.request)
        caller.require_clinical()
        return selectors.model_version_list(caller=caller)


class ModelVersionDetailApi(APIView):
    @extend_schema(tags=["training"], summary="One model version", responses=ModelVersionOut)
    def get(self, request: Request, pk: int) -> Response:
        caller = caller_from_request(request)
        caller.require_clinical()
        return Response(
            ModelVersionOut(selectors.model_version_get(caller=caller, version_id=pk)).data
        )
