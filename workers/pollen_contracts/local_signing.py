"""Signed local URLs for the filesystem backend (the embedded default).

The hub's ``/local-storage/`` view imports this module to check a request
before it serves or stores a file, so it uses the standard library only: it
must import nothing from the agent, Django or any third-party package.

A URL looks like::

    {base_url}/local-storage/{site}/{key}?expires=1700000000&method=PUT&max_bytes=N&sig=...

``sig`` is a hex HMAC-SHA256, under a secret the hub and the agent share, of
the site, key, method, expiry and (for uploads) the size cap. The view must
also refuse a body longer than ``max_bytes``.
"""

from __future__ import annotations

import hashlib
import hmac
import time
from collections.abc import Mapping
from pathlib import Path
from urllib.parse import quote, urlencode

MAX_KEY_LENGTH = 1024
METHODS = ("GET", "PUT")
URL_PATH = "local-storage"
# Development defaults that were once published in Pollen's source. Anyone who has read it could
# forge a link with one, so neither side signs or accepts a link with them.
PUBLISHED_SECRETS = frozenset({"embedded-local-storage-secret"})


class InvalidLocalSignature(ValueError):
    """A signed local URL was refused; ``reason`` says why, for the log."""

    def __init__(self, reason: str) -> None:
        super().__init__(f"signed URL refused: {reason}")
        self.reason = reason


def key_problem(key: object, *, allow_prefix: bool = False) -> str | None:
    """Why ``key`` is not a safe object key, or None when it is.

    Keys are relative, '/'-separated paths: no leading '/', no '.' or '..'
    segments, no backslashes, no control characters, at most 1024 bytes.
    With ``allow_prefix`` the empty string and a trailing '/' are accepted.
    """
    if not isinstance(key, str):
        return "a key must be a string"
    if key == "":
        return None if allow_prefix else "a key must not be empty"
    if len(key.encode("utf-8", "surrogatepass")) > MAX_KEY_LENGTH:
        return f"a key must be at most {MAX_KEY_LENGTH} bytes"
    if key.startswith("/"):
        return "a key must not start with '/'"
    if "\\" in key:
        return "a key must not contain a backslash"
    if any(ord(ch) < 32 or ord(ch) == 127 for ch in key):
        return "a key must not contain control characters"
    segments = key.split("/")
    if allow_prefix and segments[-1] == "":
        segments = segments[:-1]
    for segment in segments:
        if segment in ("", ".", ".."):
            return "a key must not contain empty, '.' or '..' segments"
    return None


def secret_problem(secret: str | bytes | None) -> str | None:
    """Why ``secret`` must not sign links (empty, or a published default), or None when it may."""
    raw = secret.decode("utf-8", "replace") if isinstance(secret, bytes) else secret or ""
    if not raw.strip():
        return "is empty"
    if raw.strip() in PUBLISHED_SECRETS:
        return (
            "is the development default published in Pollen's source, so anyone could forge links"
        )
    return None


def _message(site: str, key: str, method: str, expires: int, max_bytes: int | None) -> bytes:
    cap = "" if max_bytes is None else str(int(max_bytes))
    return "\n".join(("pollen-local-v1", site, key, method, str(int(expires)), cap)).encode()


def _digest(secret: str | bytes, message: bytes) -> str:
    problem = secret_problem(secret)
    if problem:
        raise ValueError(f"the local signing secret {problem}")
    raw = secret.encode() if isinstance(secret, str) else secret
    return hmac.new(raw, message, hashlib.sha256).hexdigest()


def sign_local_url(
    secret: str | bytes,
    *,
    base_url: str,
    site: str,
    key: str,
    method: str,
    expires_in: int,
    max_bytes: int | None = None,
    now: float | None = None,
) -> str:
    """Return a URL that lets its holder ``method`` one object until it expires."""
    method = method.upper()
    if method not in METHODS:
        raise ValueError(f"method must be one of {METHODS}")
    for value, what in ((site, "site"), (key, "key")):
        problem = key_problem(value)
        if problem or (what == "site" and "/" in value):
            raise ValueError(f"invalid {what}: {problem or 'contains /'}")
    if expires_in <= 0:
        raise ValueError("expires_in must be positive")
    expires = int(now if now is not None else time.time()) + int(expires_in)
    query = {"expires": str(expires), "method": method}
    if max_bytes is not None:
        query["max_bytes"] = str(int(max_bytes))
    query["sig"] = _digest(secret, _message(site, key, method, expires, max_bytes))
    path = f"{URL_PATH}/{quote(site, safe='')}/{quote(key, safe='/')}"
    return f"{base_url.rstrip('/')}/{path}?{urlencode(query)}"


def verify_local_signature(
    secret: str | bytes,
    site: str,
    key: str,
    method: str,
    expires: int | str,
    sig: str,
    now: float | None = None,
    *,
    max_bytes: int | str | None = None,
) -> bool:
    """Return True for a valid, unexpired signature; raise InvalidLocalSignature otherwise.

    It never returns False, so ``if not verify_local_signature(...)`` also fails
    closed. Compare in constant time; check expiry only after the signature,
    so an attacker learns nothing from the reason.
    """
    try:
        expires_at = int(expires)
        cap = None if max_bytes in (None, "") else int(max_bytes)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        raise InvalidLocalSignature("malformed") from None
    if key_problem(key) or key_problem(site) or "/" in site or not isinstance(sig, str):
        raise InvalidLocalSignature("malformed")
    if secret_problem(secret):
        # Fail closed: a hub or agent left on a published secret accepts no link at all.
        raise InvalidLocalSignature("signing is not configured")
    expected = _digest(secret, _message(site, key, method.upper(), expires_at, cap))
    if not hmac.compare_digest(expected, sig.lower()):
        raise InvalidLocalSignature("bad signature")
    if (now if now is not None else time.time()) >= expires_at:
        raise InvalidLocalSignature("expired")
    return True


def verify_local_request(
    secret: str | bytes,
    *,
    site: str,
    key: str,
    request_method: str,
    query: Mapping[str, str],
    now: float | None = None,
) -> int | None:
    """Check a request against its query string; return the upload size cap, if any.

    For the hub view: ``request_method`` is the HTTP method actually used, and
    it must match the signed one (HEAD counts as GET).
    """
    signed_method = str(query.get("method", "")).upper()
    actual = "GET" if request_method.upper() == "HEAD" else request_method.upper()
    if signed_method != actual:
        raise InvalidLocalSignature("wrong method")
    max_bytes = query.get("max_bytes")
    verify_local_signature(
        secret,
        site,
        key,
        signed_method,
        query.get("expires", ""),
        query.get("sig", ""),
        now,
        max_bytes=max_bytes,
    )
    return None if max_bytes in (None, "") else int(max_bytes)  # type: ignore[arg-type]


def local_path(root: str | Path, site: str, key: str) -> Path:
    """The file that holds ``key`` for ``site`` under a storage ``root``.

    Raises ValueError for an unsafe site or key, so a caller can never be
    tricked into a path outside ``root/site``.
    """
    problem = key_problem(key) or key_problem(site)
    if problem or "/" in site:
        raise ValueError(problem or "a site slug must not contain '/'")
    return Path(root) / site / Path(*key.split("/"))
