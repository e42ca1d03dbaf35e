"""Integer parameters out of range are a clear 400 (query) or 404 (path), never a 500.

Found by fuzzing: ``?dataset=1e20`` or ``99999999999999999999`` overflowed SQLite's 64-bit
integers and answered 500. The tests walk the schema, so a new integer parameter is covered
the day it is added.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.django_db

REPO = Path(__file__).resolve().parents[3]
HUGE = "99999999999999999999"
BAD_INTEGERS = [HUGE, "1e20", "-5", "2.5", "9223372036854775808"]


def _schema(client) -> dict:
    return client.get("/api/v1/schema/?format=json").json()


def _numeric_query_parameters(schema: dict) -> list[tuple[str, str, dict]]:
    found = []
    for path, item in schema["paths"].items():
        operation = item.get("get")
        if not operation or path.startswith("/api/v1/agent/"):
            continue
        for parameter in operation.get("parameters", []):
            if parameter["in"] == "query" and parameter["schema"].get("type") in {
                "integer",
                "number",
            }:
                found.append((path, parameter["name"], parameter["schema"]))
    return found


def _concrete(path: str) -> str:
    return re.sub(r"\{[a-z_]+\}", "1", path.replace("{slug}", "site-a"))


def test_every_integer_query_parameter_states_its_range_in_the_schema(client_for, clinician_a):
    parameters = _numeric_query_parameters(_schema(client_for(clinician_a)))
    assert len(parameters) > 20
    for path, name, schema in parameters:
        assert "minimum" in schema and "maximum" in schema, (path, name, schema)
        if name in {"page", "page_size", "dataset", "published_model", "published_version"}:
            assert schema["type"] == "integer", (path, name, schema)


def test_out_of_range_or_malformed_integer_filters_answer_400_with_a_sentence(
    client_for, clinician_a
):
    client = client_for(clinician_a)
    checked = 0
    for path, name, schema in _numeric_query_parameters(_schema(client)):
        values = BAD_INTEGERS if schema["type"] == "integer" else [HUGE, "1e400", "-1e20", "x"]
        for value in values:
            response = client.get(_concrete(path), {name: value})
            if "{" in path and response.status_code in {403, 404}:
                continue  # the object in the path is missing or not the caller's: said first
            assert response.status_code == 400, (path, name, value, response.content[:300])
            error = response.json()["error"]
            assert error["code"] in {"invalid_filter", "invalid_page"}, (path, name, error)
            assert name in error["message"] and error["message"].endswith("."), error
            checked += 1
    assert checked > 60


def test_huge_ids_and_filters_on_the_embedded_sqlite_default_never_answer_500(
    client_for, clinician_a, tmp_path
):
    schema = _schema(client_for(clinician_a))
    paths = []
    for path, item in schema["paths"].items():
        if "get" not in item or path.startswith("/api/v1/agent/"):
            continue
        if re.search(r"\{(id|[a-z_]+_id|number)\}", path):
            paths.append(
                re.sub(r"\{(id|[a-z_]+_id|number)\}", HUGE, path).replace("{slug}", "site-a")
            )
    paths += [f"{_concrete(p)}?{name}={HUGE}" for p, name, _ in _numeric_query_parameters(schema)]
    assert len(paths) > 30
    probe = subprocess.run(
        [sys.executable, "-m", "tests.support.embedded_probe", str(tmp_path)],
        input=json.dumps(paths),
        capture_output=True,
        text=True,
        cwd=REPO,
        env={"PATH": "/usr/bin:/bin", "PYTHONPATH": f"{REPO}:{REPO}/platform:{REPO}/workers"},
        timeout=120,
        check=True,
    )
    answers = json.loads(probe.stdout)
    server_errors = {path: body for path, (status, body) in answers.items() if status >= 500}
    assert not server_errors
    for path, (status, body) in answers.items():
        assert status < 500, (path, status, body)
        if "?" not in path:
            assert status == 404, (path, status, body)
        else:
            assert status in {400, 403, 404}, (path, status, body)
