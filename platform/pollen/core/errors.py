"""Errors with stable codes and a sentence a clinician or integrator can act on.

Every API error has the shape ``{"error": {"code", "message", "fields"?}}``.
Codes are part of the API contract: add new ones, never rename.
"""

from __future__ import annotations

import logging
from typing import Any

from django.core.exceptions import PermissionDenied as DjangoPermissionDenied
from django.core.exceptions import RequestDataTooBig
from django.db import OperationalError
from django.http import Http404
from rest_framework import exceptions, status
from rest_framework.response import Response
from rest_framework.views import exception_handler as drf_exception_handler

logger = logging.getLogger(__name__)


class ApiError(exceptions.APIException):
    """An error raised by a service, carrying its own stable code."""

    status_code: int = status.HTTP_400_BAD_REQUEST
    default_code = "invalid"

    def __init__(
        self,
        message: str,
        *,
        code: str | None = None,
        status_code: int | None = None,
        fields: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(detail=message, code=code or self.default_code)
        self.error_code = code or self.default_code
        self.message = message
        self.fields = fields
        if status_code is not None:
            self.status_code = status_code


class NotFound(ApiError):
    status_code = status.HTTP_404_NOT_FOUND
    default_code = "not_found"


class Conflict(ApiError):
    status_code = status.HTTP_409_CONFLICT
    default_code = "conflict"


class Forbidden(ApiError):
    status_code = status.HTTP_403_FORBIDDEN
    default_code = "forbidden"


class ServiceUnavailable(ApiError):
    status_code = status.HTTP_503_SERVICE_UNAVAILABLE
    default_code = "unavailable"


_DEFAULT_MESSAGES = {
    "not_authenticated": "Sign in, or send a site API token as 'Authorization: Bearer <token>'.",
    "permission_denied": "Your role at this site does not allow this action. Ask your site administrator.",
    "not_found": "Nothing was found at this address, or you do not have access to it.",
    "method_not_allowed": "This address does not accept that method.",
    "malformed_json": "The request body is not valid JSON. Check quotes, commas and brackets.",
    "unsupported_media_type": "Send the request body as JSON with 'Content-Type: application/json'.",
    "payload_too_large": "The request body is too large. Send image files to site storage through upload slots, not to the API.",
    "rate_limited": "Too many attempts. Wait a little and try again.",
    "not_acceptable": "This address answers in JSON only.",
}


def _error(code: str, message: str, http_status: int, fields: Any = None) -> Response:
    body: dict[str, Any] = {"code": code, "message": message}
    if fields:
        body["fields"] = fields
    return Response({"error": body}, status=http_status)


def _flatten_fields(detail: Any) -> Any:
    if isinstance(detail, dict):
        return {key: _flatten_fields(value) for key, value in detail.items()}
    if isinstance(detail, list):
        flat = [_flatten_fields(item) for item in detail]
        if all(isinstance(item, str) for item in flat):
            return " ".join(flat)
        return flat
    return str(detail)


def _first_message(fields: Any, prefix: str = "") -> str:
    if isinstance(fields, dict):
        for key, value in fields.items():
            label = key if key != "non_field_errors" else ""
            return _first_message(value, f"{prefix}{label}: " if label else prefix)
    if isinstance(fields, list) and fields:
        return _first_message(fields[0], prefix)
    return f"{prefix}{fields}"


def _validation_code(detail: Any) -> str:
    codes = (
        exceptions.ValidationError(detail).get_codes() if not isinstance(detail, str) else "invalid"
    )
    flat: list[str] = []

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)
        else:
            flat.append(str(node))

    walk(codes)
    return "unknown_field" if "unknown_field" in flat else "invalid"


def exception_handler(exc: Exception, context: dict[str, Any]) -> Response | None:
    if isinstance(exc, ApiError):
        return _error(exc.error_code, exc.message, exc.status_code, exc.fields)
    if isinstance(exc, OperationalError):
        # The database is briefly unavailable (locked, failing over): a retry will do.
        logger.warning("database unavailable: %s", exc)
        busy = _error(
            "temporarily_unavailable", "The service is busy. Try again in a few seconds.", 503
        )
        busy["Retry-After"] = "2"
        return busy
    if isinstance(exc, RequestDataTooBig):
        return _error("payload_too_large", _DEFAULT_MESSAGES["payload_too_large"], 413)
    if isinstance(exc, Http404):
        exc = exceptions.NotFound()
    elif isinstance(exc, DjangoPermissionDenied):
        exc = exceptions.PermissionDenied()
    drf_response = drf_exception_handler(exc, context)
    if drf_response is None:
        return None
    response: Response = drf_response
    if isinstance(exc, exceptions.ValidationError):
        fields = _flatten_fields(exc.detail)
        code = _validation_code(exc.detail)
        message = _first_message(fields) or "Some fields are not valid."
        if not isinstance(exc.detail, dict):
            fields = None
        return _error(code, message, 400, fields)
    code_map: dict[type[Exception], str] = {
        exceptions.ParseError: "malformed_json",
        exceptions.NotAuthenticated: "not_authenticated",
        exceptions.PermissionDenied: "permission_denied",
        exceptions.NotFound: "not_found",
        exceptions.MethodNotAllowed: "method_not_allowed",
        exceptions.UnsupportedMediaType: "unsupported_media_type",
        exceptions.Throttled: "rate_limited",
        exceptions.NotAcceptable: "not_acceptable",
    }
    if isinstance(exc, exceptions.AuthenticationFailed):
        codes = exc.get_codes()
        code = (
            codes
            if isinstance(codes, str) and codes != "authentication_failed"
            else "invalid_token"
        )
        return _error(code, str(exc.detail), response.status_code)
    for exc_type, code in code_map.items():
        if isinstance(exc, exc_type):
            message = _DEFAULT_MESSAGES.get(code, str(getattr(exc, "detail", code)))
            if code == "malformed_json":
                message = f"{message} ({getattr(exc, 'detail', '')})".replace(" ()", "")
            if code == "permission_denied" and str(getattr(exc, "detail", "")) not in {
                "",
                str(exceptions.PermissionDenied.default_detail),
            }:
                message = str(getattr(exc, "detail", message))
            return _error(code, message, response.status_code)
    return _error("error", str(getattr(exc, "detail", "Request failed.")), response.status_code)
