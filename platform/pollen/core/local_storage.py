"""Embedded default only: serve the filesystem backend's signed local URLs on this machine.

In deployments with S3, browsers and hospital systems send bytes straight to the
site's bucket and this view is switched off (POLLEN_LOCAL_STORAGE=false).
"""

from __future__ import annotations

import os
import tempfile

from django.conf import settings
from django.http import FileResponse, HttpRequest, HttpResponse, JsonResponse
from django.views.decorators.csrf import csrf_exempt

from pollen_contracts.local_signing import InvalidLocalSignature, local_path, verify_local_request

CHUNK = 1024 * 1024


def _error(status: int, code: str, message: str) -> JsonResponse:
    return JsonResponse({"error": {"code": code, "message": message}}, status=status)


@csrf_exempt
def local_storage(request: HttpRequest, site: str, key: str) -> HttpResponse:
    if not settings.LOCAL_STORAGE_ENABLED:
        return _error(404, "not_found", "Local storage is not enabled on this hub.")
    if request.method not in {"GET", "HEAD", "PUT"}:
        return _error(405, "method_not_allowed", "Use PUT to upload or GET to download.")
    try:
        max_bytes = verify_local_request(
            settings.LOCAL_STORAGE_SECRET or "",
            site=site,
            key=key,
            request_method=request.method,
            query=request.GET,
        )
        path = local_path(settings.LOCAL_STORAGE_ROOT, site, key)
    except InvalidLocalSignature as exc:
        return _error(
            403,
            "invalid_signature",
            f"This upload or download link is not valid: {exc.reason}. Ask Pollen for a new link.",
        )
    if request.method == "PUT":
        return _receive(request, path, max_bytes)
    if not path.is_file():
        return _error(404, "not_found", "There is no file at this address.")
    return FileResponse(open(path, "rb"))  # type: ignore[return-value]


def _receive(
    request: HttpRequest, path: os.PathLike[str] | str, max_bytes: int | None
) -> HttpResponse:
    length = int(request.META.get("CONTENT_LENGTH") or 0)
    if max_bytes is not None and length > max_bytes:
        return _error(
            413,
            "file_too_large",
            f"The file is larger than the {max_bytes // (1024 * 1024)} MB allowed.",
        )
    target = os.fspath(path)
    os.makedirs(os.path.dirname(target), exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=os.path.dirname(target), prefix=".upload-")
    written = 0
    try:
        with os.fdopen(fd, "wb") as out:
            while chunk := request.read(CHUNK):
                written += len(chunk)
                if max_bytes is not None and written > max_bytes:
                    raise ValueError("too large")
                out.write(chunk)
        os.replace(tmp, target)
    except ValueError:
        os.unlink(tmp)
        return _error(413, "file_too_large", "The file is larger than allowed.")
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    return HttpResponse(status=200)
