"""Serializer base classes shared by every app."""

from __future__ import annotations

from typing import Any, ClassVar

from rest_framework import serializers


class StrictSerializer(serializers.Serializer):
    """Rejects fields it does not know, so a typo never passes silently."""

    # It also refuses a number sent for a text field, so that what the schema says (a string)
    # is what the API accepts. ``exactly_one_of`` names groups of fields of which a request
    # gives exactly one: the schema states each group (``oneOf``); the view refuses without.
    exactly_one_of: ClassVar[tuple[tuple[str, ...], ...]] = ()

    def to_internal_value(self, data: Any) -> Any:
        if isinstance(data, dict):
            _refuse_non_text(self.fields, data)
            unknown = sorted(set(data) - set(self.fields))
            if unknown:
                raise serializers.ValidationError(
                    {
                        name: [
                            serializers.ErrorDetail(
                                f"Unknown field '{name}'. Remove it or check its spelling.",
                                code="unknown_field",
                            )
                        ]
                        for name in unknown
                    }
                )
        elif data is not None and not isinstance(data, dict):
            raise serializers.ValidationError(
                {"non_field_errors": ["Send a JSON object with named fields."]}
            )
        return super().to_internal_value(data)


def _refuse_non_text(fields: Any, data: dict[str, Any]) -> None:
    wrong = {
        name: [
            serializers.ErrorDetail(
                'Send this as text, in quotes (for example "0042").', code="invalid"
            )
        ]
        for name, field in fields.items()
        if isinstance(field, serializers.CharField)
        and name in data
        and not isinstance(data[name], str)
        and not (data[name] is None and field.allow_null)
    }
    if wrong:
        raise serializers.ValidationError(wrong)


class ErrorBodySerializer(serializers.Serializer):
    code = serializers.CharField()
    message = serializers.CharField()
    fields = serializers.DictField(required=False)  # type: ignore[assignment]  # a field name DRF stubs also use


class ErrorSerializer(serializers.Serializer):
    error = ErrorBodySerializer()
