"""Pre-aggregation builds: used only while fresh, stale after a write to the facts they derive from, per tenant.

That the answers read from a build equal the answers from the facts is reconciled in
test_semantic_reconciliation.py (test_preaggregations_give_the_same_answers).
"""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from decimal import Decimal

from django_tenants.utils import tenant_context

from analytics.clickhouse.query import data_version, tenant_command, tenant_query
from analytics.preaggregations import (
    ATTRIBUTED_ORDERS,
    AUDIENCE_SENDS,
    CONTACT_DAYS,
    CUSTOMER_HISTORIES,
    EVERY_BUILD,
    MESSAGE_DAYS,
    ORDERS,
    WEB_DAYS,
    fresh_builds,
    preaggregations_rebuild,
)
from analytics.selectors import metrics_query
from analytics.semantic.spec import query_parse
from analytics.services import tenant_settings_publish
from analytics.tasks import preaggregations_refresh_task
from integrations.ingest import (
    Customer,
    MessageEvent,
    SalesLine,
    WebEvent,
    customers_write,
    message_events_write,
    sales_lines_write,
    web_events_write,
)


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


def settled_rows(table: str, tenant_id: int) -> list[tuple]:
    """The rows once the background deletion of older builds is done (it runs as a mutation after the rebuild)."""
    sql = f"SELECT uniqExact(build) FROM {table} WHERE tenant_id = {{tenant_id:UInt32}}"
    for _attempt in range(600):
        if tenant_query(sql, tenant_id=tenant_id).result_rows[0][0] <= 1:
            return rows(table, tenant_id)
        time.sleep(0.1)
    raise AssertionError(f"older builds of {table} are still there")


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
        # Everything derived from sales is stale; contacts, messages and web events did not change.
        assert set(fresh_builds(tenant.pk)) == {CONTACT_DAYS, MESSAGE_DAYS, WEB_DAYS}
        assert set(refresh()) == EVERY_BUILD - {CONTACT_DAYS, MESSAGE_DAYS, WEB_DAYS}
        # The new build replaces the old one: the earlier build's rows are deleted in the background.
        assert settled_rows(ORDERS, tenant.pk) == [
            ("R1", Decimal("100.00")),
            ("R2", Decimal("50.00")),
            ("R3", Decimal("100.00")),
        ]
        assert settled_rows(CUSTOMER_HISTORIES, tenant.pk) == [("C1", 2), ("C2", 1)]


def test_a_write_stales_only_the_builds_derived_from_that_fact_and_the_task_rebuilds_only_those(make_tenant):
    tenant, other = make_tenant(), make_tenant()
    sales_lines_write([sale("R1"), sale("R2", "C2", "50.00")], source="test", tenant_id=tenant.pk)
    delivered_before_r1 = datetime(2025, 3, 9, 12, tzinfo=UTC)
    with tenant_context(tenant):
        preaggregations_rebuild(tenant_id=tenant.pk, timezone=tenant.timezone)
        first = fresh_builds(tenant.pk)
        assert set(first) == EVERY_BUILD

        web_events_write(
            [WebEvent("W1", "visit", delivered_before_r1, session_id="S1")], source="test", tenant_id=tenant.pk
        )
        assert set(fresh_builds(tenant.pk)) == EVERY_BUILD - {WEB_DAYS}
        assert set(refresh()) == {WEB_DAYS}
        assert fresh_builds(tenant.pk) == {**first, WEB_DAYS: fresh_builds(tenant.pk)[WEB_DAYS]}

        # The attributed orders and the audience sends are rebuilt with the message days, reading the orders build
        # that stayed fresh.
        message_events_write(
            [MessageEvent("M1", "delivered", delivered_before_r1, "C1", mailing_id="March")],
            source="test",
            tenant_id=tenant.pk,
        )
        from_messages = {MESSAGE_DAYS, ATTRIBUTED_ORDERS, AUDIENCE_SENDS}
        assert set(fresh_builds(tenant.pk)) == EVERY_BUILD - from_messages
        assert set(refresh()) == from_messages
        after_messages = fresh_builds(tenant.pk)
        assert after_messages[ORDERS] == first[ORDERS]
        attributed = tenant_query(
            "SELECT order_id, mailing_id FROM attributed_orders"
            " WHERE tenant_id = {tenant_id:UInt32} AND build = {build:UInt64}",
            {"build": after_messages[ATTRIBUTED_ORDERS]},
            tenant_id=tenant.pk,
        ).result_rows
        assert attributed == [("R1", "March")]

        # Another tenant's writes stale nothing here; the tenant's settings (its timezone) stale every build.
        sales_lines_write([sale("X1")], source="test", tenant_id=other.pk)
        assert fresh_builds(tenant.pk) == after_messages
        tenant_settings_publish(tenant=tenant)
        assert fresh_builds(tenant.pk) == {}
        assert set(refresh()) == EVERY_BUILD


def test_a_version_that_names_no_fact_stales_every_build(tenant):
    """Versions bumped before they named their fact (ClickHouse migration 0011) count as a change of every fact."""
    sales_lines_write([sale("R1")], source="test", tenant_id=tenant.pk)
    preaggregations_rebuild(tenant_id=tenant.pk, timezone=tenant.timezone)
    assert set(fresh_builds(tenant.pk)) == EVERY_BUILD
    tenant_command(
        "INSERT INTO data_versions (tenant_id, fact, version) SELECT {tenant_id:UInt32}, '', max(version) + 1"
        " FROM data_versions WHERE tenant_id = {tenant_id:UInt32}",
        tenant_id=tenant.pk,
    )
    assert fresh_builds(tenant.pk) == {}


def test_a_tenants_build_leaves_other_tenants_alone(make_tenant):
    first, second = make_tenant(), make_tenant()
    sales_lines_write([sale("A1")], source="test", tenant_id=first.pk)
    sales_lines_write([sale("B1"), sale("B2")], source="test", tenant_id=second.pk)
    preaggregations_rebuild(tenant_id=second.pk, timezone=second.timezone)
    preaggregations_rebuild(tenant_id=first.pk, timezone=first.timezone)

    assert rows(ORDERS, first.pk) == [("A1", Decimal("100.00"))]
    assert [order for order, _amount in rows(ORDERS, second.pk)] == ["B1", "B2"]
    assert set(fresh_builds(second.pk)) == EVERY_BUILD


def test_contact_days_count_contacts_not_rows(tenant):
    """Contacts who joined on one local day with the same attributes share a contact_days row; metrics sum them."""
    joined = datetime(2025, 3, 10, 20, 30, tzinfo=UTC)  # 23:30 in Moscow (the tenant's timezone): one local day
    same = {"city": "Kazan", "gender": "f", "consent_email": True}
    customers = [
        Customer(f"K{number}", created_at=joined + timedelta(minutes=number), email=f"k{number}@x.test", **same)
        for number in range(3)
    ]
    customers.append(Customer("M1", created_at=joined, city="Moscow"))
    with tenant_context(tenant):
        customers_write(customers, source="test", tenant_id=tenant.pk)
    preaggregations_rebuild(tenant_id=tenant.pk, timezone=tenant.timezone)
    city_rows = tenant_query(
        "SELECT city, contacts FROM contact_days WHERE tenant_id = {tenant_id:UInt32} AND grain = 'city' ORDER BY city",
        tenant_id=tenant.pk,
    ).result_rows
    assert city_rows == [("Kazan", 3), ("Moscow", 1)]
    with tenant_context(tenant):
        answer = metrics_query(
            query_parse(
                {
                    "metrics": ["contacts", "email_reachable_contacts"],
                    "dimensions": ["city"],
                    "from": "2025-03-01",
                    "to": "2025-03-31",
                }
            )
        )
    values = {row["dimensions"]["city"]: row["values"] for row in answer["rows"]}
    assert values == {
        "Kazan": {"contacts": 3, "email_reachable_contacts": 3},
        "Moscow": {"contacts": 1, "email_reachable_contacts": 0},
    }
    assert answer["totals"]["values"] == {"contacts": 4, "email_reachable_contacts": 3}
