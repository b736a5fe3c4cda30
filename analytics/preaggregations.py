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
from django_tenants.utils import get_tenant_model

from analytics.clickhouse.query import data_version, tenant_command, tenant_query
from analytics.semantic.customer_days import (
    CUSTOMER_BASE_DAYS,
    CUSTOMER_DAYS,
    CUSTOMER_FLOWS,
    CUSTOMER_FLOWS_BUILD_SQL,
)
from analytics.semantic.event_rollups import ATTRIBUTED_ORDERS, EVENT_ROLLUP_BUILDS
from analytics.semantic.rollups import ASSORTMENT_DAYS, ASSORTMENT_DAYS_BUILD_SQL, SALES_DAYS, SALES_DAYS_BUILD_SQL

ORDERS = "orders"
CUSTOMER_HISTORIES = "customer_histories"
CONTACT_DAYS = "contact_days"
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
# One GROUP BY per (customer, slice value) collects the orders; days are merged in the arrays (a customer has few),
# which is cheaper than grouping the orders by day first. arrayFill carries the latest purchase day forward over
# return-only days, arrayReverseFill the next one back.
CUSTOMER_DAYS_BUILD_SQL = """
INSERT INTO customer_days (tenant_id, build, slice, slice_value, day, customer_id, orders, cum_orders, amount,
                           first_day, prev_day, next_day)
SELECT {tenant_id:UInt32}, {build:UInt64}, slice, slice_value, day, customer_id, day_orders, cum_orders, day_amount,
       first_day, prev_day, next_day
FROM (
    SELECT customer_id, s.1 AS slice, s.2 AS slice_value, arraySort(groupArray((day, is_return, amount))) AS lines,
           arrayDistinct(arrayMap(t -> t.1, lines)) AS days,
           arrayMap(d -> toUInt32(arrayCount(t -> t.1 = d AND t.2 = 0, lines)), days) AS orders_per_day,
           arrayMap(d -> arraySum(arrayMap(t -> if(t.1 = d, t.3, toDecimal64(0, 2)), lines)), days) AS amount_per_day,
           arrayMap((d, n) -> if(n > 0, d, toDate(0)), days, orders_per_day) AS purchase_days,
           arrayFirst(x -> x != toDate(0), purchase_days) AS first_day,
           arrayFill(x -> x != toDate(0), purchase_days) AS latest_purchase,
           arrayReverseFill(x -> x != toDate('2149-06-06'),
                            arrayMap(x -> if(x = toDate(0), toDate('2149-06-06'), x), purchase_days)) AS next_purchase
    FROM orders
    ARRAY JOIN [('all', ''), ('store', toString(store)), ('employee', toString(employee)),
                ('channel', toString(channel))] AS s
    WHERE tenant_id = {tenant_id:UInt32} AND build = {build:UInt64} AND customer_id != ''
    GROUP BY customer_id, slice, slice_value
    HAVING first_day != toDate(0)
)
ARRAY JOIN days AS day, orders_per_day AS day_orders, amount_per_day AS day_amount,
           arrayCumSum(orders_per_day) AS cum_orders,
           arrayPushFront(arrayPopBack(latest_purchase), toDate(0)) AS prev_day,
           arrayPushBack(arrayPopFront(next_purchase), toDate('2149-06-06')) AS next_day
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


# Contacts per join day, reachability and each grain: the whole base ('all') or one attribute column.
CONTACT_DAYS_BUILD_SQL = """
INSERT INTO contact_days (tenant_id, build, grain, created_day, city, gender, birth_year, home_store, loyalty_program,
                          email_reachable, sms_reachable, contacts)
SELECT {tenant_id:UInt32}, {build:UInt64}, grain, created_day,
       if(grain = 'city', c.city, ''), if(grain = 'gender', c.gender, ''), if(grain = 'birth_year', c.birth_year, 0),
       if(grain = 'home_store', c.home_store, ''), if(grain = 'loyalty_program', c.loyalty_program, ''),
       c.email_reachable, c.sms_reachable, count()
FROM (
    SELECT toDate(created_at, {tz:String}) AS created_day, city, gender, birth_year, home_store, loyalty_program,
           email_reachable, sms_reachable
    FROM customer_attributes FINAL
    WHERE tenant_id = {tenant_id:UInt32}
) AS c
ARRAY JOIN ['all', 'city', 'gender', 'birth_year', 'home_store', 'loyalty_program'] AS grain
GROUP BY grain, created_day, 5, 6, 7, 8, 9, c.email_reachable, c.sms_reachable
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
    Preaggregation(CUSTOMER_FLOWS, CUSTOMER_FLOWS_BUILD_SQL),
    Preaggregation(CONTACT_DAYS, CONTACT_DAYS_BUILD_SQL),
    Preaggregation(SALES_DAYS, SALES_DAYS_BUILD_SQL),
    Preaggregation(ASSORTMENT_DAYS, ASSORTMENT_DAYS_BUILD_SQL),
    *(Preaggregation(name, sql) for name, sql in EVENT_ROLLUP_BUILDS),
)
EVERY_BUILD = frozenset(preaggregation.name for preaggregation in PREAGGREGATIONS)


@dataclass(frozen=True)
class BuildWindows:
    """The tenant settings builds depend on: attributed orders on the attribution window, customer flows (churns)
    on the churn window. A build records the ones it was made with; it is fresh only while they are the tenant's."""

    attribution_window_days: int
    churn_window_days: int


def preaggregations_rebuild(
    *,
    tenant_id: int,
    timezone: str,
    attribution_window_days: int | None = None,
    churn_window_days: int | None = None,
) -> dict[str, float]:
    """Build every pre-aggregation of one tenant from its facts; returns seconds per build.

    The data version is read before the build: data that lands meanwhile bumps it, and the build
    is then stale from the start, as it should be. The attribution and churn windows are the tenant's unless given.
    """
    version = data_version(tenant_id)
    build = time.time_ns()
    windows = build_windows(tenant_id, attribution_window_days, churn_window_days)
    seconds = {
        preaggregation.name: preaggregation_build(
            preaggregation,
            tenant_id=tenant_id,
            timezone=timezone,
            build=build,
            data_version=version,
            attribution_window_days=windows.attribution_window_days,
            churn_window_days=windows.churn_window_days,
        )
        for preaggregation in PREAGGREGATIONS
    }
    # Queries read only the fresh build, so the older ones can go in the background: waiting for eleven
    # mutations would make every rebuild as slow as the busiest table's merges.
    for preaggregation in PREAGGREGATIONS:
        tenant_command(
            f"DELETE FROM {preaggregation.name} WHERE tenant_id = {{tenant_id:UInt32}} AND build != {{build:UInt64}}",
            {"build": build},
            tenant_id=tenant_id,
            settings={"lightweight_deletes_sync": 0},
        )
    return seconds


def preaggregation_build(
    preaggregation: Preaggregation,
    *,
    tenant_id: int,
    timezone: str,
    build: int,
    data_version: int,
    attribution_window_days: int | None = None,
    churn_window_days: int | None = None,
) -> float:
    """Insert one build of one pre-aggregation and record it as made from ``data_version`` (and with the
    attribution and churn windows, the tenant's unless given); returns seconds.

    The benchmarks call it alone to add one pre-aggregation to a fresh set of builds (same build number).
    """
    name = preaggregation.name
    windows = build_windows(tenant_id, attribution_window_days, churn_window_days)
    started = time.perf_counter()
    params = {
        "build": build,
        "tz": timezone,
        "attribution_days": windows.attribution_window_days,
        "churn_days": windows.churn_window_days,
    }
    tenant_command(preaggregation.sql, params, tenant_id=tenant_id, settings=BUILD_SETTINGS)
    rows = tenant_query(
        f"SELECT count() FROM {name} WHERE tenant_id = {{tenant_id:UInt32}} AND build = {{build:UInt64}}",
        {"build": build},
        tenant_id=tenant_id,
    ).result_rows[0][0]
    seconds = time.perf_counter() - started
    tenant_command(
        "INSERT INTO preaggregation_builds (tenant_id, name, build, data_version, rows, seconds,"
        " attribution_window_days, churn_window_days) VALUES ({tenant_id:UInt32}, {name:String}, {build:UInt64},"
        " {version:UInt64}, {rows:UInt64}, {seconds:Float64}, {attribution_days:UInt16}, {churn_days:UInt16})",
        {
            "name": name,
            "build": build,
            "version": data_version,
            "rows": rows,
            "seconds": seconds,
            "attribution_days": windows.attribution_window_days,
            "churn_days": windows.churn_window_days,
        },
        tenant_id=tenant_id,
    )
    return seconds


def preaggregations_rebuild_current() -> dict[str, float]:
    """Rebuild for the tenant of the current connection, unless all its builds are fresh already."""
    tenant = connection.tenant
    if set(fresh_builds(tenant.pk)) == EVERY_BUILD:
        return {}
    return preaggregations_rebuild(
        tenant_id=tenant.pk,
        timezone=tenant.timezone,
        attribution_window_days=tenant.attribution_window_days,
        churn_window_days=tenant.churn_window_days,
    )


def fresh_builds(tenant_id: int) -> dict[str, int]:
    """The builds of this tenant made from its current data version, by name (one ClickHouse round trip).

    The attributed orders also depend on the attribution window, the customer flows (churns) on the churn window:
    fresh only if built with the tenant's current ones (settings in Postgres, which the compiler's TenantSettings
    carries too).
    """
    windows = build_windows(tenant_id)
    rows = tenant_query(
        "SELECT name, build FROM preaggregation_builds FINAL"
        " WHERE tenant_id = {tenant_id:UInt32}"
        " AND data_version = (SELECT max(version) FROM data_versions WHERE tenant_id = {tenant_id:UInt32})"
        " AND (name != {attributed:String} OR attribution_window_days = {attribution_days:UInt16})"
        " AND (name != {flows:String} OR churn_window_days = {churn_days:UInt16})",
        {
            "attributed": ATTRIBUTED_ORDERS,
            "attribution_days": windows.attribution_window_days,
            "flows": CUSTOMER_FLOWS,
            "churn_days": windows.churn_window_days,
        },
        tenant_id=tenant_id,
    ).result_rows
    return dict(rows)


def build_windows(
    tenant_id: int, attribution_window_days: int | None = None, churn_window_days: int | None = None
) -> BuildWindows:
    """The windows given, and the tenant's as set now (Postgres, one query) for those not given: the ones builds are
    made with and checked against."""
    if attribution_window_days is None or churn_window_days is None:
        attribution, churn = (
            get_tenant_model().objects.values_list("attribution_window_days", "churn_window_days").get(pk=tenant_id)
        )
        attribution_window_days = attribution if attribution_window_days is None else attribution_window_days
        churn_window_days = churn if churn_window_days is None else churn_window_days
    return BuildWindows(attribution_window_days, churn_window_days)
