"""Serializer base classes shared by every app."""

from __future__ import annotations

from typing import Any

from rest_framework import serializers


class StrictSerializer(serializers.Serializer):
    """Rejects fields it does not know, so a typo never passes silently."""

    def to_internal_value(self, data: Any) -> Any:
        if isinstance(data, dict):
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


class ErrorBodySerializer(serializers.Serializer):
    code = serializers.CharField()
    message = serializers.CharField()
    fields = serializers.DictField(required=False)  # type: ignore[assignment]  # a field name DRF stubs also use


class ErrorSerializer(serializers.Serializer):
    error = ErrorBodySerializer()
