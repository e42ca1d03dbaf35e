"""Dataset endpoints for getting images in: upload slots, completing, resuming or discarding
unfinished uploads, and zip archives.
"""

from __future__ import annotations

from drf_spectacular.utils import extend_schema, inline_serializer
from rest_framework import generics, serializers, status
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from pollen.core.errors import NotFound
from pollen.core.serializers import StrictSerializer
from pollen.datasets import (
    archives,
    ingest,
    uploads,
)
from pollen.datasets.apis import dataset_for_request
from pollen.datasets.models import ArchiveImport, Dataset


class MaskFileIn(StrictSerializer):
    filename = serializers.CharField(max_length=1024)
    reader = serializers.CharField(
        max_length=50,
        required=False,
        allow_blank=True,
        help_text="Who drew the mask (for example '1stHO'); several files of one reader are "
        "merged into one mask",
    )
    size_bytes = serializers.IntegerField(required=False, min_value=-(2**63), max_value=2**63 - 1)


class FileIn(StrictSerializer):
    filename = serializers.CharField(max_length=1024)
    label = serializers.CharField(max_length=100, required=False, allow_blank=True)  # type: ignore[assignment]  # a field name DRF stubs also use
    patient_id = serializers.CharField(max_length=100, required=False, allow_blank=True)
    # No range here: a bad size is refused for its file alone, by the service, with a reason.
    size_bytes = serializers.IntegerField(
        required=False,
        min_value=-(2**63),
        max_value=2**63 - 1,
        help_text="The file's size in bytes; the upload link takes exactly this many.",
    )
    masks = MaskFileIn(
        many=True,
        required=False,
        help_text="Segmentation datasets: the image's mask files (one per reader, or several "
        "per reader to be merged). Each gets its own upload link in mask_slots.",
    )


class SlotsIn(StrictSerializer):
    files = serializers.ListField(child=FileIn(), max_length=ingest.MAX_FILES_PER_REQUEST)
    add_labels = serializers.BooleanField(
        default=False,
        help_text="Create labels that the dataset lacks (for example from folder names).",
    )


class MaskSlotOut(serializers.Serializer):
    mask_id = serializers.IntegerField()
    reader = serializers.CharField()
    filename = serializers.CharField()
    key = serializers.CharField()
    url = serializers.CharField()
    method = serializers.CharField()
    headers = serializers.DictField(child=serializers.CharField())


class SlotOut(serializers.Serializer):
    image_id = serializers.IntegerField()
    filename = serializers.CharField()
    key = serializers.CharField()
    url = serializers.CharField()
    method = serializers.CharField()
    headers = serializers.DictField(child=serializers.CharField())
    expires_in = serializers.IntegerField()
    mask_slots = MaskSlotOut(many=True)


class RefusedOut(serializers.Serializer):
    filename = serializers.CharField()
    code = serializers.CharField()
    reason = serializers.CharField()


class SlotsOut(serializers.Serializer):
    slots = SlotOut(many=True)
    refused = RefusedOut(many=True)


class UploadSlotsApi(APIView):
    @extend_schema(
        tags=["datasets"],
        summary="Get presigned upload URLs (send the bytes to site storage)",
        request=SlotsIn,
        responses=SlotsOut,
    )
    def post(self, request: Request, pk: int) -> Response:
        caller, dataset = dataset_for_request(request, pk)
        data = SlotsIn(data=request.data)
        data.is_valid(raise_exception=True)
        result = ingest.upload_slots_create(caller=caller, dataset=dataset, **data.validated_data)
        return Response(SlotsOut(result).data)


class IdsIn(StrictSerializer):
    image_ids = serializers.ListField(
        child=serializers.IntegerField(), min_length=1, max_length=5000
    )


class UploadsCompleteApi(APIView):
    @extend_schema(
        tags=["datasets"],
        summary="Tell the site agent to check the uploaded files",
        request=IdsIn,
        responses=inline_serializer("IngestQueued", {"queued": serializers.IntegerField()}),
    )
    def post(self, request: Request, pk: int) -> Response:
        caller, dataset = dataset_for_request(request, pk)
        data = IdsIn(data=request.data)
        data.is_valid(raise_exception=True)
        queued = ingest.uploads_complete(
            caller=caller, dataset=dataset, image_ids=data.validated_data["image_ids"]
        )
        return Response({"queued": queued}, status=status.HTTP_202_ACCEPTED)


class UploadsResumeApi(APIView):
    @extend_schema(
        tags=["datasets"],
        summary="New upload links for uploads that were not finished",
        description=(
            "For images whose upload was never finished (status `expired`, 'upload not "
            "finished', or still waiting for their file): a new upload link each, for the same "
            "image, with its label and patient kept. Send the file, then call uploads/complete/. "
            "Images already uploaded are refused (`upload_finished`). Unfinished uploads expire "
            "after POLLEN_UPLOAD_SLOT_EXPIRY_SECONDS (a day by default)."
        ),
        request=IdsIn,
        responses=SlotsOut,
    )
    def post(self, request: Request, pk: int) -> Response:
        caller, dataset = dataset_for_request(request, pk)
        data = IdsIn(data=request.data)
        data.is_valid(raise_exception=True)
        result = uploads.upload_slots_resume(
            caller=caller, dataset=dataset, image_ids=data.validated_data["image_ids"]
        )
        return Response(SlotsOut(result).data)


class UploadsDiscardApi(APIView):
    @extend_schema(
        tags=["datasets"],
        summary="Discard uploads that were not finished",
        description=(
            "Removes the listed images whose upload was never finished, and any part of their "
            "file in site storage. Images already uploaded are kept."
        ),
        request=IdsIn,
        responses=inline_serializer("UploadsDiscarded", {"discarded": serializers.IntegerField()}),
    )
    def post(self, request: Request, pk: int) -> Response:
        caller, dataset = dataset_for_request(request, pk)
        data = IdsIn(data=request.data)
        data.is_valid(raise_exception=True)
        discarded = uploads.uploads_discard(
            caller=caller, dataset=dataset, image_ids=data.validated_data["image_ids"]
        )
        return Response({"discarded": discarded})


class ArchiveOut(serializers.ModelSerializer):
    class Meta:
        model = ArchiveImport
        fields = [
            "id",
            "filename",
            "status",
            "message",
            "image_count",
            "rejected",
            "add_labels",
            "created_at",
        ]


class ArchiveIn(StrictSerializer):
    filename = serializers.CharField(max_length=255)
    size_bytes = serializers.IntegerField(min_value=1)
    add_labels = serializers.BooleanField(
        default=False, help_text="Create labels from folder names the dataset lacks"
    )


class ArchiveSlotOut(serializers.Serializer):
    archive_id = serializers.IntegerField()
    url = serializers.CharField()
    method = serializers.CharField()
    headers = serializers.DictField(child=serializers.CharField())


def _archive(dataset: Dataset, archive_id: int) -> ArchiveImport:
    archive = ArchiveImport.objects.filter(dataset=dataset, pk=archive_id).first()
    if archive is None:
        raise NotFound("There is no such archive in this dataset.", code="archive_not_found")
    return archive


class ArchiveListApi(generics.ListAPIView):
    serializer_class = ArchiveOut

    def get_queryset(self):  # type: ignore[no-untyped-def]
        if getattr(self, "swagger_fake_view", False):
            return ArchiveImport.objects.none()
        return ArchiveImport.objects.filter(
            dataset=dataset_for_request(self.request, self.kwargs["pk"])[1]
        )

    @extend_schema(
        tags=["datasets"],
        summary="Upload a zip (one folder per label): get its upload link",
        request=ArchiveIn,
        responses={201: ArchiveSlotOut},
    )
    def post(self, request: Request, pk: int) -> Response:
        caller, dataset = dataset_for_request(request, pk)
        data = ArchiveIn(data=request.data)
        data.is_valid(raise_exception=True)
        slot = archives.archive_slot_create(caller=caller, dataset=dataset, **data.validated_data)
        return Response(ArchiveSlotOut(slot).data, status=status.HTTP_201_CREATED)


class ArchiveDetailApi(APIView):
    @extend_schema(
        tags=["datasets"],
        summary="An archive import: status and files it refused",
        responses=ArchiveOut,
    )
    def get(self, request: Request, pk: int, archive_id: int) -> Response:
        return Response(ArchiveOut(_archive(dataset_for_request(request, pk)[1], archive_id)).data)


class ArchiveImportApi(APIView):
    @extend_schema(
        tags=["datasets"],
        summary="The zip is uploaded: unpack it at the site",
        request=None,
        responses={202: ArchiveOut},
    )
    def post(self, request: Request, pk: int, archive_id: int) -> Response:
        caller, dataset = dataset_for_request(request, pk)
        archive = archives.archive_import_start(
            caller=caller, dataset=dataset, archive=_archive(dataset, archive_id)
        )
        return Response(ArchiveOut(archive).data, status=status.HTTP_202_ACCEPTED)
