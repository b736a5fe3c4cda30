"""Loyalty programmes (seed 003: bonus against discount cards): members of each programme against non-members.

A customer's group is ``customer_attributes.loyalty_program`` ('' = not a member, as is a customer
without attributes). The customers of a group are everyone known by the end of the period: created
before it (attributes) or with an identified sale or return line before it. Over the period (local
dates ``from`` … ``to``, tenant's timezone) and the previous period of equal length, per group, with
the semantic layer's definitions (DESIGN §5) restricted to the group's identified lines:

- buyers: customers with a sale line (``is_return = 0``) in the period; orders: their distinct order ids;
  orders per buyer = orders / buyers.
- revenue: Σ amount of the group's lines in the period, returns negative; average check =
  revenue / orders; revenue per buyer = revenue / buyers.
- discount share = Σ discount of the lines (returns give theirs back) / Σ (amount + discount) of the
  sale lines, in %.
- repeat share: buyers with 2+ orders up to the period end / buyers, in %.
- retention: buyers of the previous period who bought in this one / buyers of the previous period, in %.

The total row adds the groups up: every customer is in exactly one.
"""

from __future__ import annotations

from datetime import date
from typing import Any

from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

from analytics.analyses.base import Analysis, InsufficientDataError, Param, decimal_ratio
from analytics.clickhouse.query import tenant_query
from analytics.periods import last_twelve_months_start, parse_period, tenant_timezone, tenant_today

NOT_A_MEMBER = ""
# The programmes of ``customer_attributes.loyalty_program`` (integrations.ingest), and non-members.
PROGRAMME_LABELS = {
    NOT_A_MEMBER: gettext_lazy("Not a member"),
    "bonus": gettext_lazy("Bonus card"),
    "discount": gettext_lazy("Discount card"),
}
LOYALTY_SQL = """
WITH
    history AS (
        SELECT customer_id,
               uniqExactIf(order_id, is_return = 0 AND ts >= {start:DateTime64(3, 'UTC')}) AS orders,
               uniqExactIf(order_id, is_return = 0) AS orders_to_end,
               sumIf(amount, ts >= {start:DateTime64(3, 'UTC')}) AS revenue,
               sumIf(discount, ts >= {start:DateTime64(3, 'UTC')}) AS discounts,
               sumIf(amount + discount, is_return = 0 AND ts >= {start:DateTime64(3, 'UTC')}) AS gross,
               countIf(is_return = 0 AND ts >= {previous_start:DateTime64(3, 'UTC')}
                       AND ts < {start:DateTime64(3, 'UTC')}) > 0 AS bought_before
        FROM sales_lines FINAL
        WHERE tenant_id = {tenant_id:UInt32} AND customer_id != '' AND ts < {end:DateTime64(3, 'UTC')}
        GROUP BY customer_id
    ),
    members AS (
        SELECT customer_id, loyalty_program, created_at FROM customer_attributes FINAL
        WHERE tenant_id = {tenant_id:UInt32}
    )
SELECT m.loyalty_program AS programme, count() AS customers, countIf(h.orders > 0) AS buyers,
       sum(h.orders) AS group_orders, sum(h.revenue) AS group_revenue, sum(h.discounts) AS group_discounts,
       sum(h.gross) AS group_gross, countIf(h.orders > 0 AND h.orders_to_end >= 2) AS repeat_buyers,
       countIf(h.bought_before) AS previous_buyers, countIf(h.bought_before AND h.orders > 0) AS retained
FROM (
    SELECT customer_id FROM members WHERE created_at < {end:DateTime64(3, 'UTC')}
    UNION DISTINCT
    SELECT customer_id FROM history
) AS known
LEFT JOIN history AS h ON h.customer_id = known.customer_id
LEFT JOIN members AS m ON m.customer_id = known.customer_id
GROUP BY programme
"""
# The columns after ``programme``: counts and sums, additive over groups.
COLUMNS = (
    "customers",
    "buyers",
    "orders",
    "revenue",
    "discounts",
    "gross",
    "repeat_buyers",
    "previous_buyers",
    "retained",
)


def loyalty_compute(params: dict[str, Any]) -> dict[str, Any]:
    period = parse_period(params["from"], params["to"])
    tz = tenant_timezone()
    start, end = period.bounds(tz)
    query_params = {"start": start, "end": end, "previous_start": period.previous().bounds(tz)[0]}
    rows = tenant_query(LOYALTY_SQL, query_params).result_rows
    groups = {row[0]: dict(zip(COLUMNS, row[1:], strict=True)) for row in rows}
    total = {name: sum(group[name] for group in groups.values()) for name in COLUMNS}
    if not total.get("buyers"):
        raise InsufficientDataError(
            _("No identified customer bought between %(from)s and %(to)s: there is nothing to compare.")
            % {"from": period.start, "to": period.end},
            {"from": str(period.start), "to": str(period.end)},
        )
    # Non-members first: they are what the programmes are compared with.
    ordered = sorted(groups, key=lambda programme: (programme != NOT_A_MEMBER, programme))
    return {
        "period": period.as_json(),
        "previous_period": period.previous().as_json(),
        "groups": [
            _group(programme, str(PROGRAMME_LABELS.get(programme, programme)), groups[programme])
            for programme in ordered
        ],
        "total": _group(None, _("All customers"), total),
    }


def _group(programme: str | None, label: str, values: dict[str, Any]) -> dict[str, Any]:
    buyers, orders, revenue = values["buyers"], values["orders"], values["revenue"]
    return {
        "programme": programme,
        "label": label,
        "customers": values["customers"],
        "buyers": buyers,
        "orders": orders,
        "orders_per_buyer": decimal_ratio(orders, buyers),
        "revenue": revenue,
        "average_check": decimal_ratio(revenue, orders),
        "revenue_per_buyer": decimal_ratio(revenue, buyers),
        "discounts": values["discounts"],
        "discount_share": decimal_ratio(values["discounts"], values["gross"], scale=100),
        "repeat_buyers": values["repeat_buyers"],
        "repeat_share": decimal_ratio(values["repeat_buyers"], buyers, scale=100),
        "previous_buyers": values["previous_buyers"],
        "retained": values["retained"],
        "retention": decimal_ratio(values["retained"], values["previous_buyers"], scale=100),
    }


ANALYSIS = Analysis(
    name="loyalty",
    label=gettext_lazy("Loyalty programmes"),
    description=gettext_lazy(
        "Members of each loyalty programme against customers without a card: buyers, orders per buyer, average "
        "check, revenue per buyer, discount share, repeat buyers and retention."
    ),
    compute=loyalty_compute,
    params=(
        Param("from", date, last_twelve_months_start, gettext_lazy("First day of the period (tenant's timezone).")),
        Param(
            "to",
            date,
            tenant_today,
            gettext_lazy("Last day of the period (included); compared with the period before."),
        ),
    ),
)
