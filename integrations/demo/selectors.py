from __future__ import annotations

from analytics.clickhouse.query import tenant_query


def sales_exist(*, tenant_id: int) -> bool:
    """Whether the tenant has any sales line at all (from any source)."""
    result = tenant_query(
        "SELECT count() FROM (SELECT 1 FROM sales_lines WHERE tenant_id = {tenant_id:UInt32} LIMIT 1)",
        tenant_id=tenant_id,
    )
    return result.result_rows[0][0] > 0
