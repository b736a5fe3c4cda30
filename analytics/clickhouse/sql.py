"""ClickHouse DDL as functions (the PostHog way): each table's CREATE and DROP side by side.

``tenant_id`` leads every ORDER BY so a tenant's rows sit together and every query
prunes to them.
"""

from __future__ import annotations

MIGRATIONS_TABLE = "clickhouse_migrations"


def MIGRATIONS_TABLE_SQL() -> str:
    return f"""
CREATE TABLE IF NOT EXISTS {MIGRATIONS_TABLE} (
    name String,
    applied_at DateTime DEFAULT now()
) ENGINE = MergeTree ORDER BY name
"""


def TENANT_SETTINGS_TABLE_SQL() -> str:
    # What queries need to know of a tenant without asking Postgres: its timezone for
    # period boundaries, its currency. Replaced on every change (latest version wins).
    return """
CREATE TABLE IF NOT EXISTS tenant_settings (
    tenant_id UInt32,
    timezone LowCardinality(String),
    currency LowCardinality(String),
    churn_window_days UInt16,
    attribution_window_days UInt16,
    version UInt64
) ENGINE = ReplacingMergeTree(version) ORDER BY tenant_id
"""


def DROP_TENANT_SETTINGS_TABLE_SQL() -> str:
    return "DROP TABLE IF EXISTS tenant_settings"
