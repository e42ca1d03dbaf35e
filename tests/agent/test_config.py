"""The agent's config file: what it must name, and the broker it no longer accepts."""

from __future__ import annotations

from typing import Any

import pytest

from pollen_agent.config import config_from_dict
from pollen_agent.errors import UserError


def _raw(**changes: Any) -> dict[str, Any]:
    raw: dict[str, Any] = {
        "hub_url": "http://127.0.0.1:8000/",
        "broker_url": "redis://127.0.0.1:6379/0",
        "sites": [{"slug": "site-a", "token": "pln_x", "storage": {"kind": "fs"}}],
    }
    raw.update(changes)
    return {k: v for k, v in raw.items() if v is not None}


def test_a_complete_config_is_read():
    config = config_from_dict(_raw())
    assert config.broker_url == "redis://127.0.0.1:6379/0"
    assert config.hub_url == "http://127.0.0.1:8000"
    assert [s.slug for s in config.sites] == ["site-a"]


def test_a_config_without_a_broker_is_refused_by_name():
    """It used to fall back to a filesystem broker that the hub never wrote to."""
    with pytest.raises(UserError) as refused:
        config_from_dict(_raw(broker_url=None))
    assert refused.value.code == "bad_config"
    assert "'broker_url'" in refused.value.message


@pytest.mark.parametrize(
    "changes",
    [{"broker_url": "filesystem://"}, {"broker_dir": "/var/pollen/broker"}],
)
def test_the_removed_filesystem_broker_is_refused_with_what_to_set(changes):
    with pytest.raises(UserError) as refused:
        config_from_dict(_raw(**changes))
    assert refused.value.code == "bad_config"
    assert "no longer supported" in refused.value.message
    assert "broker_url" in refused.value.message
