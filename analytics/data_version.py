"""A per-tenant version of its ClickHouse data: bumped by every write, part of every cached answer's key.

Any insert or mutation through analytics.clickhouse.query bumps it, so a cached query result can
never outlive the data it was computed from. When the counter itself is evicted, it restarts at
the current time, never at a number an old entry could carry.
"""

from __future__ import annotations

import time

from django.core.cache import caches


def _key(tenant_id: int) -> str:
    return f"data-version:{tenant_id}"


def data_version(tenant_id: int) -> int:
    cache = caches["analytics"]
    cache.add(_key(tenant_id), time.time_ns(), timeout=None)
    return cache.get(_key(tenant_id)) or 0


def data_version_bump(tenant_id: int) -> None:
    cache = caches["analytics"]
    try:
        cache.incr(_key(tenant_id))
    except ValueError:  # not there (never read, or evicted)
        cache.set(_key(tenant_id), time.time_ns(), timeout=None)
