"""Endpoints the site agent calls: ingest results, deletion done, and the image list for training."""

from __future__ import annotations

from typing import Any

from drf_spectacular.utils import extend_schema, inline_serializer
from rest_framework import generics, serializers
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from pollen.accounts.caller import JobScopeKind, caller_from_request
from pollen.accounts.permissions import IsSiteAgent
from pollen.core.errors import NotFound
from pollen.core.serializers import StrictSerializer
from pollen.datasets import deletion, ingest
from pollen.datasets.archives import archive_result_record
from pollen.datasets.masks import reference_mask
from pollen.datasets.models import (
    ArchiveImport,
    Dataset,
    DatasetStatus,
    Image,
    ImageStatus,
    Task,
)


def agent_dataset(request: Request, pk: int, *, include_deleting: bool = False) -> Dataset:
    caller = caller_from_request(request)
    qs = Dataset.objects.filter(site_id__in=caller.site_ids).select_related("site")
    if not include_deleting:
        qs = qs.filter(status=DatasetStatus.ACTIVE)
    dataset = qs.filter(pk=pk).first()
    if dataset is None:
        raise NotFound("There is no such dataset at this agent's site.", code="dataset_not_found")
    return dataset


class MaskStatsIn(StrictSerializer):
    empty = serializers.BooleanField()
    foreground_fraction = serializers.FloatField(min_value=0.0, max_value=1.0)
    class_pixels = serializers.DictField(child=serializers.IntegerField(min_value=0))
    components = serializers.IntegerField(min_value=0)
    largest_component_px = serializers.IntegerField(min_value=0)


class IngestedMaskIn(StrictSerializer):
    mask_id = serializers.IntegerField()
    status = serializers.ChoiceField(choices=["accepted", "rejected"])
    code = serializers.CharField(required=False, allow_blank=True, max_length=50)
    reason = serializers.CharField(required=False, allow_blank=True, max_length=2000)
    sha256 = serializers.RegexField(r"^[0-9a-f]{64}$", required=False, allow_blank=True)
    size_bytes = serializers.IntegerField(required=False, min_value=0)
    key = serializers.CharField(required=False, allow_blank=True, max_length=512)
    thumbnail_key = serializers.CharField(required=False, allow_blank=True, max_length=512)
    stats = MaskStatsIn(required=False)
    agreement_dice = serializers.FloatField(
        required=False, allow_null=True, min_value=0.0, max_value=1.0
    )


class IngestResultIn(StrictSerializer):
    image_id = serializers.IntegerField()
    status = serializers.ChoiceField(choices=["accepted", "rejected"])
    code = serializers.CharField(required=False, allow_blank=True, max_length=50)
    reason = serializers.CharField(required=False, allow_blank=True, max_length=2000)
    sha256 = serializers.RegexField(r"^[0-9a-f]{64}$", required=False, allow_blank=True)
    width = serializers.IntegerField(required=False, min_value=1)
    height = serializers.IntegerField(required=False, min_value=1)
    channels = serializers.IntegerField(required=False, min_value=1, max_value=4)
    modality = serializers.CharField(required=False, allow_blank=True, max_length=50)
    format = serializers.CharField(required=False, allow_blank=True, max_length=20)
    thumbnail_key = serializers.CharField(required=False, allow_blank=True, max_length=512)
    size_bytes = serializers.IntegerField(required=False, min_value=0)
    metadata = serializers.DictField(required=False)
    masks = serializers.ListField(child=IngestedMaskIn(), required=False, max_length=20)


class IngestResultsIn(StrictSerializer):
    results = serializers.ListField(child=IngestResultIn(), max_length=5000)


class IngestResultsApi(APIView):
    permission_classes = [IsSiteAgent]

    @extend_schema(
        tags=["agent"],
        summary="Record what ingest found for each file",
        request=IngestResultsIn,
        responses=inline_serializer(
            "IngestCounts",
            {"accepted": serializers.IntegerField(), "rejected": serializers.IntegerField()},
        ),
    )
    def post(self, request: Request, pk: int) -> Response:
        dataset = agent_dataset(request, pk)
        data = IngestResultsIn(data=request.data)
        data.is_valid(raise_exception=True)
        return Response(
            ingest.ingest_results_record(dataset=dataset, results=data.validated_data["results"])
        )


class PurgedApi(APIView):
    permission_classes = [IsSiteAgent]

    @extend_schema(
        tags=["agent"],
        summary="The agent removed a deleted dataset's files (idempotent)",
        description=(
            "Moves the dataset from `deleting` to `deleted` and removes its image rows. A repeated "
            "report answers 200 and changes nothing; a dataset that is not being deleted answers "
            "409 `not_deleting`."
        ),
        request=None,
        responses=inline_serializer("DatasetPurged", {"status": serializers.CharField()}),
    )
    def post(self, request: Request, pk: int) -> Response:
        dataset = agent_dataset(request, pk, include_deleting=True)
        return Response({"status": deletion.dataset_purge(dataset=dataset)})


class TrainingImageOut(serializers.ModelSerializer):
    mask_key = serializers.SerializerMethodField(
        help_text="Segmentation: where the reference reader's mask is stored (blank otherwise)"
    )

    class Meta:
        model = Image
        fields = [
            "id",
            "storage_key",
            "label",
            "patient_id",
            "split",
            "sha256",
            "width",
            "height",
            "mask_key",
        ]

    def get_mask_key(self, image: Image) -> str:
        dataset = image.dataset
        if dataset.task != Task.SEGMENTATION:
            return ""
        mask = reference_mask(list(image.masks.all()), dataset.reference_reader)
        return mask.storage_key if mask is not None else ""


class TrainingImageListApi(generics.ListAPIView):
    """Accepted, labelled images with their storage keys: what a training job reads."""

    permission_classes = [IsSiteAgent]
    serializer_class = TrainingImageOut
    job_scope: JobScopeKind = "dataset"  # a job's token reads its own dataset's images only

    @extend_schema(tags=["agent"], summary="Accepted, labelled images of a dataset (for training)")
    def get(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        return super().get(request, *args, **kwargs)

    def get_queryset(self):  # type: ignore[no-untyped-def]
        if getattr(self, "swagger_fake_view", False):  # schema generation: no request to scope by
            return self.serializer_class.Meta.model.objects.none()
        dataset = agent_dataset(self.request, self.kwargs["pk"])
        images = Image.objects.filter(dataset=dataset, status=ImageStatus.ACCEPTED)
        if dataset.task == Task.SEGMENTATION:
            # What a segmentation model learns from is the mask: the image label may be blank.
            return (
                images.filter(masks__status=ImageStatus.ACCEPTED)
                .distinct()
                .select_related("dataset")
                .prefetch_related("masks")
                .order_by("id")
            )
        return images.exclude(label="").select_related("dataset").order_by("id")


class ArchiveMaskIn(StrictSerializer):
    names = serializers.ListField(child=serializers.CharField(max_length=1024), max_length=20)
    keys = serializers.ListField(child=serializers.CharField(max_length=512), max_length=20)
    reader = serializers.CharField(required=False, allow_blank=True, max_length=50)


class ArchiveEntryIn(StrictSerializer):
    name = serializers.CharField(max_length=1024)
    key = serializers.CharField(max_length=512)
    label = serializers.CharField(max_length=100, allow_blank=True)  # type: ignore[assignment]  # a field name DRF stubs also use
    size = serializers.IntegerField(min_value=0, required=False)
    masks = serializers.ListField(child=ArchiveMaskIn(), required=False, max_length=20)
    patient_id = serializers.CharField(required=False, allow_blank=True, max_length=100)
    split = serializers.CharField(required=False, allow_blank=True, max_length=10)


class ArchiveRejectIn(StrictSerializer):
    name = serializers.CharField(max_length=1024)
    reason = serializers.CharField(max_length=2000)


class ArchiveResultIn(StrictSerializer):
    status = serializers.ChoiceField(choices=["done", "failed"])
    message = serializers.CharField(required=False, allow_blank=True, max_length=2000)
    entries = serializers.ListField(child=ArchiveEntryIn(), required=False, max_length=20000)
    rejected = serializers.ListField(child=ArchiveRejectIn(), required=False, max_length=20000)


class ArchiveResultApi(APIView):
    permission_classes = [IsSiteAgent]

    @extend_schema(
        tags=["agent"],
        summary="The agent unpacked an archive: register its images",
        request=ArchiveResultIn,
        responses=inline_serializer(
            "ArchiveImages", {"images": serializers.ListField(child=serializers.DictField())}
        ),
    )
    def post(self, request: Request, pk: int, archive_id: int) -> Response:
        dataset = agent_dataset(request, pk)
        archive = ArchiveImport.objects.filter(dataset=dataset, pk=archive_id).first()
        if archive is None:
            raise NotFound("There is no such archive in this dataset.", code="archive_not_found")
        data = ArchiveResultIn(data=request.data)
        data.is_valid(raise_exception=True)
        images = archive_result_record(dataset=dataset, archive=archive, result=data.validated_data)
        return Response({"images": images})
