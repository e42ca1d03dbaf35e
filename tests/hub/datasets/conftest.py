from __future__ import annotations

import pytest

from tests.support.agent import purge_site_queues, start_agent, wait_agent_ready


@pytest.fixture(params=["fs", "s3"])
def storage_kind(request):
    return request.param


@pytest.fixture
def site_storage(storage_kind, request, settings, tmp_path, live_server):
    """Per-site storage config as the agent holds it: filesystem (embedded) or a real S3 server."""
    if storage_kind == "fs":
        settings.LOCAL_STORAGE_ROOT = tmp_path / "storage"
        settings.LOCAL_STORAGE_ENABLED = True

        def make(slug: str) -> dict:
            return {
                "kind": "fs",
                "root": str(tmp_path / "storage"),
                "base_url": live_server.url,
                "secret": settings.LOCAL_STORAGE_SECRET,
                "site": slug,
            }
    else:
        seaweed = request.getfixturevalue("seaweed")

        def make(slug: str) -> dict:
            creds = seaweed.creds[slug]
            return {
                "kind": "s3",
                "endpoint_url": seaweed.endpoint,
                "bucket": creds["bucket"],
                "access_key": creds["access_key"],
                "secret_key": creds["secret_key"],
            }

    return make


@pytest.fixture
def agent_a(transactional_db, live_server, site_a, site_storage, tmp_path):
    """A real agent process for site A, with site A's storage identity only."""
    from pollen.accounts.services import token_create

    _, plaintext = token_create(caller=None, site=site_a, name="agent", kind="agent")
    purge_site_queues(["site-a"])
    agent = start_agent(
        hub_url=live_server.url,
        sites={"site-a": {"token": plaintext, "storage": site_storage("site-a")}},
        tmp=tmp_path,
        queues="io",
    )
    try:
        wait_agent_ready(agent, "site-a")
        yield agent
    finally:
        agent.stop()
