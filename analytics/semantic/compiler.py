"""Compiles a metric query to one parameterized ClickHouse statement per fact source.

Each statement returns ``bucket``, one column per dimension (``d0``, ``d1`` …) and one per base
metric (``m0`` …). Row sources (sales, messages, web, attributed orders) group their rows in the
period by the bucket the event falls in (tenant's calendar). Stock sources (customers, contacts)
evaluate every customer at each bucket with ARRAY JOIN over the buckets' UTC bounds, which is how
"customer base at the period end" or "churned in the period" are defined. Every value is a bound
parameter; the statement runs through analytics.clickhouse.query (``{tenant_id:UInt32}``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field, replace
from datetime import timedelta
from typing import Any
from zoneinfo import ZoneInfo

from analytics.periods import Comparison, Granularity, Period, bucket_start, buckets
from analytics.preaggregations import (
    CONTACT_DAYS,
    CUSTOMER_BASE_DAYS,
    CUSTOMER_DAYS,
    CUSTOMER_FLOWS,
    CUSTOMER_HISTORIES,
    ORDERS,
)
from analytics.semantic.audiences import (
    MEMBER_KEYS,
    MEMBER_START,
    MEMBER_TESTS,
    audience_metrics,
    audience_sends_apply,
    audience_sql,
    member_revenue_from_events,
    member_revenue_from_sends,
)
from analytics.semantic.customer_days import customer_days_apply, customer_days_sql
from analytics.semantic.event_rollups import (
    ATTRIBUTED_ORDERS,
    ATTRIBUTED_ORDERS_IN_PERIOD,
    event_days_apply,
    event_days_sql,
)
from analytics.semantic.metrics import ORDER_GRAIN_SQL
from analytics.semantic.registry import Dimension, Metric, Source
from analytics.semantic.rollups import sales_rollup_sql

DATETIME = "DateTime64(3, 'UTC')"
# Customer-level joins: added when a dimension or filter expression names the alias.
CUSTOMER_JOINS = {
    "attrs": (
        "SELECT customer_id, city, gender, birth_year, home_store, loyalty_program"
        " FROM customer_attributes FINAL WHERE tenant_id = {tenant_id:UInt32}"
    ),
    "acq": (
        "SELECT customer_id, min(ts) AS first_order_ts FROM sales_lines FINAL"
        " WHERE tenant_id = {tenant_id:UInt32} AND is_return = 0 AND customer_id != '' GROUP BY customer_id"
    ),
    # Each customer's segments: those whose latest snapshot computed by the end of the period's last day lists them.
    "seg": (
        "SELECT customer_id, groupUniqArray(toString(segment_id)) AS segment_ids FROM segment_snapshots"
        " WHERE tenant_id = {tenant_id:UInt32} AND (segment_id, computed_at) IN (SELECT segment_id, max(computed_at)"
        f" FROM segment_snapshots WHERE tenant_id = {{tenant_id:UInt32}} AND computed_at < {{end:{DATETIME}}}"
        " GROUP BY segment_id) GROUP BY customer_id"
    ),
}
# Over a fresh build of the customer histories, the first order comes from there instead of the facts.
FIRST_ORDERS_FROM_HISTORIES = (
    "SELECT customer_id, first_order_ts FROM customer_histories"
    " WHERE tenant_id = {tenant_id:UInt32} AND build = {histories_build:UInt64}"
)
# The RFM join (``rfm.segment``): analytics/analyses/rfm.py's per-customer scores, as of the period's end.
RFM_ALIAS = "rfm"
RFM_LOOKBACK_DAYS = 365
# Columns of the ``orders`` pre-aggregation a sales expression may use (``f.<column>``).
ORDER_COLUMNS = frozenset(
    (
        "ts",
        "day",
        "order_id",
        "is_return",
        "customer_id",
        "store",
        "employee",
        "channel",
        "qty",
        "discount",
        "amount",
        "promo_lines",
        "promo_amount",
    )
)
ROW_TABLES = {
    Source.SALES: ("sales_lines", "f"),
    Source.MESSAGES: ("message_events", "m"),
    Source.WEB: ("web_events", "w"),
}
BUCKET_OF_DAY = {
    Granularity.DAY: "{day}",
    Granularity.WEEK: "toMonday({day})",
    Granularity.MONTH: "toStartOfMonth({day})",
    Granularity.QUARTER: "toStartOfQuarter({day})",
    Granularity.YEAR: "toStartOfYear({day})",
}


@dataclass(frozen=True)
class Filter:
    dimension: Dimension
    values: tuple[str, ...]
    exclude: bool = False


@dataclass(frozen=True)
class TenantSettings:
    timezone: ZoneInfo
    churn_window_days: int
    attribution_window_days: int
    # The fresh pre-aggregation builds (analytics/preaggregations.py) queries may read, by name.
    builds: dict[str, int] = field(default_factory=dict)


@dataclass(frozen=True)
class CompiledQuery:
    source: Source
    sql: str
    params: dict[str, Any]
    metrics: tuple[Metric, ...]
    dimensions: tuple[Dimension, ...]
    bucket_index: dict[str, int]  # row sources: the bucket's calendar start (ISO) → index in the buckets list


def time_buckets(period: Period, granularity: Granularity | None) -> list[Period]:
    return buckets(period, granularity) if granularity else [period]


def compile_source(
    source: Source,
    metrics: tuple[Metric, ...],
    dimensions: tuple[Dimension, ...],
    filters: tuple[Filter, ...],
    period: Period,
    granularity: Granularity | None,
    settings: TenantSettings,
) -> CompiledQuery:
    tz = settings.timezone
    start, end = period.bounds(tz)
    builds = settings.builds
    params: dict[str, Any] = {"tz": tz.key, "ref_year": period.end.year, "start": start, "end": end}
    params["start_day"], params["end_day"] = period.start, period.end + timedelta(days=1)
    params["orders_build"] = builds.get(ORDERS, 0)
    params["histories_build"] = builds.get(CUSTOMER_HISTORIES, 0)
    params["contact_days_build"] = builds.get(CONTACT_DAYS, 0)
    where = []
    for number, condition in enumerate(filters):
        params[f"filter{number}"] = list(condition.values)
        values = f"{{filter{number}:Array(String)}}"
        if condition.dimension.multi_valued:  # test the row's values at once: the row stays one row
            where.append((_rewritten(condition.dimension, "hasAny", values), "= 0" if condition.exclude else "= 1"))
            continue
        operator = "NOT IN" if condition.exclude else "IN"
        where.append((condition.dimension, f"{operator} {values}"))
    dimensions = tuple(_rewritten(d, "arrayJoin") if d.multi_valued else d for d in dimensions)
    if any(f"{RFM_ALIAS}." in d.expressions[source] for d in (*dimensions, *(f.dimension for f in filters))):
        from analytics.analyses.rfm import rfm_customers_sql  # the analysis imports this module: import late

        # A customer's RFM segment as of the period's last day, over the year before it (the analysis' default).
        histories_build = builds.get(CUSTOMER_HISTORIES)
        _sql, rfm_params = rfm_customers_sql(
            as_of=period.end, lookback_days=RFM_LOOKBACK_DAYS, timezone=tz, histories_build=histories_build
        )
        params.update(rfm_params)
    periods = time_buckets(period, granularity)
    bucket_index = {}
    if source in (Source.CUSTOMERS, Source.CONTACTS):
        _bind_bucket_bounds(params, periods, granularity, tz)
        params["churn_days"] = settings.churn_window_days
        if source is Source.CUSTOMERS and customer_days_apply(dimensions, tuple(d for d, _test in where), builds):
            params["customer_days_build"] = builds[CUSTOMER_DAYS]
            params["customer_base_days_build"] = builds[CUSTOMER_BASE_DAYS]
            params["customer_flows_build"] = builds.get(CUSTOMER_FLOWS, 0)
            sql = customer_days_sql(metrics, dimensions, [test for _d, test in where], params, builds)
        elif source is Source.CUSTOMERS:
            sql = _customers_sql(metrics, dimensions, where, builds)
        else:
            sql = _contacts_sql(metrics, dimensions, where, builds)
    else:
        bucket_index = {bucket_start(bucket.start, granularity).isoformat(): i for i, bucket in enumerate(periods)}
        audience = audience_metrics(metrics) if source is Source.MESSAGES else ()
        others = tuple(metric for metric in metrics if metric not in audience)
        # The bucket of a rollup row's local day (the event rollups, audience_sends).
        bucket_of_day = "''" if granularity is None else f"toString({BUCKET_OF_DAY[granularity]})"
        if source is Source.ATTRIBUTION:
            params["attribution_days"] = settings.attribution_window_days
            params["touch_start"] = start - timedelta(days=settings.attribution_window_days)
            params["attributed_orders_build"] = builds.get(ATTRIBUTED_ORDERS, 0)
            params["orders_end"], params["orders_end_day"] = end, params["end_day"]  # the orders of the period
            sql = _attribution_sql(metrics, dimensions, where, granularity, builds)
        elif source is Source.SALES and (
            rollup := sales_rollup_sql(metrics, dimensions, filters, where, granularity, builds)
        ):
            sql, rollup_params = rollup
            params.update(rollup_params)
        elif source is Source.SALES and ORDERS in builds and _order_grain(metrics, dimensions, where):
            sql = _orders_sql(metrics, dimensions, where, granularity, builds)
        elif event_days_apply(source, others, dimensions, tuple(d for d, _test in where), builds):
            sql = event_days_sql(source, others, dimensions, where, bucket_of_day, builds, params)
        else:
            sql = _rows_sql(source, others, dimensions, where, granularity, builds)
        if audience:  # per mailing, over the members' orders (analytics/semantic/audiences.py)
            expressions = [dimension.expressions[source] for dimension in (*dimensions, *(d for d, _test in where))]
            if audience_sends_apply(expressions, builds):
                member_revenue = member_revenue_from_sends(dimensions, where, bucket_of_day, builds, params)
            else:
                keys, tests = (*dimensions, *MEMBER_KEYS), [*where, *MEMBER_TESTS]
                members = _rows_sql(source, (MEMBER_START,), keys, tests, granularity, builds)
                member_revenue = member_revenue_from_events(
                    members,
                    _sale_orders(builds),
                    len(dimensions),
                    params=params,
                    attribution_days=settings.attribution_window_days,
                )
            sql = audience_sql(member_revenue, len(dimensions), metrics, sql if others else None)
    return CompiledQuery(source, sql, params, metrics, dimensions, bucket_index)


def _rewritten(dimension: Dimension, function: str, *arguments: str) -> Dimension:
    """A multi-valued dimension made single-valued: ``function`` applied to each of its expressions (and
    ``arguments``): arrayJoin to slice by each value, hasAny to test them."""
    expressions = {source: f"{function}({', '.join((e, *arguments))})" for source, e in dimension.expressions.items()}
    return replace(dimension, expressions=expressions, multi_valued=False)


def _bind_bucket_bounds(
    params: dict[str, Any], periods: list[Period], granularity: Granularity | None, tz: ZoneInfo
) -> None:
    """Each bucket's local days ``[b_start, b_end)``, and the start of the window before it (the previous
    calendar bucket). Stock sources compare local order days with them, which is exact: bucket bounds are
    local midnights. ``horizon`` is the UTC end of the last bucket: no metric looks past it."""
    params["b_starts"] = [bucket.start for bucket in periods]
    params["b_ends"] = [bucket.end + timedelta(days=1) for bucket in periods]
    params["p_starts"] = [_previous_bucket(bucket, granularity).start for bucket in periods]
    params["horizon"] = periods[-1].bounds(tz)[1]
    params["horizon_day"] = params["b_ends"][-1]


def _previous_bucket(bucket: Period, granularity: Granularity | None) -> Period:
    """The whole previous calendar bucket (the previous month for a month, also when the period starts mid-month)
    or, without granularity, the previous period as a comparison shows it (whole months: as many months before)."""
    if granularity is None:
        return bucket.compared(Comparison.PREVIOUS_PERIOD)
    day_before = bucket_start(bucket.start, granularity) - timedelta(days=1)
    return Period(bucket_start(day_before, granularity), day_before)


def _bucket_expression(ts: str, granularity: Granularity | None) -> str:
    if granularity is None:
        return "''"
    day = f"toDate({ts}, {{tz:String}})"
    return f"toString({BUCKET_OF_DAY[granularity].format(day=day)})"


def _select_list(bucket: str, dimension_columns: list[str], metrics: tuple[Metric, ...]) -> str:
    dims = [f"{expression} AS d{i}" for i, expression in enumerate(dimension_columns)]
    values = [f"{metric.sql} AS m{i}" for i, metric in enumerate(metrics)]
    return ", ".join([f"{bucket} AS bucket", *dims, *values])


def _group_by(count: int) -> str:
    return "GROUP BY " + ", ".join(["bucket", *(f"d{i}" for i in range(count))])


def _joins(expressions: list[str], row_alias: str, builds: dict[str, int]) -> str:
    """LEFT JOIN the customer-level subqueries the expressions name."""
    text = " ".join(expressions)
    subqueries = dict(CUSTOMER_JOINS)
    if CUSTOMER_HISTORIES in builds:
        subqueries["acq"] = FIRST_ORDERS_FROM_HISTORIES
    if f"{RFM_ALIAS}." in text:
        from analytics.analyses.rfm import rfm_customers_select  # the analysis imports this module: import late

        subqueries[RFM_ALIAS] = rfm_customers_select(builds.get(CUSTOMER_HISTORIES))
    return "".join(
        f" LEFT JOIN ({subquery}) AS {alias} ON {alias}.customer_id = {row_alias}.customer_id"
        for alias, subquery in subqueries.items()
        if f"{alias}." in text
    )


def _order_level(expression: str) -> bool:
    """Whether a sales expression reads only columns the ``orders`` pre-aggregation has."""
    return set(re.findall(r"\bf\.(\w+)", expression)) <= ORDER_COLUMNS


def _order_grain(
    metrics: tuple[Metric, ...], dimensions: tuple[Dimension, ...], where: list[tuple[Dimension, str]]
) -> bool:
    expressions = [ORDER_GRAIN_SQL.get(m.id, m.sql) for m in metrics]
    expressions += [d.expressions[Source.SALES] for d in (*dimensions, *(d for d, _test in where))]
    return all(_order_level(expression) for expression in expressions)


def _conditions(where: list[tuple[Dimension, str]], source: Source, keep: Any = None) -> list[str]:
    """The filter conditions for ``source`` (only those ``keep(expression)`` accepts, when given).

    ``where`` pairs a dimension with its test, e.g. ``IN {filter0:Array(String)}``.
    """
    conditions = []
    for dimension, test in where:
        expression = dimension.expressions[source]
        if keep is None or keep(expression):
            conditions.append(f"{expression} {test}")
    return conditions


def _rows_sql(
    source: Source,
    metrics: tuple[Metric, ...],
    dimensions: tuple[Dimension, ...],
    where: list[tuple[Dimension, str]],
    granularity: Granularity | None,
    builds: dict[str, int],
) -> str:
    table, alias = ROW_TABLES[source]
    dims = [dimension.expressions[source] for dimension in dimensions]
    conditions = [
        f"{alias}.tenant_id = {{tenant_id:UInt32}}",
        f"{alias}.ts >= {{start:{DATETIME}}}",
        f"{alias}.ts < {{end:{DATETIME}}}",
        *_conditions(where, source),
    ]
    bucket = _bucket_expression(f"{alias}.ts", granularity)
    joined = _joins(dims + conditions, alias, builds)
    return (
        f"SELECT {_select_list(bucket, dims, metrics)}"
        f" FROM {table} AS {alias} FINAL{joined} WHERE {' AND '.join(conditions)} {_group_by(len(dims))}"
    )


def _orders_sql(
    metrics: tuple[Metric, ...],
    dimensions: tuple[Dimension, ...],
    where: list[tuple[Dimension, str]],
    granularity: Granularity | None,
    builds: dict[str, int],
) -> str:
    """Sales metrics over the ``orders`` pre-aggregation: its ``day`` is the local day the period compares."""
    dims = [dimension.expressions[Source.SALES] for dimension in dimensions]
    conditions = [
        "f.tenant_id = {tenant_id:UInt32}",
        "f.build = {orders_build:UInt64}",
        "f.day >= {start_day:Date}",
        "f.day < {end_day:Date}",
        *_conditions(where, Source.SALES),
    ]
    bucket = "''" if granularity is None else f"toString({BUCKET_OF_DAY[granularity].format(day='f.day')})"
    order_metrics = tuple(replace(m, sql=ORDER_GRAIN_SQL.get(m.id, m.sql)) for m in metrics)
    joined = _joins(dims + conditions, "f", builds)
    return (
        f"SELECT {_select_list(bucket, dims, order_metrics)}"
        f" FROM orders AS f{joined} WHERE {' AND '.join(conditions)} {_group_by(len(dims))}"
    )


# Identified sale orders from the period's start to ``orders_end``: the period's end for attributed orders, the
# attribution window past it for mailing audiences (analytics/semantic/audiences.py). From the receipt lines, or from
# a fresh ``orders`` build, selected there by local day (its sort key) up to ``orders_end_day``.
SALE_ORDERS_FROM_LINES = f"""
    SELECT customer_id, order_id, min(ts) AS order_ts, sum(amount) AS amount
    FROM sales_lines FINAL
    WHERE tenant_id = {{tenant_id:UInt32}} AND is_return = 0 AND customer_id != ''
      AND ts >= {{start:{DATETIME}}} AND ts < {{orders_end:{DATETIME}}}
    GROUP BY customer_id, order_id
"""
SALE_ORDERS_FROM_BUILD = """
    SELECT customer_id, order_id, ts AS order_ts, amount
    FROM orders
    WHERE tenant_id = {tenant_id:UInt32} AND build = {orders_build:UInt64} AND is_return = 0 AND customer_id != ''
      AND day >= {start_day:Date} AND day < {orders_end_day:Date}
"""


def _sale_orders(builds: dict[str, int]) -> str:
    return SALE_ORDERS_FROM_BUILD if ORDERS in builds else SALE_ORDERS_FROM_LINES


# ``{orders}`` is what ``_sale_orders`` chooses (filled with str.replace: the SQL's own braces stay as they are).
ATTRIBUTED_PAIRS = f"""
SELECT touch.mailing_id AS mailing_id, touch.campaign_id AS campaign_id, touch.channel AS message_channel,
       o.customer_id AS customer_id, o.order_id AS order_id, o.order_ts AS order_ts, o.amount AS amount
FROM ({{orders}}) AS o
INNER JOIN (
    SELECT customer_id, mailing_id, campaign_id, channel, ts
    FROM message_events FINAL
    WHERE tenant_id = {{tenant_id:UInt32}} AND event_type IN ('delivered', 'clicked')
      AND ts >= {{touch_start:{DATETIME}}} AND ts < {{end:{DATETIME}}}
) AS touch ON touch.customer_id = o.customer_id
WHERE touch.ts <= o.order_ts AND o.order_ts < touch.ts + toIntervalDay({{attribution_days:UInt16}})
"""


def _attribution_sql(
    metrics: tuple[Metric, ...],
    dimensions: tuple[Dimension, ...],
    where: list[tuple[Dimension, str]],
    granularity: Granularity | None,
    builds: dict[str, int],
) -> str:
    """Attributed orders, one row per order and dimension values: an order touched by two mailings counts once
    in the total and once for each mailing when sliced by mailing."""
    dims = [dimension.expressions[Source.ATTRIBUTION] for dimension in dimensions]
    conditions = _conditions(where, Source.ATTRIBUTION)
    joined = _joins(dims + conditions, "a", builds)
    if ATTRIBUTED_ORDERS in builds:  # fresh, and built with the tenant's attribution window (fresh_builds)
        pairs = ATTRIBUTED_ORDERS_IN_PERIOD
    else:
        pairs = ATTRIBUTED_PAIRS.replace("{orders}", _sale_orders(builds))
    inner_dims = "".join(f", {expression} AS d{i}" for i, expression in enumerate(dims))
    inner = (
        f"SELECT {_bucket_expression('a.order_ts', granularity)} AS bucket{inner_dims}, a.order_id AS order_id,"
        f" any(a.customer_id) AS customer_id, any(a.amount) AS amount"
        f" FROM ({pairs}) AS a{joined}"
        f"{' WHERE ' + ' AND '.join(conditions) if conditions else ''}"
        f" {_group_by(len(dims))}, order_id"
    )
    outer_dims = [f"a.d{i}" for i in range(len(dims))]
    return f"SELECT {_select_list('a.bucket', outer_dims, metrics)} FROM ({inner}) AS a {_group_by(len(dims))}"


BUCKET_ARRAY_JOIN = (
    " ARRAY JOIN {b_starts:Array(Date)} AS b_start, {b_ends:Array(Date)} AS b_end,"
    " {p_starts:Array(Date)} AS p_start, arrayEnumerate({b_starts:Array(Date)}) AS bucket_number"
)


def _is_customer_level(expression: str) -> bool:
    return any(f"{alias}." in expression for alias in (*CUSTOMER_JOINS, RFM_ALIAS))


def _customers_sql(
    metrics: tuple[Metric, ...],
    dimensions: tuple[Dimension, ...],
    where: list[tuple[Dimension, str]],
    builds: dict[str, int],
) -> str:
    """Each identified customer's order history within the slice, evaluated at every bucket.

    Line dimensions (store, category …) split a customer's history (their history at that store);
    customer-level ones (city, cohort …) are joined after. Histories come from the fresh
    ``customer_histories`` build when nothing splits them, else from the ``orders`` build when the
    slice is order-level, else from the receipt lines. Orders after the last bucket are not read
    (or, read from a build, change no metric: every metric looks only before a bucket's end).
    """
    expressions = [dimension.expressions[Source.CUSTOMERS] for dimension in dimensions]
    line_dims = [(i, e) for i, e in enumerate(expressions) if not _is_customer_level(e)]
    line_select = "".join(f", {expression} AS d{i}" for i, expression in line_dims)
    line_group = "".join(f", d{i}" for i, _expression in line_dims)
    line_filters = _conditions(where, Source.CUSTOMERS, keep=lambda e: not _is_customer_level(e))
    customer_filters = _conditions(where, Source.CUSTOMERS, keep=_is_customer_level)
    if CUSTOMER_HISTORIES in builds and not line_dims and not line_filters:
        histories = (
            "SELECT customer_id, orders, money FROM customer_histories"
            " WHERE tenant_id = {tenant_id:UInt32} AND build = {histories_build:UInt64}"
        )
    else:
        sliced_by = [expression for _i, expression in line_dims] + line_filters
        from_orders = ORDERS in builds and all(_order_level(expression) for expression in sliced_by)
        order_rows = _order_rows_from_orders if from_orders else _order_rows_from_lines
        orders = order_rows(line_select, line_group, line_filters)
        histories = (
            f"SELECT customer_id{line_group}, arraySort(groupArrayIf(order_day, is_return = 0)) AS orders,"
            f" arraySort(groupArray((order_day, amount))) AS money FROM ({orders})"
            f" GROUP BY customer_id{line_group} HAVING notEmpty(orders)"
        )
    outer_dims = [f"h.d{i}" if not _is_customer_level(e) else e for i, e in enumerate(expressions)]
    joined = _joins(outer_dims + customer_filters, "h", builds)
    where_sql = f" WHERE {' AND '.join(customer_filters)}" if customer_filters else ""
    return (
        f"SELECT {_select_list('toString(bucket_number)', outer_dims, metrics)}"
        f" FROM ({histories}) AS h{BUCKET_ARRAY_JOIN}{joined}{where_sql} {_group_by(len(outer_dims))}"
    )


def _order_rows_from_lines(line_select: str, line_group: str, line_filters: list[str]) -> str:
    """One row per identified order (and per day of its returns) with its local day and net amount."""
    conditions = [
        "f.tenant_id = {tenant_id:UInt32}",
        "f.customer_id != ''",
        f"f.ts < {{horizon:{DATETIME}}}",
        *line_filters,
    ]
    # A sale order counts on the day of its first line; a return on its own day (an order's returns on two days
    # are two events, and the later one must not move to the earlier day, or only when the query reaches it).
    return (
        f"SELECT f.customer_id AS customer_id{line_select}, f.order_id AS order_id, f.is_return AS is_return,"
        " if(f.is_return = 1, toDate(f.ts, {tz:String}), toDate(0)) AS return_day,"
        " toDate(min(f.ts), {tz:String}) AS order_day,"
        f" sum(f.amount) AS amount FROM sales_lines AS f FINAL"
        f" WHERE {' AND '.join(conditions)}"
        f" GROUP BY customer_id{line_group}, order_id, is_return, return_day"
    )


def _order_rows_from_orders(line_select: str, line_group: str, line_filters: list[str]) -> str:
    """The same rows from the ``orders`` build, which holds them already (returns apart per day)."""
    conditions = [
        "f.tenant_id = {tenant_id:UInt32}",
        "f.build = {orders_build:UInt64}",
        "f.customer_id != ''",
        "f.day < {horizon_day:Date}",
        *line_filters,
    ]
    return (
        f"SELECT f.customer_id AS customer_id{line_select}, f.is_return AS is_return, f.day AS order_day,"
        f" f.amount AS amount FROM orders AS f WHERE {' AND '.join(conditions)}"
    )


# The contacts pre-aggregated per join day (analytics/preaggregations.py): one grain of it, ``{grain}``.
CONTACT_DAYS_ROWS = (
    "SELECT * FROM contact_days"
    " WHERE tenant_id = {tenant_id:UInt32} AND build = {contact_days_build:UInt64} AND grain = '{grain}'"
)
CONTACT_DAYS_GRAINS = frozenset(("city", "gender", "birth_year", "home_store", "loyalty_program"))
CONTACT_DAYS_COLUMNS = frozenset(("created_day", "email_reachable", "sms_reachable", "contacts"))
# Contacts with the local day they joined on, compared with the buckets' local days.
CONTACTS_WITH_DAYS = (
    "SELECT *, toDate(created_at, {tz:String}) AS created_day"
    " FROM customer_attributes FINAL WHERE tenant_id = {tenant_id:UInt32}"
)


def _contacts_sql(
    metrics: tuple[Metric, ...],
    dimensions: tuple[Dimension, ...],
    where: list[tuple[Dimension, str]],
    builds: dict[str, int],
) -> str:
    dims = [dimension.expressions[Source.CONTACTS] for dimension in dimensions]
    conditions = _conditions(where, Source.CONTACTS)
    grain = _contact_grain(dims + conditions) if CONTACT_DAYS in builds else None
    rows = CONTACTS_WITH_DAYS
    if grain:
        rows = CONTACT_DAYS_ROWS.replace("{grain}", grain)
        # Each contact_days row stands for ``contacts`` contacts: count them instead of the rows.
        metrics = tuple(replace(m, sql=re.sub(r"^countIf\(", "sumIf(c.contacts, ", m.sql)) for m in metrics)
    joined = _joins(dims + conditions, "c", builds)
    return (
        f"SELECT {_select_list('toString(bucket_number)', dims, metrics)}"
        f" FROM ({rows}) AS c{BUCKET_ARRAY_JOIN}{joined}"
        f"{' WHERE ' + ' AND '.join(conditions) if conditions else ''} {_group_by(len(dims))}"
    )


def _contact_grain(expressions: list[str]) -> str | None:
    """The contact_days grain that answers expressions over the contacts (``c.``): 'all', or the one attribute
    column they read; None when they read two attributes or join other customer data."""
    text = " ".join(expressions)
    if any(f"{alias}." in text for alias in (*CUSTOMER_JOINS, RFM_ALIAS)):
        return None
    attributes = set(re.findall(r"\bc\.(\w+)", text)) - CONTACT_DAYS_COLUMNS
    if len(attributes) > 1 or not attributes <= CONTACT_DAYS_GRAINS:
        return None
    return attributes.pop() if attributes else "all"


def bucket_number(compiled: CompiledQuery, bucket: str) -> int:
    """The 0-based bucket of a result row: stock sources number buckets from 1, row sources name their start."""
    if compiled.source in (Source.CUSTOMERS, Source.CONTACTS):
        return int(bucket) - 1
    return compiled.bucket_index.get(bucket, 0)
