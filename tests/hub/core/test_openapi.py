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
