"""Who may read /metrics: the operations token, or a scraper address on the allow-list.

/metrics is not public: its route labels and error counts map the API and its weak spots. It is
a plain Django view (Prometheus speaks neither sessions nor site tokens), so access is decided
here rather than by DRF, and a signed-in user or a site token gets no further than anyone else.
"""

from __future__ import annotations

import hmac
import ipaddress

from django.conf import settings
from django.http import HttpRequest, JsonResponse

NOT_CONFIGURED = (
    "/metrics is turned off because no scraper is configured. Set POLLEN_METRICS_TOKEN "
    "(or POLLEN_METRICS_TOKEN_FILE) and send it as 'Authorization: Bearer <token>', or list the "
    "scraper's addresses in POLLEN_METRICS_ALLOW (for example 10.42.0.0/16)."
)


def _refusal(code: str, message: str, status: int) -> JsonResponse:
    response = JsonResponse({"error": {"code": code, "message": message}}, status=status)
    if status == 401:
        response["WWW-Authenticate"] = 'Bearer realm="metrics"'
    return response


def _bearer(request: HttpRequest) -> str:
    scheme, _, credentials = request.headers.get("Authorization", "").partition(" ")
    return credentials.strip() if scheme.lower() == "bearer" else ""


def _token_matches(request: HttpRequest) -> bool:
    expected: str = settings.METRICS_TOKEN
    given = _bearer(request)
    # Constant-time comparison: the time taken must not reveal how much of a guess was right.
    return bool(expected and given) and hmac.compare_digest(given.encode(), expected.encode())


def _address_allowed(request: HttpRequest) -> bool:
    # REMOTE_ADDR is the TCP peer. X-Forwarded-For is never read: anyone can write that header.
    try:
        peer = ipaddress.ip_address(request.META.get("REMOTE_ADDR", ""))
    except ValueError:
        return False
    return any(peer in network for network in settings.METRICS_ALLOW)


def metrics_refusal(request: HttpRequest) -> JsonResponse | None:
    """None when the request may read /metrics; otherwise the response that refuses it."""
    if _token_matches(request) or _address_allowed(request):
        return None
    if settings.METRICS_TOKEN:
        return _refusal(
            "metrics_token_required",
            "Send the operations token as 'Authorization: Bearer <token>' (POLLEN_METRICS_TOKEN).",
            401,
        )
    if settings.METRICS_ALLOW:
        return _refusal(
            "metrics_forbidden",
            "This address is not in POLLEN_METRICS_ALLOW. Scrape /metrics from an allowed address.",
            403,
        )
    return _refusal("metrics_not_configured", NOT_CONFIGURED, 403)
