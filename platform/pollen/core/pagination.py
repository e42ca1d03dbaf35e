from __future__ import annotations

from typing import Any

from rest_framework.exceptions import NotFound
from rest_framework.pagination import PageNumberPagination

from pollen.core.errors import ApiError


class Pagination(PageNumberPagination):
    """Page-number pagination: ``?page=2&page_size=100`` (at most 500 a page)."""

    page_size = 50
    page_size_query_param = "page_size"
    max_page_size = 500
    invalid_page_message = (
        "That page does not exist. Use a page number between 1 and the last page."
    )

    def paginate_queryset(self, queryset: Any, request: Any, view: Any = None) -> Any:
        try:
            return super().paginate_queryset(queryset, request, view)
        except NotFound as exc:
            raise ApiError(self.invalid_page_message, code="invalid_page", status_code=404) from exc
