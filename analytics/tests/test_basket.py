"""Basket analysis against an independent pandas computation over the sales lines read back from ClickHouse."""

from __future__ import annotations

import json
from collections import Counter
from datetime import date, timedelta
from decimal import ROUND_HALF_UP, Decimal
from io import StringIO
from itertools import combinations

import pandas as pd
import pytest
from django.core.management import CommandError, call_command
from django_tenants.utils import tenant_context

from analytics.analyses.base import InsufficientDataError, analysis_get, analysis_run
from analytics.periods import tenant_today
from analytics.serialization import to_jsonable
from analytics.tests.conftest import facts_frame

CENT = Decimal("0.01")
VLADIVOSTOK = "Asia/Vladivostok"
ITEM_COLUMNS = {"category": "category", "brand": "brand", "product": "product_id"}


def ratio(numerator: int, denominator: int, scale: int = 1) -> Decimal:
    return (Decimal(numerator) * scale / denominator).quantize(CENT, ROUND_HALF_UP)


def expected_basket(lines: pd.DataFrame, timezone: str, params: dict) -> dict:
    """Order counts and the top pairs with pandas and itertools, from the analysis's definitions."""
    level, first, last = params["level"], params["from"], params["to"]
    day = pd.to_datetime(lines.ts, utc=True).dt.tz_convert(timezone).dt.date
    sold = lines[(lines.is_return == 0) & (lines[ITEM_COLUMNS[level]] != "") & (day >= first) & (day <= last)]
    baskets = sold.groupby("order_id")[ITEM_COLUMNS[level]].agg(lambda items: sorted(set(items)))
    kept = baskets[baskets.map(len) <= params["max_items"]]
    holding = Counter(item for items in kept for item in items)
    together = Counter(pair for items in kept for pair in combinations(items, 2))
    orders = len(kept)
    pairs = [
        {"a": a, "b": b, "orders": count, "lift_float": count * orders / (holding[a] * holding[b])}
        for (a, b), count in together.items()
        if count >= params["min_orders"]
    ]
    if params["sort"] == "lift":
        pairs.sort(key=lambda pair: (-pair["lift_float"], -pair["orders"], pair["a"], pair["b"]))
    else:
        pairs.sort(key=lambda pair: (-pair["orders"], -pair["lift_float"], pair["a"], pair["b"]))
    top = []
    for pair in pairs[: params["limit"]]:
        a, b, count = pair["a"], pair["b"], pair["orders"]
        top.append(
            {
                "a": a,
                "b": b,
                "orders": count,
                "orders_a": holding[a],
                "orders_b": holding[b],
                "support": ratio(count, orders, 100),
                "confidence_a_b": ratio(count, holding[a], 100),
                "confidence_b_a": ratio(count, holding[b], 100),
                "lift": ratio(count * orders, holding[a] * holding[b]),
            }
        )
    if level == "product":
        latest_name = sold.sort_values("ts").groupby("product_id").product_name.last()
        for pair in top:
            pair["a_name"], pair["b_name"] = latest_name[pair["a"]], latest_name[pair["b"]]
    return {
        "orders": orders,
        "multi_item_orders": int((kept.map(len) > 1).sum()),
        "orders_over_cap": len(baskets) - orders,
        "pairs": top,
    }


def basket_of(tenant, **params) -> dict:
    with tenant_context(tenant):
        return analysis_run("basket", params)


def assert_matches(result: dict, lines: pd.DataFrame, timezone: str) -> None:
    expected = expected_basket(lines, timezone, result["params"])
    for key in ("orders", "multi_item_orders", "orders_over_cap", "pairs"):
        assert result[key] == expected[key], key


CASES = [
    {"from": date(2024, 1, 1), "to": date(2025, 12, 31), "level": "category"},
    {"from": date(2025, 3, 1), "to": date(2025, 8, 31), "level": "product", "min_orders": 2, "sort": "support"},
    # A cap below the demo's baskets leaves orders out: every count must leave them out alike.
    {"from": date(2024, 7, 1), "to": date(2025, 6, 30), "level": "brand", "max_items": 3, "limit": 200},
]


@pytest.mark.parametrize("timezone", ["Europe/Moscow", VLADIVOSTOK])
def test_basket_matches_pandas_for_periods_and_levels(generated_tenant, timezone):
    tenant = generated_tenant(timezone=timezone)
    lines = facts_frame("sales_lines", tenant.pk)
    for params in CASES:
        result = basket_of(tenant, **params)
        assert result["pairs"], params
        assert_matches(result, lines, timezone)
    capped = basket_of(tenant, **CASES[2])
    assert capped["orders_over_cap"] > 0
    uncapped = basket_of(tenant, **{**CASES[2], "max_items": 200})
    assert uncapped["orders_over_cap"] == 0
    assert uncapped["orders"] == capped["orders"] + capped["orders_over_cap"]


def test_pairs_are_ordered_and_limited(generated_tenant):
    tenant = generated_tenant(customers=200)
    period = {"from": "2024-01-01", "to": "2025-12-31", "level": "product", "min_orders": 2}
    by_lift = basket_of(tenant, **period, limit=10)
    assert len(by_lift["pairs"]) == 10
    assert [pair["lift"] for pair in by_lift["pairs"]] == sorted(
        (pair["lift"] for pair in by_lift["pairs"]), reverse=True
    )
    by_support = basket_of(tenant, **period, sort="support", limit=10)
    supports = [pair["orders"] for pair in by_support["pairs"]]
    assert supports == sorted(supports, reverse=True)
    assert all(pair["a"] < pair["b"] and pair["a_name"] and pair["b_name"] for pair in by_support["pairs"])
    assert all(pair["orders"] >= 2 for pair in by_support["pairs"])

    with tenant_context(tenant):
        today = tenant_today()
        defaults = analysis_get("basket").parse_params({})
    assert defaults == {
        "from": today - timedelta(days=364),
        "to": today,
        "level": "category",
        "min_orders": 5,
        "limit": 50,
        "sort": "lift",
        "max_items": 30,
    }


def test_each_tenant_sees_only_its_own_baskets(generated_tenant, make_tenant):
    first = generated_tenant(customers=200, seed=1)
    second = generated_tenant(customers=150, seed=2, timezone=VLADIVOSTOK)
    params = {"from": date(2024, 1, 1), "to": date(2025, 12, 31), "level": "product", "min_orders": 2}
    results = {}
    for tenant, timezone in ((first, "Europe/Moscow"), (second, VLADIVOSTOK)):
        results[tenant.pk] = basket_of(tenant, **params)
        assert_matches(results[tenant.pk], facts_frame("sales_lines", tenant.pk), timezone)
    assert results[first.pk]["orders"] != results[second.pk]["orders"]
    with pytest.raises(InsufficientDataError):
        basket_of(make_tenant(), **params)


def test_too_few_multi_item_orders_are_refused(generated_tenant):
    tenant = generated_tenant(customers=60)
    with pytest.raises(InsufficientDataError, match="between 2025-06-02 and 2025-06-02") as error:
        basket_of(tenant, **{"from": "2025-06-02", "to": "2025-06-02"})
    assert error.value.extra["multi_item_orders"] < error.value.extra["minimum"]
    with pytest.raises(InsufficientDataError, match="there are 0"):
        basket_of(tenant, **{"from": "2020-01-01", "to": "2020-12-31"})


def test_command_and_api_answer_the_same(generated_tenant, make_user, logged_in_client):
    tenant = generated_tenant(customers=120)
    params = {"from": "2025-01-01", "to": "2025-12-31", "level": "brand", "sort": "support", "limit": "20"}
    out = StringIO()
    call_command(
        "analysis", "basket", "--tenant", tenant.slug, *[f"--param={k}={v}" for k, v in params.items()], stdout=out
    )
    client = logged_in_client(tenant, make_user(tenant, "analyst"))
    response = client.get("/api/v1/analyses/basket", params)
    assert response.status_code == 200
    assert response.json() == json.loads(out.getvalue())
    assert response.json() == to_jsonable(basket_of(tenant, **params))
    assert len(response.json()["pairs"]) == 20

    bad = [
        ({"level": "store"}, "level"),
        ({"sort": "confidence"}, "sort"),
        ({"min_orders": "0"}, "min_orders"),
        ({"limit": "many"}, "limit"),
        ({"max_items": "1"}, "max_items"),
        ({"from": "2025-02-30"}, "from"),
        ({"from": "2025-06-01", "to": "2025-01-31"}, "before it starts"),
        ({"colour": "red"}, "colour"),
        ({"from": "2010-01-01", "to": "2010-12-31"}, "two or more different items"),
    ]
    for bad_params, message in bad:
        response = client.get("/api/v1/analyses/basket", bad_params)
        assert response.status_code == 400, bad_params
        assert message in response.json()["message"]
        pairs = [f"--param={name}={value}" for name, value in bad_params.items()]
        with pytest.raises(CommandError, match=message) as error:
            call_command("analysis", "basket", "--tenant", tenant.slug, *pairs, stdout=StringIO())
        assert error.value.returncode == 2
