from django.urls import path

from pollen.marketplace import apis

urlpatterns = [
    path("marketplace/models/", apis.PublishedModelListApi.as_view(), name="marketplace-models"),
    path(
        "marketplace/models/<int:pk>/",
        apis.PublishedModelDetailApi.as_view(),
        name="marketplace-model-detail",
    ),
    path("marketplace/versions/", apis.PublishApi.as_view(), name="marketplace-publish"),
    path(
        "marketplace/versions/<int:pk>/",
        apis.PublishedVersionDetailApi.as_view(),
        name="marketplace-version-detail",
    ),
    path(
        "marketplace/versions/<int:pk>/withdraw/",
        apis.VersionWithdrawApi.as_view(),
        name="marketplace-version-withdraw",
    ),
    path(
        "marketplace/versions/<int:pk>/deprecate/",
        apis.VersionDeprecateApi.as_view(),
        name="marketplace-version-deprecate",
    ),
    path(
        "marketplace/versions/<int:pk>/download/",
        apis.VersionDownloadApi.as_view(),
        name="marketplace-version-download",
    ),
    path(
        "marketplace/versions/<int:pk>/exports/",
        apis.VersionExportApi.as_view(),
        name="marketplace-version-export",
    ),
    path(
        "marketplace/exports/<int:pk>/", apis.ExportDetailApi.as_view(), name="marketplace-export"
    ),
    path(
        "marketplace/exports/<int:pk>/download/",
        apis.ExportDownloadApi.as_view(),
        name="marketplace-export-download",
    ),
    path(
        "marketplace/evaluations/",
        apis.EvaluationListApi.as_view(),
        name="marketplace-evaluations",
    ),
    path(
        "marketplace/evaluations/<int:pk>/",
        apis.EvaluationDetailApi.as_view(),
        name="marketplace-evaluation-detail",
    ),
    path(
        "marketplace/evaluations/<int:pk>/share/",
        apis.EvaluationShareApi.as_view(),
        name="marketplace-evaluation-share",
    ),
    path("predictions/", apis.PredictionListApi.as_view(), name="prediction-list"),
    path("predictions/<int:pk>/", apis.PredictionDetailApi.as_view(), name="prediction-detail"),
]
