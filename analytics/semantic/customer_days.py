"""Customer metrics from the ``customer_days`` and ``customer_base_days`` pre-aggregations.

The compiler's general path evaluates every customer's history at every bucket. Here each metric is
counted from the few rows that decide it (analytics/preaggregations.py builds them per slice):

- a purchase day in the bucket whose previous purchase is before the bucket is one buyer of the bucket
  (new when there is no previous purchase, retained when it falls in the window before the bucket), so
  buyers, a sales metric, are counted here too when the query fits;
- a purchase day in the window before the bucket with no purchase earlier in that window is one buyer of it;
- a purchase day W days before a bucket's day with no purchase in those W days is a churn in the bucket;
- the base at a bucket's end sums the first purchases, lifetime days and amounts of the days before it.

Each role reads only the days it can touch and joins each row to the buckets it falls in
(``arrayFilter`` over the buckets, usually one), so a month is a month of rows whatever the history's length.
It applies when the query is split by at most one of store, employee and channel (the slices built) and
filtered, if at all, by that same dimension.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any

from analytics.preaggregations import CUSTOMER_BASE_DAYS, CUSTOMER_DAYS
from analytics.semantic.metrics import CUSTOMER_DAYS_SQL
from analytics.semantic.registry import Dimension, Metric, Source

SLICES = ("store", "employee", "channel")
# Per bucket number ``k``: its first day, the day after it, and the first day of the window before it.
BUCKET_BOUNDS = {
    "b_start": "{b_starts:Array(Date)}[k]",
    "b_end": "{b_ends:Array(Date)}[k]",
    "p_start": "{p_starts:Array(Date)}[k]",
}


@dataclass(frozen=True)
class Role:
    table: str
    rows: str  # which rows it reads
    days: Callable[[dict[str, Any]], tuple[date, date]]  # the days it reads, [from, to), from the bound params
    in_bucket: str  # whether a row falls in bucket ``n``
    measures: dict[str, tuple[str, str]]  # name → (aggregate, the type of its zero in other roles)
    # The slice it reads whatever the query's: then its measures answer only queries of the whole shop.
    slice: str | None = None


COUNT = "toUInt64(0)"
ROLES = {
    "purchases": Role(
        CUSTOMER_DAYS,
        "orders > 0",
        lambda params: (params["b_starts"][0], params["horizon_day"]),
        "day >= {b_starts:Array(Date)}[n] AND day < {b_ends:Array(Date)}[n]",
        {
            "buyers": ("countIf(prev_day < b_start)", COUNT),
            "new_customers": ("countIf(prev_day = toDate(0))", COUNT),
            "repeat_customers": ("countIf(prev_day < b_start AND (cum_orders >= 2 OR next_day < b_end))", COUNT),
            "one_time_customers": ("countIf(prev_day = toDate(0) AND cum_orders = 1 AND next_day >= b_end)", COUNT),
            "retained_customers": ("countIf(prev_day < b_start AND prev_day >= p_start)", COUNT),
        },
    ),
    # Buyers by sales channel, of the whole shop: a customer who bought in both channels has a row in each.
    "channel_purchases": Role(
        CUSTOMER_DAYS,
        "orders > 0 AND slice_value IN ('online', 'offline')",
        lambda params: (params["b_starts"][0], params["horizon_day"]),
        "day >= {b_starts:Array(Date)}[n] AND day < {b_ends:Array(Date)}[n]",
        {
            "online_buyers": ("countIf(slice_value = 'online' AND prev_day < b_start)", COUNT),
            "offline_buyers": ("countIf(slice_value = 'offline' AND prev_day < b_start)", COUNT),
            "channel_buyers": ("uniqExactIf(customer_id, prev_day < b_start)", COUNT),
        },
        slice="channel",
    ),
    "purchases_before": Role(
        CUSTOMER_DAYS,
        "orders > 0",
        lambda params: (min(params["p_starts"]), params["b_starts"][-1]),
        "day >= {p_starts:Array(Date)}[n] AND day < {b_starts:Array(Date)}[n]",
        {"previous_buyers": ("countIf(prev_day < p_start)", COUNT)},
    ),
    "churns": Role(
        CUSTOMER_DAYS,
        "orders > 0 AND next_day > day + {churn_days:UInt16}",
        lambda params: _shifted(params, -timedelta(days=params["churn_days"])),
        "day + {churn_days:UInt16} >= {b_starts:Array(Date)}[n]"
        " AND day + {churn_days:UInt16} < {b_ends:Array(Date)}[n]",
        # A customer churns once per gap; two gaps in one bucket (a bucket longer than the window) count once.
        {"churned_customers": ("uniqExact(customer_id)", COUNT)},
    ),
    "base": Role(
        CUSTOMER_BASE_DAYS,
        "1",
        lambda params: (date(1970, 1, 1), params["horizon_day"]),
        "day < {b_ends:Array(Date)}[n]",
        {
            "base_end": ("sum(first_purchases)", COUNT),
            "base_start": ("sumIf(first_purchases, day < b_start)", COUNT),
            "lifetime_end": ("sum(lifetime_days)", "toInt64(0)"),
            "amount_end": ("sum(amount)", "toDecimal128(0, 2)"),
        },
    ),
}


def customer_days_apply(
    dimensions: tuple[Dimension, ...], filtered_by: tuple[Dimension, ...], builds: dict[str, int]
) -> bool:
    """Whether the query can be answered from the customer-day builds (both fresh, one slice at most)."""
    if CUSTOMER_DAYS not in builds or CUSTOMER_BASE_DAYS not in builds or len(dimensions) > 1:
        return False
    if dimensions:
        return dimensions[0].id in SLICES and all(d.id == dimensions[0].id for d in filtered_by)
    return not filtered_by


def customer_days_source(
    metric: Metric, dimensions: tuple[Dimension, ...], filtered_by: tuple[Dimension, ...], builds: dict[str, int]
) -> Source:
    """The source to evaluate a base metric from: customers for the sales metrics these builds count too (buyers:
    distinct customers are rows here, a uniqExact over orders there), when the builds answer the query."""
    if metric.source is not Source.SALES or metric.id not in CUSTOMER_DAYS_SQL:
        return metric.source
    whole_shop_only = any(role.slice for role in _roles(CUSTOMER_DAYS_SQL[metric.id]).values())
    if customer_days_apply(dimensions, filtered_by, builds) and not (whole_shop_only and (dimensions or filtered_by)):
        return Source.CUSTOMERS
    return metric.source


def customer_days_sql(
    metrics: tuple[Metric, ...], dimensions: tuple[Dimension, ...], tests: list[str], params: dict[str, Any]
) -> str:
    """One statement: per bucket number (1-based, as the general path) and slice value, every metric.

    ``tests`` are the filters' tests of the slice value (``IN {filter0:Array(String)}``); ``params`` holds the
    bucket bounds the compiler bound, and gets the days each role reads.
    """
    expressions = [CUSTOMER_DAYS_SQL[metric.id] for metric in metrics]
    text = " ".join(expressions)
    roles = _roles(text)
    used = {name for role in roles.values() for name in role.measures if re.search(rf"\b{name}\b", text)}
    zeros = {name: zero for role in ROLES.values() for name, (_aggregate, zero) in role.measures.items()}
    slice_name = dimensions[0].id if dimensions else "all"
    slice_column = ", slice_value AS d0" if dimensions else ""
    parts = []
    for name, role in roles.items():
        params[f"{name}_from"], params[f"{name}_to"] = role.days(params)
        columns = [
            f"{_bounded(role.measures[measure][0]) if measure in role.measures else zeros[measure]} AS {measure}"
            for measure in sorted(used)
        ]
        conditions = [
            "tenant_id = {tenant_id:UInt32}",
            f"build = {{{role.table}_build:UInt64}}",
            f"slice = '{role.slice or slice_name}'",
            role.rows,
            f"day >= {{{name}_from:Date}}",
            f"day < {{{name}_to:Date}}",
            *(f"slice_value {test}" for test in tests),
        ]
        parts.append(
            f"SELECT k AS bucket{slice_column}, {', '.join(columns)} FROM {role.table}"
            f" ARRAY JOIN arrayFilter(n -> {role.in_bucket}, arrayEnumerate({{b_starts:Array(Date)}})) AS k"
            f" WHERE {' AND '.join(conditions)} GROUP BY bucket{', d0' if dimensions else ''}"
        )
    values = ", ".join(f"{expression} AS m{i}" for i, expression in enumerate(expressions))
    group = "bucket, d0" if dimensions else "bucket"
    return (
        f"SELECT toString(bucket) AS bucket{', d0' if dimensions else ''}, {values}"
        f" FROM ({' UNION ALL '.join(parts)}) GROUP BY {group}"
    )


def _roles(expressions: str) -> dict[str, Role]:
    """The roles whose measures the metric expressions name."""
    return {
        name: role
        for name, role in ROLES.items()
        if any(re.search(rf"\b{measure}\b", expressions) for measure in role.measures)
    }


def _shifted(params: dict[str, Any], by: timedelta) -> tuple[date, date]:
    """The purchase days whose churn day (W days later) falls in the buckets."""
    return params["b_starts"][0] + by, params["horizon_day"] + by


def _bounded(aggregate: str) -> str:
    for name, element in BUCKET_BOUNDS.items():
        aggregate = re.sub(rf"\b{name}\b", element, aggregate)
    return aggregate
