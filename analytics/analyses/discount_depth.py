"""Discount depth (seed 004: "10 % works about as well as 20 %, 15 % worse"): orders per depth band against full price.

Why orders and not mailing response: the facts do not say which offer a mailing carried.
``message_events`` names the mailing, ``sales_lines`` the promo code, and nothing links the two;
inferring a mailing's depth from the codes its recipients redeemed would give a depth only to the
mailings somebody answered, which selects on the very outcome being measured. So the depth is the
order's own, and every number below is read from sales facts alone.

Definitions (period = local dates ``from`` … ``to`` in the tenant's timezone):

- An order is an identified purchase: the sale lines (``is_return = 0``, ``customer_id != ''``) of one
  (customer, order id) whose ``ts`` is in the period; its time is the earliest of them.
- Its gross G = Σ (amount + discount) and its discount D = Σ discount over those lines. Its depth is
  100 · D / G rounded half up to a whole percent, computed exactly in kopecks as
  ⌊(200 · D + G) / (2 · G)⌋ (100 when G ≤ 0, an order given away).
- Orders with D ≤ 0 are the no-discount baseline. Any other order falls into the band of the largest
  ``bands`` edge not above its depth: edges 0,5,10 make bands 0–5 %, 5–10 %, 10 %+ (a band holds its
  lower edge; the last one is open).
- Per segment and band: orders; orders with a promo code on any line; buyers (distinct customers);
  revenue = Σ amount of the orders' sale lines plus every return line of those order ids (negative,
  whenever returned); discounts = Σ D; average check = revenue / orders; revenue per buyer =
  revenue / buyers.
- Repeat within 90 days: for each buyer of a band, t = their first order in it; they repeated if
  they placed another identified order (any depth) after t and no later than t + 90 × 24 h. Only buyers
  whose window is over by the tenant's last sales fact (t + 90 days ≤ max ts of ``sales_lines``) are
  observed; repeat rate = repeated / observed buyers.
- Against the baseline of the same segment: the change of the average check in % and of the repeat
  rate in percentage points, given only when both sides have ``MIN_SAMPLE`` orders (for the check) or
  observed buyers (for the repeat rate) — fewer would read as a finding what is noise.
- ``segment_by``: the customer's loyalty programme, gender or city (customer attributes; '' when
  unknown), or the order's sales channel.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta
from decimal import Decimal
from typing import Any

from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

from analytics.analyses.base import Analysis, InsufficientDataError, Param, decimal_ratio
from analytics.clickhouse.query import tenant_query
from analytics.periods import last_twelve_months_start, parse_period, tenant_timezone, tenant_today
from tenants.errors import ApplicationError

DEFAULT_BANDS = "0,5,10,15,20,25,30"
MAX_BANDS = 20
REPEAT_DAYS = 90
# A rate over fewer than 30 orders or buyers swings by several points with one customer more or less.
MIN_SAMPLE = 30
# A band nobody bought in: orders, promo orders, buyers, revenue, discounts, observed and repeated buyers.
NO_ORDERS = (0, 0, 0, Decimal("0.00"), Decimal("0.00"), 0, 0)
NO_CHANGE = {"average_check_vs_baseline_pct": None, "repeat_rate_vs_baseline_pp": None}
BASELINE = 0  # band number of the orders without a discount; bands proper are 1 … len(edges)
# The segment of an order: an expression of the order row ``o`` or the customer's attributes ``attrs``.
SEGMENTS = {
    "none": "''",
    "loyalty_program": "attrs.loyalty_program",
    "gender": "attrs.gender",
    "city": "attrs.city",
    "channel": "o.order_channel",
}
ATTRIBUTES_JOIN = """
        LEFT JOIN (
            SELECT customer_id, loyalty_program, gender, city FROM customer_attributes FINAL
            WHERE tenant_id = {tenant_id:UInt32}
        ) AS attrs ON attrs.customer_id = o.customer_id"""
# Whole percent, half up, in integer kopecks: ⌊(200·D + G) / (2·G)⌋.
DEPTH_PERCENT = (
    "if(o.gross <= 0, 100, intDiv(200 * toInt64(o.order_discount * 100) + toInt64(o.gross * 100),"
    " greatest(2 * toInt64(o.gross * 100), 1)))"
)
DEPTH_SQL = """
WITH
    orders AS (
        SELECT customer_id, order_id, min(ts) AS order_ts, min(channel) AS order_channel, sum(amount) AS sales,
               sum(discount) AS order_discount, sum(amount + discount) AS gross, max(promo_code != '') AS with_promo
        FROM sales_lines FINAL
        WHERE tenant_id = {{tenant_id:UInt32}} AND customer_id != '' AND is_return = 0
          AND ts >= {{start:DateTime64(3, 'UTC')}} AND ts < {{end:DateTime64(3, 'UTC')}}
        GROUP BY customer_id, order_id
    ),
    returned AS (
        SELECT order_id, sum(amount) AS amount FROM sales_lines FINAL
        WHERE tenant_id = {{tenant_id:UInt32}} AND is_return = 1 AND order_id IN (SELECT order_id FROM orders)
        GROUP BY order_id
    ),
    banded AS (
        SELECT o.customer_id AS customer_id, o.order_ts AS order_ts, {segment} AS segment,
               if(o.order_discount <= 0, 0, arrayCount(edge -> edge <= {depth}, {{edges:Array(UInt8)}})) AS band,
               o.sales + r.amount AS revenue, o.order_discount AS discount, o.with_promo AS with_promo
        FROM orders AS o
        LEFT JOIN returned AS r ON r.order_id = o.order_id{attributes_join}
    ),
    later AS (
        SELECT customer_id, groupArray(order_ts) AS times
        FROM (
            SELECT customer_id, order_id, min(ts) AS order_ts FROM sales_lines FINAL
            WHERE tenant_id = {{tenant_id:UInt32}} AND customer_id != '' AND is_return = 0
              AND ts >= {{start:DateTime64(3, 'UTC')}} AND ts < {{horizon:DateTime64(3, 'UTC')}}
              AND customer_id IN (SELECT customer_id FROM orders)
            GROUP BY customer_id, order_id
        )
        GROUP BY customer_id
    ),
    repeats AS (
        SELECT segment, band, countIf(is_observed) AS observed, countIf(is_observed AND has_repeated) AS repeated
        FROM (
            SELECT b.segment AS segment, b.band AS band,
                   b.first_ts + toIntervalDay({{repeat_days:UInt16}}) <= (
                       SELECT max(ts) FROM sales_lines FINAL WHERE tenant_id = {{tenant_id:UInt32}}
                   ) AS is_observed,
                   arrayExists(x -> x > b.first_ts AND x <= b.first_ts + toIntervalDay({{repeat_days:UInt16}}), l.times)
                       AS has_repeated
            FROM (
                SELECT segment, band, customer_id, min(order_ts) AS first_ts FROM banded
                GROUP BY segment, band, customer_id
            ) AS b
            LEFT JOIN later AS l ON l.customer_id = b.customer_id
        )
        GROUP BY segment, band
    )
SELECT t.segment, t.band, t.orders, t.promo_orders, t.buyers, t.band_revenue, t.discounts, r.observed, r.repeated
FROM (
    SELECT segment, band, count() AS orders, countIf(with_promo) AS promo_orders,
           uniqExact(customer_id) AS buyers, sum(revenue) AS band_revenue, sum(discount) AS discounts
    FROM banded
    GROUP BY segment, band
) AS t
LEFT JOIN repeats AS r ON r.segment = t.segment AND r.band = t.band
"""


@dataclass(frozen=True)
class Band:
    number: int  # BASELINE, or 1 … for the edges in order
    depth_from: int | None  # None for the baseline
    depth_to: int | None  # None for the baseline and the last, open band

    @property
    def id(self) -> str:
        return "no_discount" if self.number == BASELINE else str(self.depth_from)

    @property
    def label(self) -> str:
        if self.number == BASELINE:
            return _("No discount")
        return f"{self.depth_from}–{self.depth_to} %" if self.depth_to is not None else f"{self.depth_from} %+"

    def as_json(self) -> dict[str, Any]:
        return {"band": self.id, "label": self.label, "from": self.depth_from, "to": self.depth_to}


def bands_parse(raw: str) -> list[Band]:
    """The baseline and one band per edge, from ``"0,5,10"``; an ApplicationError names what is wrong."""
    try:
        edges = sorted({int(part) for part in raw.split(",") if part.strip()})
    except ValueError:
        raise ApplicationError(
            _("Parameter “bands”: “%(value)s” is not a comma-separated list of whole percents.") % {"value": raw},
            {"param": "bands", "value": raw},
        ) from None
    if not edges or edges[0] != 0 or edges[-1] > 99 or len(edges) > MAX_BANDS:
        raise ApplicationError(
            _(
                "Parameter “bands”: give up to %(max)s band starts from 0 to 99 %%, the first one 0 "
                "(every discounted order must fall into a band), not “%(value)s”."
            )
            % {"max": MAX_BANDS, "value": raw},
            {"param": "bands", "value": raw},
        )
    ends = [*edges[1:], None]
    return [Band(BASELINE, None, None)] + [
        Band(number, start, end) for number, (start, end) in enumerate(zip(edges, ends, strict=True), start=1)
    ]


def discount_depth_compute(params: dict[str, Any]) -> dict[str, Any]:
    period = parse_period(params["from"], params["to"])
    bands = bands_parse(params["bands"])
    segment_by = params["segment_by"]
    segment = SEGMENTS[segment_by]
    sql = DEPTH_SQL.format(
        segment=segment, depth=DEPTH_PERCENT, attributes_join=ATTRIBUTES_JOIN if "attrs." in segment else ""
    )
    start, end = period.bounds(tenant_timezone())
    query_params = {
        "start": start,
        "end": end,
        "horizon": end + timedelta(days=REPEAT_DAYS),
        "repeat_days": REPEAT_DAYS,
        "edges": [band.depth_from for band in bands[1:]],
    }
    found = {(row[0], row[1]): row[2:] for row in tenant_query(sql, query_params).result_rows}
    if not found:
        raise InsufficientDataError(
            _("No identified customer bought between %(from)s and %(to)s: there are no orders to compare.")
            % {"from": period.start, "to": period.end},
            {"from": str(period.start), "to": str(period.end)},
        )
    rows = []
    for segment_value in sorted({key[0] for key in found}):
        baseline = _row(bands[BASELINE], found.get((segment_value, BASELINE)))
        for band in bands:
            row = _row(band, found.get((segment_value, band.number)))
            change = _against(row, baseline) if band.number != BASELINE else NO_CHANGE
            rows.append({"segment": segment_value, **row, **change})
    return {
        "period": period.as_json(),
        "segment_by": segment_by,
        "bands": [band.as_json() for band in bands],
        "repeat_days": REPEAT_DAYS,
        "min_sample": MIN_SAMPLE,
        "rows": rows,
    }


def _row(band: Band, values: tuple | None) -> dict[str, Any]:
    orders, promo_orders, buyers, revenue, discounts, observed, repeated = values or NO_ORDERS
    return {
        "band": band.id,
        "label": band.label,
        "orders": orders,
        "promo_code_orders": promo_orders,
        "buyers": buyers,
        "revenue": revenue,
        "discounts": discounts,
        "average_check": decimal_ratio(revenue, orders),
        "revenue_per_buyer": decimal_ratio(revenue, buyers),
        "repeat_observed_buyers": observed,
        "repeat_buyers": repeated,
        "repeat_rate": decimal_ratio(repeated, observed, scale=100),
    }


def _against(row: dict[str, Any], baseline: dict[str, Any]) -> dict[str, Any]:
    """The band's change from the baseline, from exact ratios; None where either side is too small to tell."""
    orders, base_orders = row["orders"], baseline["orders"]
    observed, base_observed = row["repeat_observed_buyers"], baseline["repeat_observed_buyers"]
    change = dict(NO_CHANGE)
    if min(orders, base_orders) >= MIN_SAMPLE:
        # check / base check − 1 = (revenue · base orders − base revenue · orders) / (base revenue · orders)
        change["average_check_vs_baseline_pct"] = decimal_ratio(
            row["revenue"] * base_orders - baseline["revenue"] * orders, abs(baseline["revenue"]) * orders, scale=100
        )
    if min(observed, base_observed) >= MIN_SAMPLE:
        change["repeat_rate_vs_baseline_pp"] = decimal_ratio(
            row["repeat_buyers"] * base_observed - baseline["repeat_buyers"] * observed,
            observed * base_observed,
            scale=100,
        )
    return change


ANALYSIS = Analysis(
    name="discount_depth",
    label=gettext_lazy("Discount depth"),
    description=gettext_lazy(
        "Orders by the depth of their discount against orders at full price: buyers, revenue, average check "
        "and how many of those buyers came back within 90 days, optionally per segment."
    ),
    compute=discount_depth_compute,
    params=(
        Param("from", date, last_twelve_months_start, gettext_lazy("First day of the period (tenant's timezone).")),
        Param("to", date, tenant_today, gettext_lazy("Last day of the period (included).")),
        Param(
            "bands", str, DEFAULT_BANDS, gettext_lazy("Band starts in whole percent, comma-separated, the first one 0.")
        ),
        Param("segment_by", str, "none", gettext_lazy("Split every band by this."), choices=tuple(SEGMENTS)),
    ),
)
