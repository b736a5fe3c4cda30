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

``customer_flows`` holds what the purchase, churn and channel roles count per whole calendar bucket (day, week,
month, quarter, year), counted once at build time: buckets of a query that are whole calendar buckets read one row
per bucket and slice value there, the others (a week clipped by the period) still read the days.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any

from analytics.periods import Granularity, bucket_start
from analytics.semantic.metrics import CUSTOMER_DAYS_SQL
from analytics.semantic.registry import Dimension, Metric, Source

# The pre-aggregations this module reads (built by analytics/preaggregations.py, in this order).
CUSTOMER_DAYS = "customer_days"
CUSTOMER_BASE_DAYS = "customer_base_days"
CUSTOMER_FLOWS = "customer_flows"

SLICES = ("store", "employee", "channel")
# Per bucket number ``k``: its first day, the day after it, and the first day of the window before it.
BUCKET_BOUNDS = {
    "b_start": "{b_starts:Array(Date)}[k]",
    "b_end": "{b_ends:Array(Date)}[k]",
    "p_start": "{p_starts:Array(Date)}[k]",
}


def _bounded(aggregate: str, bounds: dict[str, str] = BUCKET_BOUNDS) -> str:
    """``aggregate`` with the bucket's bounds (b_start, b_end, p_start) spelled as ``bounds`` says."""
    for name, element in bounds.items():
        aggregate = re.sub(rf"\b{name}\b", element, aggregate)
    return aggregate


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
# The day a purchase day's customer churns when there is no purchase in the churn window after it.
CHURN_DAY = "day + {churn_days:UInt16}"
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
        f"orders > 0 AND next_day > {CHURN_DAY}",
        lambda params: _shifted(params, -timedelta(days=params["churn_days"])),
        f"{CHURN_DAY} >= {{b_starts:Array(Date)}}[n] AND {CHURN_DAY} < {{b_ends:Array(Date)}}[n]",
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


def calendar_buckets(day: str) -> str:
    """The five calendar buckets (day, week, month, quarter, year) holding ``day``, each as (granularity, its first
    day, the day after it, the first day of the bucket before)."""
    return f"""[
    ('day', {day}, {day} + 1, {day} - 1),
    ('week', toMonday({day}), toMonday({day}) + 7, toMonday({day}) - 7),
    ('month', toStartOfMonth({day}), toStartOfMonth({day}) + toIntervalMonth(1),
     toStartOfMonth({day}) - toIntervalMonth(1)),
    ('quarter', toStartOfQuarter({day}), toStartOfQuarter({day}) + toIntervalMonth(3),
     toStartOfQuarter({day}) - toIntervalMonth(3)),
    ('year', toStartOfYear({day}), toStartOfYear({day}) + toIntervalYear(1), toStartOfYear({day}) - toIntervalYear(1))
]"""


# What the roles read from customer_flows instead of the days: per role, each measure's column there.
FLOW_COLUMNS = {
    "purchases": {measure: measure for measure in ROLES["purchases"].measures},
    # The buyers in the window before a bucket are the buyers of the calendar bucket before.
    "purchases_before": {"previous_buyers": "buyers"},
    "churns": {"churned_customers": "churned_customers"},
    "channel_purchases": {measure: measure for measure in ROLES["channel_purchases"].measures},
}
FLOW_ROLES = tuple(FLOW_COLUMNS)
# Every column the build fills, in the order of the roles' measures.
FLOWS_BUILT = tuple(dict.fromkeys(column for columns in FLOW_COLUMNS.values() for column in columns.values()))
# Two churns of one customer are more than the churn window apart (the second needs a purchase after the first
# gap), so in buckets no longer than the window each churn row is another customer: count rows, not customers.
CHURNS_IN_SHORT_BUCKETS = {"churned_customers": "count()"}
# The same per calendar bucket at build time: a bucket longer than the window (a year; a month under a short window)
# counts distinct customers, as the churns role does.
CHURNS_IN_CALENDAR_BUCKETS = (
    "countIf(cal.3 - cal.2 <= {churn_days:UInt16}) + uniqExactIf(customer_id, cal.3 - cal.2 > {churn_days:UInt16})"
)
CALENDAR_BOUNDS = {"b_start": "cal.2", "b_end": "cal.3", "p_start": "cal.4"}


def _flows_build_part(role_name: str, overrides: dict[str, str] | None = None, day: str = "day") -> str:
    """The customer_flows rows of one role: its measures per calendar bucket holding ``day`` of its rows, and slice
    value (or of the whole shop, for a role that reads one slice for the shop); the other columns are zeros."""
    role = ROLES[role_name]
    aggregates = {
        FLOW_COLUMNS[role_name][measure]: _bounded(aggregate, CALENDAR_BOUNDS)
        for measure, (aggregate, _zero) in role.measures.items()
    } | (overrides or {})
    values = ", ".join(aggregates.get(column, COUNT) for column in FLOWS_BUILT)
    # An Enum column and a string literal have no common type in a UNION: slices are inserted as strings.
    if role.slice:
        slice_values, sliced_rows, grouped = "'all', ''", f" AND slice = '{role.slice}'", ""
    else:
        slice_values, sliced_rows, grouped = "toString(slice), slice_value", "", ", slice, slice_value"
    return (
        f"SELECT {{tenant_id:UInt32}}, {{build:UInt64}}, cal.1, cal.2, {slice_values}, {values}"
        f" FROM {CUSTOMER_DAYS} ARRAY JOIN {calendar_buckets(day)} AS cal"
        f" WHERE tenant_id = {{tenant_id:UInt32}} AND build = {{customer_days_build:UInt64}}"
        f" AND {role.rows}{sliced_rows}"
        f" GROUP BY cal{grouped}"
    )


# A purchase day joins the calendar buckets holding it, a churn row those holding its churn day; each part of the
# union groups one role's rows, so a bucket and slice value may have a row per role (queries sum them).
CUSTOMER_FLOWS_BUILD_SQL = f"""
INSERT INTO {CUSTOMER_FLOWS} (tenant_id, build, granularity, bucket_start, slice, slice_value, {", ".join(FLOWS_BUILT)})
{_flows_build_part("purchases")}
UNION ALL
{_flows_build_part("churns", {"churned_customers": CHURNS_IN_CALENDAR_BUCKETS}, day=CHURN_DAY)}
UNION ALL
{_flows_build_part("channel_purchases")}
"""


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
    metrics: tuple[Metric, ...],
    dimensions: tuple[Dimension, ...],
    tests: list[str],
    params: dict[str, Any],
    builds: dict[str, int],
) -> str:
    """One statement: per bucket number (1-based, as the general path) and slice value, every metric.

    ``tests`` are the filters' tests of the slice value (``IN {filter0:Array(String)}``); ``params`` holds the
    bucket bounds the compiler bound, and gets the days each role reads. When ``customer_flows`` is fresh, the
    measures it holds come from there for the buckets that are whole calendar buckets.
    """
    expressions = [CUSTOMER_DAYS_SQL[metric.id] for metric in metrics]
    text = " ".join(expressions)
    roles = _roles(text)
    used = {name for role in roles.values() for name in role.measures if re.search(rf"\b{name}\b", text)}
    zeros = {name: zero for role in ROLES.values() for name, (_aggregate, zero) in role.measures.items()}
    slice_name = dimensions[0].id if dimensions else "all"
    slice_column = ", slice_value AS d0" if dimensions else ""
    parts = []
    calendar, whole = _calendar_buckets(params) if CUSTOMER_FLOWS in builds else (None, [])
    params["from_days"] = [0 if is_whole else 1 for is_whole in whole] or [1] * len(params["b_starts"])
    for name, role in roles.items():
        read_by_day = ""
        if calendar and name in FLOW_ROLES:
            parts.append(_flows_part(name, used, zeros, calendar, slice_name, dimensions, tests))
            if all(whole):
                continue
            # The buckets that are not whole calendar ones (a week clipped by the period) still read the days.
            read_by_day = " AND {from_days:Array(UInt8)}[n] = 1"
            params[f"{name}_from"], params[f"{name}_to"] = role.days(_buckets_by_day(params, whole))
        else:
            params[f"{name}_from"], params[f"{name}_to"] = role.days(params)
        aggregates = {measure: aggregate for measure, (aggregate, _zero) in role.measures.items()}
        if name == "churns" and _longest_bucket_days(params) <= params["churn_days"]:
            aggregates |= CHURNS_IN_SHORT_BUCKETS
        columns = [
            f"{_bounded(aggregates[measure]) if measure in aggregates else zeros[measure]} AS {measure}"
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
            f" ARRAY JOIN arrayFilter(n -> {role.in_bucket}{read_by_day}, arrayEnumerate({{b_starts:Array(Date)}}))"
            " AS k"
            f" WHERE {' AND '.join(conditions)} GROUP BY bucket{', d0' if dimensions else ''}"
        )
    values = ", ".join(f"{expression} AS m{i}" for i, expression in enumerate(expressions))
    group = "bucket, d0" if dimensions else "bucket"
    return (
        f"SELECT toString(bucket) AS bucket{', d0' if dimensions else ''}, {values}"
        f" FROM ({' UNION ALL '.join(parts)}) GROUP BY {group}"
    )


def _flows_part(
    role: str,
    used: set[str],
    zeros: dict[str, str],
    granularity: Granularity,
    slice_name: str,
    dimensions: tuple[Dimension, ...],
    tests: list[str],
) -> str:
    """A role's measures of whole calendar buckets (of the buckets before them, for ``purchases_before``) from
    customer_flows."""
    starts = "{p_starts:Array(Date)}" if role == "purchases_before" else "{b_starts:Array(Date)}"
    whole = "{from_days:Array(UInt8)}[indexOf(" + starts + ", bucket_start)] = 0"
    flows = FLOW_COLUMNS[role]
    # ``flow.`` names the table's column: an alias of the same name in this SELECT (a zero) would shadow it.
    columns = [f"{f'sum(flow.{flows[m]})' if m in flows else zeros[m]} AS {m}" for m in sorted(used)]
    conditions = [
        "tenant_id = {tenant_id:UInt32}",
        f"build = {{{CUSTOMER_FLOWS}_build:UInt64}}",
        f"granularity = '{granularity.value}'",
        # A whole-shop role's flows are the shop's (slice 'all').
        f"slice = '{'all' if ROLES[role].slice else slice_name}'",
        f"bucket_start IN {starts}",
        whole,
        *(f"slice_value {test}" for test in tests),
    ]
    slice_column = ", slice_value AS d0" if dimensions else ""
    return (
        f"SELECT indexOf({starts}, bucket_start) AS bucket{slice_column}, {', '.join(columns)}"
        f" FROM {CUSTOMER_FLOWS} AS flow"
        f" WHERE {' AND '.join(conditions)} GROUP BY bucket{', d0' if dimensions else ''}"
    )


def _calendar_buckets(params: dict[str, Any]) -> tuple[Granularity | None, list[bool]]:
    """The calendar granularity most of the query's buckets are whole buckets of (with the window before each the
    bucket before), and which buckets are; (None, []) when none is."""
    bounds = list(zip(params["b_starts"], params["b_ends"], params["p_starts"], strict=True))
    best: tuple[Granularity | None, list[bool]] = (None, [])
    for granularity in Granularity:
        whole = [
            bucket_start(start, granularity) == start
            and bucket_start(end, granularity) == end
            and bucket_start(end - timedelta(days=1), granularity) == start
            and bucket_start(start - timedelta(days=1), granularity) == before
            for start, end, before in bounds
        ]
        if sum(whole) > sum(best[1]):
            best = (granularity, whole)
    return best


def _longest_bucket_days(params: dict[str, Any]) -> int:
    return max((end - start).days for start, end in zip(params["b_starts"], params["b_ends"], strict=True))


def _buckets_by_day(params: dict[str, Any], whole: list[bool]) -> dict[str, Any]:
    """``params`` narrowed to the buckets that are not whole calendar ones: the days a role reads for them."""
    kept = [i for i, is_whole in enumerate(whole) if not is_whole]
    narrowed = {name: [params[name][i] for i in kept] for name in ("b_starts", "b_ends", "p_starts")}
    return {**params, **narrowed, "horizon_day": narrowed["b_ends"][-1]}


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
