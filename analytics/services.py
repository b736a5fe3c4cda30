from __future__ import annotations

import time

from analytics.clickhouse.query import tenant_insert


def tenant_settings_publish(*, tenant) -> None:
    """Write the tenant's query-relevant settings to ClickHouse (latest version wins)."""
    tenant_insert(
        "tenant_settings",
        [[tenant.timezone, tenant.currency, tenant.churn_window_days, tenant.attribution_window_days, time.time_ns()]],
        ["timezone", "currency", "churn_window_days", "attribution_window_days", "version"],
        tenant_id=tenant.pk,
    )
