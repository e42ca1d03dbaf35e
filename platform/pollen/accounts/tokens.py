"""Token format and hashing: ``pln_<prefix>_<secret>``; the secret is shown once."""

from __future__ import annotations

import hashlib
import hmac
import secrets

PREFIX_LEN = 10


def token_generate() -> tuple[str, str, str]:
    """Return (plaintext, prefix, digest)."""
    prefix = secrets.token_hex(PREFIX_LEN // 2)
    secret = secrets.token_urlsafe(32)
    plaintext = f"pln_{prefix}_{secret}"
    return plaintext, prefix, token_digest(plaintext)


def token_digest(plaintext: str) -> str:
    # Tokens carry 256 bits of randomness, so a fast hash is enough (no password stretching).
    return hashlib.sha256(plaintext.encode()).hexdigest()


def token_split(plaintext: str) -> str | None:
    """Return the prefix of a well-formed token, else None."""
    parts = plaintext.split("_", 2)
    if len(parts) != 3 or parts[0] != "pln" or len(parts[1]) != PREFIX_LEN:
        return None
    return parts[1]


def token_matches(plaintext: str, digest: str) -> bool:
    return hmac.compare_digest(token_digest(plaintext), digest)
