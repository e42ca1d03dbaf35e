"""Small helpers that read settings from the environment.

Secrets may come from ``NAME_FILE`` (a path, as Docker and Kubernetes mount
them) instead of ``NAME``.
"""

from __future__ import annotations

import contextlib
import ipaddress
import os
import secrets
import stat
from pathlib import Path
from urllib.parse import parse_qs, unquote, urlparse


class ConfigError(RuntimeError):
    pass


def env_str(name: str, default: str | None = None) -> str | None:
    file_path = os.environ.get(f"{name}_FILE")
    if file_path:
        try:
            return Path(file_path).read_text().strip()
        except OSError as exc:
            raise ConfigError(
                f"{name}_FILE points to {file_path!r}, which cannot be read: {exc}"
            ) from exc
    return os.environ.get(name, default)


def env_secret(
    name: str, *, state_file: Path | None, published: frozenset[str], min_length: int = 1
) -> tuple[str, Path | None]:
    """A secret from ``NAME`` or ``NAME_FILE``; with neither set, this install's own from ``state_file``.

    Returns the secret and the file it came from (None when it came from the environment).
    Refuses an empty secret and the development defaults once ``published`` in Pollen's source:
    anyone who has read the source could forge sessions or links signed with them.
    """
    file_name = os.environ.get(f"{name}_FILE")
    configured = name in os.environ or bool(file_name)
    if configured:
        value = (env_str(name) or "").strip()
        source = Path(file_name) if file_name else None
    elif state_file is None:
        raise ConfigError(f"{name} (or {name}_FILE) must be set")
    else:
        value, source = state_secret(state_file), state_file
    if not value and not configured:
        raise ConfigError(f"{source} is empty: delete it and Pollen makes a new one")
    if not value:
        raise ConfigError(f"{name} is empty: set a long random value, or unset it to generate one")
    if value in published:
        raise ConfigError(
            f"{name} is a development default published in Pollen's source, so anyone could "
            "forge what it signs: set a long random value, or unset it to generate one"
        )
    if len(value) < min_length:
        raise ConfigError(f"{name} is too short: use at least {min_length} random characters")
    return value, source


def state_secret(path: Path) -> str:
    """This install's random secret at ``path``, made on first use (mode 0600, never rewritten).

    Several processes start at once (gunicorn workers, the agent), so the file appears in one
    step: written under a temporary name, then linked into place, which fails if another won.
    """
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            with os.fdopen(fd, "w") as out:
                out.write(secrets.token_urlsafe(48) + "\n")
            # Another process that got there first wins; its secret is the one everyone reads.
            with contextlib.suppress(FileExistsError):
                os.link(tmp, path)
        finally:
            tmp.unlink()
    mode = stat.S_IMODE(path.stat().st_mode)
    if mode & 0o077:
        # The file is as good as published if other accounts on this machine can read it.
        raise ConfigError(
            f"{path} can be read by other accounts (mode {mode:o}): run `chmod 600 {path}`"
        )
    try:
        return path.read_text().strip()
    except OSError as exc:
        raise ConfigError(f"{path} cannot be read: {exc.strerror}") from exc


def env_bool(name: str, default: bool = False) -> bool:
    raw = os.environ.get(name)
    if raw is None:
        return default
    if raw.strip().lower() in {"1", "true", "yes", "on"}:
        return True
    if raw.strip().lower() in {"0", "false", "no", "off", ""}:
        return False
    raise ConfigError(f"{name}={raw!r} is not a boolean: use true or false")


def env_int(name: str, default: int) -> int:
    raw = os.environ.get(name)
    if raw is None:
        return default
    try:
        return int(raw)
    except ValueError as exc:
        raise ConfigError(f"{name}={raw!r} is not a whole number") from exc


def env_list(name: str, default: list[str]) -> list[str]:
    raw = os.environ.get(name)
    if raw is None:
        return default
    return [item.strip() for item in raw.split(",") if item.strip()]


def env_networks(name: str) -> list[ipaddress.IPv4Network | ipaddress.IPv6Network]:
    """Comma-separated IP addresses or CIDR blocks; a bare address is a network of one."""
    networks = []
    for item in env_list(name, []):
        try:
            networks.append(ipaddress.ip_network(item, strict=False))
        except ValueError as exc:
            raise ConfigError(
                f"{name}: {item!r} is not an IP address or CIDR block (e.g. 10.42.0.0/16)"
            ) from exc
    return networks


# SQLite shared by gunicorn's threads and processes (the embedded default):
# - WAL lets readers carry on while one connection writes;
# - a write transaction takes the write lock when it begins (IMMEDIATE). A transaction that reads
#   and then writes would otherwise ask for the lock half-way, and SQLite refuses that at once with
#   "database is locked" instead of waiting, since two such transactions could wait on each other;
# - ``timeout`` (seconds) is how long a connection waits for the lock before it gives up.
SQLITE_OPTIONS = {
    "timeout": 20,
    "transaction_mode": "IMMEDIATE",
    "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=FULL",
}


def parse_database_url(url: str, *, base_dir: Path) -> dict[str, object]:
    """Turn ``postgres://user:pass@host:port/name`` or ``sqlite:///path`` into DATABASES['default']."""
    parsed = urlparse(url)
    if parsed.scheme == "sqlite":
        raw_path = unquote(parsed.path.lstrip("/")) if parsed.netloc == "" else parsed.netloc
        path = (
            Path(raw_path)
            if raw_path.startswith("/") or url.startswith("sqlite:////")
            else base_dir / raw_path
        )
        if url.startswith("sqlite:////"):
            path = Path("/" + parsed.path.lstrip("/"))
        return {
            "ENGINE": "django.db.backends.sqlite3",
            "NAME": str(path),
            "OPTIONS": dict(SQLITE_OPTIONS),
        }
    if parsed.scheme in {"postgres", "postgresql", "psql"}:
        options = {k: v[-1] for k, v in parse_qs(parsed.query).items()}
        return {
            "ENGINE": "django.db.backends.postgresql",
            "NAME": unquote(parsed.path.lstrip("/")),
            "USER": unquote(parsed.username or ""),
            "PASSWORD": unquote(parsed.password or ""),
            "HOST": parsed.hostname or "",
            "PORT": str(parsed.port or ""),
            "CONN_MAX_AGE": 60,
            "CONN_HEALTH_CHECKS": True,
            "OPTIONS": options,
        }
    raise ConfigError(
        f"DATABASE_URL scheme {parsed.scheme!r} is not supported: use postgres:// or sqlite://"
    )
