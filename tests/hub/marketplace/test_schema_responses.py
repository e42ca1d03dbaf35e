"""Every GET answers what the schema says, on real objects of every kind.

The fuzz (``tests/hub/core/test_schema_fuzz.py``) mostly meets ids that do not exist; here
each path names a real dataset, image, job, model, published model and version of the
caller's site, so that each object's full body is checked against its schema (a field that
is null where the schema promises an integer, as ``version_count`` was, fails here).
"""

from __future__ import annotations

import re

import pytest
import schemathesis
from django.core.signals import request_finished, request_started
from django.db import close_old_connections
from schemathesis.checks import (
    content_type_conformance,
    not_a_server_error,
    response_schema_conformance,
    status_code_conformance,
)

from pollen.accounts.models import Membership
from pollen.accounts.services import token_create
from pollen.wsgi import application

pytestmark = pytest.mark.django_db

CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
]


@pytest.fixture
def in_process_wsgi():
    """Call the WSGI app in this test's transaction, as Django's test client does: the
    signals that close database connections around a request would end the transaction."""
    request_started.disconnect(close_old_connections)
    request_finished.disconnect(close_old_connections)
    yield application
    request_started.connect(close_old_connections)
    request_finished.connect(close_old_connections)


@pytest.fixture
def objects(clinician_a, train, publish, site_images):
    trained = train(clinician_a.site)
    version = publish(clinician_a, trained, visibility="consortium")
    dataset = site_images(clinician_a.site, n=3)
    return {
        "datasets": dataset.pk,
        "image_id": dataset.images.first().pk,
        "jobs": trained.job.pk,
        "models": trained.version.pk,
        "marketplace/models": version["published_model"],
        "marketplace/versions": version["id"],
        "members": Membership.objects.get(user=clinician_a.user).pk,
    }


def _path_parameters(path: str, objects: dict[str, int]) -> dict[str, object] | None:
    values: dict[str, object] = {}
    for name in re.findall(r"\{([a-z_]+)\}", path):
        if name == "slug":
            values[name] = "site-a"
        elif name == "id":
            # The longest kind that names this path: "marketplace/models" before "models".
            owners = sorted((k for k in objects if f"/{k}/{{id}}" in path), key=len)
            owner = owners[-1] if owners else None
            if owner is None:
                return None  # a kind of object this site holds none of
            values[name] = objects[owner]
        elif name in objects:
            values[name] = objects[name]
        else:
            return None
    return values


def test_every_get_on_real_objects_answers_what_the_schema_says(
    clinician_a, objects, in_process_wsgi
):
    _, token = token_create(caller=None, site=clinician_a.site, name="schema", role="clinician")
    schema = schemathesis.openapi.from_wsgi("/api/v1/schema/?format=json", in_process_wsgi)
    headers = {"Authorization": f"Bearer {token}"}
    checked = []
    for path, methods in schema.raw_schema["paths"].items():
        if "get" not in methods or path.startswith("/api/v1/agent/"):
            continue
        parameters = _path_parameters(path, objects)
        if parameters is None:
            continue
        case = schema[path]["GET"].Case(path_parameters=parameters)
        response = case.call(headers=headers)
        case.validate_response(response, checks=CHECKS, headers=headers)
        checked.append((path, response.status_code))
    answered = [path for path, status in checked if status == 200]
    assert len(answered) >= 15, checked
    for must in ("/api/v1/marketplace/models/{id}/", "/api/v1/jobs/{id}/", "/api/v1/models/{id}/"):
        assert must in answered, checked
