"""Agent configuration: which sites it serves, their storage, and how to reach the hub.

Read from a JSON file (``POLLEN_AGENT_CONFIG`` or ``--config``). The site's storage
credentials live here and only here: never in the hub. Example::

    {"hub_url": "https://hub.example.org",
     "broker_url": "redis://broker:6379/0", "result_backend": "redis://broker:6379/1",
     "sites": [{"slug": "site-a", "token_file": "/run/secrets/agent-token",
                "storage": {"kind": "s3", "endpoint_url": "...", "bucket": "pollen-site-a",
                            "access_key": "...", "secret_key_file": "/run/secrets/s3"}}]}
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pollen_agent.errors import UserError
from pollen_contracts.queues import gpu_queue, infer_queue, io_queue, quick_queue


@dataclass(frozen=True)
class SiteConfig:
    slug: str
    token: str
    storage: dict[str, Any]


@dataclass(frozen=True)
class AgentConfig:
    hub_url: str
    broker_url: str
    result_backend: str
    sites: tuple[SiteConfig, ...]
    work_dir: Path
    visibility_timeout: int = 12 * 3600
    job_soft_time_limit: int = 10 * 3600
    job_time_limit: int = 11 * 3600
    extra: dict[str, Any] = field(default_factory=dict)

    def site(self, slug: str) -> SiteConfig:
        for site in self.sites:
            if site.slug == slug:
                return site
        raise UserError(f"This agent does not serve the site '{slug}'.", code="wrong_site")

    def io_queues(self) -> list[str]:
        return [io_queue(s.slug) for s in self.sites]

    def gpu_queues(self) -> list[str]:
        return [gpu_queue(s.slug) for s in self.sites]

    def quick_queues(self) -> list[str]:
        return [quick_queue(s.slug) for s in self.sites]

    def infer_queues(self) -> list[str]:
        return [infer_queue(s.slug) for s in self.sites]


def _read_secret(entry: dict[str, Any], name: str, *, owner: str = "Each site") -> str:
    if entry.get(f"{name}_file"):
        try:
            return Path(entry[f"{name}_file"]).read_text().strip()
        except OSError as exc:
            raise UserError(
                f"Cannot read {name}_file {entry[f'{name}_file']!r}: {exc}", code="bad_config"
            ) from exc
    value = entry.get(name)
    if not value:
        raise UserError(
            f"{owner} needs '{name}' or '{name}_file' in the agent config.", code="bad_config"
        )
    return str(value)


def _optional_secret(raw: dict[str, Any], name: str, default: str) -> str:
    if raw.get(f"{name}_file") or raw.get(name):
        return _read_secret(raw, name)
    return default


def _refuse_removed_broker(raw: dict[str, Any]) -> None:
    """The filesystem broker is gone (it could hand a worker a half-written message): say so."""
    if "broker_dir" in raw or str(raw.get("broker_url") or "").startswith("filesystem"):
        raise UserError(
            "The filesystem broker is no longer supported: set 'broker_url' to the hub's broker "
            "(Redis, or the embedded default's sqla+sqlite URL) and remove 'broker_dir'.",
            code="bad_config",
        )


def config_from_dict(raw: dict[str, Any]) -> AgentConfig:
    """Build the config; the broker URLs (which carry passwords) may come from ``*_file`` paths."""
    try:
        sites = tuple(
            SiteConfig(slug=s["slug"], token=_read_secret(s, "token"), storage=dict(s["storage"]))
            for s in raw["sites"]
        )
        if not sites:
            raise UserError("The agent config lists no sites.", code="bad_config")
        _refuse_removed_broker(raw)
        return AgentConfig(
            hub_url=raw["hub_url"].rstrip("/"),
            broker_url=_read_secret(raw, "broker_url", owner="The agent"),
            result_backend=_optional_secret(raw, "result_backend", ""),
            sites=sites,
            work_dir=Path(raw.get("work_dir", "/tmp/pollen-agent")),  # noqa: S108 - overridable scratch dir
            visibility_timeout=int(raw.get("visibility_timeout", 12 * 3600)),
            job_soft_time_limit=int(raw.get("job_soft_time_limit", 10 * 3600)),
            job_time_limit=int(raw.get("job_time_limit", 11 * 3600)),
            extra={k: v for k, v in raw.items() if k.startswith("x_")},
        )
    except KeyError as exc:
        raise UserError(f"The agent config is missing {exc.args[0]!r}.", code="bad_config") from exc


def load_config(path: str | None = None) -> AgentConfig:
    path = path or os.environ.get("POLLEN_AGENT_CONFIG")
    if not path:
        raise UserError(
            "Set POLLEN_AGENT_CONFIG to the agent's JSON config file.", code="bad_config"
        )
    try:
        raw = json.loads(Path(path).read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise UserError(f"Cannot read the agent config {path!r}: {exc}", code="bad_config") from exc
    return config_from_dict(raw)
