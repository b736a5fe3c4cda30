"""Customer lifetime value (seed 001 "LTV", DESIGN §6–7): BG/NBD + Gamma-Gamma fitted per tenant.

The calibration history is every identified purchase on local days before ``calibration_end`` (that
day excluded: by default it is today, not over yet). Repeat purchases are counted as distinct local
purchase DAYS, the BTYD convention, so a basket split into two receipts is one purchase. Per customer:

- frequency = purchase days − 1; recency = days from the first to the last purchase day;
  T = days from the first purchase day to ``calibration_end``;
- monetary = net revenue of the days after the first purchase day (returns negative, on the day they
  are made, as in the ``revenue`` metric) / frequency: the mean net value of a repeat purchase. The
  Gamma-Gamma model is fitted on repeat buyers whose monetary is positive.

Predictions per customer, ``horizon_days`` after ``calibration_end``:

- ``expected_purchases``: E[purchase days in the horizon | history] (BG/NBD);
- ``probability_alive``: P(still a customer at ``calibration_end`` | history);
- ``expected_days_to_next_order``: the mean wait from ``calibration_end`` to the next purchase GIVEN
  the customer is alive, (α+T)/(r+x−1); null when infinite (r + x ≤ 1). ``median_days_to_next_order``
  is the median of the same wait, (α+T)(2^(1/(r+x)) − 1), always finite: the one to schedule by;
- ``expected_order_value``: the Gamma-Gamma expectation of a future purchase's value;
- ``clv``: expected purchases × expected order value, each purchase discounted to ``calibration_end``
  at ``annual_discount_rate`` by 30-day steps (default 0: undiscounted revenue over the horizon).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from datetime import date
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

import numpy as np
import pyarrow as pa
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

from analytics import lifetime_value as model
from analytics.analyses.base import CENT, Analysis, InsufficientDataError, Param, fresh_histories_build
from analytics.clickhouse.query import tenant_query_arrow
from analytics.periods import MAX_PERIOD_DAYS, local_midnight, tenant_timezone, tenant_today
from tenants.errors import ApplicationError

# Below about 50 repeat buyers the dropout parameters a, b (and Gamma-Gamma's p, q, v) rest on a
# handful of histories: the fit converges, but to numbers one customer more would move.
MIN_REPEAT_CUSTOMERS = 50
# A customer base seen for less than a quarter has had no time to come back and lapse: with retail
# purchase gaps of one to two months, nearly everyone looks alive and dropout cannot be told apart
# from a slow buying rate.
MIN_HISTORY_DAYS = 90
QUANTILES = (0.1, 0.25, 0.5, 0.75, 0.9, 0.99)
# Bits of a packed (frequency, recency, T) key: days and purchase days stay below 2^21 (5,700 years).
KEY_BITS = 21

CUSTOMER_SUMMARY_SQL = """
SELECT customer_id,
       toUInt32(countIf(purchased) - 1) AS frequency,
       toUInt32(dateDiff('day', minIf(day, purchased) AS first_day, maxIf(day, purchased))) AS recency,
       toUInt32(dateDiff('day', first_day, {calibration_end:Date})) AS T,
       -- Net revenue after the first purchase day: the later purchase days, and the days with only
       -- returns that come after it (a return before it is of a purchase made anonymously).
       toInt64((sumIf(net, purchased) - argMinIf(net, day, purchased)
                + arraySum(arrayMap(d -> d.2, arrayFilter(d -> d.1 > first_day,
                                                          groupArrayIf((day, net), NOT purchased))))) * 100)
           AS repeat_cents
FROM (
    SELECT customer_id, toDate(ts, {tz:String}) AS day, max(is_return = 0) AS purchased, sum(amount) AS net
    FROM sales_lines FINAL
    WHERE tenant_id = {tenant_id:UInt32} AND customer_id != '' AND ts < {end:DateTime64(3, 'UTC')}
    GROUP BY customer_id, day
)
GROUP BY customer_id
HAVING countIf(purchased) > 0
ORDER BY customer_id
"""
# The same summary from a fresh build of the customer histories: their sorted local order days and net amounts by day.
# Both come by customer id, so the fits add up the same floats in the same order and answer the same.
CUSTOMER_SUMMARY_FROM_HISTORIES_SQL = """
SELECT customer_id,
       toUInt32(arrayUniq(purchases) - 1) AS frequency,
       toUInt32(dateDiff('day', first_day, purchases[-1])) AS recency,
       toUInt32(dateDiff('day', first_day, {calibration_end:Date})) AS T,
       toInt64(arraySum(arrayFilter((amount, day) -> day > first_day AND day < {calibration_end:Date},
                                    money.2, money.1)) * 100) AS repeat_cents
FROM (
    -- A lambda captures a scalar first day: capturing the array would copy it for every element.
    SELECT customer_id, money, purchases, purchases[1] AS first_day
    FROM (
        SELECT customer_id, money, arrayFilter(d -> d < {calibration_end:Date}, orders) AS purchases
        FROM customer_histories
        WHERE tenant_id = {tenant_id:UInt32} AND build = {histories_build:UInt64}
    )
    WHERE notEmpty(purchases)
)
ORDER BY customer_id
"""


@dataclass(frozen=True)
class CustomerSummaries:
    """One entry per customer in customer id order; numbers as numpy arrays (days and purchase days are integers),
    the ids as Arrow strings: a few of them are shown, and millions of Python strings would take seconds."""

    customer_id: pa.ChunkedArray
    frequency: np.ndarray
    recency: np.ndarray
    T: np.ndarray
    repeat_cents: np.ndarray  # net revenue after the first purchase day, in minor units

    @property
    def monetary(self) -> np.ndarray:
        """Mean net value of a repeat purchase day; 0 for one-time buyers (they have none)."""
        return self.repeat_cents / 100 / np.maximum(self.frequency, 1)


def customer_summaries(*, calibration_end: date) -> CustomerSummaries:
    """Per identified customer with a purchase before ``calibration_end``: frequency, recency, T, repeat revenue."""
    tz = tenant_timezone()
    params = {"tz": tz.key, "calibration_end": calibration_end, "end": local_midnight(calibration_end, tz)}
    histories_build = fresh_histories_build()
    if histories_build is None:
        sql = CUSTOMER_SUMMARY_SQL
    else:
        sql, params["histories_build"] = CUSTOMER_SUMMARY_FROM_HISTORIES_SQL, histories_build
    table = tenant_query_arrow(sql, params)
    return CustomerSummaries(
        customer_id=table.column("customer_id"),
        **{
            name: table.column(name).to_numpy().astype(np.int64)
            for name in ("frequency", "recency", "T", "repeat_cents")
        },
    )


def _distinct(*columns: np.ndarray) -> tuple[list[np.ndarray], np.ndarray, np.ndarray]:
    """Distinct rows of small non-negative integer columns: (their columns, counts, row → distinct index)."""
    key = np.zeros(len(columns[0]), dtype=np.int64)
    for column in columns:
        key = key << KEY_BITS | column
    distinct, inverse, counts = np.unique(key, return_inverse=True, return_counts=True)
    mask = (1 << KEY_BITS) - 1
    unpacked = [distinct >> (KEY_BITS * shift) & mask for shift in reversed(range(len(columns)))]
    return unpacked, counts, inverse


def _money(value: float) -> Decimal:
    return Decimal(value).quantize(CENT, ROUND_HALF_UP)


def _mean_money(cents: int, count: int) -> Decimal:
    """An exact mean of amounts in minor units, to the cent."""
    return (Decimal(cents) / 100 / count).quantize(CENT, ROUND_HALF_UP)


def _quantiles(values: np.ndarray, as_money: bool = False) -> dict[str, Any]:
    points = np.quantile(values, QUANTILES)
    return {
        f"p{round(share * 100)}": _money(point) if as_money else round(float(point), 6)
        for share, point in zip(QUANTILES, points, strict=True)
    }


def _check_enough(summaries: CustomerSummaries, calibration_end: date) -> None:
    repeat = int(np.count_nonzero(summaries.frequency))
    history = int(summaries.T.max()) if len(summaries.T) else 0
    facts = {"customers": len(summaries.customer_id), "repeat_customers": repeat, "history_days": history}
    if history < MIN_HISTORY_DAYS:
        raise InsufficientDataError(
            _(
                "CLV needs at least %(minimum)s days of purchase history before %(end)s; there are %(days)s. "
                "Choose a later calibration end or load more history."
            )
            % {"minimum": MIN_HISTORY_DAYS, "end": calibration_end, "days": history},
            {**facts, "minimum_history_days": MIN_HISTORY_DAYS},
        )
    valued = int(np.count_nonzero((summaries.frequency > 0) & (summaries.repeat_cents > 0)))
    if valued < MIN_REPEAT_CUSTOMERS:
        raise InsufficientDataError(
            _(
                "CLV needs at least %(minimum)s customers with a repeat purchase (of positive net value) before "
                "%(end)s; there are %(count)s. Choose a later calibration end or load more history."
            )
            % {"minimum": MIN_REPEAT_CUSTOMERS, "end": calibration_end, "count": valued},
            {**facts, "minimum_repeat_customers": MIN_REPEAT_CUSTOMERS},
        )


def _finite(values: np.ndarray, what: str) -> np.ndarray:
    if not np.all(np.isfinite(values)):
        raise model.ModelFitError(
            _("The fitted CLV model gives no finite %(what)s for some customers: it cannot be used here.")
            % {"what": what},
            {"what": what},
        )
    return values


def clv_compute(params: dict[str, Any]) -> dict[str, Any]:
    calibration_end, horizon = params["calibration_end"], params["horizon_days"]
    if calibration_end > tenant_today():
        raise ApplicationError(
            _("Parameter “calibration_end”: %(date)s is in the future; the history ends today at the latest.")
            % {"date": calibration_end},
            {"param": "calibration_end", "value": str(calibration_end)},
        )
    summaries = customer_summaries(calibration_end=calibration_end)
    _check_enough(summaries, calibration_end)
    x, t_x, age = summaries.frequency, summaries.recency, summaries.T
    monetary = summaries.monetary

    # BG/NBD on the distinct (x, t_x, T), each weighted by its customers.
    (group_x, group_t_x, group_age), group_counts, group_of = _distinct(x, t_x, age)
    purchases_fit = model.bgnbd_fit(group_x, group_t_x, group_age, group_counts)
    valued = (x > 0) & (summaries.repeat_cents > 0)
    spend_fit = model.gamma_gamma_fit(x[valued], monetary[valued])
    bgnbd, gamma_gamma = purchases_fit.params, spend_fit.params

    # P(alive) depends on (x, t_x, T); purchases given alive on (x, T) only: each is computed once per
    # distinct value and spread to the customers.
    alive = model.probability_alive(bgnbd, group_x, group_t_x, group_age)[group_of]
    (pair_x, pair_age), _counts, pair_of_group = _distinct(group_x, group_age)
    pair_of = pair_of_group[group_of]
    if_alive = model.expected_purchases_if_alive(bgnbd, pair_x, pair_age, horizon)[pair_of]
    discounted = model.discounted_purchases_if_alive(bgnbd, pair_x, pair_age, horizon, params["annual_discount_rate"])
    purchases = _finite(alive * if_alive, "expected purchases")
    order_value = _finite(model.expected_transaction_value(gamma_gamma, x, monetary), "order value")
    clv = _finite(alive * discounted[pair_of] * order_value, "CLV")

    return {
        "model": {
            "time_unit": "day",
            "bg_nbd": {
                **asdict(bgnbd),
                "log_likelihood": purchases_fit.log_likelihood,
                "customers": len(x),
                "distinct_histories": len(group_counts),
                "iterations": purchases_fit.iterations,
            },
            "gamma_gamma": {
                **asdict(gamma_gamma),
                "log_likelihood": spend_fit.log_likelihood,
                "customers": int(valued.sum()),
                "iterations": spend_fit.iterations,
                # The model assumes spend independent of frequency; a strong correlation says it is not.
                "frequency_monetary_correlation": float(np.corrcoef(x[valued], monetary[valued])[0, 1]),
                "population_order_value": _money(gamma_gamma.population_mean),
            },
        },
        "summary": {
            "customers": len(x),
            "repeat_customers": int(np.count_nonzero(x)),
            "history_days": int(age.max()),
            "expected_purchases": round(float(purchases.sum()), 2),
            "expected_alive_customers": round(float(alive.sum()), 2),
            "clv": _money(clv.sum()),
            "average_clv": _money(clv.mean()),
            "quantiles": {
                "clv": _quantiles(clv, as_money=True),
                "probability_alive": _quantiles(alive),
                "expected_purchases": _quantiles(purchases),
            },
        },
        "rows": _customer_rows(
            summaries, params["limit"], bgnbd, alive=alive, purchases=purchases, order_value=order_value, clv=clv
        ),
    }


def _customer_rows(
    summaries: CustomerSummaries,
    limit: int,
    bgnbd: model.BgNbdParams,
    *,
    alive: np.ndarray,
    purchases: np.ndarray,
    order_value: np.ndarray,
    clv: np.ndarray,
) -> list[dict[str, Any]]:
    """The ``limit`` customers of highest CLV (0: all), ties by customer id (summaries come in its order)."""
    chosen = np.arange(len(clv))
    if 0 < limit < len(clv):
        # Every customer at least as valuable as the limit-th, ties included, then the exact order.
        threshold = np.partition(clv, len(clv) - limit)[len(clv) - limit]
        chosen = np.flatnonzero(clv >= threshold)
    chosen = chosen[np.lexsort((chosen, -clv[chosen]))][: limit or None]
    ids = summaries.customer_id.take(chosen).to_pylist()
    x, age = summaries.frequency[chosen], summaries.T[chosen]
    mean_wait = model.days_to_next_purchase_if_alive(bgnbd, x, age)
    median_wait = model.median_days_to_next_purchase_if_alive(bgnbd, x, age)
    rows = []
    for position, index in enumerate(chosen):
        frequency = int(summaries.frequency[index])
        rows.append(
            {
                "customer_id": ids[position],
                "frequency": frequency,
                "recency": int(summaries.recency[index]),
                "T": int(age[position]),
                "monetary": _mean_money(int(summaries.repeat_cents[index]), frequency) if frequency else None,
                "expected_purchases": round(float(purchases[index]), 4),
                "probability_alive": round(float(alive[index]), 4),
                # Null where the mean wait is infinite (see the module's docstring).
                "expected_days_to_next_order": round(float(mean_wait[position]), 1)
                if np.isfinite(mean_wait[position])
                else None,
                "median_days_to_next_order": round(float(median_wait[position]), 1),
                "expected_order_value": _money(order_value[index]),
                "clv": _money(clv[index]),
            }
        )
    return rows


ANALYSIS = Analysis(
    name="clv",
    label=gettext_lazy("Customer lifetime value"),
    description=gettext_lazy(
        "BG/NBD and Gamma-Gamma models fitted to this workspace's purchase histories: per customer the "
        "expected purchases and revenue over a horizon, the probability of still being a customer, and the "
        "expected wait for the next order."
    ),
    compute=clv_compute,
    params=(
        Param(
            "calibration_end",
            date,
            tenant_today,
            gettext_lazy("Purchases on days before this one fit the model (default today)."),
        ),
        Param(
            "horizon_days",
            int,
            365,
            gettext_lazy("Days ahead of calibration_end to predict."),
            minimum=1,
            maximum=MAX_PERIOD_DAYS,
        ),
        Param(
            "annual_discount_rate",
            float,
            0.0,
            gettext_lazy("Yearly rate the CLV's future revenue is discounted at (0.1 = 10 %)."),
            minimum=0,
            maximum=1,
        ),
        Param("limit", int, 100, gettext_lazy("Customers listed, by CLV descending (0 = all)."), minimum=0),
    ),
)
