"""Secrets we hand out once and keep only as hashes (invitations, API tokens)."""

from __future__ import annotations

import hashlib
import secrets

API_TOKEN_PREFIX = "cx"


def new_secret() -> str:
    return secrets.token_urlsafe(32)


def hash_secret(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def api_token_compose(slug: str, secret: str) -> str:
    """``cx_<tenant slug>_<secret>``: the slug lets the API find the tenant before the schema is known."""
    return f"{API_TOKEN_PREFIX}_{slug}_{secret}"


def api_token_parse(raw: str) -> tuple[str, str] | None:
    """Return (slug, secret) of a well-formed token, else None. Slugs never contain '_'."""
    parts = raw.split("_", 2)
    if len(parts) != 3 or parts[0] != API_TOKEN_PREFIX or not parts[1] or not parts[2]:
        return None
    return parts[1], parts[2]
