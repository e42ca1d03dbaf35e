from __future__ import annotations

from typing import Any

import django_filters
from django import forms
from django_filters.rest_framework import DjangoFilterBackend
from drf_spectacular.utils import extend_schema_field
from rest_framework.exceptions import ValidationError

from pollen.core.errors import ApiError

# The largest id a database row can have (a signed 64-bit integer, in SQLite and PostgreSQL).
# A larger number in a query overflowed SQLite's driver and answered 500.
ID_MAX = 2**63 - 1


@extend_schema_field({"type": "integer", "minimum": 1, "maximum": ID_MAX})
class IdFilter(django_filters.NumberFilter):
    """A filter by an object's id: a whole number from 1 to ``ID_MAX``, or a 400."""

    field_class = forms.IntegerField

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("min_value", 1)
        kwargs.setdefault("max_value", ID_MAX)
        kwargs.setdefault(
            "error_messages",
            {
                "invalid": "Give an id: a whole number.",
                "min_value": "Give an id of 1 or more.",
                "max_value": f"Give an id of at most {ID_MAX}.",
            },
        )
        super().__init__(*args, **kwargs)

    def get_max_validator(self) -> None:
        return None  # the form field checks the range; NumberFilter's own cap is 1e50


FRACTION_MESSAGE = "Give a number from 0 to 1, such as 0.85."


@extend_schema_field({"type": "number", "minimum": 0, "maximum": 1})
class FractionFilter(django_filters.NumberFilter):
    """A filter by a number from 0 to 1 (an AUC, a rate), or a 400."""

    field_class = forms.FloatField  # refuses inf and NaN

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("min_value", 0)
        kwargs.setdefault("max_value", 1)
        kwargs.setdefault(
            "error_messages",
            {key: FRACTION_MESSAGE for key in ("invalid", "min_value", "max_value")},
        )
        super().__init__(*args, **kwargs)

    def get_max_validator(self) -> None:
        return None


class FilterBackend(DjangoFilterBackend):
    """django-filter, with bad filter values reported under the stable code ``invalid_filter``."""

    def filter_queryset(self, request: Any, queryset: Any, view: Any) -> Any:
        filterset_class = self.get_filterset_class(view, queryset)
        if filterset_class is not None:
            _check_single_values(request.query_params, filterset_class.base_filters)
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


BOOLEANS = {"true", "false"}


def _check_single_values(query: Any, filters: dict[str, Any]) -> None:
    """Refuse what django-filter would silently ignore: a filter given twice (it kept one of
    them) and a true/false filter with another value (it filtered nothing)."""
    for name, filter_ in filters.items():
        values = query.getlist(name)
        many = isinstance(
            filter_, django_filters.MultipleChoiceFilter | django_filters.BaseCSVFilter
        )
        if len(values) > 1 and not many:
            _refuse(name, f"Give the filter '{name}' once, not {len(values)} times.")
        boolean = isinstance(filter_, django_filters.BooleanFilter)
        if boolean and values and values[0] not in BOOLEANS | {""}:
            _refuse(name, f"The filter '{name}' takes true or false.")


def _refuse(name: str, sentence: str) -> None:
    raise ApiError(sentence, code="invalid_filter", fields={name: sentence})
