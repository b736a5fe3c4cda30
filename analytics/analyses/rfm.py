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

from analytics.analyses.base import Analysis, InsufficientDataError, Param
from analytics.analyses.cohorts import decimal_ratio
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

RFM_CUSTOMERS_SQL = """
SELECT customer_id, recency_days, frequency, monetary,
       toUInt8(1 + intDiv(5 * (rank() OVER (ORDER BY recency_days DESC) - 1), count() OVER ())) AS r_score,
       toUInt8(1 + intDiv(5 * (rank() OVER (ORDER BY frequency) - 1), count() OVER ())) AS f_score,
       toUInt8(1 + intDiv(5 * (rank() OVER (ORDER BY monetary) - 1), count() OVER ())) AS m_score,
       transform(r_score * 10 + f_score, {rfm_grid_scores:Array(UInt8)}, {rfm_grid_segments:Array(String)}, '')
           AS segment
FROM (
    SELECT customer_id,
           dateDiff('day', toDate(maxIf(ts, is_return = 0), {rfm_tz:String}), {rfm_as_of:Date}) AS recency_days,
           uniqExactIf(order_id, is_return = 0) AS frequency,
           sum(amount) AS monetary
    FROM sales_lines FINAL
    WHERE tenant_id = {tenant_id:UInt32} AND customer_id != ''
      AND ts >= {rfm_start:DateTime64(3, 'UTC')} AND ts < {rfm_end:DateTime64(3, 'UTC')}
    GROUP BY customer_id
    HAVING frequency > 0
)
"""


def rfm_window(as_of: date, lookback_days: int) -> Period:
    return Period(as_of - timedelta(days=lookback_days - 1), as_of)


def rfm_customers_sql(*, as_of: date, lookback_days: int, timezone: ZoneInfo) -> tuple[str, dict[str, Any]]:
    """The per-customer RFM SELECT and its parameters, ready to be a subquery (the ``rfm_segment`` dimension).

    Columns: customer_id, recency_days, frequency, monetary, r_score, f_score, m_score, segment (an id
    of ``SEGMENTS``). It needs ``{tenant_id:UInt32}`` bound by the query module; its own parameters
    are prefixed ``rfm_`` so they do not collide with the enclosing query's.
    """
    start, end = rfm_window(as_of, lookback_days).bounds(timezone)
    return RFM_CUSTOMERS_SQL, {
        "rfm_tz": timezone.key,
        "rfm_as_of": as_of,
        "rfm_start": start,
        "rfm_end": end,
        "rfm_grid_scores": [recency * 10 + frequency for recency, frequency in SEGMENT_OF_SCORES],
        "rfm_grid_segments": list(SEGMENT_OF_SCORES.values()),
    }


def rfm_compute(params: dict[str, Any]) -> dict[str, Any]:
    as_of, lookback_days = params["as_of"], params["lookback_days"]
    customers_sql, query_params = rfm_customers_sql(
        as_of=as_of, lookback_days=lookback_days, timezone=tenant_timezone()
    )
    grid_rows = tenant_query(
        f"""
SELECT r_score, f_score, count(), sum(monetary), sum(recency_days), sum(frequency)
FROM ({customers_sql})
GROUP BY r_score, f_score
""",
        query_params,
    ).result_rows
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
        "pareto": _pareto(customers_sql, query_params, customers),
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


def _pareto(customers_sql: str, query_params: dict[str, Any], customers: int) -> list[dict[str, Any]]:
    """The fewest customers, best first by monetary, whose revenue reaches each share of the total.

    Ties in monetary do not change the answer: the top k customers bring the same sum in any order.
    """
    reached = ", ".join(f"minIf(position, running * 100 >= total * {share})" for share in PARETO_REVENUE_SHARES)
    (needed,) = tenant_query(
        f"""
SELECT {reached}
FROM (
    SELECT row_number() OVER (ORDER BY monetary DESC) AS position,
           sum(monetary) OVER (ORDER BY monetary DESC ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW) AS running,
           sum(monetary) OVER () AS total
    FROM ({customers_sql})
)
WHERE total > 0
""",
        query_params,
    ).result_rows
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
        Param("as_of", date, tenant_today, "The day the analysis looks back from (included)."),
        Param("lookback_days", int, 365, "Window length in days, ending on as_of.", minimum=1, maximum=MAX_PERIOD_DAYS),
    ),
)
