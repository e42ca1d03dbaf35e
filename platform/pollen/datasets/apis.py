"""Dataset endpoints for clinicians and hospital systems.

Uploads and archives: ``uploads_apis``; images, labels and manifests: ``images_apis``.
"""

from __future__ import annotations

from typing import Any

from django.http import StreamingHttpResponse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema, inline_serializer
from rest_framework import generics, serializers, status
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from pollen.accounts.caller import caller_from_request
from pollen.accounts.services import site_for_member
from pollen.core.csv_safe import csv_response
from pollen.core.serializers import StrictSerializer
from pollen.datasets import (
    deletion,
    exports,
    selectors,
    services,
)
from pollen.datasets.filters import DatasetFilter
from pollen.datasets.models import Dataset, Modality, Task


class DatasetOut(serializers.ModelSerializer):
    site = serializers.CharField(source="site.slug")
    image_count = serializers.IntegerField(read_only=True)
    accepted_count = serializers.IntegerField(read_only=True)
    rejected_count = serializers.IntegerField(read_only=True)
    pending_count = serializers.IntegerField(
        read_only=True, help_text="Uploaded images the site agent is checking"
    )
    uploading_count = serializers.IntegerField(
        read_only=True, help_text="Upload slots still waiting for their file"
    )
    unfinished_count = serializers.IntegerField(
        read_only=True, help_text="Uploads not finished in time: resume or discard them"
    )
    positive_class = serializers.CharField(
        read_only=True,
        help_text="The label of the finding a model trained here looks for; blank with three "
        "or more labels (each is read against the rest) or fewer than two",
    )

    class Meta:
        model = Dataset
        fields = [
            "id",
            "site",
            "name",
            "description",
            "modality",
            "task",
            "label_names",
            "positive_class",
            "mask_classes",
            "masks_required",
            "reference_reader",
            "status",
            "image_count",
            "accepted_count",
            "rejected_count",
            "pending_count",
            "uploading_count",
            "unfinished_count",
            "created_at",
        ]


POSITIVE_CLASS_HELP = (
    "Two labels only: the label of the finding the model looks for (sensitivity counts how many "
    "of these it finds). One of label_names, else 400 `invalid_positive_class`. Left out or "
    "blank: a default by name (normal, benign, healthy, negative or no finding is never the "
    "finding)."
)


class MaskFieldsIn(StrictSerializer):
    """The settings of a segmentation dataset, on create and on edit."""

    mask_classes = serializers.ListField(
        child=serializers.CharField(max_length=100),
        required=False,
        max_length=20,
        help_text="Segmentation: what the mask's values 1, 2, ... mark (0 is background; a "
        "binary mask stored as 0/255 means the one class)",
    )
    masks_required = serializers.BooleanField(
        required=False, help_text="Segmentation: refuse an image that comes without a mask"
    )
    reference_reader = serializers.CharField(
        required=False,
        allow_blank=True,
        max_length=50,
        help_text="Segmentation with several readers: whose masks models learn from and are "
        "scored against (blank: the reader-less mask, else each image's first reader)",
    )


class DatasetIn(MaskFieldsIn):
    site = serializers.CharField(max_length=50)
    name = serializers.CharField(max_length=200)
    description = serializers.CharField(required=False, allow_blank=True, max_length=5000)
    modality = serializers.ChoiceField(choices=Modality.choices, required=False)
    label_names = serializers.ListField(
        child=serializers.CharField(max_length=100), required=False, max_length=50
    )
    positive_class = serializers.CharField(
        required=False, allow_blank=True, max_length=100, help_text=POSITIVE_CLASS_HELP
    )
    task = serializers.ChoiceField(
        choices=Task.choices,
        required=False,
        help_text="classification (a label per image, the default) or segmentation (a mask "
        "per image); fixed once the dataset exists",
    )


class DatasetPatchIn(MaskFieldsIn):
    name = serializers.CharField(max_length=200, required=False)
    description = serializers.CharField(required=False, allow_blank=True, max_length=5000)
    modality = serializers.ChoiceField(choices=Modality.choices, required=False)
    label_names = serializers.ListField(
        child=serializers.CharField(max_length=100), required=False, max_length=50
    )
    positive_class = serializers.CharField(
        required=False, allow_blank=True, max_length=100, help_text=POSITIVE_CLASS_HELP
    )


DELETION_DOCS = (
    "Deleting a dataset removes its images for good: the files and thumbnails in the site's "
    "storage, and the labels and patient ids at the hub. Models trained on it are not deleted: "
    "they stay usable, published and evaluated, and their lineage keeps the dataset's name, "
    "labels and image counts (the dataset stays as a record with status `deleted`). Only a site "
    "administrator may delete (403 `admin_required`). Work that still reads the images (a queued "
    "or running job, prediction, evaluation, zip import or cross-site job) blocks deletion with "
    "409 `dataset_in_use`, which names it. Deletion answers 202 while the site agent removes the "
    "files; the dataset disappears from lists at once and cannot start new work."
)


class JobRefOut(serializers.Serializer):
    id = serializers.IntegerField()
    name = serializers.CharField()
    status = serializers.CharField()


class ModelRefOut(serializers.Serializer):
    id = serializers.IntegerField()
    name = serializers.CharField()


class PublicationRefOut(serializers.Serializer):
    id = serializers.IntegerField()
    model_name = serializers.CharField()
    number = serializers.IntegerField()
    status = serializers.CharField()


class EvaluationRefOut(serializers.Serializer):
    id = serializers.IntegerField()
    status = serializers.CharField()
    published_version_id = serializers.IntegerField()


class WorkRefOut(serializers.Serializer):
    id = serializers.IntegerField()
    status = serializers.CharField()


class DeletionImpactOut(serializers.Serializer):
    dataset = ModelRefOut()
    images = serializers.IntegerField()
    jobs = JobRefOut(many=True)
    model_versions = ModelRefOut(many=True)
    published_versions = PublicationRefOut(many=True)
    evaluations = EvaluationRefOut(many=True)
    predictions = WorkRefOut(many=True)
    federated_jobs = JobRefOut(many=True)
    blocking = serializers.ListField(
        child=serializers.CharField(), help_text="Work that must finish first"
    )
    can_delete = serializers.BooleanField()
    summary = serializers.CharField(help_text="What deleting removes and what it keeps")


class DeletionOut(DeletionImpactOut):
    status = serializers.CharField()


def dataset_for_request(request: Request, pk: int) -> tuple[Any, Dataset]:
    caller = caller_from_request(request)
    caller.require_clinical()
    return caller, selectors.dataset_get(caller=caller, dataset_id=pk)


class DatasetListApi(generics.ListAPIView):
    serializer_class = DatasetOut
    filterset_class = DatasetFilter

    def get_queryset(self):  # type: ignore[no-untyped-def]
        if getattr(self, "swagger_fake_view", False):  # schema generation: no request to scope by
            return self.serializer_class.Meta.model.objects.none()
        caller = caller_from_request(self.request)
        caller.require_clinical()
        return selectors.dataset_list(caller=caller)

    @extend_schema(
        tags=["datasets"],
        summary="Create a dataset at one of my sites",
        request=DatasetIn,
        responses={201: DatasetOut},
    )
    def post(self, request: Request) -> Response:
        caller = caller_from_request(request)
        data = DatasetIn(data=request.data)
        data.is_valid(raise_exception=True)
        fields = dict(data.validated_data)
        site = site_for_member(caller=caller, slug=fields.pop("site"))
        dataset = services.dataset_create(caller=caller, site=site, **fields)
        return Response(
            DatasetOut(selectors.dataset_get(caller=caller, dataset_id=dataset.pk)).data,
            status=status.HTTP_201_CREATED,
        )


class DatasetDetailApi(APIView):
    @extend_schema(tags=["datasets"], summary="One dataset", responses=DatasetOut)
    def get(self, request: Request, pk: int) -> Response:
        return Response(DatasetOut(dataset_for_request(request, pk)[1]).data)

    @extend_schema(
        tags=["datasets"],
        summary="Rename, describe or change labels",
        request=DatasetPatchIn,
        responses=DatasetOut,
    )
    def patch(self, request: Request, pk: int) -> Response:
        caller, dataset = dataset_for_request(request, pk)
        data = DatasetPatchIn(data=request.data)
        data.is_valid(raise_exception=True)
        services.dataset_update(caller=caller, dataset=dataset, **data.validated_data)
        return Response(DatasetOut(selectors.dataset_get(caller=caller, dataset_id=pk)).data)

    @extend_schema(
        tags=["datasets"],
        summary="Delete the dataset's images (site administrators); models trained on it stay",
        description=DELETION_DOCS,
        responses={202: DeletionOut},
    )
    def delete(self, request: Request, pk: int) -> Response:
        caller, dataset = dataset_for_request(request, pk)
        return Response(
            DeletionOut(deletion.dataset_delete(caller=caller, dataset=dataset)).data,
            status=status.HTTP_202_ACCEPTED,
        )


class DeletionImpactApi(APIView):
    @extend_schema(
        tags=["datasets"],
        summary="What depends on a dataset, before deleting it (site administrators)",
        description=DELETION_DOCS,
        responses=DeletionImpactOut,
    )
    def get(self, request: Request, pk: int) -> Response:
        caller, dataset = dataset_for_request(request, pk)
        caller.require_admin(dataset.site_id)
        return Response(DeletionImpactOut(deletion.dataset_deletion_impact(dataset=dataset)).data)


class DatasetStatsApi(APIView):
    @extend_schema(
        tags=["datasets"],
        summary="Counts per label, split, patient and status; image sizes",
        responses=inline_serializer(
            "DatasetStats",
            {
                "labels": serializers.ListField(child=serializers.DictField()),
                "status": serializers.DictField(),
                "patients": serializers.DictField(),
                "sizes": serializers.DictField(),
                "rejected_by_reason": serializers.ListField(child=serializers.DictField()),
                "unlabelled": serializers.IntegerField(),
                "segmentation": serializers.DictField(
                    required=False,
                    help_text="Segmentation datasets: images with and without a mask, empty "
                    "masks, lesion counts and sizes (fraction of the image, in bins), readers "
                    "and their Dice agreement with the reference reader",
                ),
            },
        ),
    )
    def get(self, request: Request, pk: int) -> Response:
        return Response(selectors.dataset_stats(dataset=dataset_for_request(request, pk)[1]))


class DatasetExportApi(APIView):
    @extend_schema(
        tags=["datasets"],
        summary="Download the image list as CSV (file name, label, patient, split, status)",
        description=(
            "Values are exported as stored. A cell that a spreadsheet would run as a formula "
            "(one beginning with =, +, -, @, a tab or a carriage return) starts with a single "
            "quote, so Excel and LibreOffice show it as text. The first three columns are those "
            "of the manifest upload. Each download is recorded in the audit log."
        ),
        responses={(200, "text/csv"): OpenApiTypes.STR},
    )
    def get(self, request: Request, pk: int) -> StreamingHttpResponse:
        caller, dataset = dataset_for_request(request, pk)
        rows = exports.dataset_export_rows(caller=caller, dataset=dataset)
        return csv_response(
            filename=f"dataset-{dataset.pk}-images.csv", header=exports.EXPORT_COLUMNS, rows=rows
        )
