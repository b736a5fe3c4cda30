"""Acquisition cohorts (seeds 000, 001): customers by the month they came, and how they bought afterwards.

A customer's cohort is the local month (or week) of their first identified purchase ever, in the
tenant's timezone. Cell (cohort, k) is the k-th calendar bucket after the cohort's own (k = 0 is the
acquisition month): active customers (an identified purchase in it), retention = active / cohort
size, net revenue of the cohort's customers in it (a return nets out in the bucket it happens in, as
in the ``revenue`` metric), revenue per cohort customer, and LTV = revenue of buckets 0 … k / cohort
size. Cohorts are the buckets from ``from`` to ``to``, and activity is observed up to ``to`` too, so
a later cohort has fewer periods: the matrix is the usual triangle.
"""

from __future__ import annotations

from datetime import date, timedelta
from decimal import Decimal
from typing import Any

from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

from analytics.analyses.base import Analysis, InsufficientDataError, Param, decimal_ratio, fresh_histories_build
from analytics.clickhouse.query import tenant_query
from analytics.periods import (
    Granularity,
    Period,
    bucket_start,
    buckets,
    last_twelve_months_start,
    parse_period,
    tenant_timezone,
    tenant_today,
)
from analytics.semantic.compiler import BUCKET_OF_DAY

METRICS = ("customers", "retention", "revenue", "revenue_per_customer", "ltv")
GRANULARITIES = (Granularity.MONTH.value, Granularity.WEEK.value)


def _cohorts_sql(granularity: Granularity) -> str:
    """Per (cohort, bucket): active customers and net revenue of the customers acquired in ``[start, end)``."""
    bucket_of = BUCKET_OF_DAY[granularity]
    cohort = bucket_of.format(day="toDate(min(ts), {tz:String})")
    bucket = bucket_of.format(day="toDate(s.ts, {tz:String})")
    return f"""
SELECT cohort, bucket, uniqExactIf(customer_id, is_return = 0) AS active, sum(amount) AS revenue
FROM (
    SELECT s.customer_id AS customer_id, s.is_return AS is_return, s.amount AS amount,
           acquired.cohort AS cohort, {bucket} AS bucket
    FROM sales_lines AS s FINAL
    INNER JOIN (
        SELECT customer_id, {cohort} AS cohort
        FROM sales_lines FINAL
        WHERE tenant_id = {{tenant_id:UInt32}} AND customer_id != '' AND is_return = 0
        GROUP BY customer_id
        HAVING min(ts) >= {{start:DateTime64(3, 'UTC')}} AND min(ts) < {{end:DateTime64(3, 'UTC')}}
    ) AS acquired ON s.customer_id = acquired.customer_id
    WHERE s.tenant_id = {{tenant_id:UInt32}} AND s.customer_id != ''
      AND s.ts >= {{start:DateTime64(3, 'UTC')}} AND s.ts < {{end:DateTime64(3, 'UTC')}}
)
-- A return before the first purchase (of a receipt bought anonymously) belongs to no cohort cell.
WHERE bucket >= cohort
GROUP BY cohort, bucket
"""


def _cohorts_from_histories_sql(granularity: Granularity) -> str:
    """The same cells from a fresh ``customer_histories`` build, without a join: each acquired customer's
    history becomes (bucket, 1, 0) once per bucket with a purchase and (bucket, 0, amount) per order and return
    day, and the cells add them up. Order days are local days, so ``end_day`` (the day after ``to``) bounds them."""
    bucket_of = BUCKET_OF_DAY[granularity]
    cohort = bucket_of.format(day="toDate(first_order_ts, {tz:String})")
    return f"""
SELECT cohort, entry.1 AS bucket, sum(entry.2) AS active, sum(entry.3) AS revenue
FROM (
    SELECT {cohort} AS cohort,
           arrayConcat(
               arrayMap(b -> (b, toUInt8(1), toDecimal64(0, 2)),
                        arrayDistinct(arrayMap(d -> {bucket_of.format(day="d")},
                                               arrayFilter(d -> d < {{end_day:Date}}, orders)))),
               arrayMap(m -> ({bucket_of.format(day="m.1")}, toUInt8(0), m.2),
                        arrayFilter(m -> m.1 < {{end_day:Date}}, money))
           ) AS entries
    FROM customer_histories
    WHERE tenant_id = {{tenant_id:UInt32}} AND build = {{histories_build:UInt64}}
      AND first_order_ts >= {{start:DateTime64(3, 'UTC')}} AND first_order_ts < {{end:DateTime64(3, 'UTC')}}
)
ARRAY JOIN entries AS entry
-- A return before the first purchase (of a receipt bought anonymously) belongs to no cohort cell.
WHERE bucket >= cohort
GROUP BY cohort, bucket
"""


def cohorts_compute(params: dict[str, Any]) -> dict[str, Any]:
    granularity = Granularity(params["granularity"])
    requested = parse_period(params["from"], params["to"])
    # Cohorts are whole buckets: a ``from`` inside a month still takes that month's first customers.
    period = Period(bucket_start(requested.start, granularity), requested.end)
    tz = tenant_timezone()
    start, end = period.bounds(tz)
    query_params = {"tz": tz.key, "start": start, "end": end, "end_day": period.end + timedelta(days=1)}
    histories_build = fresh_histories_build()
    if histories_build is None:
        sql = _cohorts_sql(granularity)
    else:
        sql, query_params["histories_build"] = _cohorts_from_histories_sql(granularity), histories_build
    rows = tenant_query(sql, query_params).result_rows
    activity = {(cohort, bucket): (active, revenue) for cohort, bucket, active, revenue in rows}
    if not activity:
        raise InsufficientDataError(
            _(
                "No customer made a first identified purchase between %(from)s and %(to)s, so there are no "
                "cohorts to show. Choose a range with identified sales."
            )
            % {"from": period.start, "to": period.end},
            {"from": str(period.start), "to": str(period.end)},
        )
    starts = [bucket_start(bucket.start, granularity) for bucket in buckets(period, granularity)]
    cohorts, matrix, cells = [], [], []
    for number, cohort in enumerate(starts):
        # Every customer of a cohort is active in its first bucket: that is where their first purchase is.
        size = activity.get((cohort, cohort), (0, Decimal(0)))[0]
        cohorts.append({"cohort": cohort, "size": size})
        row: list[Any] = [None] * len(starts)
        cumulative = Decimal(0)
        for offset, bucket in enumerate(starts[number:] if size else []):
            active, revenue = activity.get((cohort, bucket), (0, Decimal(0)))
            cumulative += revenue
            cell = {
                "cohort": cohort,
                "period": offset,
                "customers": active,
                "retention": decimal_ratio(active, size, scale=100),
                "revenue": revenue,
                "revenue_per_customer": decimal_ratio(revenue, size),
                "ltv": decimal_ratio(cumulative, size),
            }
            cells.append(cell)
            row[offset] = cell[params["metric"]]
        matrix.append(row)
    return {
        "granularity": granularity.value,
        "metric": params["metric"],
        "period": period.as_json(),
        "customers": sum(cohort["size"] for cohort in cohorts),
        "cohorts": cohorts,
        "periods": list(range(len(starts))),
        "matrix": matrix,
        "cells": cells,
    }


ANALYSIS = Analysis(
    name="cohorts",
    label=gettext_lazy("Cohorts"),
    description=gettext_lazy(
        "Customers grouped by the month of their first purchase: how many bought again in each following "
        "month, their revenue and cumulative LTV."
    ),
    compute=cohorts_compute,
    params=(
        Param(
            "from", date, last_twelve_months_start, gettext_lazy("First cohort: the month (or week) holding this date.")
        ),
        Param("to", date, tenant_today, gettext_lazy("Last cohort and the end of the observed activity (included).")),
        Param("metric", str, "retention", gettext_lazy("The value of the heatmap matrix."), choices=METRICS),
        Param(
            "granularity",
            str,
            Granularity.MONTH.value,
            gettext_lazy("Cohort and period length."),
            choices=GRANULARITIES,
        ),
    ),
)
