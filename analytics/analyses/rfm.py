"""RFM (seeds 001, 003): how recently, how often and for how much each recent buyer bought, scored and named.

The window is the ``lookback_days`` local days ending on ``as_of`` (both included). For each identified
customer with a purchase in it: recency = days from the local day of their last purchase to ``as_of``,
frequency = distinct orders, monetary = net revenue (their lines in the window, returns negative).

Scores 1–5 (5 = best) are quintiles that keep ties together: with n customers of whom w have a
strictly worse value (longer recency, fewer orders, less money), the score is 1 + ⌊5·w / n⌋. Equal
values always get the same score, so when most customers have one order they all get F = 1 and the
next value starts higher up; a heavy tie leaves a score empty instead of splitting equal customers
at random. w is SQL ``rank() - 1`` (pandas: ``rank(method="min") - 1``), exact in integers.

Segments follow the common R×F grid (M describes, it does not place):

    R\\F   1               2               3               4               5
    5     New Customers   Potential L.    Potential L.    Champions       Champions
    4     Promising       Potential L.    Potential L.    Loyal           Loyal
    3     About to Sleep  About to Sleep  Need Attention  Loyal           Loyal
    2     Hibernating     Hibernating     At Risk         At Risk         Can't Lose Them
    1     Lost            Lost            At Risk         At Risk         Can't Lose Them
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

from django.utils.functional import Promise
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

from analytics.analyses.base import Analysis, InsufficientDataError, Param, decimal_ratio, fresh_histories_build
from analytics.clickhouse.query import tenant_query
from analytics.periods import MAX_PERIOD_DAYS, Period, tenant_timezone, tenant_today

# Below 20 customers a quintile holds fewer than 4 of them: one customer more or less moves a score
# boundary, and the segments describe individuals rather than groups.
MIN_CUSTOMERS = 20
SCORES = (1, 2, 3, 4, 5)
PARETO_REVENUE_SHARES = (50, 65, 80)


@dataclass(frozen=True)
class RfmSegment:
    id: str
    label: Promise
    recency_scores: tuple[int, ...]
    frequency_scores: tuple[int, ...]


SEGMENTS = (
    RfmSegment("champions", gettext_lazy("Champions"), (5,), (4, 5)),
    RfmSegment("loyal_customers", gettext_lazy("Loyal Customers"), (3, 4), (4, 5)),
    RfmSegment("potential_loyalists", gettext_lazy("Potential Loyalists"), (4, 5), (2, 3)),
    RfmSegment("new_customers", gettext_lazy("New Customers"), (5,), (1,)),
    RfmSegment("promising", gettext_lazy("Promising"), (4,), (1,)),
    RfmSegment("need_attention", gettext_lazy("Need Attention"), (3,), (3,)),
    RfmSegment("about_to_sleep", gettext_lazy("About to Sleep"), (3,), (1, 2)),
    RfmSegment("at_risk", gettext_lazy("At Risk"), (1, 2), (3, 4)),
    RfmSegment("cant_lose_them", gettext_lazy("Can't Lose Them"), (1, 2), (5,)),
    RfmSegment("hibernating", gettext_lazy("Hibernating"), (2,), (1, 2)),
    RfmSegment("lost", gettext_lazy("Lost"), (1,), (1, 2)),
)
SEGMENT_OF_SCORES = {
    (recency, frequency): segment.id
    for segment in SEGMENTS
    for recency in segment.recency_scores
    for frequency in segment.frequency_scores
}

# Per customer with a purchase in the window: recency, frequency and monetary, from the sales lines
# (``rfm_start`` … ``rfm_end``: the window's UTC bounds) or, the same numbers, from a fresh build of the
# customer histories (their sorted local order days, and net amounts by day; read as the separate arrays of days
# and amounts, faster than as tuples).
RFM_VALUES_FROM_FACTS_SQL = """
SELECT customer_id,
       dateDiff('day', toDate(maxIf(ts, is_return = 0), {rfm_tz:String}), {rfm_as_of:Date}) AS recency_days,
       uniqExactIf(order_id, is_return = 0) AS frequency,
       sum(amount) AS monetary
FROM sales_lines FINAL
WHERE tenant_id = {tenant_id:UInt32} AND customer_id != ''
  AND ts >= {rfm_start:DateTime64(3, 'UTC')} AND ts < {rfm_end:DateTime64(3, 'UTC')}
GROUP BY customer_id
HAVING frequency > 0
"""
RFM_VALUES_FROM_HISTORIES_SQL = """
SELECT customer_id, dateDiff('day', purchases[-1], {rfm_as_of:Date}) AS recency_days,
       length(purchases) AS frequency,
       arraySum(arrayFilter((amount, day) -> day >= {rfm_start_day:Date} AND day <= {rfm_as_of:Date},
                            money.2, money.1)) AS monetary
FROM (
    SELECT customer_id, money,
           arrayFilter(d -> d >= {rfm_start_day:Date} AND d <= {rfm_as_of:Date}, orders) AS purchases
    FROM customer_histories
    WHERE tenant_id = {tenant_id:UInt32} AND build = {rfm_histories_build:UInt64}
)
WHERE notEmpty(purchases)
"""
# Scores are 1 + ⌊5·w / n⌋ (see the docstring): w from rank() per customer here.
RFM_SCORES_SQL = """
SELECT customer_id, recency_days, frequency, monetary,
       toUInt8(1 + intDiv(5 * (rank() OVER (ORDER BY recency_days DESC) - 1), count() OVER ())) AS r_score,
       toUInt8(1 + intDiv(5 * (rank() OVER (ORDER BY frequency) - 1), count() OVER ())) AS f_score,
       toUInt8(1 + intDiv(5 * (rank() OVER (ORDER BY monetary) - 1), count() OVER ())) AS m_score,
       transform(r_score * 10 + f_score, {{rfm_grid_scores:Array(UInt8)}}, {{rfm_grid_segments:Array(String)}}, '')
           AS segment
FROM ({values})
"""
# The analysis needs only the customers of each R×F cell, so it scores the (recency, frequency) pairs, counted,
# instead of ranking every customer: the same scores, w being the customers of the pairs up to this one's value
# less those of this value. Per cell: customers, money, recency days and orders.
RFM_GRID_SQL = """
SELECT r_score, f_score, sum(customers), sum(money), sum(recency_days * customers), sum(frequency * customers)
FROM (
    SELECT recency_days, frequency, customers, money, sum(customers) OVER () AS all_customers,
           toUInt8(1 + intDiv(5 * (sum(customers) OVER (ORDER BY recency_days DESC RANGE UNBOUNDED PRECEDING)
                                   - sum(customers) OVER (PARTITION BY recency_days)), all_customers)) AS r_score,
           toUInt8(1 + intDiv(5 * (sum(customers) OVER (ORDER BY frequency RANGE UNBOUNDED PRECEDING)
                                   - sum(customers) OVER (PARTITION BY frequency)), all_customers)) AS f_score
    FROM (
        SELECT recency_days, frequency, count() AS customers, sum(monetary) AS money
        FROM ({values})
        GROUP BY recency_days, frequency
    )
)
GROUP BY r_score, f_score
"""
# The fewest customers, best first by monetary, whose revenue reaches each share of the total. Customers are
# counted by monetary (in cents), best first: a share is crossed within the group where ``need``, what the groups
# before it miss of the share (in cents × 100), is positive and at most the group's revenue, and takes ⌈need /
# value⌉ of its customers. Ties do not matter: the top k customers bring the same sum in any order. 0 where no
# group crosses a share (the total is not positive).
PARETO_SQL = """
SELECT {reached}
FROM (
    SELECT cents, customers, revenue,
           sum(revenue) OVER (ORDER BY cents DESC ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING) AS revenue_before,
           sum(customers) OVER (ORDER BY cents DESC ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING)
               AS customers_before,
           sum(revenue) OVER () AS total
    FROM (
        SELECT toInt64(monetary * 100) AS cents, count() AS customers, cents * customers AS revenue
        FROM ({values})
        GROUP BY cents
    )
)
WHERE cents > 0
"""
PARETO_REACHED = "minIf(customers_before + intDiv({need} - 1, 100 * cents) + 1, {need} > 0 AND {need} <= 100 * revenue)"


def rfm_window(as_of: date, lookback_days: int) -> Period:
    return Period(as_of - timedelta(days=lookback_days - 1), as_of)


def rfm_values_select(histories_build: int | None) -> str:
    """The per-customer values SELECT: from the customer histories when their build is fresh, else the facts."""
    return RFM_VALUES_FROM_FACTS_SQL if histories_build is None else RFM_VALUES_FROM_HISTORIES_SQL


def rfm_customers_select(histories_build: int | None) -> str:
    """The per-customer RFM SELECT (values, scores, segment) that ``rfm_customers_sql`` binds."""
    return RFM_SCORES_SQL.format(values=rfm_values_select(histories_build))


def rfm_customers_sql(
    *, as_of: date, lookback_days: int, timezone: ZoneInfo, histories_build: int | None
) -> tuple[str, dict[str, Any]]:
    """The per-customer RFM SELECT and its parameters, ready to be a subquery (the ``rfm_segment`` dimension).

    Columns: customer_id, recency_days, frequency, monetary, r_score, f_score, m_score, segment (an id
    of ``SEGMENTS``). It reads the fresh ``customer_histories`` build ``histories_build``, or the facts
    when None. It needs ``{tenant_id:UInt32}`` bound by the query module; its own parameters are
    prefixed ``rfm_`` so they do not collide with the enclosing query's.
    """
    window = rfm_window(as_of, lookback_days)
    start, end = window.bounds(timezone)
    return rfm_customers_select(histories_build), {
        "rfm_tz": timezone.key,
        "rfm_as_of": as_of,
        "rfm_start": start,
        "rfm_end": end,
        "rfm_start_day": window.start,
        "rfm_histories_build": histories_build or 0,
        "rfm_grid_scores": [recency * 10 + frequency for recency, frequency in SEGMENT_OF_SCORES],
        "rfm_grid_segments": list(SEGMENT_OF_SCORES.values()),
    }


def rfm_compute(params: dict[str, Any]) -> dict[str, Any]:
    as_of, lookback_days = params["as_of"], params["lookback_days"]
    histories_build = fresh_histories_build()
    _customers_sql, query_params = rfm_customers_sql(
        as_of=as_of, lookback_days=lookback_days, timezone=tenant_timezone(), histories_build=histories_build
    )
    values_sql = rfm_values_select(histories_build)
    grid_rows = tenant_query(RFM_GRID_SQL.format(values=values_sql), query_params).result_rows
    customers = sum(row[2] for row in grid_rows)
    if customers < MIN_CUSTOMERS:
        raise InsufficientDataError(
            _(
                "RFM needs at least %(minimum)s customers with a purchase in the %(days)s days up to %(as_of)s; "
                "there are %(count)s. Choose a later date or a longer window."
            )
            % {"minimum": MIN_CUSTOMERS, "days": lookback_days, "as_of": as_of, "count": customers},
            {"customers": customers, "minimum": MIN_CUSTOMERS},
        )
    revenue = sum((row[3] for row in grid_rows), Decimal(0))
    return {
        "as_of": as_of,
        "lookback_days": lookback_days,
        "window": rfm_window(as_of, lookback_days).as_json(),
        "customers": customers,
        "revenue": revenue,
        "segments": _segments(grid_rows, customers, revenue),
        "grid": _grid(grid_rows),
        "pareto": _pareto(values_sql, query_params, customers),
    }


def _segments(grid_rows: list[tuple], customers: int, revenue: Decimal) -> list[dict[str, Any]]:
    totals = {segment.id: [0, Decimal(0), 0, 0] for segment in SEGMENTS}
    for recency_score, frequency_score, count, money, recency_days, orders in grid_rows:
        total = totals[SEGMENT_OF_SCORES[recency_score, frequency_score]]
        for position, value in enumerate((count, money, recency_days, orders)):
            total[position] += value
    answer = []
    for segment in SEGMENTS:
        count, money, recency_days, orders = totals[segment.id]
        answer.append(
            {
                "segment": segment.id,
                "label": str(segment.label),
                "customers": count,
                "share": decimal_ratio(count, customers, scale=100),
                "revenue": money,
                "revenue_share": decimal_ratio(money, revenue, scale=100),
                "avg_recency_days": decimal_ratio(recency_days, count),
                "avg_frequency": decimal_ratio(orders, count),
                "avg_monetary": decimal_ratio(money, count),
            }
        )
    return answer


def _grid(grid_rows: list[tuple]) -> list[dict[str, Any]]:
    """All 25 R×F cells (R from 5 down, as the grid is drawn), empty ones with 0 customers."""
    counts = {(row[0], row[1]): row[2] for row in grid_rows}
    return [
        {
            "r_score": recency,
            "f_score": frequency,
            "segment": SEGMENT_OF_SCORES[recency, frequency],
            "customers": counts.get((recency, frequency), 0),
        }
        for recency in reversed(SCORES)
        for frequency in SCORES
    ]


def _pareto(values_sql: str, query_params: dict[str, Any], customers: int) -> list[dict[str, Any]]:
    """The fewest customers, best first by monetary, whose revenue reaches each share of the total (PARETO_SQL)."""
    reached = ", ".join(
        PARETO_REACHED.format(need=f"(total * {share} - 100 * revenue_before)") for share in PARETO_REVENUE_SHARES
    )
    (needed,) = tenant_query(PARETO_SQL.format(reached=reached, values=values_sql), query_params).result_rows
    return [
        {
            "revenue_share": share,
            # Without positive revenue no set of customers brings a share of it: no answer.
            "customers": count or None,
            "customer_share": decimal_ratio(count, customers, scale=100) if count else None,
        }
        for share, count in zip(PARETO_REVENUE_SHARES, needed, strict=True)
    ]


ANALYSIS = Analysis(
    name="rfm",
    label=gettext_lazy("RFM segments"),
    description=gettext_lazy(
        "Customers scored 1–5 by recency, frequency and monetary value over a window, named by the R×F grid "
        "(Champions … Lost), with the share of the base that brings most of the revenue."
    ),
    compute=rfm_compute,
    params=(
        Param("as_of", date, tenant_today, gettext_lazy("The day the analysis looks back from (included).")),
        Param(
            "lookback_days",
            int,
            365,
            gettext_lazy("Window length in days, ending on as_of."),
            minimum=1,
            maximum=MAX_PERIOD_DAYS,
        ),
    ),
)
