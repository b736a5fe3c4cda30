"""Message, web and attributed-order metrics from per-tenant rollups instead of the event tables.

- ``message_days`` and ``web_days`` count events per local day (tenant's timezone at build time) and the event
  columns the dimensions read. A count of events over a period is the sum of its days' counts, so a metric
  ``countIf(<condition>)`` becomes ``sumIf(events, <condition>)`` when the condition, the dimensions and the
  filters read only rollup columns. Other metrics (distinct recipients) and other slices (hour, weekday,
  customer attributes) are not additive over these rows: they keep the event path.
- ``attributed_orders`` holds the (order, mailing, campaign, channel) pairs ATTRIBUTION defines, over all
  history: an identified sale order within the attribution window after a delivery or click. Which pairs an
  order has does not depend on the period asked, so the period only selects orders by their local day, and
  the compiler groups them exactly as it groups the pairs it joins itself. The window is a tenant setting:
  the build records the one it used and is fresh only while the tenant's setting still equals it
  (analytics/preaggregations.py fresh_builds).

Names and build statements are here; analytics/preaggregations.py registers the builds (this module imports
nothing of it, so that it can).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from analytics.semantic.registry import Dimension, Metric, Source

MESSAGE_DAYS = "message_days"
WEB_DAYS = "web_days"
ATTRIBUTED_ORDERS = "attributed_orders"

MESSAGE_DAYS_BUILD_SQL = """
INSERT INTO message_days (tenant_id, build, day, mailing_id, campaign_id, channel, event_type, events)
SELECT {tenant_id:UInt32}, {build:UInt64}, toDate(ts, {tz:String}) AS day, mailing_id, campaign_id, channel,
       event_type, count()
FROM message_events FINAL
WHERE tenant_id = {tenant_id:UInt32}
GROUP BY day, mailing_id, campaign_id, channel, event_type
"""

WEB_DAYS_BUILD_SQL = """
INSERT INTO web_days (tenant_id, build, day, event_type, category, platform, events)
SELECT {tenant_id:UInt32}, {build:UInt64}, toDate(ts, {tz:String}) AS day, event_type, category, platform, count()
FROM web_events FINAL
WHERE tenant_id = {tenant_id:UInt32}
GROUP BY day, event_type, category, platform
"""

# Sale orders from the ``orders`` build of the same rebuild (day: the local day of the order's first line), each
# with every mailing, campaign and channel that touched it: delivered or clicked at most the window before.
ATTRIBUTED_ORDERS_BUILD_SQL = """
INSERT INTO attributed_orders (tenant_id, build, day, order_ts, order_id, customer_id, amount,
                               mailing_id, campaign_id, message_channel)
SELECT {tenant_id:UInt32}, {build:UInt64}, any(o.day), any(o.ts), o.order_id, o.customer_id, any(o.amount),
       touch.mailing_id, touch.campaign_id, touch.channel
FROM (
    SELECT customer_id, order_id, day, ts, amount
    FROM orders
    WHERE tenant_id = {tenant_id:UInt32} AND build = {orders_build:UInt64} AND is_return = 0 AND customer_id != ''
) AS o
INNER JOIN (
    SELECT customer_id, mailing_id, campaign_id, channel, ts
    FROM message_events FINAL
    WHERE tenant_id = {tenant_id:UInt32} AND event_type IN ('delivered', 'clicked')
) AS touch ON touch.customer_id = o.customer_id
WHERE touch.ts <= o.ts AND o.ts < touch.ts + toIntervalDay({attribution_days:UInt16})
GROUP BY o.order_id, o.customer_id, touch.mailing_id, touch.campaign_id, touch.channel
"""

# The ATTRIBUTION source's pairs for the orders of the period, from a fresh build: the same columns the compiler's
# own join gives them (analytics/semantic/compiler.py ATTRIBUTED_PAIRS).
ATTRIBUTED_ORDERS_IN_PERIOD = """
SELECT mailing_id, campaign_id, message_channel, customer_id, order_id, order_ts, amount
FROM attributed_orders
WHERE tenant_id = {tenant_id:UInt32} AND build = {attributed_orders_build:UInt64}
  AND day >= {start_day:Date} AND day < {end_day:Date}
"""


@dataclass(frozen=True)
class DayRollup:
    """A rollup of one event source: its table, the row alias the source's expressions use, its columns."""

    name: str
    alias: str
    columns: frozenset[str]

    def reads_only_columns(self, expression: str) -> bool:
        """Whether ``expression`` reads nothing but this rollup's columns (no other alias, no event time)."""
        references = re.findall(r"\b([a-z_]+)\.(\w+)", expression)
        return all(alias == self.alias and column in self.columns for alias, column in references)

    def conditions(self, source: Source, where: list[tuple[Dimension, str]]) -> str:
        """The rows of the tenant's build in the period's local days that pass ``where`` (a dimension and its test,
        ``IN {filter0:Array(String)}``); binds nothing: ``{<name>_build:UInt64}`` is the caller's."""
        return " AND ".join(
            [
                f"{self.alias}.tenant_id = {{tenant_id:UInt32}}",
                f"{self.alias}.build = {{{self.name}_build:UInt64}}",
                f"{self.alias}.day >= {{start_day:Date}}",
                f"{self.alias}.day < {{end_day:Date}}",
                *(f"{dimension.expressions[source]} {test}" for dimension, test in where),
            ]
        )

    def summed(self, metric: Metric) -> str | None:
        """A count of events as the sum of the day counts; None for any other aggregate (or a nested condition)."""
        match = re.fullmatch(r"countIf\(([^()]*)\)", metric.sql)
        if match is None or not self.reads_only_columns(match.group(1)):
            return None
        return f"sumIf({self.alias}.events, {match.group(1)})"


DAY_ROLLUPS = {
    Source.MESSAGES: DayRollup(MESSAGE_DAYS, "m", frozenset(("mailing_id", "campaign_id", "channel", "event_type"))),
    Source.WEB: DayRollup(WEB_DAYS, "w", frozenset(("event_type", "category", "platform"))),
}


def event_days_apply(
    source: Source,
    metrics: tuple[Metric, ...],
    dimensions: tuple[Dimension, ...],
    filtered_by: tuple[Dimension, ...],
    builds: dict[str, int],
) -> bool:
    """Whether the source's rollup is fresh and every metric, dimension and filter of the query fits it."""
    rollup = DAY_ROLLUPS.get(source)
    if rollup is None or rollup.name not in builds:
        return False
    expressions = [dimension.expressions[source] for dimension in (*dimensions, *filtered_by)]
    return all(rollup.summed(metric) for metric in metrics) and all(map(rollup.reads_only_columns, expressions))


def event_days_sql(
    source: Source,
    metrics: tuple[Metric, ...],
    dimensions: tuple[Dimension, ...],
    where: list[tuple[Dimension, str]],
    bucket_of_day: str,
    builds: dict[str, int],
    params: dict[str, Any],
) -> str:
    """The compiler's row statement over the rollup (``event_days_apply``): ``bucket_of_day`` formats ``{day}``
    into the bucket, ``where`` pairs a dimension with its test (``IN {filter0:Array(String)}``). Binds the build."""
    rollup = DAY_ROLLUPS[source]
    alias = rollup.alias
    params[f"{rollup.name}_build"] = builds[rollup.name]
    bucket = bucket_of_day.format(day=f"{alias}.day")
    dims = [f"{dimension.expressions[source]} AS d{i}" for i, dimension in enumerate(dimensions)]
    values = [f"{rollup.summed(metric)} AS m{i}" for i, metric in enumerate(metrics)]
    group = ", ".join(["bucket", *(f"d{i}" for i in range(len(dimensions)))])
    return (
        f"SELECT {', '.join([f'{bucket} AS bucket', *dims, *values])} FROM {rollup.name} AS {alias}"
        f" WHERE {rollup.conditions(source, where)} GROUP BY {group}"
    )
