from __future__ import annotations

import pytest
from openapi_spec_validator import validate

pytestmark = pytest.mark.django_db


def test_openapi_schema_is_valid_and_covers_every_api_route(client_for, clinician_a):
    response = client_for(clinician_a).get("/api/v1/schema/?format=json")
    assert response.status_code == 200
    schema = response.json()
    validate(schema)
    assert schema["info"]["title"] == "Pollen API"
    paths = set(schema["paths"])
    assert "/api/v1/sites/{slug}/tokens/" in paths
    assert "/api/v1/auth/login/" in paths
    assert schema["components"]["securitySchemes"], "token auth must be documented"


def test_interactive_docs_page_is_served_without_internet(client_for, clinician_a):
    response = client_for(clinician_a).get("/api/v1/docs/")
    assert response.status_code == 200
    html = response.content.decode()
    assert "swagger-ui" in html
    assert "cdn.jsdelivr" not in html and "unpkg" not in html


def test_schema_generates_without_warnings(tmp_path):
    """Warnings here mean a wrong schema (two components with one name, an undocumented view)."""
    from django.core.management import call_command

    call_command("spectacular", "--fail-on-warn", "--file", str(tmp_path / "schema.yaml"))
    assert (tmp_path / "schema.yaml").read_text().startswith("openapi:")


AGENT_TAG = "agent (internal)"


def _operations(schema):
    for path, item in schema["paths"].items():
        for method, operation in item.items():
            if isinstance(operation, dict) and "responses" in operation:
                yield path, method, operation


def test_docs_open_with_the_public_api_and_keep_the_agent_api_last_under_its_own_tag(
    client_for, clinician_a
):
    schema = client_for(clinician_a).get("/api/v1/schema/?format=json").json()
    tag_names = [tag["name"] for tag in schema["tags"]]
    assert tag_names[0] == "auth", "hospital systems start by authenticating"
    assert tag_names[-1] == AGENT_TAG and tag_names.count(AGENT_TAG) == 1
    agent_tag = schema["tags"][-1]
    assert (
        "site agent" in agent_tag["description"]
        and "/api/v1/agent/docs/" in agent_tag["description"]
    )

    used = {tag for _, _, op in _operations(schema) for tag in op["tags"]}
    assert used <= set(tag_names), (
        f"every tag is declared, so its place is ours: {used - set(tag_names)}"
    )
    for path, method, operation in _operations(schema):
        is_agent = path.startswith("/api/v1/agent/")
        assert (operation["tags"] == [AGENT_TAG]) == is_agent, (method, path, operation["tags"])
    paths = list(schema["paths"])
    first_agent = next(i for i, p in enumerate(paths) if p.startswith("/api/v1/agent/"))
    assert all(p.startswith("/api/v1/agent/") for p in paths[first_agent:]), "agent paths come last"
    assert first_agent > 0


def test_the_agent_api_has_its_own_schema_and_docs_page(client_for, clinician_a):
    client = client_for(clinician_a)
    public = client.get("/api/v1/schema/?format=json").json()
    response = client.get("/api/v1/agent/schema/?format=json")
    assert response.status_code == 200
    agent = response.json()
    validate(agent)
    assert agent["info"]["title"] == "Pollen site agent API"
    assert set(agent["paths"]) == {p for p in public["paths"] if p.startswith("/api/v1/agent/")}
    docs = client.get("/api/v1/agent/docs/")
    assert docs.status_code == 200
    assert "/api/v1/agent/schema/" in docs.content.decode()


def test_every_operation_documents_its_error_answers_with_the_error_body(client_for, clinician_a):
    schema = client_for(clinician_a).get("/api/v1/schema/?format=json").json()
    error = {"$ref": "#/components/schemas/Error"}
    for path, item in schema["paths"].items():
        for method, operation in item.items():
            responses = operation["responses"]
            expected = {"401", "503"}
            if "{" in path:
                expected.add("404")
            if "requestBody" in operation:
                expected |= {"400", "413", "415"}
            if any(p["in"] == "query" for p in operation.get("parameters", [])):
                expected.add("400")
            assert expected <= set(responses), (method, path, sorted(responses))
            for code in expected:
                assert responses[code]["content"]["application/json"]["schema"] == error
