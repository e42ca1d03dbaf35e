"""The dashboard's API types are generated from the hub's schema, and the committed copy of the
schema (frontend/src/api/openapi.json, from which `npm run gen:api` makes schema.d.ts) must be
the schema the hub serves: a change to the API without `make api-types` fails here."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from django.core.management import call_command
from django.db import connection

COMMITTED = Path(__file__).resolve().parents[3] / "frontend" / "src" / "api" / "openapi.json"
ADVICE = "the API changed: run `make api-types` and commit frontend/src/api/"


def _drift(committed: dict[str, Any], served: dict[str, Any]) -> list[str]:
    """The paths and components whose description differs, by name (empty when in step)."""
    drift = []
    for section, key in (("paths", None), ("components", "schemas")):
        old = committed.get(section, {})
        new = served.get(section, {})
        if key:
            old, new = old.get(key, {}), new.get(key, {})
        drift += [
            f"{section} {name}"
            for name in sorted(set(old) | set(new))
            if old.get(name) != new.get(name)
        ]
    if not drift and committed != served:
        drift.append("the schema's header")
    return drift


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    # The same command as `make api-types`, so that the two can only differ by the API itself.
    target = tmp_path_factory.mktemp("schema") / "openapi.json"
    call_command("spectacular", "--format", "openapi-json", "--file", str(target))
    return json.loads(target.read_text())


def test_committed_schema_is_the_one_the_hub_serves(served):
    if connection.vendor != "postgresql":
        pytest.skip(
            "the committed schema is made on PostgreSQL (integer ranges come from the database)"
        )
    drift = _drift(json.loads(COMMITTED.read_text()), served)
    assert not drift, f"{ADVICE} (differs: {', '.join(drift[:10])})"


def test_drift_names_what_changed():
    base = {
        "info": {"version": "1"},
        "paths": {"/a/": {"get": {}}},
        "components": {"schemas": {"A": {"type": "object"}}},
    }
    assert _drift(base, json.loads(json.dumps(base))) == []
    changed = json.loads(json.dumps(base))
    changed["components"]["schemas"]["A"]["required"] = ["id"]
    changed["paths"]["/b/"] = {"get": {}}
    assert _drift(base, changed) == ["paths /b/", "components A"]
    assert _drift(base, {**base, "info": {"version": "2"}}) == ["the schema's header"]


def _component(schema: dict[str, Any], name: str) -> dict[str, Any]:
    return schema["components"]["schemas"][name]


def test_every_column_of_a_model_answer_is_required_so_the_dashboard_can_rely_on_it(served):
    # A dataset's description and status have model defaults; drf-spectacular alone calls them
    # optional, and the generated type would then say `description?: string`.
    dataset = _component(served, "DatasetOut")
    assert {"description", "status", "modality", "label_names"} <= set(dataset["required"])
    assert set(dataset["required"]) == set(dataset["properties"])
    # A declared field with a default (a job's starting point's name) is there too, as null.
    assert "starting_point_name" in _component(served, "JobOut")["required"]


def test_a_field_that_may_be_absent_stays_optional(served):
    # Plain serializers describe agent-reported JSON whose keys may be missing.
    assert "auc" not in _component(served, "ComparedModel").get("required", [])
    assert "fields" not in _component(served, "ErrorBody").get("required", [])


def test_a_membership_role_is_one_of_the_roles(served):
    role = _component(served, "MembershipBrief")["properties"]["role"]
    assert role == {"$ref": "#/components/schemas/RoleEnum"}
