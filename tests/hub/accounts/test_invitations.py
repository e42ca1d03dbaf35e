"""Joining a site (issue 16, item 1).

A site administrator can no longer add an existing account by name: that let one site annex
another site's users, read their e-mail and probe which usernames exist. People join through
an invitation that they accept: a single-use, expiring secret, stored only as a digest.
"""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.contrib.auth import get_user_model
from django.utils import timezone

from pollen.accounts.models import Invitation, Membership
from pollen.audit.models import AuditEvent
from tests.conftest import PASSWORD

pytestmark = pytest.mark.django_db

NEW_PASSWORD = "a-long-enough-passphrase"


@pytest.fixture(autouse=True)
def _fresh_rate_limits():
    """Opening and accepting invitations is rate-limited; each test starts with a clean count."""
    from django.core.cache import cache

    cache.clear()
    yield
    cache.clear()


def _invite(client, *, email="nina@stanne.example", role="clinician", **extra):
    return client.post(
        "/api/v1/sites/site-a/invitations/", {"email": email, "role": role, **extra}, format="json"
    )


@pytest.fixture
def invitation(client_for, admin_a):
    response = _invite(client_for(admin_a))
    assert response.status_code == 201, response.content
    return response.json()


def _accept(client, token: str, **extra):
    return client.post("/api/v1/invitations/accept/", {"token": token, **extra}, format="json")


# --- the leak: adding someone by name ------------------------------------------------------


def test_an_admin_cannot_add_a_user_of_another_site_by_name(client_for, admin_a, outsider):
    response = client_for(admin_a).post(
        "/api/v1/sites/site-a/members/",
        {"username": "oscar-outsider", "role": "clinician"},
        format="json",
    )
    assert response.status_code != 201
    assert Membership.objects.filter(user=outsider.user).count() == 1, "still site B only"
    assert b"oscar" not in response.content.lower(), "nothing of the other site's person"


def test_unknown_and_foreign_usernames_get_the_same_answer(client_for, admin_a, outsider):
    client = client_for(admin_a)
    answers = [
        client.post(
            "/api/v1/sites/site-a/members/", {"username": name, "role": "clinician"}, format="json"
        )
        for name in ("oscar-outsider", "nobody-by-this-name")
    ]
    assert answers[0].status_code == answers[1].status_code != 201
    assert answers[0].content == answers[1].content


def test_a_password_sent_to_add_a_member_is_refused_never_ignored(client_for, admin_a, outsider):
    response = client_for(admin_a).post(
        "/api/v1/sites/site-a/members/",
        {"username": "oscar-outsider", "role": "clinician", "password": "a-new-password-1234"},
        format="json",
    )
    assert 400 <= response.status_code < 500
    outsider.user.refresh_from_db()
    assert outsider.user.check_password(PASSWORD)
    assert not Membership.objects.filter(user=outsider.user, site=admin_a.site).exists()


# --- invitations ---------------------------------------------------------------------------


def test_an_admin_invites_and_the_secret_is_shown_once_and_stored_as_a_digest(
    client_for, admin_a, invitation
):
    token = invitation["token"]
    assert invitation["status"] == "pending" and invitation["role"] == "clinician"
    assert invitation["accept_url"].endswith(f"/invitation#{token}")
    row = Invitation.objects.get(pk=invitation["id"])
    assert token not in row.digest and len(row.digest) == 64
    assert row.expires_at - timezone.now() > timedelta(days=6)
    listed = client_for(admin_a).get("/api/v1/sites/site-a/invitations/").json()["results"]
    assert [i["id"] for i in listed] == [invitation["id"]]
    assert "token" not in listed[0] and "accept_url" not in listed[0]
    event = AuditEvent.objects.get(action="invitation.create")
    assert event.site_id == admin_a.site.pk and event.detail["email"] == "nina@stanne.example"
    assert token not in str(event.detail)


def test_a_new_person_accepts_with_a_username_and_password_and_is_signed_in(
    client_for, admin_a, invitation
):
    client = client_for(None)
    preview = client.post(
        "/api/v1/invitations/preview/", {"token": invitation["token"]}, format="json"
    )
    assert preview.status_code == 200, preview.content
    assert preview.json()["site"]["name"] == "St Anne's Hospital"
    assert preview.json()["role"] == "clinician"

    response = _accept(client, invitation["token"], username="nina-nurse", password=NEW_PASSWORD)
    assert response.status_code == 200, response.content
    assert [m["site"]["slug"] for m in response.json()["memberships"]] == ["site-a"]
    assert client.get("/api/v1/auth/me/").json()["username"] == "nina-nurse"
    user = get_user_model().objects.get(username="nina-nurse")
    assert user.email == "nina@stanne.example" and user.check_password(NEW_PASSWORD)
    assert Membership.objects.get(user=user).role == "clinician"
    accepted = Invitation.objects.get(pk=invitation["id"])
    assert accepted.accepted_by_id == user.pk and accepted.accepted_at is not None
    event = AuditEvent.objects.get(action="invitation.accept")
    assert event.site_id == admin_a.site.pk and event.actor_label == "nina-nurse"


def test_an_invitation_is_used_once(client_for, admin_a, invitation):
    first = _accept(client_for(None), invitation["token"], username="nina", password=NEW_PASSWORD)
    assert first.status_code == 200
    again = _accept(client_for(None), invitation["token"], username="nina2", password=NEW_PASSWORD)
    assert again.status_code == 404
    assert again.json()["error"]["code"] == "invitation_invalid"
    assert not get_user_model().objects.filter(username="nina2").exists()


def test_a_signed_in_person_of_another_site_joins_with_their_own_account(
    client_for, admin_a, outsider, invitation
):
    client = client_for(outsider)
    response = _accept(client, invitation["token"])
    assert response.status_code == 200, response.content
    slugs = sorted(m["site"]["slug"] for m in response.json()["memberships"])
    assert slugs == ["site-a", "site-b"], "joins site A and keeps site B"
    outsider.user.refresh_from_db()
    assert outsider.user.email != "nina@stanne.example", "their own account is not changed"


def test_a_signed_in_person_cannot_send_a_username_or_password_that_would_be_ignored(
    client_for, outsider, invitation
):
    response = _accept(
        client_for(outsider), invitation["token"], username="x", password=NEW_PASSWORD
    )
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["code"] == "signed_in" and set(error["fields"]) == {"username", "password"}
    assert Invitation.objects.get(pk=invitation["id"]).accepted_at is None


def test_a_new_person_must_choose_a_username_and_password(client_for, invitation):
    response = _accept(client_for(None), invitation["token"])
    assert response.status_code == 400
    assert set(response.json()["error"]["fields"]) == {"username", "password"}


def test_a_weak_password_or_a_taken_username_leaves_the_invitation_usable(
    client_for, admin_a, clinician_a, invitation
):
    client = client_for(None)
    weak = _accept(client, invitation["token"], username="nina", password="123")
    assert weak.status_code == 400 and weak.json()["error"]["code"] == "weak_password"
    taken = _accept(client, invitation["token"], username="Carl-Clinician", password=NEW_PASSWORD)
    assert taken.status_code == 409 and taken.json()["error"]["code"] == "username_taken"
    bad = _accept(client, invitation["token"], username="nina nurse!", password=NEW_PASSWORD)
    assert bad.status_code == 400 and "username" in bad.json()["error"]["fields"]
    ok = _accept(client, invitation["token"], username="nina", password=NEW_PASSWORD)
    assert ok.status_code == 200, ok.content


def test_expired_revoked_and_made_up_invitations_get_the_same_answer(
    client_for, admin_a, invitation
):
    other = _invite(client_for(admin_a), email="x@stanne.example").json()
    revoked = client_for(admin_a).post(f"/api/v1/sites/site-a/invitations/{other['id']}/revoke/")
    assert revoked.status_code == 200 and revoked.json()["status"] == "revoked"
    Invitation.objects.filter(pk=invitation["id"]).update(
        expires_at=timezone.now() - timedelta(seconds=1)
    )
    answers = [
        _accept(client_for(None), token, username="nina", password=NEW_PASSWORD)
        for token in (invitation["token"], other["token"], "inv_" + "x" * 43)
    ]
    assert {a.status_code for a in answers} == {404}
    assert len({a.content for a in answers}) == 1
    assert AuditEvent.objects.filter(action="invitation.revoke").count() == 1
    assert not Membership.objects.filter(user__username="nina").exists()


def test_an_existing_member_accepting_again_is_told_so_and_the_invitation_stays(
    client_for, clinician_a, invitation
):
    response = _accept(client_for(clinician_a), invitation["token"])
    assert response.status_code == 409 and response.json()["error"]["code"] == "already_member"
    assert Invitation.objects.get(pk=invitation["id"]).accepted_at is None


def test_a_site_token_cannot_accept_an_invitation(token_client, admin_a, outsider, invitation):
    response = _accept(token_client(outsider.site), invitation["token"])
    assert response.status_code == 403
    assert response.json()["error"]["code"] == "person_required"


def test_only_this_sites_administrators_manage_its_invitations(
    client_for, clinician_a, outsider, invitation
):
    assert _invite(client_for(clinician_a)).status_code == 403
    assert client_for(clinician_a).get("/api/v1/sites/site-a/invitations/").status_code == 403
    for response in (
        _invite(client_for(outsider)),
        client_for(outsider).get("/api/v1/sites/site-a/invitations/"),
        client_for(outsider).post(f"/api/v1/sites/site-a/invitations/{invitation['id']}/revoke/"),
    ):
        assert response.status_code == 404
        assert response.json()["error"]["code"] == "site_not_found"
    # Site B's administrator cannot revoke site A's invitation through their own site either.
    response = client_for(outsider).post(
        f"/api/v1/sites/site-b/invitations/{invitation['id']}/revoke/"
    )
    assert response.status_code == 404
    assert Invitation.objects.get(pk=invitation["id"]).revoked_at is None


def test_an_invitation_refuses_unknown_fields_and_a_revoked_one_cannot_be_revoked_again(
    client_for, admin_a, invitation
):
    response = _invite(client_for(admin_a), username="oscar-outsider")
    assert response.status_code == 400 and response.json()["error"]["code"] == "unknown_field"
    url = f"/api/v1/sites/site-a/invitations/{invitation['id']}/revoke/"
    assert client_for(admin_a).post(url).status_code == 200
    again = client_for(admin_a).post(url)
    assert again.status_code == 409 and again.json()["error"]["code"] == "invitation_closed"


def test_guessing_invitation_links_is_rate_limited(client_for):
    client = client_for(None)
    codes = [_accept(client, f"inv_guess-{i}").status_code for i in range(32)]
    assert codes[0] == 404
    assert 429 in codes
