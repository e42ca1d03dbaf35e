"""Marketplace endpoints: download a version's weights, export it to ONNX (both audited)."""

from __future__ import annotations

from drf_spectacular.utils import OpenApiParameter, extend_schema, inline_serializer
from rest_framework import serializers, status
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from pollen.core.serializers import StrictSerializer
from pollen.marketplace import exports, selectors
from pollen.marketplace.listing_apis import own_site, request_caller
from pollen.marketplace.models import (
    ModelExport,
)


class ExportOut(serializers.ModelSerializer):
    site = serializers.CharField(source="site.slug")
    published_version = serializers.IntegerField(source="published_version_id")

    class Meta:
        model = ModelExport
        fields = [
            "id",
            "site",
            "status",
            "attempt",
            "published_version",
            "format",
            "sha256",
            "size_bytes",
            "details",
            "error_code",
            "message",
            "created_at",
            "finished_at",
        ]


_SITE_PARAMETER = OpenApiParameter(
    "site",
    str,
    description="Your site you download for (slug); required if you belong to several",
)


class VersionDownloadApi(APIView):
    @extend_schema(
        tags=["marketplace"],
        summary="Short-lived links to the weights (safetensors), manifest and card (audited)",
        description="The download is recorded in the audit log of the site you download for, "
        "with your name, and, for another site's model, in the publishing site's log as a "
        "download by your site (without your name).",
        parameters=[_SITE_PARAMETER],
        responses=inline_serializer(
            "Download",
            {
                "weights_url": serializers.URLField(),
                "weights_sha256": serializers.CharField(),
                "manifest_url": serializers.URLField(),
                "manifest_sha256": serializers.CharField(),
                "card_url": serializers.URLField(),
                "expires_in": serializers.IntegerField(),
            },
        ),
    )
    def get(self, request: Request, pk: int) -> Response:
        caller = request_caller(request)
        version = selectors.published_version_get(caller=caller, version_id=pk)
        site_id = own_site(caller, request.query_params.get("site"), what="downloads it for")
        return Response(exports.version_download(caller=caller, version=version, site_id=site_id))


class ExportIn(StrictSerializer):
    site = serializers.CharField(
        max_length=50, required=False, help_text="Your site that runs the export"
    )
    format = serializers.ChoiceField(choices=["onnx"], default="onnx")


class VersionExportApi(APIView):
    @extend_schema(
        tags=["marketplace"],
        summary="Export a version to ONNX at your site (checked against PyTorch)",
        request=ExportIn,
        responses={202: ExportOut},
    )
    def post(self, request: Request, pk: int) -> Response:
        caller = request_caller(request)
        version = selectors.published_version_get(caller=caller, version_id=pk)
        data = ExportIn(data=request.data)
        data.is_valid(raise_exception=True)
        export = exports.export_create(
            caller=caller,
            site_id=own_site(caller, data.validated_data.get("site")),
            published_version=version,
        )
        export = selectors.export_get(caller=caller, export_id=export.pk)
        return Response(ExportOut(export).data, status=status.HTTP_202_ACCEPTED)


class ExportDetailApi(APIView):
    @extend_schema(tags=["marketplace"], summary="An ONNX export", responses=ExportOut)
    def get(self, request: Request, pk: int) -> Response:
        caller = request_caller(request)
        return Response(ExportOut(selectors.export_get(caller=caller, export_id=pk)).data)


class ExportDownloadApi(APIView):
    @extend_schema(
        tags=["marketplace"],
        summary="A short-lived link to the ONNX file (audited)",
        description="For the site that made the export. Recorded like a download of the "
        "weights: in that site's audit log, and as a download by that site in the publisher's.",
        parameters=[
            OpenApiParameter(
                "site",
                str,
                description="Your site that made the export (optional: the export names it)",
            )
        ],
        responses=inline_serializer(
            "ExportDownload",
            {
                "onnx_url": serializers.URLField(),
                "sha256": serializers.CharField(),
                "expires_in": serializers.IntegerField(),
            },
        ),
    )
    def get(self, request: Request, pk: int) -> Response:
        caller = request_caller(request)
        slug = request.query_params.get("site")
        site_id = caller.member_site(slug) if slug else None
        export = selectors.export_get(caller=caller, export_id=pk, site_id=site_id)
        return Response(exports.export_download(caller=caller, export=export))
