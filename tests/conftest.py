"""Shared fixtures: three personas at two sites, and API clients for each.

- admin_a: site administrator at site A
- clinician_a: clinician at site A
- outsider: administrator at site B, who must see nothing private of site A
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest

PASSWORD = "correct-horse-battery-staple"


@dataclass
class Persona:
    user: Any
    site: Any
    role: str


def _django_ready() -> bool:
    return bool(os.environ.get("DJANGO_SETTINGS_MODULE"))


@pytest.fixture
def site_a(db):
    from pollen.accounts.services import site_create

    return site_create(slug="site-a", name="St Anne's Hospital")


@pytest.fixture
def site_b(db):
    from pollen.accounts.services import site_create

    return site_create(slug="site-b", name="Borough General")


def _person(username: str, site: Any, role: str) -> Persona:
    from pollen.accounts.services import membership_add

    membership = membership_add(
        caller=None, site=site, username=username, role=role, password=PASSWORD
    )
    return Persona(user=membership.user, site=site, role=role)


@pytest.fixture
def admin_a(site_a) -> Persona:
    return _person("alice-admin", site_a, "admin")


@pytest.fixture
def clinician_a(site_a, admin_a) -> Persona:
    return _person("carl-clinician", site_a, "clinician")


@pytest.fixture
def outsider(site_b) -> Persona:
    return _person("oscar-outsider", site_b, "admin")


@pytest.fixture
def client_for() -> Callable[[Persona | None], Any]:
    """An API client signed in as the persona (session), or anonymous for None."""
    from rest_framework.test import APIClient

    def make(persona: Persona | None) -> Any:
        client = APIClient()
        if persona is not None:
            client.force_login(persona.user)
        return client

    return make


@pytest.fixture
def token_client() -> Callable[..., Any]:
    """An API client authenticated by a freshly created site token."""
    from rest_framework.test import APIClient

    from pollen.accounts.services import token_create

    def make(
        site: Any, *, kind: str = "system", role: str = "clinician", job_id: int | None = None
    ) -> Any:
        token, plaintext = token_create(
            caller=None, site=site, name=f"{kind}-{role}", kind=kind, role=role, job_id=job_id
        )
        client = APIClient()
        client.credentials(HTTP_AUTHORIZATION=f"Bearer {plaintext}")
        client.token = token
        client.plaintext = plaintext
        return client

    return make


@pytest.fixture
def sent_tasks(monkeypatch) -> list[tuple[str, dict, str]]:
    """Tasks the hub sends to site agents as (name, payload, queue), recorded instead of queued."""
    from pollen.core import dispatch

    calls: list[tuple[str, dict, str]] = []
    monkeypatch.setattr(
        dispatch.app,
        "send_task",
        lambda name, kwargs, queue: calls.append((name, kwargs["payload"], queue)),
    )
    return calls


from tests.support.seaweed import seaweed  # noqa: E402,F401 - a session fixture shared by every test
