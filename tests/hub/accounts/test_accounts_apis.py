from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from pollen.accounts.models import ApiToken
from pollen.audit.models import AuditEvent
from tests.conftest import PASSWORD

pytestmark = pytest.mark.django_db


def test_login_with_right_password_starts_a_session(client_for, clinician_a):
    client = client_for(None)
    response = client.post(
        "/api/v1/auth/login/", {"username": "carl-clinician", "password": PASSWORD}
    )
    assert response.status_code == 200, response.content
    assert response.json()["memberships"][0]["site"]["slug"] == "site-a"
    assert client.get("/api/v1/auth/me/").json()["username"] == "carl-clinician"


def test_login_with_wrong_password_is_refused_with_a_clear_code(client_for, clinician_a):
    response = client_for(None).post(
        "/api/v1/auth/login/", {"username": "carl-clinician", "password": "nope"}
    )
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "invalid_credentials"
    assert "password" in response.json()["error"]["message"]


def test_login_is_rate_limited(client_for, clinician_a, settings):
    from django.core.cache import cache

    cache.clear()
    client = client_for(None)
    codes = [
        client.post("/api/v1/auth/login/", {"username": "x", "password": "y"}).status_code
        for _ in range(12)
    ]
    assert codes[0] == 401
    assert 429 in codes
    cache.clear()


def test_me_lists_only_my_sites(client_for, clinician_a, outsider):
    body = client_for(outsider).get("/api/v1/auth/me/").json()
    assert [m["site"]["slug"] for m in body["memberships"]] == ["site-b"]


def test_admin_creates_token_shown_once_and_stored_hashed(client_for, admin_a):
    response = client_for(admin_a).post("/api/v1/sites/site-a/tokens/", {"name": "PACS bridge"})
    assert response.status_code == 201, response.content
    plaintext = response.json()["token"]
    token = ApiToken.objects.get(pk=response.json()["id"])
    assert plaintext not in token.digest and len(token.digest) == 64
    listed = client_for(admin_a).get("/api/v1/sites/site-a/tokens/").json()["results"]
    assert "token" not in listed[0]
    assert AuditEvent.objects.filter(action="token.create", site=admin_a.site).count() == 1


def test_token_authenticates_and_records_last_use(client_for, admin_a):
    plaintext = (
        client_for(admin_a).post("/api/v1/sites/site-a/tokens/", {"name": "lis"}).json()["token"]
    )
    from rest_framework.test import APIClient

    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {plaintext}")
    response = client.get("/api/v1/auth/me/")
    assert response.status_code == 200
    assert response.json()["memberships"][0]["site"]["slug"] == "site-a"
    assert ApiToken.objects.get(name="lis").last_used_at is not None


def test_revoked_token_is_refused(client_for, admin_a, token_client):
    client = token_client(admin_a.site)
    revoke = client_for(admin_a).post(f"/api/v1/sites/site-a/tokens/{client.token.pk}/revoke/")
    assert revoke.status_code == 200
    response = client.get("/api/v1/auth/me/")
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "token_revoked"


def test_expired_token_is_refused(admin_a, token_client):
    client = token_client(admin_a.site)
    ApiToken.objects.filter(pk=client.token.pk).update(
        expires_at=timezone.now() - timedelta(seconds=1)
    )
    response = client.get("/api/v1/auth/me/")
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "token_expired"


def test_garbage_token_is_refused(client_for):
    from rest_framework.test import APIClient

    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION="Bearer pln_0123456789_nope")
    assert client.get("/api/v1/auth/me/").json()["error"]["code"] == "invalid_token"
    client.credentials(HTTP_AUTHORIZATION="Basic abc")
    assert client.get("/api/v1/auth/me/").status_code == 401


def test_clinician_cannot_manage_tokens_or_members(client_for, clinician_a):
    client = client_for(clinician_a)
    assert (
        client.post("/api/v1/sites/site-a/tokens/", {"name": "x"}).json()["error"]["code"]
        == "admin_required"
    )
    assert client.get("/api/v1/sites/site-a/members/").status_code == 403


def test_outsider_gets_404_for_another_sites_admin_pages(client_for, admin_a, outsider):
    client = client_for(outsider)
    for url in [
        "/api/v1/sites/site-a/",
        "/api/v1/sites/site-a/members/",
        "/api/v1/sites/site-a/tokens/",
        "/api/v1/sites/site-a/audit/",
    ]:
        response = client.get(url)
        assert response.status_code == 404, url
        assert response.json()["error"]["code"] == "site_not_found"


def test_admin_changes_a_members_role_and_cannot_remove_last_admin(
    client_for, admin_a, clinician_a
):
    client = client_for(admin_a)
    carl = client.get("/api/v1/sites/site-a/members/?role=clinician").json()["results"][0]
    promoted = client.patch(f"/api/v1/sites/site-a/members/{carl['id']}/", {"role": "admin"})
    assert promoted.status_code == 200 and promoted.json()["role"] == "admin"
    assert client.delete(f"/api/v1/sites/site-a/members/{carl['id']}/").status_code == 204
    me = client.get("/api/v1/sites/site-a/members/?role=admin").json()["results"][0]
    response = client.patch(f"/api/v1/sites/site-a/members/{me['id']}/", {"role": "clinician"})
    assert response.status_code == 409
    assert response.json()["error"]["code"] == "last_admin"


def test_members_are_not_added_by_name_but_invited(client_for, admin_a):
    response = client_for(admin_a).post(
        "/api/v1/sites/site-a/members/",
        {"username": "z", "role": "clinician", "password": "a-long-enough-pass"},
    )
    assert response.status_code == 405


def test_unknown_field_is_rejected_by_name(client_for, admin_a):
    response = client_for(admin_a).post(
        "/api/v1/sites/site-a/tokens/", {"name": "x", "scope": "all"}
    )
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "unknown_field"
    assert "scope" in response.json()["error"]["fields"]


def test_site_list_is_constant_in_queries(client_for, admin_a, django_assert_max_num_queries):
    from pollen.accounts.services import site_create

    for i in range(20):
        site_create(slug=f"extra-{i}", name=f"Extra {i}")
    client = client_for(admin_a)
    with django_assert_max_num_queries(6):
        response = client.get("/api/v1/sites/?scope=consortium&page_size=100")
    assert response.json()["count"] == 21
