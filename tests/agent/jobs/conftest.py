"""Fixtures shared by the agent's job tests."""

from __future__ import annotations

import pytest

from pollen_agent.storage.factory import storage_from_config


@pytest.fixture
def storage(tmp_path):
    """Site B's storage: the embedded filesystem backend under tmp_path."""
    return storage_from_config(
        {
            "kind": "fs",
            "root": str(tmp_path / "site"),
            "base_url": "http://127.0.0.1:1",
            "secret": "s",
            "site": "site-b",
        }
    )
