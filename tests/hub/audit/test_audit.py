from __future__ import annotations

import pytest

from pollen.audit.models import AuditEvent

pytestmark = pytest.mark.django_db


def test_audit_events_are_append_only(admin_a):
    event = AuditEvent.objects.filter(site=admin_a.site).first()
    assert event is not None
    event.action = "tampered"
    with pytest.raises(RuntimeError, match="append-only"):
        event.save()
    with pytest.raises(RuntimeError, match="append-only"):
        event.delete()


def test_site_admin_reads_own_audit_log_filtered(client_for, admin_a, clinician_a):
    client = client_for(admin_a)
    body = client.get("/api/v1/sites/site-a/audit/?action=member.add").json()
    assert body["count"] == 2
    assert {e["detail"]["username"] for e in body["results"]} == {"alice-admin", "carl-clinician"}


def test_clinician_cannot_read_audit_log(client_for, clinician_a):
    response = client_for(clinician_a).get("/api/v1/sites/site-a/audit/")
    assert response.status_code == 403
    assert response.json()["error"]["code"] == "admin_required"


def test_bad_filter_value_is_a_clear_400(client_for, admin_a):
    response = client_for(admin_a).get("/api/v1/sites/site-a/audit/?since=yesterday")
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "invalid_filter"


def test_an_event_about_another_site_names_that_site_and_no_person(admin_a, outsider):
    from pollen.accounts.caller import caller_for_user
    from pollen.audit.services import audit_record

    event = audit_record(
        caller=None, actor_label="site:site-b", action="x.by_site", site_id=admin_a.site.pk
    )
    assert (event.actor_label, event.actor_user_id, event.actor_token_id) == (
        "site:site-b",
        None,
        None,
    )
    with pytest.raises(ValueError, match="not both"):
        audit_record(
            caller=caller_for_user(outsider.user),
            actor_label="site:site-b",
            action="x.by_site",
            site_id=admin_a.site.pk,
        )
