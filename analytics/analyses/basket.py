"""Basket analysis (seed 003): which categories, brands or products are bought together.

An order is a sales receipt (``is_return = 0``; anonymous receipts count too) with its lines in the
period (local dates in the tenant's timezone); its items are the distinct non-empty values of the
chosen level on those lines (a line without a category is no item of a category basket). For every
unordered pair {A, B} found together in at least ``min_orders`` orders:

    together       = orders holding both A and B
    support        = together / orders                      (percent)
    confidence A→B = together / orders holding A            (percent; B→A likewise)
    lift           = together · orders / (holding A · holding B)

``orders`` counts every order with at least one item, single-item ones included: they dilute support
and confidence as they do at the till. An order with more than ``max_items`` distinct items (a
wholesale or stock-taking receipt) would add n·(n−1)/2 pairs on its own, so it is left out of every
count — support, confidence and lift stay over one set of orders — and reported as
``orders_over_cap``.

Everything is computed in ClickHouse in one pass: an array of an order's sorted distinct items, and
ARRAY JOIN of its pairs (i ≤ j, so the diagonal (A, A) counts the orders holding A).
"""

from __future__ import annotations

from datetime import date, timedelta
from typing import Any

from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

from analytics.analyses.base import Analysis, InsufficientDataError, Param, decimal_ratio
from analytics.clickhouse.query import tenant_query
from analytics.periods import parse_period, tenant_timezone, tenant_today

ITEM_COLUMNS = {"category": "category", "brand": "brand", "product": "product_id"}
# Ties keep a stable order: lift (or support) first, then the more frequent pair, then by name.
SORT_KEYS = {
    "lift": "lift DESC, together DESC, a, b",
    "support": "together DESC, lift DESC, a, b",
}
# Below this many orders with two or more distinct items, a pair seen in five of them is an anecdote.
MIN_MULTI_ITEM_ORDERS = 100
# Marker rows share the pair columns: an item is never '' (empty values are no item), so ('', …) is free.
ORDERS_MARKER, MULTI_ITEM_MARKER, OVER_CAP_MARKER = "orders", "multi_item", "over_cap"


def _basket_sql(item_column: str, sort: str) -> str:
    """The top pairs after one marker row that carries the order counts (its ``a`` is '')."""
    return f"""
SELECT a, b, together, holding_a, holding_b, orders, multi_item_orders, orders_over_cap
FROM (
    SELECT a, b, together,
           maxIf(together, a = b) OVER (PARTITION BY a) AS holding_a,
           maxIf(together, a = b) OVER (PARTITION BY b) AS holding_b,
           maxIf(together, a = '' AND b = '{ORDERS_MARKER}') OVER () AS orders,
           maxIf(together, a = '' AND b = '{MULTI_ITEM_MARKER}') OVER () AS multi_item_orders,
           maxIf(together, a = '' AND b = '{OVER_CAP_MARKER}') OVER () AS orders_over_cap,
           if(a = '', 0, together * orders / (holding_a * holding_b)) AS lift
    FROM (
        SELECT pair.1 AS a, pair.2 AS b, count() AS together
        FROM (
            SELECT arraySort(groupUniqArray(toString({item_column}))) AS items
            FROM sales_lines FINAL
            WHERE tenant_id = {{tenant_id:UInt32}} AND is_return = 0 AND {item_column} != ''
              AND ts >= {{start:DateTime64(3, 'UTC')}} AND ts < {{end:DateTime64(3, 'UTC')}}
            GROUP BY order_id
        )
        ARRAY JOIN if(
            length(items) > {{max_items:UInt16}},
            [('', '{OVER_CAP_MARKER}')],
            arrayConcat(
                [('', '{ORDERS_MARKER}')],
                if(length(items) > 1, [('', '{MULTI_ITEM_MARKER}')], []),
                arrayFlatten(arrayMap(
                    i -> arrayMap(j -> (items[i], items[j]), range(i, length(items) + 1)),
                    range(1, length(items) + 1)
                ))
            )
        ) AS pair
        GROUP BY a, b
    )
)
WHERE (a = '' AND b = '{ORDERS_MARKER}') OR (a != '' AND a < b AND together >= {{min_orders:UInt32}})
ORDER BY a = '' DESC, {SORT_KEYS[sort]}
LIMIT {{rows:UInt32}}
"""


PRODUCT_NAMES_SQL = """
SELECT product_id, argMax(product_name, ts)
FROM sales_lines FINAL
WHERE tenant_id = {tenant_id:UInt32} AND is_return = 0 AND product_id IN {product_ids:Array(String)}
  AND ts >= {start:DateTime64(3, 'UTC')} AND ts < {end:DateTime64(3, 'UTC')}
GROUP BY product_id
"""


def basket_compute(params: dict[str, Any]) -> dict[str, Any]:
    period = parse_period(params["from"], params["to"])
    level = params["level"]
    start, end = period.bounds(tenant_timezone())
    bounds = {"start": start, "end": end}
    rows = tenant_query(
        _basket_sql(ITEM_COLUMNS[level], params["sort"]),
        {
            **bounds,
            "max_items": params["max_items"],
            "min_orders": params["min_orders"],
            "rows": params["limit"] + 1,  # the marker row comes first
        },
    ).result_rows
    orders, multi_item_orders, orders_over_cap = rows[0][5:8] if rows else (0, 0, 0)
    if multi_item_orders < MIN_MULTI_ITEM_ORDERS:
        raise InsufficientDataError(
            _(
                "Basket analysis needs at least %(minimum)s orders with two or more different items (%(level)s) "
                "between %(from)s and %(to)s; there are %(count)s. Choose a longer period."
            )
            % {
                "minimum": MIN_MULTI_ITEM_ORDERS,
                "level": level,
                "from": period.start,
                "to": period.end,
                "count": multi_item_orders,
            },
            {"multi_item_orders": multi_item_orders, "minimum": MIN_MULTI_ITEM_ORDERS},
        )
    pairs = [_pair(row, orders) for row in rows[1:]]
    if level == "product":
        ids = sorted({pair[side] for pair in pairs for side in ("a", "b")})
        names = dict(tenant_query(PRODUCT_NAMES_SQL, {**bounds, "product_ids": ids}).result_rows)
        for pair in pairs:
            pair["a_name"], pair["b_name"] = names[pair["a"]], names[pair["b"]]
    return {
        "period": period.as_json(),
        "level": level,
        "sort": params["sort"],
        "orders": orders,
        "multi_item_orders": multi_item_orders,
        "orders_over_cap": orders_over_cap,
        "pairs": pairs,
    }


def _pair(row: tuple, orders: int) -> dict[str, Any]:
    a, b, together, holding_a, holding_b = row[:5]
    return {
        "a": a,
        "b": b,
        "orders": together,
        "orders_a": holding_a,
        "orders_b": holding_b,
        "support": decimal_ratio(together, orders, scale=100),
        "confidence_a_b": decimal_ratio(together, holding_a, scale=100),
        "confidence_b_a": decimal_ratio(together, holding_b, scale=100),
        "lift": decimal_ratio(together * orders, holding_a * holding_b),
    }


def a_year_back() -> date:
    """The first of the last 365 days, today included (the default start of a period)."""
    return tenant_today() - timedelta(days=364)


ANALYSIS = Analysis(
    name="basket",
    label=gettext_lazy("Basket analysis"),
    description=gettext_lazy(
        "Categories, brands or products bought together in one receipt: how often (support), how likely one "
        "given the other (confidence) and how much more than by chance (lift)."
    ),
    compute=basket_compute,
    params=(
        Param("from", date, a_year_back, gettext_lazy("First day of the period (local date).")),
        Param("to", date, tenant_today, gettext_lazy("Last day of the period (included).")),
        Param("level", str, "category", gettext_lazy("What an item of the basket is."), choices=tuple(ITEM_COLUMNS)),
        Param(
            "min_orders", int, 5, gettext_lazy("Least orders a pair must be found in."), minimum=1, maximum=1_000_000
        ),
        Param("limit", int, 50, gettext_lazy("How many pairs to return."), minimum=1, maximum=1000),
        Param(
            "sort", str, "lift", gettext_lazy("Order of the pairs: by lift or by support."), choices=tuple(SORT_KEYS)
        ),
        Param(
            "max_items",
            int,
            30,
            gettext_lazy("Orders with more distinct items than this are left out (bulk receipts)."),
            minimum=2,
            maximum=200,
        ),
    ),
)
