from django.urls import path

from pollen.datasets import apis, images_apis, uploads_apis

urlpatterns = [
    path("datasets/", apis.DatasetListApi.as_view(), name="dataset-list"),
    path("datasets/<int:pk>/", apis.DatasetDetailApi.as_view(), name="dataset-detail"),
    path("datasets/<int:pk>/stats/", apis.DatasetStatsApi.as_view(), name="dataset-stats"),
    path("datasets/<int:pk>/export/", apis.DatasetExportApi.as_view(), name="dataset-export"),
    path(
        "datasets/<int:pk>/deletion-impact/",
        apis.DeletionImpactApi.as_view(),
        name="dataset-deletion-impact",
    ),
    path(
        "datasets/<int:pk>/upload-slots/",
        uploads_apis.UploadSlotsApi.as_view(),
        name="dataset-upload-slots",
    ),
    path(
        "datasets/<int:pk>/uploads/complete/",
        uploads_apis.UploadsCompleteApi.as_view(),
        name="dataset-uploads-complete",
    ),
    path(
        "datasets/<int:pk>/uploads/resume/",
        uploads_apis.UploadsResumeApi.as_view(),
        name="dataset-uploads-resume",
    ),
    path(
        "datasets/<int:pk>/uploads/discard/",
        uploads_apis.UploadsDiscardApi.as_view(),
        name="dataset-uploads-discard",
    ),
    path("datasets/<int:pk>/images/", images_apis.ImageListApi.as_view(), name="image-list"),
    path(
        "datasets/<int:pk>/images/bulk-label/",
        images_apis.BulkLabelApi.as_view(),
        name="image-bulk-label",
    ),
    path(
        "datasets/<int:pk>/images/<int:image_id>/",
        images_apis.ImageDetailApi.as_view(),
        name="image-detail",
    ),
    path("datasets/<int:pk>/manifest/", images_apis.ManifestApi.as_view(), name="dataset-manifest"),
    path(
        "datasets/<int:pk>/thumbnails/",
        images_apis.ThumbnailsApi.as_view(),
        name="dataset-thumbnails",
    ),
    path("datasets/<int:pk>/archives/", uploads_apis.ArchiveListApi.as_view(), name="archive-list"),
    path(
        "datasets/<int:pk>/archives/<int:archive_id>/",
        uploads_apis.ArchiveDetailApi.as_view(),
        name="archive-detail",
    ),
    path(
        "datasets/<int:pk>/archives/<int:archive_id>/import/",
        uploads_apis.ArchiveImportApi.as_view(),
        name="archive-import",
    ),
]
