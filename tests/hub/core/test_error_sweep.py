"""Sweep every endpoint in the OpenAPI schema with bad input: none may answer 500.

Anonymous callers, revoked and expired tokens, malformed JSON, oversized bodies,
unknown fields and another site's objects each get a clear 4xx with a stable code.
"""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
from django.utils import timezone
from rest_framework.test import APIClient

from pollen.accounts.models import ApiToken

pytestmark = pytest.mark.django_db

PUBLIC = {
    ("/api/v1/auth/login/", "post"),
    ("/api/v1/auth/csrf/", "get"),
    # Invitation links are opened before the invitee has an account (a made-up secret: 404).
    ("/api/v1/invitations/preview/", "post"),
    ("/api/v1/invitations/accept/", "post"),
    ("/api/v1/schema/", "get"),
    ("/api/v1/docs/", "get"),
    ("/api/v1/redoc/", "get"),
}
BODY_METHODS = {"post", "put", "patch"}
# Signing out takes no body; sweeping it would sign the sweeping client out.
NO_BODY = {("/api/v1/auth/logout/", "post")}


def _operations(client: APIClient) -> list[tuple[str, str, str]]:
    schema = client.get("/api/v1/schema/?format=json").json()
    ops = []
    for path, item in schema["paths"].items():
        for method in item:
            if method in {"get", "post", "put", "patch", "delete"}:
                url = re.sub(r"\{slug\}", "site-a", path)
                url = re.sub(r"\{[a-z_]+\}", "1", url)  # every other path parameter is a number
                ops.append((path, method, url))
    assert len(ops) > 10
    return ops


def _call(client: APIClient, method: str, url: str, **kwargs):
    return getattr(client, method)(url, **kwargs)


def _assert_clear_error(response, *, allowed: set[int], path: str = "") -> None:
    if path.startswith("/api/v1/agent/"):
        allowed = allowed | {403}  # people are refused on the agent API before any parsing
    assert response.status_code in allowed, (response.status_code, response.content[:300])
    assert response.status_code < 500
    if response.status_code >= 400:
        body = response.json()
        assert body["error"]["code"] and body["error"]["message"]


@pytest.fixture
def ops(client_for, admin_a):
    return _operations(client_for(admin_a))


def test_anonymous_callers_get_401_everywhere_but_public_endpoints(ops):
    client = APIClient()
    for path, method, url in ops:
        if (path, method) in PUBLIC:
            continue
        response = _call(client, method, url, data={}, format="json")
        _assert_clear_error(response, allowed={401, 403})
        assert response.json()["error"]["code"] in {"not_authenticated", "invalid_token"}, (
            path,
            method,
        )


@pytest.mark.parametrize("state", ["revoked", "expired"])
def test_revoked_or_expired_token_gets_401_everywhere(ops, token_client, admin_a, state):
    client = token_client(admin_a.site, role="admin")
    change = (
        {"revoked_at": timezone.now()}
        if state == "revoked"
        else {"expires_at": timezone.now() - timedelta(1)}
    )
    ApiToken.objects.filter(pk=client.token.pk).update(**change)
    for path, method, url in ops:
        if (path, method) in PUBLIC:
            continue
        response = _call(client, method, url, data={}, format="json")
        _assert_clear_error(response, allowed={401})
        assert response.json()["error"]["code"] == f"token_{state}"


def test_malformed_json_gets_400_malformed_json(ops, client_for, admin_a):
    client = client_for(admin_a)
    seen_400 = 0
    for path, method, url in ops:
        if method not in BODY_METHODS or (path, method) in NO_BODY:
            continue
        response = client.generic(
            method.upper(), url, '{"name": "x",', content_type="application/json"
        )
        _assert_clear_error(response, allowed={400, 404, 405, 409}, path=path)
        if response.status_code == 400:
            assert response.json()["error"]["code"] == "malformed_json", (path, response.json())
            seen_400 += 1
    assert seen_400 >= 3


def test_non_object_json_and_wrong_content_type_get_clear_400s(ops, client_for, admin_a):
    client = client_for(admin_a)
    for path, method, url in ops:
        if method not in BODY_METHODS or (path, method) in NO_BODY:
            continue
        response = client.generic(method.upper(), url, "[1, 2, 3]", content_type="application/json")
        _assert_clear_error(response, allowed={400, 404, 405, 409}, path=path)
        response = client.generic(
            method.upper(), url, "name=x", content_type="application/x-www-form-urlencoded"
        )
        _assert_clear_error(response, allowed={400, 404, 405, 409, 415}, path=path)


def test_oversized_bodies_get_413(ops, client_for, admin_a, settings):
    client = client_for(admin_a)
    big = '{"name": "' + "x" * (settings.DATA_UPLOAD_MAX_MEMORY_SIZE + 10) + '"}'
    checked = 0
    for path, method, url in ops:
        if method not in BODY_METHODS or (path, method) in PUBLIC | NO_BODY:
            continue
        response = client.generic(method.upper(), url, big, content_type="application/json")
        _assert_clear_error(response, allowed={404, 405, 413}, path=path)
        if response.status_code == 413:
            assert response.json()["error"]["code"] == "payload_too_large"
            checked += 1
    assert checked >= 3


def test_outsider_gets_404_on_every_site_a_endpoint(
    ops, client_for, admin_a, clinician_a, outsider
):
    client = client_for(outsider)
    checked = 0
    for path, method, url in ops:
        if "{slug}" not in path:
            continue
        response = _call(client, method, url, data={}, format="json")
        _assert_clear_error(response, allowed={404})
        checked += 1
    assert checked >= 5


def test_unknown_api_address_is_a_json_404(client_for, admin_a):
    response = client_for(admin_a).get("/api/v1/no-such-thing/")
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "not_found"
