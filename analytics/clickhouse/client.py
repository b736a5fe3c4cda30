"""Connections to ClickHouse: a clickhouse-server over HTTP, or chdb in-process (DESIGN §3).

Only the tenant-scoped query module (``analytics.clickhouse.query``) and the schema
migrator use these clients; nothing else talks to ClickHouse.
"""

from __future__ import annotations

import threading
from urllib.parse import urlsplit, urlunsplit

import clickhouse_connect
from clickhouse_connect.driver.client import Client
from django.conf import settings

_local = threading.local()


class ClickHouseUnavailableError(Exception):
    """ClickHouse cannot be reached; the message names where we looked."""


def clickhouse_location() -> str:
    """The configured ClickHouse URL with any password masked, for messages and logs."""
    parts = urlsplit(settings.CLICKHOUSE_URL)
    if parts.password:
        netloc = f"{parts.username}:***@{parts.hostname}" + (f":{parts.port}" if parts.port else "")
        parts = parts._replace(netloc=netloc)
    return urlunsplit(parts)


def is_embedded() -> bool:
    return settings.CLICKHOUSE_URL.startswith("chdb:")


def _connect(database: str | None) -> Client:
    try:
        # Timeouts only mean something over HTTP; chdb runs in this process.
        timeouts = {} if is_embedded() else {"connect_timeout": 5, "send_receive_timeout": 300}
        return clickhouse_connect.get_client(dsn=settings.CLICKHOUSE_URL, database=database or "", **timeouts)
    except Exception as exc:  # the driver raises several types; all mean "not reachable"
        raise ClickHouseUnavailableError(f"ClickHouse at {clickhouse_location()} is unreachable: {exc}") from exc


def get_client() -> Client:
    """A client bound to ``CLICKHOUSE_DATABASE``, one per thread (chdb and HTTP clients are not thread-safe)."""
    key = (settings.CLICKHOUSE_URL, settings.CLICKHOUSE_DATABASE)
    cached = getattr(_local, "clients", {}).get(key)
    if cached is not None:
        return cached
    bootstrap = _connect(database=None)
    try:
        bootstrap.command(f"CREATE DATABASE IF NOT EXISTS {settings.CLICKHOUSE_DATABASE}")
    except Exception as exc:
        raise ClickHouseUnavailableError(f"ClickHouse at {clickhouse_location()} is unreachable: {exc}") from exc
    client = _connect(database=settings.CLICKHOUSE_DATABASE)
    _local.__dict__.setdefault("clients", {})[key] = client
    return client


def reset_clients() -> None:
    """Forget this thread's clients (after the settings change, e.g. in tests)."""
    _local.__dict__.pop("clients", None)
