"""Sales metrics from the daily rollups ``sales_days`` and ``assortment_days`` (analytics/preaggregations.py).

A rollup row holds, per local day and key, the value of every additive sales metric (``ROLLED_UP``),
computed at build time with the metric's own definition: over the ``orders`` build for ``sales_days``
(keyed by store, employee and channel), over the receipt lines for ``assortment_days`` (keyed by store,
channel and one assortment value: a category, brand, product or promo code, the row's ``grain``).
A query reads them when all its sales metrics are rolled up and every dimension and filter is a key
of one rollup. Receipts are distinct orders per row: they add up over days, stores and channels (an
order counts on one day and has one store and channel) but not across assortment values, so a query
filtered on several of them, and not split by them, counts receipts from the lines instead.
Non-additive metrics (buyers, return receipts) and time-of-day dimensions keep their usual path.
"""

from __future__ import annotations

import re
from dataclasses import replace
from typing import TYPE_CHECKING

from analytics.periods import Granularity
from analytics.semantic.metrics import METRICS, ORDER_GRAIN_SQL
from analytics.semantic.registry import Dimension, Metric, Source

if TYPE_CHECKING:
    from analytics.semantic.compiler import Filter

SALES_DAYS = "sales_days"
ASSORTMENT_DAYS = "assortment_days"
# The metrics each rollup row holds, one column named after each: sums, or receipts of the row's orders.
ROLLED_UP = (
    "revenue",
    "sales_revenue",
    "gross_sales",
    "discounts",
    "returns",
    "items",
    "orders",
    "promo_orders",
    "promo_revenue",
    "identified_orders",
    "identified_revenue",
)
# Metric id → its SQL over a rollup (alias ``f``): the sum of its column; online receipts from the channel key.
ROLLUP_SQL: dict[str, str] = {
    **{metric_id: f"sum(f.{metric_id})" for metric_id in ROLLED_UP},
    "online_orders": "sumIf(f.orders, f.channel = 'online')",
}
# Distinct orders: they do not add up across assortment values.
RECEIPTS = ("orders", "promo_orders", "identified_orders", "online_orders")
SALES_DAYS_KEYS = ("store", "employee", "channel")
ASSORTMENT_KEYS = ("store", "channel")
# Sales-line column → the assortment_days grain whose rows hold it.
GRAINS = {"category": "category", "brand": "brand", "product_name": "product", "promo_code": "promo_code"}

_METRIC_SQL = {metric.id: metric.sql for metric in METRICS}


def _rolled_up_values(sql_of: dict[str, str]) -> str:
    """The rolled-up metrics' values, each by its definition over ``f`` (or the override in ``sql_of``)."""
    return ", ".join(sql_of.get(metric_id, _METRIC_SQL[metric_id]) for metric_id in ROLLED_UP)


SALES_DAYS_BUILD_SQL = f"""
INSERT INTO sales_days (tenant_id, build, day, store, employee, channel, {", ".join(ROLLED_UP)})
SELECT {{tenant_id:UInt32}}, {{build:UInt64}}, f.day, f.store, f.employee, f.channel,
       {_rolled_up_values(ORDER_GRAIN_SQL)}
FROM orders AS f
WHERE f.tenant_id = {{tenant_id:UInt32}} AND f.build = {{orders_build:UInt64}}
GROUP BY f.day, f.store, f.employee, f.channel
"""

# One pass over the lines: a grouping set per grain; a row's columns of the other grains are left empty.
ASSORTMENT_DAYS_BUILD_SQL = f"""
INSERT INTO assortment_days (tenant_id, build, grain, day, store, channel, category, brand, product_name, promo_code,
                             {", ".join(ROLLED_UP)})
SELECT {{tenant_id:UInt32}}, {{build:UInt64}},
       multiIf(grouping(f.category) = 0, 'category', grouping(f.brand) = 0, 'brand',
               grouping(f.product_name) = 0, 'product', 'promo_code'),
       toDate(f.ts, {{tz:String}}) AS day, f.store, f.channel, f.category, f.brand, f.product_name, f.promo_code,
       {_rolled_up_values({})}
FROM sales_lines AS f FINAL
WHERE f.tenant_id = {{tenant_id:UInt32}}
GROUP BY GROUPING SETS ((day, f.store, f.channel, f.category), (day, f.store, f.channel, f.brand),
                        (day, f.store, f.channel, f.product_name), (day, f.store, f.channel, f.promo_code))
"""


def sales_rollup_sql(
    metrics: tuple[Metric, ...],
    dimensions: tuple[Dimension, ...],
    filters: tuple[Filter, ...],
    where: list[tuple[Dimension, str]],
    granularity: Granularity | None,
    builds: dict[str, int],
) -> tuple[str, dict[str, int]] | None:
    """The statement (and its parameters beyond the compiler's) answering sales ``metrics`` from a fresh rollup,
    or None when no rollup can. ``filters`` are the compiler's Filters, ``where`` their conditions."""
    chosen = _rollup_for(metrics, dimensions, filters)
    if chosen is None or chosen[0] not in builds:
        return None
    table, grain = chosen
    from analytics.semantic.compiler import BUCKET_OF_DAY, _conditions, _group_by, _select_list  # imports this module

    dims = [dimension.expressions[Source.SALES] for dimension in dimensions]
    conditions = [
        "f.tenant_id = {tenant_id:UInt32}",
        "f.build = {rollup_build:UInt64}",
        "f.day >= {start_day:Date}",
        "f.day < {end_day:Date}",
        *([f"f.grain = '{grain}'"] if grain else []),
        *_conditions(where, Source.SALES),
    ]
    bucket = "''" if granularity is None else f"toString({BUCKET_OF_DAY[granularity].format(day='f.day')})"
    rolled_up = tuple(replace(metric, sql=ROLLUP_SQL[metric.id]) for metric in metrics)
    sql = (
        f"SELECT {_select_list(bucket, dims, rolled_up)}"
        f" FROM {table} AS f WHERE {' AND '.join(conditions)} {_group_by(len(dims))}"
    )
    return sql, {"rollup_build": builds[table]}


def _column(dimension: Dimension) -> str | None:
    """The sales-line column a dimension is, or None when it is an expression (weekday, a customer attribute …)."""
    match = re.fullmatch(r"f\.(\w+)", dimension.expressions.get(Source.SALES, ""))
    return match.group(1) if match else None


def _rollup_for(
    metrics: tuple[Metric, ...], dimensions: tuple[Dimension, ...], filters: tuple[Filter, ...]
) -> tuple[str, str] | None:
    """(rollup table, grain or '') that answers every metric, dimension and filter exactly, if any."""
    if any(metric.id not in ROLLUP_SQL for metric in metrics):
        return None
    grouped = [_column(dimension) for dimension in dimensions]
    named = {*grouped, *(_column(condition.dimension) for condition in filters)}
    assortment = named & set(GRAINS)
    if not assortment:
        return (SALES_DAYS, "") if named <= set(SALES_DAYS_KEYS) else None
    if len(assortment) > 1 or not named <= {*ASSORTMENT_KEYS, *assortment}:
        return None
    (column,) = assortment
    one_value = all(
        len(condition.values) == 1 and not condition.exclude
        for condition in filters
        if _column(condition.dimension) == column
    )
    if column not in grouped and not one_value and any(metric.id in RECEIPTS for metric in metrics):
        return None
    return ASSORTMENT_DAYS, GRAINS[column]
