"""Dataset endpoints for images: list, relabel, bulk-label, delete, label manifests and thumbnails."""

from __future__ import annotations

from typing import Any

from drf_spectacular.utils import extend_schema, inline_serializer
from rest_framework import generics, serializers, status
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from pollen.core.serializers import StrictSerializer
from pollen.datasets import (
    images,
    label_manifest,
    selectors,
)
from pollen.datasets.apis import dataset_for_request
from pollen.datasets.filters import ImageFilter
from pollen.datasets.models import Image, Mask
from pollen.datasets.uploads_apis import IdsIn


class MaskOut(serializers.ModelSerializer):
    class Meta:
        model = Mask
        fields = [
            "id",
            "reader",
            "filenames",
            "status",
            "reject_code",
            "reject_reason",
            "stats",
            "agreement_dice",
        ]
        extra_kwargs = {
            "stats": {
                "help_text": "empty, foreground_fraction, class_pixels, components (separate "
                "lesions), largest_component_px"
            },
            "agreement_dice": {
                "help_text": "Dice against the reference reader's mask of the same image"
            },
        }


class ImageOut(serializers.ModelSerializer):
    masks = MaskOut(many=True, read_only=True)

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
            "masks",
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
        return selectors.image_list(
            dataset=dataset_for_request(self.request, self.kwargs["pk"])[1]
        ).prefetch_related("masks")


class ImagePatchIn(StrictSerializer):
    label = serializers.CharField(max_length=100, required=False, allow_blank=True)  # type: ignore[assignment]  # a field name DRF stubs also use
    patient_id = serializers.CharField(max_length=100, required=False, allow_blank=True)


class ImageDetailApi(APIView):
    @extend_schema(tags=["datasets"], summary="One image's metadata", responses=ImageOut)
    def get(self, request: Request, pk: int, image_id: int) -> Response:
        dataset = dataset_for_request(request, pk)[1]
        return Response(ImageOut(selectors.image_get(dataset=dataset, image_id=image_id)).data)

    @extend_schema(
        tags=["datasets"],
        summary="Change an image's label or patient",
        request=ImagePatchIn,
        responses=ImageOut,
    )
    def patch(self, request: Request, pk: int, image_id: int) -> Response:
        caller, dataset = dataset_for_request(request, pk)
        image = selectors.image_get(dataset=dataset, image_id=image_id)
        data = ImagePatchIn(data=request.data)
        data.is_valid(raise_exception=True)
        return Response(
            ImageOut(images.image_update(caller=caller, image=image, **data.validated_data)).data
        )

    @extend_schema(
        tags=["datasets"],
        summary="Delete an image and its file in site storage",
        responses={204: None},
    )
    def delete(self, request: Request, pk: int, image_id: int) -> Response:
        caller, dataset = dataset_for_request(request, pk)
        image = selectors.image_get(dataset=dataset, image_id=image_id)
        images.images_delete(caller=caller, dataset=dataset, image_ids=[image.pk])
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
        caller, dataset = dataset_for_request(request, pk)
        data = BulkLabelIn(data=request.data)
        data.is_valid(raise_exception=True)
        updated = images.images_bulk_label(caller=caller, dataset=dataset, **data.validated_data)
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
        caller, dataset = dataset_for_request(request, pk)
        data = ManifestIn(data=request.data)
        data.is_valid(raise_exception=True)
        return Response(
            label_manifest.manifest_apply(
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
        responses=inline_serializer(
            "Thumbnails",
            {
                "urls": serializers.DictField(child=serializers.CharField()),
                "mask_urls": serializers.DictField(
                    child=serializers.CharField(),
                    help_text="Segmentation: per mask id, its outline drawn over the image",
                ),
            },
        ),
    )
    def post(self, request: Request, pk: int) -> Response:
        dataset = dataset_for_request(request, pk)[1]
        data = IdsIn(data=request.data)
        data.is_valid(raise_exception=True)
        urls, mask_urls = images.thumbnails_presign(
            dataset=dataset, image_ids=data.validated_data["image_ids"]
        )
        return Response({"urls": urls, "mask_urls": mask_urls})
