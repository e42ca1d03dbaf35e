from __future__ import annotations

from django.conf import settings
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.views.decorators.csrf import csrf_exempt


# No endpoint here, so nothing to protect: without the exemption a POST to a mistyped address
# was answered with Django's HTML "CSRF cookie not set" page instead of this JSON 404.
@csrf_exempt
def api_not_found(request: HttpRequest) -> JsonResponse:
    return JsonResponse(
        {
            "error": {
                "code": "not_found",
                "message": "There is no API endpoint at this address. See /api/v1/docs/.",
            }
        },
        status=404,
    )


def spa_index(request: HttpRequest) -> HttpResponse:
    """Serve the dashboard's single page; the browser router takes it from there."""
    index = settings.FRONTEND_DIST / "index.html"
    if not index.is_file():
        return HttpResponse(
            "<h1>Pollen</h1><p>The dashboard has not been built yet. Run <code>make run</code>, "
            "or <code>make frontend</code>. The API is at <a href='/api/v1/docs/'>/api/v1/docs/</a>.</p>",
            status=200,
        )
    return HttpResponse(index.read_bytes(), content_type="text/html; charset=utf-8")
