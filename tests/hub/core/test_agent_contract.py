"""The agent's API and the typed contract in ``pollen_contracts`` describe the same messages.

Every operation of the agent's OpenAPI schema has an entry in ``AGENT_ENDPOINTS``; the hub's
request serializer of each (what the hub accepts, and documents) names exactly the fields of
its contract type (what the agent builds), with the same required ones, all the way down.
What the hub answers with is checked by the claim tests that rebuild each spec
(``tests/hub/*/test_*_spec_contract.py``) and by the tests that run a real agent.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from typing import Any

import pytest

from pollen_contracts.contract import Contract
from pollen_contracts.endpoints import AGENT_ENDPOINTS

pytestmark = pytest.mark.django_db


@pytest.fixture(scope="module")
def agent_schema(django_db_setup, django_db_blocker) -> dict[str, Any]:
    from drf_spectacular.generators import SchemaGenerator  # noqa: F401  (Django is set up)

    from pollen.core.openapi import AgentSchemaGenerator

    with django_db_blocker.unblock():
        return AgentSchemaGenerator(api_version="1.0.0").get_schema(request=None, public=True)


def _operations(schema: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {
        f"{method.upper()} {path}": operation
        for path, operations in schema["paths"].items()
        for method, operation in operations.items()
    }


def _resolve(schema: dict[str, Any], node: dict[str, Any]) -> dict[str, Any]:
    while True:
        if "$ref" in node:
            node = schema["components"]["schemas"][node["$ref"].rsplit("/", 1)[1]]
        elif "allOf" in node and len(node["allOf"]) == 1:
            node = node["allOf"][0]
        elif "oneOf" in node:  # nullable objects
            node = next(n for n in node["oneOf"] if n.get("type") != "null")
        else:
            return node


def _contract_of(hint: Any) -> type[Contract] | None:
    """The contract type a field holds, through Optional and list."""
    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType, list):
        for arg in typing.get_args(hint):
            found = _contract_of(arg)
            if found is not None:
                return found
        return None
    return hint if isinstance(hint, type) and issubclass(hint, Contract) else None


def _differences(
    schema: dict[str, Any],
    node: dict[str, Any],
    kind: type[Contract],
    envelope: tuple[str, ...],
    at: str,
    *,
    answer: bool = False,
) -> list[str]:
    """What differs; in an ``answer`` the hub may always send a field the contract defaults."""
    node = _resolve(schema, node)
    if node.get("type") == "array":
        node = _resolve(schema, node["items"])
    fields = {f.name: f for f in dataclasses.fields(kind) if f.init}
    hints = typing.get_type_hints(kind)
    props = set(node.get("properties", {}))
    found: list[str] = []
    if props != set(fields) | set(envelope):
        found.append(
            f"{at or kind.__name__}: only the hub has {sorted(props - set(fields) - set(envelope))}, "
            f"only the contract has {sorted(set(fields) - props)}"
        )
    required = {
        name
        for name, f in fields.items()
        if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING
    }
    hub_required = set(node.get("required", [])) - set(envelope)
    if (not required <= hub_required) if answer else hub_required != required:
        found.append(
            f"{at or kind.__name__}: required by the hub {sorted(hub_required)}, "
            f"by the contract {sorted(required)}"
        )
    for name in sorted(props & set(fields)):
        nested = _contract_of(hints[name])
        if nested is not None:
            found += _differences(
                schema, node["properties"][name], nested, (), f"{at}.{name}", answer=answer
            )
    return found


def test_every_agent_operation_has_a_contract(agent_schema):
    operations = set(_operations(agent_schema))
    assert operations - set(AGENT_ENDPOINTS) == set(), "endpoints without a contract"
    assert set(AGENT_ENDPOINTS) - operations == set(), "contracts without an endpoint"


@pytest.mark.parametrize("key", sorted(AGENT_ENDPOINTS))
def test_the_hub_accepts_exactly_what_the_contract_sends(agent_schema, key):
    endpoint = AGENT_ENDPOINTS[key]
    body = _operations(agent_schema)[key].get("requestBody")
    if endpoint.request is None:
        assert body is None, f"{key} takes a body the contract does not describe"
        return
    assert body is not None, f"{key} documents no request body"
    node = body["content"]["application/json"]["schema"]
    assert _differences(agent_schema, node, endpoint.request, endpoint.envelope, "") == []


@pytest.mark.parametrize(
    "key", sorted(k for k, e in AGENT_ENDPOINTS.items() if e.many and e.response is not None)
)
def test_the_lists_the_agent_reads_are_the_contracts_rows(agent_schema, key):
    endpoint = AGENT_ENDPOINTS[key]
    assert endpoint.response is not None
    answer = _operations(agent_schema)[key]["responses"]["200"]["content"]["application/json"]
    page = _resolve(agent_schema, answer["schema"])
    rows = page["properties"]["results"]
    assert _differences(agent_schema, rows, endpoint.response, (), "", answer=True) == []
