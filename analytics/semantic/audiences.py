"""Mailing audiences: the customers a mailing was sent to against those its control group held out.

Metrics of the messages source whose SQL reads the alias ``aud`` (metrics.py) are answered here, by a statement of
their own that the compiler joins to the other message metrics' on the row keys (bucket, dimension values).

- A *member* is a (mailing, customer) of a ``sent`` event (a recipient: intent to treat, delivered or not) or of a
  ``control`` event (held out: selected, deliberately not sent) in the period, identified customers only. Every
  dimension and filter of the messages source applies to those events; a member's time is their first event of
  its kind in the bucket and slice.
- A member's revenue is the net amount of their identified sale orders (an order's time is its first line's)
  placed within the tenant's attribution window after that time: the window may reach past the period's end, so
  recipients and control members are compared over windows of the same length.
- Per mailing: R recipients with revenue T, C control members with revenue K. Its incremental revenue is
  T − K / C × R (what the recipients bought beyond what as many customers bought who were held out), rounded
  half up to the kopeck; a mailing without a control group (C = 0) has none.
- Over several mailings (a campaign, a channel, the total) it is the sum of each mailing's own, over the mailings
  that have a control group: every mailing's comparison stays within its own audience (pooling the audiences of
  mailings with different control shares would not compare like with like). NULL, not 0, when none has one.

Orders come from the ``orders`` build when it is fresh, else from the receipt lines; never from
``attributed_orders``, whose pairs start at a delivery or click, not at the send.
"""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Any

from analytics.preaggregations import ORDERS
from analytics.semantic.registry import Dimension, Group, Metric, Source, Unit

AUDIENCE_ALIAS = "aud"
# The keys that make a message event row a member, as extra dimensions of the compiler's rows statement.
MEMBER_KEYS = tuple(
    Dimension(name, name, "", {Source.MESSAGES: f"m.{column}"})
    for name, column in (("member_mailing", "mailing_id"), ("member_role", "event_type"), ("member", "customer_id"))
)
MEMBER_TESTS = ((MEMBER_KEYS[1], "IN ('sent', 'control')"), (MEMBER_KEYS[2], "!= ''"))
MEMBER_START = Metric("member_start", "", Group.MAILINGS, Unit.COUNT, "", source=Source.MESSAGES, sql="min(m.ts)")

DATETIME = "DateTime64(3, 'UTC')"
AUDIENCE_ORDERS_FROM_LINES = f"""
    SELECT customer_id, order_id, min(ts) AS order_ts, sum(amount) AS amount
    FROM sales_lines FINAL
    WHERE tenant_id = {{tenant_id:UInt32}} AND is_return = 0 AND customer_id != ''
      AND ts >= {{start:{DATETIME}}} AND ts < {{audience_orders_end:{DATETIME}}}
    GROUP BY customer_id, order_id
"""
AUDIENCE_ORDERS_FROM_ORDERS = f"""
    SELECT customer_id, order_id, ts AS order_ts, amount
    FROM orders
    WHERE tenant_id = {{tenant_id:UInt32}} AND build = {{orders_build:UInt64}} AND is_return = 0 AND customer_id != ''
      AND ts >= {{start:{DATETIME}}} AND ts < {{audience_orders_end:{DATETIME}}}
"""


def audience_metrics(metrics: tuple[Metric, ...]) -> tuple[Metric, ...]:
    """The metrics this module answers: those whose SQL reads the per-mailing audience rows."""
    return tuple(metric for metric in metrics if re.search(rf"\b{AUDIENCE_ALIAS}\.", metric.sql))


def audience_sql(
    members_sql: str,
    dimension_count: int,
    metrics: tuple[Metric, ...],
    others_sql: str | None,
    *,
    builds: dict[str, int],
    params: dict[str, Any],
    attribution_days: int,
) -> str:
    """The statement for ``metrics`` of the messages source: ``members_sql`` (the compiler's rows statement with
    MEMBER_KEYS after the query's dimensions, MEMBER_TESTS and MEMBER_START) rolled up per mailing for the audience
    metrics, joined to ``others_sql`` (the other metrics' statement, in their order) when there are others.
    Columns: bucket, the dimensions, each metric of ``metrics`` in order. Binds the orders' bounds."""
    params["attribution_days"] = attribution_days
    params["audience_orders_end"] = params["end"] + timedelta(days=attribution_days)
    keys = ["bucket", *(f"d{i}" for i in range(dimension_count))]
    key_list = ", ".join(keys)
    mailing, role, customer = (f"member.d{dimension_count + i}" for i in range(len(MEMBER_KEYS)))
    orders = AUDIENCE_ORDERS_FROM_ORDERS if ORDERS in builds else AUDIENCE_ORDERS_FROM_LINES
    member_revenue = (
        f"SELECT {', '.join(f'member.{key} AS {key}' for key in keys)}, {mailing} AS mailing_id, {role} AS role,"
        " sumIf(o.amount, o.order_ts >= member.m0"
        " AND o.order_ts < member.m0 + toIntervalDay({attribution_days:UInt16})) AS revenue"
        f" FROM ({members_sql}) AS member LEFT JOIN ({orders}) AS o ON o.customer_id = {customer}"
        f" GROUP BY {key_list}, mailing_id, role, {customer}"
    )
    # Exact to the kopeck: K × R / C keeps 30 decimals (truncated), which cannot move T − K × R / C across a
    # half kopeck, and is rounded half away from zero (Decimal ``round``), as the answers are.
    per_mailing = (
        f"SELECT {key_list}, countIf(role = 'sent') AS recipients, sumIf(revenue, role = 'sent') AS recipient_revenue,"
        " countIf(role = 'control') AS control_members, sumIf(revenue, role = 'control') AS control_revenue,"
        " CAST(round(recipient_revenue - toDecimal256(control_revenue, 30) * recipients / greatest(control_members, 1),"
        " 2) AS Decimal(38, 2)) AS incremental_revenue"
        f" FROM ({member_revenue}) GROUP BY {key_list}, mailing_id"
    )
    audience = audience_metrics(metrics)
    values = ", ".join(f"{metric.sql} AS m{i}" for i, metric in enumerate(audience))
    statement = f"SELECT {key_list}, {values} FROM ({per_mailing}) AS {AUDIENCE_ALIAS} GROUP BY {key_list}"
    if others_sql is None:
        return statement
    others = [metric for metric in metrics if metric not in audience]
    columns = [f"o.m{others.index(m)}" if m in others else f"a.m{audience.index(m)}" for m in metrics]
    selected = ", ".join(f"{column} AS m{i}" for i, column in enumerate(columns))
    return (
        f"SELECT {key_list}, {selected} FROM ({others_sql}) AS o FULL OUTER JOIN ({statement}) AS a USING ({key_list})"
    )
