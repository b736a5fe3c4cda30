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
``attributed_orders``, whose pairs start at a delivery or click, not at the send. When the ``audience_sends``
build is fresh (each send and control event with the customer's revenue in the window after it, built with the
tenant's attribution window) and the query splits and filters by mailing, campaign and message channel only, a
member's revenue is that of their first event's row: a month reads its sends, not its orders.
"""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Any

from analytics.semantic.event_rollups import DayRollup
from analytics.semantic.registry import Dimension, Group, Metric, Source, Unit

AUDIENCE_SENDS = "audience_sends"
AUDIENCE_ALIAS = "aud"
# The keys that make a message event row a member, as extra dimensions of the compiler's rows statement.
MEMBER_KEYS = tuple(
    Dimension(name, name, "", {Source.MESSAGES: f"m.{column}"})
    for name, column in (("member_mailing", "mailing_id"), ("member_role", "event_type"), ("member", "customer_id"))
)
MEMBER_TESTS = ((MEMBER_KEYS[1], "IN ('sent', 'control')"), (MEMBER_KEYS[2], "!= ''"))
MEMBER_START = Metric("member_start", "", Group.MAILINGS, Unit.COUNT, "", source=Source.MESSAGES, sql="min(m.ts)")


# Each send or control event of an identified customer, with their revenue in the window after it (the orders build
# of the same rebuild). The orders are the join's left side: the hash table holds the sends, the smaller side.
AUDIENCE_SENDS_BUILD_SQL = """
INSERT INTO audience_sends (tenant_id, build, day, ts, mailing_id, campaign_id, channel, event_type, customer_id,
                            revenue, single)
SELECT {tenant_id:UInt32}, {build:UInt64}, toDate(m.ts, {tz:String}), m.ts, m.mailing_id, m.campaign_id,
       m.channel, m.event_type, m.customer_id,
       CAST(sumIf(o.amount, o.ts >= m.ts AND o.ts < m.ts + toIntervalDay({attribution_days:UInt16}))
            AS Decimal(18, 2)),
       count() OVER (PARTITION BY m.mailing_id, m.event_type, m.customer_id) = 1
FROM (
    SELECT customer_id, ts, amount FROM orders
    WHERE tenant_id = {tenant_id:UInt32} AND build = {orders_build:UInt64} AND is_return = 0 AND customer_id != ''
) AS o
RIGHT JOIN (
    SELECT ts, mailing_id, campaign_id, channel, event_type, customer_id FROM message_events FINAL
    WHERE tenant_id = {tenant_id:UInt32} AND event_type IN ('sent', 'control') AND customer_id != ''
) AS m ON o.customer_id = m.customer_id
GROUP BY m.ts, m.mailing_id, m.campaign_id, m.channel, m.event_type, m.customer_id
"""
# The sends as the messages source's rows: the dimensions that read only these columns apply.
SENDS_ROLLUP = DayRollup(AUDIENCE_SENDS, "m", frozenset(("mailing_id", "campaign_id", "channel")))


def audience_metrics(metrics: tuple[Metric, ...]) -> tuple[Metric, ...]:
    """The metrics this module answers: those whose SQL reads the per-mailing audience rows."""
    return tuple(metric for metric in metrics if re.search(rf"\b{AUDIENCE_ALIAS}\.", metric.sql))


def audience_sends_apply(expressions: list[str], builds: dict[str, int]) -> bool:
    """Whether the audience can be read from a fresh ``audience_sends`` build: every dimension and filter
    expression of the query reads only its columns."""
    return AUDIENCE_SENDS in builds and all(map(SENDS_ROLLUP.reads_only_columns, expressions))


def member_revenue_from_sends(
    dimensions: tuple[Dimension, ...],
    where: list[tuple[Dimension, str]],
    bucket_of_day: str,
    builds: dict[str, int],
    params: dict[str, Any],
) -> str:
    """Per bucket, dimension values, mailing and role: members and their revenue (``audience_sends_apply``).
    Columns: bucket, d0…, mailing_id, role, members, revenue.

    A customer's only send of a mailing (``single``, nearly all of them) is a member with that send's revenue, so
    those rows are summed; a customer who got the mailing more than once is a member with their first send in the
    bucket and slice, so those few rows are grouped per customer first."""
    params[f"{AUDIENCE_SENDS}_build"] = builds[AUDIENCE_SENDS]
    bucket = bucket_of_day.format(day="m.day")
    columns = ", ".join(
        [f"{bucket} AS bucket", *(f"{d.expressions[Source.MESSAGES]} AS d{i}" for i, d in enumerate(dimensions))]
    )
    keys = ", ".join(["bucket", *(f"d{i}" for i in range(len(dimensions)))])
    sends = f"FROM {AUDIENCE_SENDS} AS m WHERE {SENDS_ROLLUP.conditions(Source.MESSAGES, where)}"
    return (
        f"SELECT {columns}, m.mailing_id AS mailing_id, m.event_type AS role, count() AS members,"
        f" sum(m.revenue) AS revenue {sends} AND m.single = 1 GROUP BY {keys}, mailing_id, role"
        f" UNION ALL SELECT {keys}, mailing_id, role, count() AS members, sum(first_revenue) AS revenue FROM ("
        f"SELECT {columns}, m.mailing_id AS mailing_id, m.event_type AS role, argMin(m.revenue, m.ts) AS first_revenue"
        f" {sends} AND m.single = 0 GROUP BY {keys}, mailing_id, role, m.customer_id) GROUP BY {keys}, mailing_id, role"
    )


def member_revenue_from_events(
    members_sql: str, orders_sql: str, dimension_count: int, *, params: dict[str, Any], attribution_days: int
) -> str:
    """The same columns, a row per member, from ``members_sql`` (the compiler's rows statement with MEMBER_KEYS
    after the query's dimensions, MEMBER_TESTS and MEMBER_START) joined to ``orders_sql`` (the compiler's identified
    sale orders from the period's start to ``{orders_end}``, by local day ``{orders_end_day}`` from the orders
    build). Binds the window and those ends: the window may reach past the period's end. A local day one more,
    as a UTC day is not a local one across a DST change; the join bounds each window exactly."""
    window = timedelta(days=attribution_days)
    params["attribution_days"] = attribution_days
    params["orders_end"] = params["end"] + window
    params["orders_end_day"] = params["end_day"] + window + timedelta(days=1)
    keys = ["bucket", *(f"d{i}" for i in range(dimension_count))]
    mailing, role, customer = (f"member.d{dimension_count + i}" for i in range(len(MEMBER_KEYS)))
    return (
        f"SELECT {', '.join(f'member.{key} AS {key}' for key in keys)}, {mailing} AS mailing_id, {role} AS role,"
        " toUInt64(1) AS members, sumIf(o.amount, o.order_ts >= member.m0"
        " AND o.order_ts < member.m0 + toIntervalDay({attribution_days:UInt16})) AS revenue"
        f" FROM ({members_sql}) AS member LEFT JOIN ({orders_sql}) AS o ON o.customer_id = {customer}"
        f" GROUP BY {', '.join(keys)}, mailing_id, role, {customer}"
    )


def audience_sql(member_revenue: str, dimension_count: int, metrics: tuple[Metric, ...], others_sql: str | None) -> str:
    """The statement for ``metrics`` of the messages source: ``member_revenue`` (one of the two above) rolled up
    per mailing for the audience metrics, joined to ``others_sql`` (the other metrics' statement, in their order)
    when there are others. Columns: bucket, the dimensions, each metric of ``metrics`` in order."""
    key_list = ", ".join(["bucket", *(f"d{i}" for i in range(dimension_count))])
    # Exact to the kopeck: K × R / C keeps 30 decimals (truncated), which cannot move T − K × R / C across a
    # half kopeck, and is rounded half away from zero (Decimal ``round``), as the answers are.
    per_mailing = (
        f"SELECT {key_list}, sumIf(members, role = 'sent') AS recipients,"
        " sumIf(revenue, role = 'sent') AS recipient_revenue,"
        " sumIf(members, role = 'control') AS control_members, sumIf(revenue, role = 'control') AS control_revenue,"
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
