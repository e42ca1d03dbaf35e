"""Dataset endpoints for clinicians and hospital systems."""

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
from pollen.core.errors import NotFound
from pollen.core.serializers import StrictSerializer
from pollen.datasets import archives, deletion, exports, selectors, services, uploads
from pollen.datasets.filters import DatasetFilter, ImageFilter
from pollen.datasets.models import ArchiveImport, Dataset, Image, Modality


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
            "label_names",
            "positive_class",
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


class DatasetIn(StrictSerializer):
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


class DatasetPatchIn(StrictSerializer):
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


def _dataset(request: Request, pk: int) -> tuple[Any, Dataset]:
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
        return Response(DatasetOut(_dataset(request, pk)[1]).data)

    @extend_schema(
        tags=["datasets"],
        summary="Rename, describe or change labels",
        request=DatasetPatchIn,
        responses=DatasetOut,
    )
    def patch(self, request: Request, pk: int) -> Response:
        caller, dataset = _dataset(request, pk)
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
        caller, dataset = _dataset(request, pk)
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
        caller, dataset = _dataset(request, pk)
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
            },
        ),
    )
    def get(self, request: Request, pk: int) -> Response:
        return Response(selectors.dataset_stats(dataset=_dataset(request, pk)[1]))


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
        caller, dataset = _dataset(request, pk)
        rows = exports.dataset_export_rows(caller=caller, dataset=dataset)
        return csv_response(
            filename=f"dataset-{dataset.pk}-images.csv", header=exports.EXPORT_COLUMNS, rows=rows
        )


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


class SlotsIn(StrictSerializer):
    files = serializers.ListField(child=FileIn(), max_length=services.MAX_FILES_PER_REQUEST)
    add_labels = serializers.BooleanField(
        default=False,
        help_text="Create labels that the dataset lacks (for example from folder names).",
    )


class SlotOut(serializers.Serializer):
    image_id = serializers.IntegerField()
    filename = serializers.CharField()
    key = serializers.CharField()
    url = serializers.CharField()
    method = serializers.CharField()
    headers = serializers.DictField(child=serializers.CharField())
    expires_in = serializers.IntegerField()


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
        caller, dataset = _dataset(request, pk)
        data = SlotsIn(data=request.data)
        data.is_valid(raise_exception=True)
        result = services.upload_slots_create(caller=caller, dataset=dataset, **data.validated_data)
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
        caller, dataset = _dataset(request, pk)
        data = IdsIn(data=request.data)
        data.is_valid(raise_exception=True)
        queued = services.uploads_complete(
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
        caller, dataset = _dataset(request, pk)
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
        caller, dataset = _dataset(request, pk)
        data = IdsIn(data=request.data)
        data.is_valid(raise_exception=True)
        discarded = uploads.uploads_discard(
            caller=caller, dataset=dataset, image_ids=data.validated_data["image_ids"]
        )
        return Response({"discarded": discarded})


class ImageOut(serializers.ModelSerializer):
    class Meta:
        model = Image
        fields = [
            "id",
            "filename",
            "label",
            "patient_id",
            "split",
            "status",
            "reject_code",
            "reject_reason",
            "sha256",
            "size_bytes",
            "width",
            "height",
            "channels",
            "modality",
            "created_at",
            "upload_expires_at",
        ]
        extra_kwargs = {
            "upload_expires_at": {
                "help_text": "Set while the slot waits for its file: when the unfinished upload expires"
            }
        }


class ImageListApi(generics.ListAPIView):
    serializer_class = ImageOut
    filterset_class = ImageFilter

    @extend_schema(
        tags=["datasets"], summary="Images of a dataset (filter by status, label, split, patient)"
    )
    def get(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        return super().get(request, *args, **kwargs)

    def get_queryset(self):  # type: ignore[no-untyped-def]
        if getattr(self, "swagger_fake_view", False):  # schema generation: no request to scope by
            return self.serializer_class.Meta.model.objects.none()
        return selectors.image_list(dataset=_dataset(self.request, self.kwargs["pk"])[1])


class ImagePatchIn(StrictSerializer):
    label = serializers.CharField(max_length=100, required=False, allow_blank=True)  # type: ignore[assignment]  # a field name DRF stubs also use
    patient_id = serializers.CharField(max_length=100, required=False, allow_blank=True)


class ImageDetailApi(APIView):
    @extend_schema(tags=["datasets"], summary="One image's metadata", responses=ImageOut)
    def get(self, request: Request, pk: int, image_id: int) -> Response:
        dataset = _dataset(request, pk)[1]
        return Response(ImageOut(selectors.image_get(dataset=dataset, image_id=image_id)).data)

    @extend_schema(
        tags=["datasets"],
        summary="Change an image's label or patient",
        request=ImagePatchIn,
        responses=ImageOut,
    )
    def patch(self, request: Request, pk: int, image_id: int) -> Response:
        caller, dataset = _dataset(request, pk)
        image = selectors.image_get(dataset=dataset, image_id=image_id)
        data = ImagePatchIn(data=request.data)
        data.is_valid(raise_exception=True)
        return Response(
            ImageOut(services.image_update(caller=caller, image=image, **data.validated_data)).data
        )

    @extend_schema(
        tags=["datasets"],
        summary="Delete an image and its file in site storage",
        responses={204: None},
    )
    def delete(self, request: Request, pk: int, image_id: int) -> Response:
        caller, dataset = _dataset(request, pk)
        image = selectors.image_get(dataset=dataset, image_id=image_id)
        services.images_delete(caller=caller, dataset=dataset, image_ids=[image.pk])
        return Response(status=status.HTTP_204_NO_CONTENT)


class BulkLabelIn(IdsIn):
    label = serializers.CharField(max_length=100, allow_blank=True)  # type: ignore[assignment]  # a field name DRF stubs also use


class BulkLabelApi(APIView):
    @extend_schema(
        tags=["datasets"],
        summary="Set one label on many images",
        request=BulkLabelIn,
        responses=inline_serializer("BulkLabelled", {"updated": serializers.IntegerField()}),
    )
    def post(self, request: Request, pk: int) -> Response:
        caller, dataset = _dataset(request, pk)
        data = BulkLabelIn(data=request.data)
        data.is_valid(raise_exception=True)
        updated = services.images_bulk_label(caller=caller, dataset=dataset, **data.validated_data)
        return Response({"updated": updated})


class ManifestIn(StrictSerializer):
    csv = serializers.CharField(
        max_length=1_500_000, help_text="CSV text with header filename,label,patient_id"
    )
    add_labels = serializers.BooleanField(default=False)


class ManifestApi(APIView):
    @extend_schema(
        tags=["datasets"],
        summary="Apply a CSV of filename,label,patient_id",
        description=(
            "The CSV download of the image list (export/) can be edited and applied back: a "
            "single quote that it put before a cell beginning with =, +, -, @, a tab or a "
            "carriage return (so spreadsheets do not run it) is removed again."
        ),
        request=ManifestIn,
        responses=inline_serializer(
            "ManifestResult",
            {
                "updated": serializers.IntegerField(),
                "problems": serializers.ListField(child=serializers.DictField()),
                "unknown_columns": serializers.ListField(child=serializers.CharField()),
            },
        ),
    )
    def post(self, request: Request, pk: int) -> Response:
        caller, dataset = _dataset(request, pk)
        data = ManifestIn(data=request.data)
        data.is_valid(raise_exception=True)
        return Response(
            services.manifest_apply(
                caller=caller,
                dataset=dataset,
                csv_text=data.validated_data["csv"],
                add_labels=data.validated_data["add_labels"],
            )
        )


class ThumbnailsApi(APIView):
    @extend_schema(
        tags=["datasets"],
        summary="Short-lived thumbnail links (straight from site storage)",
        request=IdsIn,
        responses=inline_serializer("Thumbnails", {"urls": serializers.DictField()}),
    )
    def post(self, request: Request, pk: int) -> Response:
        dataset = _dataset(request, pk)[1]
        data = IdsIn(data=request.data)
        data.is_valid(raise_exception=True)
        return Response(
            {
                "urls": services.thumbnails_presign(
                    dataset=dataset, image_ids=data.validated_data["image_ids"]
                )
            }
        )


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
        return ArchiveImport.objects.filter(dataset=_dataset(self.request, self.kwargs["pk"])[1])

    @extend_schema(
        tags=["datasets"],
        summary="Upload a zip (one folder per label): get its upload link",
        request=ArchiveIn,
        responses={201: ArchiveSlotOut},
    )
    def post(self, request: Request, pk: int) -> Response:
        caller, dataset = _dataset(request, pk)
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
        return Response(ArchiveOut(_archive(_dataset(request, pk)[1], archive_id)).data)


class ArchiveImportApi(APIView):
    @extend_schema(
        tags=["datasets"],
        summary="The zip is uploaded: unpack it at the site",
        request=None,
        responses={202: ArchiveOut},
    )
    def post(self, request: Request, pk: int, archive_id: int) -> Response:
        caller, dataset = _dataset(request, pk)
        archive = archives.archive_import_start(
            caller=caller, dataset=dataset, archive=_archive(dataset, archive_id)
        )
        return Response(ArchiveOut(archive).data, status=status.HTTP_202_ACCEPTED)
