"""Pre-aggregation builds: used only while fresh, stale after any write to the facts, per tenant.

That the answers read from a build equal the answers from the facts is reconciled in
test_semantic_reconciliation.py (test_preaggregations_give_the_same_answers).
"""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

from django_tenants.utils import tenant_context

from analytics.clickhouse.query import data_version, tenant_command, tenant_query
from analytics.preaggregations import CUSTOMER_HISTORIES, EVERY_BUILD, ORDERS, fresh_builds, preaggregations_rebuild
from analytics.tasks import preaggregations_refresh_task
from integrations.ingest import SalesLine, sales_lines_write


def sale(order_id: str, customer_id: str = "C1", amount: str = "100.00") -> SalesLine:
    return SalesLine(
        order_id=order_id,
        line_no=1,
        ts=datetime(2025, 3, 10, 12, tzinfo=UTC),
        amount=Decimal(amount),
        customer_id=customer_id,
        store="A",
    )


def rows(table: str, tenant_id: int) -> list[tuple]:
    """The current rows of a pre-aggregation: (order, amount) of orders, (customer, order count) of histories."""
    columns = "order_id, amount" if table == ORDERS else "customer_id, length(orders)"
    sql = f"SELECT {columns} FROM {table} WHERE tenant_id = {{tenant_id:UInt32}} ORDER BY 1"
    return tenant_query(sql, tenant_id=tenant_id).result_rows


def refresh() -> dict[str, float]:
    """Run the beat task here, as a worker would (eagerly; its result read without blocking)."""
    result = preaggregations_refresh_task.apply()
    assert result.successful(), result.traceback
    return result.result


def test_writes_to_facts_bump_the_data_version_and_derived_tables_do_not(tenant):
    before = data_version(tenant.pk)
    sales_lines_write([sale("R1")], source="test", tenant_id=tenant.pk)
    after_fact = data_version(tenant.pk)
    assert after_fact > before
    tenant_command("DELETE FROM orders WHERE tenant_id = {tenant_id:UInt32} AND build = 0", tenant_id=tenant.pk)
    assert data_version(tenant.pk) == after_fact
    tenant_command(
        "DELETE FROM sales_lines WHERE tenant_id = {tenant_id:UInt32} AND order_id = 'nothing'", tenant_id=tenant.pk
    )
    assert data_version(tenant.pk) > after_fact


def test_a_build_is_fresh_until_the_next_write_and_the_task_rebuilds_only_then(tenant):
    sales_lines_write([sale("R1"), sale("R2", "C2", "50.00")], source="test", tenant_id=tenant.pk)
    with tenant_context(tenant):
        assert fresh_builds(tenant.pk) == {}
        built = refresh()
        assert set(built) == EVERY_BUILD
        assert set(fresh_builds(tenant.pk)) == EVERY_BUILD
        assert rows(ORDERS, tenant.pk) == [("R1", Decimal("100.00")), ("R2", Decimal("50.00"))]
        assert refresh() == {}  # fresh: nothing to do

        sales_lines_write([sale("R3", "C1")], source="test", tenant_id=tenant.pk)
        assert fresh_builds(tenant.pk) == {}
        refresh()
        # The new build replaced the old one: no row of the earlier build is left.
        assert rows(ORDERS, tenant.pk) == [
            ("R1", Decimal("100.00")),
            ("R2", Decimal("50.00")),
            ("R3", Decimal("100.00")),
        ]
        assert rows(CUSTOMER_HISTORIES, tenant.pk) == [("C1", 2), ("C2", 1)]


def test_a_tenants_build_leaves_other_tenants_alone(make_tenant):
    first, second = make_tenant(), make_tenant()
    sales_lines_write([sale("A1")], source="test", tenant_id=first.pk)
    sales_lines_write([sale("B1"), sale("B2")], source="test", tenant_id=second.pk)
    preaggregations_rebuild(tenant_id=second.pk, timezone=second.timezone)
    preaggregations_rebuild(tenant_id=first.pk, timezone=first.timezone)

    assert rows(ORDERS, first.pk) == [("A1", Decimal("100.00"))]
    assert [order for order, _amount in rows(ORDERS, second.pk)] == ["B1", "B2"]
    assert set(fresh_builds(second.pk)) == EVERY_BUILD
