"""Downloads and ONNX exports: named for one of the caller's sites, audited there and at the publisher.

- admin_a / clinician_a: site A, which publishes
- outsider: administrator at site B, which downloads
"""

from __future__ import annotations

import json

import pytest

from pollen.audit.models import AuditEvent
from pollen.marketplace.models import ModelExport
from tests.conftest import _person

pytestmark = pytest.mark.django_db

PUBLISH = "/api/v1/marketplace/versions/"


@pytest.fixture
def shared_version(clinician_a, train, publish):
    return publish(clinician_a, train(clinician_a.site), visibility="consortium")


@pytest.fixture
def two_sites(outsider):
    """Bea works at site B and at site C."""
    from pollen.accounts.services import site_create

    bea = _person("bea-two-sites", outsider.site, "clinician")
    _person("bea-two-sites", site_create(slug="site-c", name="Cottage Hospital"), "clinician")
    return bea


def _downloads() -> list[AuditEvent]:
    return list(
        AuditEvent.objects.filter(
            action__in=["marketplace.download", "marketplace.downloaded_by_site"]
        ).select_related("site")
    )


def test_a_download_is_recorded_at_my_site_and_at_the_publisher_without_my_name(
    client_for, admin_a, outsider, shared_version
):
    response = client_for(outsider).get(f"{PUBLISH}{shared_version['id']}/download/")
    assert response.status_code == 200, response.content
    mine = AuditEvent.objects.get(action="marketplace.download")
    assert (mine.site.slug, mine.actor_label, mine.actor_user_id) == (
        "site-b",
        "oscar-outsider",
        outsider.user.pk,
    )
    assert mine.detail["format"] == "safetensors" and mine.detail["publisher_site"] == "site-a"
    theirs = AuditEvent.objects.get(action="marketplace.downloaded_by_site")
    assert theirs.site_id == admin_a.site.pk and theirs.target_id == str(shared_version["id"])
    assert theirs.actor_user_id is None and theirs.actor_token_id is None
    assert theirs.actor_label == "site:site-b"
    assert theirs.detail["downloader_site"] == "site-b"
    assert theirs.detail["downloader_site_name"] == "Borough General"
    assert theirs.detail["number"] == 1 and theirs.detail["format"] == "safetensors"
    assert theirs.detail["reference"] == mine.detail["reference"], "the two sites can match them"

    # The publisher's administrator reads it in the site's own log; no person of site B is named.
    log = client_for(admin_a).get(
        "/api/v1/sites/site-a/audit/?action=marketplace.downloaded_by_site"
    )
    assert log.json()["count"] == 1
    assert log.json()["results"][0]["actor"] == "site:site-b"
    assert "oscar" not in json.dumps(log.json())
    # And site B's log holds nothing of site A's.
    b_log = client_for(outsider).get("/api/v1/sites/site-b/audit/?action=marketplace.download")
    assert b_log.json()["count"] == 1
    assert (
        client_for(outsider)
        .get("/api/v1/sites/site-b/audit/?action=marketplace.downloaded_by_site")
        .json()["count"]
        == 0
    )


def test_someone_in_several_sites_names_the_site_they_download_for(
    client_for, two_sites, shared_version
):
    client = client_for(two_sites)
    url = f"{PUBLISH}{shared_version['id']}/download/"
    unnamed = client.get(url)
    assert unnamed.status_code == 400
    error = unnamed.json()["error"]
    assert error["code"] == "invalid"
    assert "site-b, site-c" in error["message"] and "site" in error["fields"]
    foreign = client.get(f"{url}?site=site-a")
    assert foreign.status_code == 404 and foreign.json()["error"]["code"] == "site_not_found"
    assert _downloads() == [], "a refused download records nothing"

    assert client.get(f"{url}?site=site-c").status_code == 200
    assert {(e.action, e.site.slug) for e in _downloads()} == {
        ("marketplace.download", "site-c"),
        ("marketplace.downloaded_by_site", "site-a"),
    }
    assert AuditEvent.objects.get(action="marketplace.downloaded_by_site").actor_label == (
        "site:site-c"
    )


def test_a_site_token_downloads_for_its_own_site(token_client, outsider, shared_version):
    client = token_client(outsider.site)
    assert client.get(f"{PUBLISH}{shared_version['id']}/download/?site=site-b").status_code == 200
    mine = AuditEvent.objects.get(action="marketplace.download")
    assert mine.site_id == outsider.site.pk and mine.actor_token_id == client.token.pk


def test_the_publisher_downloading_its_own_model_is_recorded_once(
    client_for, clinician_a, shared_version
):
    assert client_for(clinician_a).get(f"{PUBLISH}{shared_version['id']}/download/").json()
    assert [(e.action, e.site.slug) for e in _downloads()] == [("marketplace.download", "site-a")]


def _finished_export(client, version_id: int, site: str) -> int:
    created = client.post(f"{PUBLISH}{version_id}/exports/", {"site": site}, format="json")
    assert created.status_code == 202, created.content
    ModelExport.objects.filter(pk=created.json()["id"]).update(status="succeeded", sha256="e" * 64)
    return created.json()["id"]


def test_an_onnx_download_is_audited_like_the_weights(
    client_for, outsider, two_sites, shared_version
):
    export_id = _finished_export(client_for(outsider), shared_version["id"], "site-b")
    url = f"/api/v1/marketplace/exports/{export_id}/download/"
    # Bea works at B too, but this export was made for B: downloading it "for C" finds nothing.
    wrong = client_for(two_sites).get(f"{url}?site=site-c")
    assert wrong.status_code == 404 and wrong.json()["error"]["code"] == "export_not_found"
    assert client_for(two_sites).get(f"{url}?site=site-z").status_code == 404
    assert _downloads() == []

    assert client_for(two_sites).get(url).status_code == 200, "the export names its site"
    mine = AuditEvent.objects.get(action="marketplace.download")
    assert (mine.site.slug, mine.actor_label) == ("site-b", "bea-two-sites")
    assert mine.detail["format"] == "onnx" and mine.detail["export"] == export_id
    theirs = AuditEvent.objects.get(action="marketplace.downloaded_by_site")
    assert (theirs.site.slug, theirs.actor_label) == ("site-a", "site:site-b")
    assert theirs.detail["format"] == "onnx" and "export" not in theirs.detail
    assert theirs.detail["reference"] == mine.detail["reference"]


def test_outsider_gets_404_for_another_sites_export(client_for, outsider, admin_a, shared_version):
    export_id = _finished_export(client_for(outsider), shared_version["id"], "site-b")
    response = client_for(admin_a).get(f"/api/v1/marketplace/exports/{export_id}/download/")
    assert response.status_code == 404 and response.json()["error"]["code"] == "export_not_found"
    assert _downloads() == []
