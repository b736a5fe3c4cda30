"""Pre-aggregations: an order-grain table and per-customer order histories, rebuilt per tenant.

An order is one row; its returns one row per day they happened on (as the semantic layer counts them).

Sales metrics read orders instead of receipt lines (receipts are counted, not uniqExact-ed), and
stock metrics (customer base, churn, retention) read one row per customer instead of grouping the
whole sales history. A build is used only while it is *fresh*: no fact table it derives from was written
since it was made (analytics/clickhouse/query.py keeps a data version per fact table), so a query never
reads a stale build: until the next rebuild it computes from the facts, slower but exact. Web events make
the web rollup stale, not the sales ones, and a rebuild redoes only the stale builds.
"""

from __future__ import annotations

import time
from collections.abc import Collection
from dataclasses import dataclass

from django.db import connection
from django_tenants.utils import get_tenant_model

from analytics.clickhouse.query import TENANT_SETTINGS_TABLE, data_version, tenant_command, tenant_query
from analytics.semantic.audiences import AUDIENCE_SENDS, AUDIENCE_SENDS_BUILD_SQL
from analytics.semantic.customer_days import (
    CUSTOMER_BASE_DAYS,
    CUSTOMER_DAYS,
    CUSTOMER_FLOWS,
    CUSTOMER_FLOWS_BUILD_SQL,
)
from analytics.semantic.event_rollups import (
    ATTRIBUTED_ORDERS,
    ATTRIBUTED_ORDERS_BUILD_SQL,
    MESSAGE_DAYS,
    MESSAGE_DAYS_BUILD_SQL,
    WEB_DAYS,
    WEB_DAYS_BUILD_SQL,
)
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
WHERE tenant_id = {tenant_id:UInt32} AND build = {orders_build:UInt64} AND customer_id != ''
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
    WHERE tenant_id = {tenant_id:UInt32} AND build = {orders_build:UInt64} AND customer_id != ''
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
WHERE tenant_id = {tenant_id:UInt32} AND build = {customer_days_build:UInt64}
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
    """A derived table rebuilt whole per tenant. ``sql`` inserts one build of it (``{build:UInt64}``) from the
    facts it names and the builds of earlier pre-aggregations it ``reads`` (``{<name>_build:UInt64}``).

    A build is fresh while none of the facts it derives from changed since it was made (its own and those of the
    builds it reads, and the tenant's settings: local days are in its timezone) and, for a build that depends on a
    tenant window (``window``, a BuildWindows field), while the window is the one it was made with.
    """

    name: str
    sql: str
    facts: tuple[str, ...] = ()
    reads: tuple[str, ...] = ()
    window: str | None = None


# In build order: a pre-aggregation comes after those it reads.
PREAGGREGATIONS: tuple[Preaggregation, ...] = (
    Preaggregation(ORDERS, ORDERS_BUILD_SQL, facts=("sales_lines",)),
    Preaggregation(CUSTOMER_HISTORIES, CUSTOMER_HISTORIES_BUILD_SQL, reads=(ORDERS,)),
    Preaggregation(CUSTOMER_DAYS, CUSTOMER_DAYS_BUILD_SQL, reads=(ORDERS,)),
    Preaggregation(CUSTOMER_BASE_DAYS, CUSTOMER_BASE_DAYS_BUILD_SQL, reads=(CUSTOMER_DAYS,)),
    Preaggregation(CUSTOMER_FLOWS, CUSTOMER_FLOWS_BUILD_SQL, reads=(CUSTOMER_DAYS,), window="churn_window_days"),
    Preaggregation(CONTACT_DAYS, CONTACT_DAYS_BUILD_SQL, facts=("customer_attributes",)),
    Preaggregation(SALES_DAYS, SALES_DAYS_BUILD_SQL, reads=(ORDERS,)),
    Preaggregation(ASSORTMENT_DAYS, ASSORTMENT_DAYS_BUILD_SQL, facts=("sales_lines",)),
    Preaggregation(MESSAGE_DAYS, MESSAGE_DAYS_BUILD_SQL, facts=("message_events",)),
    Preaggregation(WEB_DAYS, WEB_DAYS_BUILD_SQL, facts=("web_events",)),
    Preaggregation(
        ATTRIBUTED_ORDERS,
        ATTRIBUTED_ORDERS_BUILD_SQL,
        facts=("message_events",),
        reads=(ORDERS,),
        window="attribution_window_days",
    ),
    Preaggregation(
        AUDIENCE_SENDS,
        AUDIENCE_SENDS_BUILD_SQL,
        facts=("message_events",),
        reads=(ORDERS,),
        window="attribution_window_days",
    ),
)
PREAGGREGATIONS_BY_NAME = {preaggregation.name: preaggregation for preaggregation in PREAGGREGATIONS}
EVERY_BUILD = frozenset(PREAGGREGATIONS_BY_NAME)


def _derived_from(preaggregation: Preaggregation) -> frozenset[str]:
    """Every fact the build derives from: its own, those of the builds it reads, and the tenant's settings."""
    facts = {*preaggregation.facts, TENANT_SETTINGS_TABLE}
    for name in preaggregation.reads:
        facts |= _derived_from(PREAGGREGATIONS_BY_NAME[name])
    return frozenset(facts)


DERIVED_FROM = {preaggregation.name: _derived_from(preaggregation) for preaggregation in PREAGGREGATIONS}


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
    names: Collection[str] = EVERY_BUILD,
) -> dict[str, float]:
    """Build the named pre-aggregations of one tenant (all by default) from its facts; returns seconds per build.

    What a named one reads is read from its fresh build, or built too when there is none. The data version is read
    before the build: data that lands meanwhile bumps it, and the build is then stale from the start, as it should
    be. The attribution and churn windows are the tenant's unless given.
    """
    version = data_version(tenant_id)
    build = time.time_ns()
    windows = build_windows(tenant_id, attribution_window_days, churn_window_days)
    fresh = fresh_builds(tenant_id) if set(names) != EVERY_BUILD else {}
    wanted = set(names)
    for preaggregation in reversed(PREAGGREGATIONS):  # those read come earlier: one pass backwards collects them
        if preaggregation.name in wanted:
            wanted |= {name for name in preaggregation.reads if name not in fresh}
    read_builds = {f"{name}_build": number for name, number in fresh.items()}
    seconds = {}
    for preaggregation in PREAGGREGATIONS:
        if preaggregation.name not in wanted:
            continue
        seconds[preaggregation.name] = preaggregation_build(
            preaggregation,
            tenant_id=tenant_id,
            timezone=timezone,
            build=build,
            data_version=version,
            windows=windows,
            read_builds=read_builds,
        )
        read_builds[f"{preaggregation.name}_build"] = build
    # Queries read only the fresh build, so the older ones can go in the background: waiting for the
    # mutations would make every rebuild as slow as the busiest table's merges.
    for name in seconds:
        tenant_command(
            f"DELETE FROM {name} WHERE tenant_id = {{tenant_id:UInt32}} AND build != {{build:UInt64}}",
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
    windows: BuildWindows,
    read_builds: dict[str, int],
) -> float:
    """Insert one build of one pre-aggregation, reading the builds ``read_builds`` names (``<name>_build``), and
    record it as made from ``data_version`` with ``windows``; returns seconds.

    The benchmarks call it alone to time one pre-aggregation.
    """
    name = preaggregation.name
    started = time.perf_counter()
    params = {
        **read_builds,
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
    """Rebuild the stale pre-aggregations of the tenant of the current connection (none when all are fresh)."""
    tenant = connection.tenant
    stale = EVERY_BUILD - set(fresh_builds(tenant.pk))
    if not stale:
        return {}
    return preaggregations_rebuild(
        tenant_id=tenant.pk,
        timezone=tenant.timezone,
        attribution_window_days=tenant.attribution_window_days,
        churn_window_days=tenant.churn_window_days,
        names=stale,
    )


def fresh_builds(tenant_id: int) -> dict[str, int]:
    """The fresh builds of this tenant, by name (one ClickHouse round trip, one Postgres query for the windows).

    A build is fresh when no fact it derives from changed after the data version it was made from (versions per
    fact: analytics/clickhouse/query.py; a version with no fact named predates them and counts for every fact),
    and it was made with the tenant's current window, if it depends on one.
    """
    windows = build_windows(tenant_id)
    rows = tenant_query(
        "SELECT name, build, data_version, attribution_window_days, churn_window_days,"
        " (SELECT (groupArray(fact), groupArray(version)) FROM (SELECT fact, max(version) AS version"
        "  FROM data_versions WHERE tenant_id = {tenant_id:UInt32} GROUP BY fact))"
        " FROM preaggregation_builds FINAL WHERE tenant_id = {tenant_id:UInt32}",
        tenant_id=tenant_id,
    ).result_rows
    fresh = {}
    for name, build, version, attribution_days, churn_days, (facts, versions) in rows:
        if name not in PREAGGREGATIONS_BY_NAME:
            continue  # a pre-aggregation since retired
        changed = dict(zip(facts, versions, strict=True))
        latest = max(changed.get(fact, 0) for fact in (*DERIVED_FROM[name], ""))
        window = PREAGGREGATIONS_BY_NAME[name].window
        built_with = BuildWindows(attribution_days, churn_days)
        if version >= latest and (window is None or getattr(built_with, window) == getattr(windows, window)):
            fresh[name] = build
    return fresh


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
