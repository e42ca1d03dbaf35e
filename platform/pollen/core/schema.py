"""The OpenAPI schema's error answers, added to every operation in one place.

Every error has one body (``Error``: ``{"error": {"code", "message", "fields"?}}``). Which
statuses an operation can answer follows from what it is, the same way for every view:

- 400: it takes query parameters or a body, or it changes something (a service refuses a
  request it cannot carry out with ``ApiError``);
- 401: always: a bad or expired credential is refused before the view runs, even where
  signing in is public;
- 403: the caller is signed in but lacks the role or the kind of credential (people on the
  agent API, agents on the clinicians' API), or a session's CSRF check fails;
- 404: it names an object in its path or body, or a page of a list;
- 409: it changes something whose state may forbid the change;
- 413 and 415: it takes a body (too large, not JSON);
- 429: it is throttled;
- 503: always: the database is briefly busy, or the site's agent does not answer.

An operation that declares one of these itself (``extend_schema(responses=...)``) keeps its own.
"""

from __future__ import annotations

from typing import Any

from drf_spectacular.openapi import AutoSchema
from drf_spectacular.plumbing import force_instance
from rest_framework import serializers
from rest_framework.fields import empty
from rest_framework.permissions import AllowAny

from pollen.core.serializers import ErrorSerializer, StrictSerializer

UNSAFE = {"POST", "PUT", "PATCH", "DELETE"}
# One character that Python's str.strip() keeps: \s, and the separators \x1c-\x1f and \x85
# that Python also counts as white space.
NOT_BLANK = r"[^\s\x1c-\x1f\x85]"

DESCRIPTIONS = {
    "400": "The request is not valid: the message says what to change.",
    "401": "No credential, or one that is wrong, expired or revoked.",
    "403": "This credential may not do this.",
    "404": "No such object among the caller's sites, or no such page.",
    "409": "The object's current state does not allow this.",
    "413": "The request body is too large.",
    "415": "The request body is not JSON.",
    "429": "Too many attempts: wait and try again.",
    "503": "Busy or the site's agent is offline: try again shortly.",
}


class PollenAutoSchema(AutoSchema):
    def get_operation(self, *args: Any, **kwargs: Any) -> dict[str, Any] | None:
        operation = super().get_operation(*args, **kwargs)
        if operation is None:
            return None
        body = operation.get("requestBody")
        if body and getattr(force_instance(self.get_request_serializer()), "exactly_one_of", ()):
            body["required"] = True  # an empty body cannot name one of a group
        responses = operation.setdefault("responses", {})
        error = {"schema": self.resolve_serializer(ErrorSerializer, "response").ref}
        for code in sorted(self._error_statuses(operation)):
            responses.setdefault(
                code, {"description": DESCRIPTIONS[code], "content": {"application/json": error}}
            )
        return operation

    def _error_statuses(self, operation: dict[str, Any]) -> set[str]:
        parameters = operation.get("parameters", [])
        in_path = any(p["in"] == "path" for p in parameters)
        in_query = any(p["in"] == "query" for p in parameters)
        has_body = "requestBody" in operation
        changes = self.method in UNSAFE
        public = any(isinstance(p, AllowAny) for p in self.view.get_permissions())
        codes = {"401", "503"}
        if in_query or has_body or changes:
            codes.add("400")
        if not public or changes:
            codes.add("403")
        if in_path or self._is_paginated() or (has_body and not public):
            codes.add("404")
        if changes and not public:
            codes.add("409")
        if has_body:
            codes |= {"413", "415"}
        if self.view.get_throttles():
            codes.add("429")
        return codes

    def _is_paginated(self) -> bool:
        return self.method == "GET" and self._is_list_view() and self._get_paginator() is not None

    def _map_serializer_field(
        self, field: Any, direction: str, bypass_extensions: bool = False
    ) -> Any:
        schema = super()._map_serializer_field(field, direction, bypass_extensions)
        # DRF trims text and then refuses it blank: "  " is as empty as "". Say so (a
        # non-space character somewhere), or the schema would promise that "  " is accepted.
        if (
            direction == "request"
            and isinstance(field, serializers.CharField)
            and field.trim_whitespace
            and not field.allow_blank
            and schema.get("type") == "string"
            and not {"pattern", "format", "enum"} & set(schema)
        ):
            schema["pattern"] = NOT_BLANK
        return schema

    def _map_serializer(
        self, serializer: Any, direction: str, bypass_extensions: bool = False
    ) -> Any:
        schema = super()._map_serializer(serializer, direction, bypass_extensions)
        instance = force_instance(serializer)
        if direction == "response" and isinstance(instance, serializers.ModelSerializer):
            # DRF leaves a field out of an answer only when the object lacks it and the field
            # has no default and may not be null (Field.get_attribute). A model row has every
            # column, so a field built from one is always there, even with a model default
            # (which drf-spectacular reads as optional). Saying so lets the dashboard's
            # generated types (frontend/src/api/schema.d.ts) rely on these fields.
            declared = instance._declared_fields
            always = [
                name
                for name, field in instance.fields.items()
                if name not in declared or field.default is not empty or field.allow_null
            ]
            required = [*schema.get("required", []), *always]
            schema["required"] = [name for name in schema.get("properties", {}) if name in required]
        # A strict serializer refuses unknown fields (400 unknown_field): the schema says so,
        # so that a client (and a fuzzer) knows an extra field is an error, not ignored.
        if direction == "request" and isinstance(instance, StrictSerializer):
            schema["additionalProperties"] = False
            groups = [
                {"oneOf": [{"required": [name]} for name in group]}
                for group in instance.exactly_one_of
            ]
            if groups:
                schema["allOf"] = groups
        return schema
