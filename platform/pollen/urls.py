from django.contrib import admin
from django.urls import URLPattern, URLResolver, include, path, re_path
from drf_spectacular.views import SpectacularAPIView, SpectacularRedocView, SpectacularSwaggerView

from pollen.core import views as core_views
from pollen.core.local_storage import local_storage
from pollen.core.openapi import AgentSchemaGenerator
from pollen.ops import views as ops_views

# Each app owns its urls.py (clinical API) and agent_urls.py (the site agent's endpoints).
api_v1: list[URLPattern | URLResolver] = [
    path("", include("pollen.accounts.urls")),
    path("", include("pollen.datasets.urls")),
    path("", include("pollen.training.urls")),
    path("", include("pollen.marketplace.urls")),
    path("", include("pollen.federation.urls")),
    # The site agent's endpoints, documented apart from the public API that hospital systems use.
    path(
        "agent/schema/",
        SpectacularAPIView.as_view(api_version="1.0.0", generator_class=AgentSchemaGenerator),
        name="agent-schema",
    ),
    path("agent/docs/", SpectacularSwaggerView.as_view(url_name="agent-schema"), name="agent-docs"),
    path("agent/", include("pollen.accounts.agent_urls")),
    path("agent/", include("pollen.datasets.agent_urls")),
    path("agent/", include("pollen.training.agent_urls")),
    path("agent/", include("pollen.marketplace.agent_urls")),
    path("agent/", include("pollen.federation.agent_urls")),
    path("schema/", SpectacularAPIView.as_view(api_version="1.0.0"), name="schema"),
    path("docs/", SpectacularSwaggerView.as_view(url_name="schema"), name="api-docs"),
    path("redoc/", SpectacularRedocView.as_view(url_name="schema"), name="api-redoc"),
]

urlpatterns = [
    path("api/v1/", include(api_v1)),
    re_path(r"^api/", core_views.api_not_found),
    path("admin/", admin.site.urls),
    path("local-storage/<str:site>/<path:key>", local_storage, name="local-storage"),
    path("healthz", ops_views.healthz, name="healthz"),
    path("readyz", ops_views.readyz, name="readyz"),
    path("metrics", ops_views.metrics, name="metrics"),
    re_path(r"^(?!static/|admin/|api/|local-storage/).*$", core_views.spa_index, name="spa"),
]
