from __future__ import annotations

from typing import Any

from django_filters.rest_framework import DjangoFilterBackend
from rest_framework.exceptions import ValidationError

from pollen.core.errors import ApiError


class FilterBackend(DjangoFilterBackend):
    """django-filter, with bad filter values reported under the stable code ``invalid_filter``."""

    def filter_queryset(self, request: Any, queryset: Any, view: Any) -> Any:
        try:
            return super().filter_queryset(request, queryset, view)
        except ValidationError as exc:
            detail = exc.detail if isinstance(exc.detail, dict) else {"filter": exc.detail}
            fields = {
                k: " ".join(str(m) for m in v) if isinstance(v, list) else str(v)
                for k, v in detail.items()
            }
            first = next(iter(fields.items()))
            raise ApiError(
                f"The filter '{first[0]}' has a value that is not valid: {first[1]}",
                code="invalid_filter",
                fields=fields,
            ) from exc
