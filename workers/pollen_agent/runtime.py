"""Process-wide state of a running agent: its config, storages and hub clients (built once)."""

from __future__ import annotations

from functools import cache

from pollen_agent.config import AgentConfig, load_config
from pollen_agent.hub_client import HubClient
from pollen_agent.storage.base import Storage
from pollen_agent.storage.factory import storage_from_config

_config: AgentConfig | None = None


def set_config(config: AgentConfig) -> None:
    global _config
    _config = config
    storage_for.cache_clear()
    hub_for.cache_clear()


def config() -> AgentConfig:
    global _config
    if _config is None:
        _config = load_config()
    return _config


@cache
def storage_for(slug: str) -> Storage:
    site = config().site(slug)
    cfg = dict(site.storage)
    if cfg.get("kind") == "fs":
        cfg.setdefault("site", slug)
    return storage_from_config(cfg)


@cache
def hub_for(slug: str) -> HubClient:
    return HubClient(config().hub_url, config().site(slug).token)
