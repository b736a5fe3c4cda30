"""Pre-aggregations: an order-grain table and per-customer order histories, rebuilt per tenant.

An order is one row; its returns one row per day they happened on (as the semantic layer counts them).

Sales metrics read orders instead of receipt lines (receipts are counted, not uniqExact-ed), and
stock metrics (customer base, churn, retention) read one row per customer instead of grouping the
whole sales history. A build is used only while it is *fresh*: built from the tenant's current data
version (analytics/clickhouse/query.py). Any write to a fact table bumps that version, so a query never
reads a stale build: until the next rebuild it computes from the facts, slower but exact.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from django.db import connection

from analytics.clickhouse.query import data_version, tenant_command, tenant_query

ORDERS = "orders"
CUSTOMER_HISTORIES = "customer_histories"
CUSTOMER_DAYS = "customer_days"
CUSTOMER_BASE_DAYS = "customer_base_days"
# Grouping 120M lines by order needs more memory than a default block allows; spill instead of failing.
BUILD_SETTINGS = {"max_execution_time": 3600, "max_bytes_before_external_group_by": 4 * 2**30}

ORDERS_BUILD_SQL = """
INSERT INTO orders (tenant_id, build, day, ts, order_id, is_return, customer_id, store, employee, channel,
                    qty, discount, amount, promo_lines, promo_amount)
SELECT {tenant_id:UInt32}, {build:UInt64}, toDate(min(ts), {tz:String}), min(ts), order_id, is_return,
       any(customer_id), any(store), any(employee), any(channel),
       sum(qty), sum(discount), sum(amount), countIf(promo_code != ''), sumIf(amount, promo_code != '')
FROM sales_lines FINAL
WHERE tenant_id = {tenant_id:UInt32}
GROUP BY order_id, is_return, if(is_return = 1, toDate(ts, {tz:String}), toDate(0))
"""

CUSTOMER_HISTORIES_BUILD_SQL = """
INSERT INTO customer_histories (tenant_id, build, customer_id, first_order_ts, orders, money)
SELECT {tenant_id:UInt32}, {build:UInt64}, customer_id, minIf(ts, is_return = 0),
       arraySort(groupArrayIf(day, is_return = 0)), arraySort(groupArray((day, amount)))
FROM orders
WHERE tenant_id = {tenant_id:UInt32} AND build = {build:UInt64} AND customer_id != ''
GROUP BY customer_id
HAVING countIf(is_return = 0) > 0
"""


# Every day with an order of each identified customer within each slice (the shop, a store, an employee, a channel):
# its sale orders and the running count, its net amount (returns too), and the customer's first, previous and next
# purchase days within the slice (``prev_day`` 1970-01-01 before the first, ``next_day`` 2149-06-06 after the last).
# arrayFill carries the latest purchase day forward over return-only days, arrayReverseFill the next one back.
CUSTOMER_DAYS_BUILD_SQL = """
INSERT INTO customer_days (tenant_id, build, slice, slice_value, day, customer_id, orders, cum_orders, amount,
                           first_day, prev_day, next_day)
SELECT {tenant_id:UInt32}, {build:UInt64}, slice, slice_value, d.1, customer_id, d.2, cum_orders, d.3,
       first_day, prev_day, next_day
FROM (
    SELECT customer_id, slice, slice_value, arraySort(groupArray((day, orders, amount))) AS days,
           arrayMap(t -> if(t.2 > 0, t.1, toDate(0)), days) AS purchase_days,
           arrayFirst(x -> x != toDate(0), purchase_days) AS first_day,
           arrayFill(x -> x != toDate(0), purchase_days) AS latest_purchase,
           arrayReverseFill(x -> x != toDate('2149-06-06'),
                            arrayMap(x -> if(x = toDate(0), toDate('2149-06-06'), x), purchase_days)) AS next_purchase
    FROM (
        SELECT customer_id, s.1 AS slice, s.2 AS slice_value, day,
               toUInt32(countIf(is_return = 0)) AS orders, sum(amount) AS amount
        FROM orders
        ARRAY JOIN [('all', ''), ('store', toString(store)), ('employee', toString(employee)),
                    ('channel', toString(channel))] AS s
        WHERE tenant_id = {tenant_id:UInt32} AND build = {build:UInt64} AND customer_id != ''
        GROUP BY customer_id, slice, slice_value, day
    )
    GROUP BY customer_id, slice, slice_value
)
ARRAY JOIN days AS d, arrayCumSum(arrayMap(t -> t.2, days)) AS cum_orders,
           arrayPushFront(arrayPopBack(latest_purchase), toDate(0)) AS prev_day,
           arrayPushBack(arrayPopFront(next_purchase), toDate('2149-06-06')) AS next_day
WHERE first_day != toDate(0)
"""

# What the customer base gains per day: first purchases, days of lifetime (each purchase adds the days since the
# previous one) and net amount. Amounts before a customer's first purchase (returns) count from that purchase on.
CUSTOMER_BASE_DAYS_BUILD_SQL = """
INSERT INTO customer_base_days (tenant_id, build, slice, slice_value, day, first_purchases, lifetime_days, amount)
SELECT {tenant_id:UInt32}, {build:UInt64}, slice, slice_value, greatest(day, first_day) AS base_day,
       countIf(orders > 0 AND prev_day = toDate(0)),
       sumIf(toInt64(day) - toInt64(prev_day), orders > 0 AND prev_day != toDate(0)),
       sum(amount)
FROM customer_days
WHERE tenant_id = {tenant_id:UInt32} AND build = {build:UInt64}
GROUP BY slice, slice_value, base_day
"""


@dataclass(frozen=True)
class Preaggregation:
    """A derived table rebuilt whole per tenant. ``sql`` inserts one build of it; every build of one rebuild
    shares the build number, so a later pre-aggregation may read an earlier one (``build = {build:UInt64}``)."""

    name: str
    sql: str


# In build order.
PREAGGREGATIONS: tuple[Preaggregation, ...] = (
    Preaggregation(ORDERS, ORDERS_BUILD_SQL),
    Preaggregation(CUSTOMER_HISTORIES, CUSTOMER_HISTORIES_BUILD_SQL),
    Preaggregation(CUSTOMER_DAYS, CUSTOMER_DAYS_BUILD_SQL),
    Preaggregation(CUSTOMER_BASE_DAYS, CUSTOMER_BASE_DAYS_BUILD_SQL),
)
EVERY_BUILD = frozenset(preaggregation.name for preaggregation in PREAGGREGATIONS)


def preaggregations_rebuild(*, tenant_id: int, timezone: str) -> dict[str, float]:
    """Build every pre-aggregation of one tenant from its facts; returns seconds per build.

    The data version is read before the build: data that lands meanwhile bumps it, and the build
    is then stale from the start, as it should be.
    """
    version = data_version(tenant_id)
    build = time.time_ns()
    seconds = {
        preaggregation.name: preaggregation_build(
            preaggregation, tenant_id=tenant_id, timezone=timezone, build=build, data_version=version
        )
        for preaggregation in PREAGGREGATIONS
    }
    for preaggregation in PREAGGREGATIONS:
        tenant_command(
            f"DELETE FROM {preaggregation.name} WHERE tenant_id = {{tenant_id:UInt32}} AND build != {{build:UInt64}}",
            {"build": build},
            tenant_id=tenant_id,
        )
    return seconds


def preaggregation_build(
    preaggregation: Preaggregation, *, tenant_id: int, timezone: str, build: int, data_version: int
) -> float:
    """Insert one build of one pre-aggregation and record it as made from ``data_version``; returns seconds.

    The benchmarks call it alone to add one pre-aggregation to a fresh set of builds (same build number).
    """
    name = preaggregation.name
    started = time.perf_counter()
    tenant_command(preaggregation.sql, {"build": build, "tz": timezone}, tenant_id=tenant_id, settings=BUILD_SETTINGS)
    rows = tenant_query(
        f"SELECT count() FROM {name} WHERE tenant_id = {{tenant_id:UInt32}} AND build = {{build:UInt64}}",
        {"build": build},
        tenant_id=tenant_id,
    ).result_rows[0][0]
    seconds = time.perf_counter() - started
    tenant_command(
        "INSERT INTO preaggregation_builds (tenant_id, name, build, data_version, rows, seconds)"
        " VALUES ({tenant_id:UInt32}, {name:String}, {build:UInt64}, {version:UInt64}, {rows:UInt64},"
        " {seconds:Float64})",
        {"name": name, "build": build, "version": data_version, "rows": rows, "seconds": seconds},
        tenant_id=tenant_id,
    )
    return seconds


def preaggregations_rebuild_current() -> dict[str, float]:
    """Rebuild for the tenant of the current connection, unless all its builds are fresh already."""
    tenant = connection.tenant
    if set(fresh_builds(tenant.pk)) == EVERY_BUILD:
        return {}
    return preaggregations_rebuild(tenant_id=tenant.pk, timezone=tenant.timezone)


def fresh_builds(tenant_id: int) -> dict[str, int]:
    """The builds of this tenant made from its current data version, by name (one round trip)."""
    rows = tenant_query(
        "SELECT name, build FROM preaggregation_builds FINAL"
        " WHERE tenant_id = {tenant_id:UInt32}"
        " AND data_version = (SELECT max(version) FROM data_versions WHERE tenant_id = {tenant_id:UInt32})",
        tenant_id=tenant_id,
    ).result_rows
    return dict(rows)
