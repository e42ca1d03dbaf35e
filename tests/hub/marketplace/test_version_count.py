"""A published model's ``version_count`` is the same integer in the list, the detail and the
answer to an edit (it was null everywhere but the list; issue 16, item 12)."""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.django_db

MODELS = "/api/v1/marketplace/models/"


def test_version_count_is_an_integer_in_every_answer(client_for, clinician_a, train, publish):
    publish(clinician_a, train(clinician_a.site), visibility="site")
    version = publish(clinician_a, train(clinician_a.site, seed=1), visibility="site")
    client = client_for(clinician_a)
    model_id = version["published_model"]
    listed = next(m for m in client.get(MODELS).json()["results"] if m["id"] == model_id)
    detail = client.get(f"{MODELS}{model_id}/").json()
    edited = client.patch(f"{MODELS}{model_id}/", {"limitations": "Adults only."}, format="json")
    assert edited.status_code == 200, edited.content
    assert listed["version_count"] == detail["version_count"] == edited.json()["version_count"]
    assert isinstance(detail["version_count"], int) and detail["version_count"] >= 1


def test_version_count_is_a_required_integer_in_the_schema(client_for, clinician_a):
    schema = client_for(clinician_a).get("/api/v1/schema/?format=json").json()
    for name in ("PublishedModelOut", "PublishedModelDetailOut"):
        model = schema["components"]["schemas"][name]
        assert model["properties"]["version_count"]["type"] == "integer", name
        assert not model["properties"]["version_count"].get("nullable"), name
        assert "version_count" in model["required"], name
