from __future__ import annotations

from typing import Any

from rest_framework.exceptions import NotFound
from rest_framework.pagination import PageNumberPagination

from pollen.core.errors import ApiError

# Pages are counted in whole numbers; a larger one is refused before it reaches the database.
PAGE_MAX = 2**31 - 1


class Pagination(PageNumberPagination):
    """Page-number pagination: ``?page=2&page_size=100`` (at most 500 a page).

    A page or page size that is not a whole number in range is a 400 ``invalid_page``; a page
    after the last one is a 404 ``invalid_page``.
    """

    page_size = 50
    page_size_query_param = "page_size"
    max_page_size = 500
    invalid_page_message = (
        "That page does not exist. Use a page number between 1 and the last page."
    )

    def paginate_queryset(self, queryset: Any, request: Any, view: Any = None) -> Any:
        self._check_whole_number(request, self.page_query_param, PAGE_MAX, allow={"last"})
        self._check_whole_number(request, self.page_size_query_param, self.max_page_size)
        try:
            return super().paginate_queryset(queryset, request, view)
        except NotFound as exc:
            raise ApiError(self.invalid_page_message, code="invalid_page", status_code=404) from exc

    def _check_whole_number(
        self, request: Any, name: str, maximum: int, allow: frozenset[str] | set[str] = frozenset()
    ) -> None:
        values = request.query_params.getlist(name)
        if not values or (len(values) == 1 and values[0] in allow):
            return
        sentence = f"'{name}' must be one whole number from 1 to {maximum}."
        raw = values[-1]
        if len(values) > 1 or not raw.isascii() or not raw.isdigit():
            raise ApiError(sentence, code="invalid_page", fields={name: sentence})
        if not 1 <= int(raw) <= maximum:
            raise ApiError(sentence, code="invalid_page", fields={name: sentence})

    def get_schema_operation_parameters(self, view: Any) -> list[dict[str, Any]]:
        parameters = super().get_schema_operation_parameters(view)
        maxima = {self.page_query_param: PAGE_MAX, self.page_size_query_param: self.max_page_size}
        for parameter in parameters:
            schema = parameter.setdefault("schema", {})
            schema.update({"type": "integer", "minimum": 1, "maximum": maxima[parameter["name"]]})
        return parameters
