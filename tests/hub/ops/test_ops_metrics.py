"""/metrics answers only the operations token or an allowed scraper address (issue 16, item 6)."""

from __future__ import annotations

from typing import Any

import pytest
from django.test import Client

pytestmark = pytest.mark.django_db

TOKEN = "metrics-token-for-tests-" + "x" * 24


@pytest.fixture
def no_metrics_access(settings):
    settings.METRICS_TOKEN = ""
    settings.METRICS_ALLOW = []
    return settings


def _get(client: Client, **extra: Any) -> Any:
    return client.get("/metrics", **extra)


def test_metrics_refuse_everyone_when_nothing_is_configured(no_metrics_access):
    response = _get(Client())
    assert response.status_code == 403
    body = response.json()
    assert body["error"]["code"] == "metrics_not_configured"
    assert "POLLEN_METRICS_TOKEN" in body["error"]["message"]
    assert "POLLEN_METRICS_ALLOW" in body["error"]["message"]
    assert b"pollen_api_request_seconds" not in response.content


def test_metrics_refuse_a_signed_in_site_admin(no_metrics_access, client_for, admin_a):
    no_metrics_access.METRICS_TOKEN = TOKEN
    response = client_for(admin_a).get("/metrics")
    assert response.status_code == 401
    assert b"pollen_api_request_seconds" not in response.content


def test_metrics_refuse_a_missing_or_wrong_token(no_metrics_access):
    no_metrics_access.METRICS_TOKEN = TOKEN
    for headers in ({}, {"HTTP_AUTHORIZATION": f"Bearer {TOKEN}x"}, {"HTTP_AUTHORIZATION": TOKEN}):
        response = _get(Client(), **headers)
        assert response.status_code == 401, headers
        assert response.json()["error"]["code"] == "metrics_token_required"
        assert response["WWW-Authenticate"].startswith("Bearer")


def test_metrics_answer_the_operations_token(no_metrics_access):
    no_metrics_access.METRICS_TOKEN = TOKEN
    response = _get(Client(), HTTP_AUTHORIZATION=f"Bearer {TOKEN}")
    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/plain")
    assert b"pollen_jobs" in response.content


def test_metrics_answer_a_scraper_inside_the_allow_list(no_metrics_access):
    import ipaddress

    no_metrics_access.METRICS_ALLOW = [ipaddress.ip_network("10.42.0.0/16")]
    assert _get(Client(), REMOTE_ADDR="10.42.7.9").status_code == 200


def test_metrics_refuse_an_address_outside_the_allow_list_even_if_it_claims_to_be_inside(
    no_metrics_access,
):
    import ipaddress

    no_metrics_access.METRICS_ALLOW = [ipaddress.ip_network("10.42.0.0/16")]
    # X-Forwarded-For is written by whoever sends the request: only the TCP peer counts.
    response = _get(Client(), REMOTE_ADDR="192.0.2.1", HTTP_X_FORWARDED_FOR="10.42.7.9")
    assert response.status_code == 403
    assert response.json()["error"]["code"] == "metrics_forbidden"


def test_metrics_allow_list_setting_refuses_a_malformed_address(monkeypatch):
    from pollen.env import ConfigError, env_networks

    monkeypatch.setenv("POLLEN_METRICS_ALLOW", "10.0.0.0/8, not-an-address")
    with pytest.raises(ConfigError, match="not-an-address"):
        env_networks("POLLEN_METRICS_ALLOW")
    monkeypatch.setenv("POLLEN_METRICS_ALLOW", "10.0.0.0/8, 2001:db8::1")
    assert [str(n) for n in env_networks("POLLEN_METRICS_ALLOW")] == [
        "10.0.0.0/8",
        "2001:db8::1/128",
    ]
