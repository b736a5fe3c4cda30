"""Journey map (seed 004): where customers go from one purchase to the next.

A customer's journey is their identified orders (``customer_id != ''``, ``is_return = 0``) with
lines in the period, ordered by time (an order's time is its earliest line; equal times by order
id). Each order is one step, valued at the chosen level — category, store, channel or brand — as
the value with the largest net amount (line amounts, after discounts) in that order; equal amounts
go to the first value by name. Lines without a value (an empty category) do not take part, and an
order with no valued line is no step. Returns do not change a step: it is what was bought at the
till.

Consecutive steps make transitions from → to. A node's ``next_steps`` are the transitions leaving
it, staying included; an edge's ``share`` is its part of them. Staying (to = from) is reported per
node (``repeats``) and overall, never as an edge: an ECharts Sankey must be acyclic, which is also
why ``sankey`` draws transitions from a left column of nodes to a right one ("→ name"), so A → B
and B → A can both be shown. ``stayers`` are customers with two or more steps, all at one value.
First purchases are each customer's first step in the period.
"""

from __future__ import annotations

from collections import Counter
from datetime import date
from typing import Any

from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

from analytics.analyses.base import Analysis, InsufficientDataError, Param, decimal_ratio
from analytics.analyses.basket import a_year_back
from analytics.clickhouse.query import tenant_query
from analytics.periods import parse_period, tenant_timezone, tenant_today

STEP_COLUMNS = {"category": "category", "store": "store", "channel": "channel", "brand": "brand"}
# Fewer customers with a second purchase than this make shares of one or two people.
MIN_REPEAT_CUSTOMERS = 20
SANKEY_TARGET_PREFIX = "→ "


def _journey_sql(step_column: str) -> str:
    """Counts by (kind, a, b) over every customer's steps; ``kind`` says what a row counts."""
    return f"""
SELECT fact.1 AS kind, fact.2 AS a, fact.3 AS b, count() AS customers_or_steps
FROM (
    SELECT arrayMap(purchase -> purchase.3, arraySort(groupArray((ordered_at, order_id, step)))) AS steps
    FROM (
        SELECT customer_id, order_id, min(value_first_ts) AS ordered_at,
               argMinIf(value, (-value_amount, value), value != '') AS step
        FROM (
            SELECT customer_id, order_id, toString({step_column}) AS value,
                   sum(amount) AS value_amount, min(ts) AS value_first_ts
            FROM sales_lines FINAL
            WHERE tenant_id = {{tenant_id:UInt32}} AND customer_id != '' AND is_return = 0
              AND ts >= {{start:DateTime64(3, 'UTC')}} AND ts < {{end:DateTime64(3, 'UTC')}}
            GROUP BY customer_id, order_id, value
        )
        GROUP BY customer_id, order_id
        HAVING countIf(value != '') > 0
    )
    GROUP BY customer_id
)
ARRAY JOIN arrayConcat(
    arrayMap(step -> ('purchase', step, ''), steps),
    [('first', steps[1], '')],
    arrayMap((from_step, to_step) -> ('transition', from_step, to_step), arrayPopBack(steps), arrayPopFront(steps)),
    if(length(steps) > 1, [('repeat_customer', '', '')], []),
    if(length(steps) > 1 AND length(arrayDistinct(steps)) = 1, [('stayer', steps[1], '')], [])
) AS fact
GROUP BY kind, a, b
"""


def journey_compute(params: dict[str, Any]) -> dict[str, Any]:
    period = parse_period(params["from"], params["to"])
    start, end = period.bounds(tenant_timezone())
    counts: dict[str, Counter] = {
        kind: Counter() for kind in ("purchase", "first", "transition", "repeat_customer", "stayer")
    }
    for kind, a, b, count in tenant_query(
        _journey_sql(STEP_COLUMNS[params["level"]]), {"start": start, "end": end}
    ).result_rows:
        counts[kind][(a, b) if kind == "transition" else a] = count
    repeat_customers = counts["repeat_customer"][""]
    if repeat_customers < MIN_REPEAT_CUSTOMERS:
        raise InsufficientDataError(
            _(
                "The journey map needs at least %(minimum)s customers with two or more purchases between "
                "%(from)s and %(to)s; there are %(count)s. Choose a longer period."
            )
            % {"minimum": MIN_REPEAT_CUSTOMERS, "from": period.start, "to": period.end, "count": repeat_customers},
            {"repeat_customers": repeat_customers, "minimum": MIN_REPEAT_CUSTOMERS},
        )
    customers = counts["first"].total()
    transitions = counts["transition"]
    next_steps = Counter()
    for (from_step, _to_step), count in transitions.items():
        next_steps[from_step] += count
    repeats = {from_step: count for (from_step, to_step), count in transitions.items() if from_step == to_step}
    edges = [
        {
            "from": from_step,
            "to": to_step,
            "transitions": count,
            "share": decimal_ratio(count, next_steps[from_step], scale=100),
        }
        for (from_step, to_step), count in sorted(transitions.items(), key=lambda item: (-item[1], item[0]))
        if from_step != to_step
    ]
    nodes = [
        {
            "name": name,
            "purchases": purchases,
            "next_steps": next_steps[name],
            "repeats": repeats.get(name, 0),
            "repeat_share": decimal_ratio(repeats.get(name, 0), next_steps[name], scale=100),
            "stayers": counts["stayer"][name],
        }
        for name, purchases in sorted(counts["purchase"].items(), key=lambda item: (-item[1], item[0]))
    ]
    stayers = counts["stayer"].total()
    return {
        "period": period.as_json(),
        "level": params["level"],
        "customers": customers,
        "repeat_customers": repeat_customers,
        "purchases": counts["purchase"].total(),
        "transitions": transitions.total(),
        "nodes": nodes,
        "edges": edges,
        "stay": {
            "transitions": sum(repeats.values()),
            "transition_share": decimal_ratio(sum(repeats.values()), transitions.total(), scale=100),
            "customers": stayers,
            "customer_share": decimal_ratio(stayers, repeat_customers, scale=100),
        },
        "first_purchases": [
            {"name": name, "customers": count, "share": decimal_ratio(count, customers, scale=100)}
            for name, count in sorted(counts["first"].items(), key=lambda item: (-item[1], item[0]))
        ],
        "sankey": _sankey(edges),
    }


def _sankey(edges: list[dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    """ECharts ``series-sankey`` data: sources at depth 0, targets (prefixed) at depth 1, so it is acyclic."""
    sources = sorted({edge["from"] for edge in edges})
    targets = sorted({edge["to"] for edge in edges})
    return {
        "nodes": [{"name": name, "depth": 0} for name in sources]
        + [{"name": SANKEY_TARGET_PREFIX + name, "depth": 1} for name in targets],
        "links": [
            {"source": edge["from"], "target": SANKEY_TARGET_PREFIX + edge["to"], "value": edge["transitions"]}
            for edge in edges
        ],
    }


ANALYSIS = Analysis(
    name="journey",
    label=gettext_lazy("Journey map"),
    description=gettext_lazy(
        "How customers move between categories, stores, channels or brands from one purchase to the next: "
        "transitions, who stays, and where first purchases are made."
    ),
    compute=journey_compute,
    params=(
        Param("from", date, a_year_back, gettext_lazy("First day of the period (local date).")),
        Param("to", date, tenant_today, gettext_lazy("Last day of the period (included).")),
        Param("level", str, "category", gettext_lazy("What a step of the journey is."), choices=tuple(STEP_COLUMNS)),
    ),
)
