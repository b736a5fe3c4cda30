"""Journey map against an independent pandas computation over the sales lines read back from ClickHouse."""

from __future__ import annotations

import json
from collections import Counter
from datetime import UTC, date, datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal
from io import StringIO
from itertools import pairwise

import pandas as pd
import pytest
from django.core.management import CommandError, call_command
from django_tenants.utils import tenant_context

from analytics.analyses.base import InsufficientDataError, analysis_get, analysis_run
from analytics.clickhouse.query import tenant_insert
from analytics.periods import tenant_today
from analytics.serialization import to_jsonable
from analytics.tests.conftest import facts_frame

CENT = Decimal("0.01")
VLADIVOSTOK = "Asia/Vladivostok"


def share(count: int, total: int) -> Decimal:
    return (Decimal(count) * 100 / total).quantize(CENT, ROUND_HALF_UP)


def expected_journeys(lines: pd.DataFrame, timezone: str, first: date, last: date, level: str) -> pd.Series:
    """Each customer's steps in time order: per order, the value with the most money, ties to the first name."""
    ts = pd.to_datetime(lines.ts, utc=True)
    day = ts.dt.tz_convert(timezone).dt.date
    bought = lines.assign(ts=ts, cents=[int(amount * 100) for amount in lines.amount])[
        (lines.customer_id != "") & (lines.is_return == 0) & (day >= first) & (day <= last)
    ]
    ordered_at = bought.groupby(["customer_id", "order_id"]).ts.min().rename("ordered_at")
    by_value = bought[bought[level] != ""].groupby(["customer_id", "order_id", level]).cents.sum().reset_index()
    steps = (
        by_value.sort_values(["cents", level], ascending=[False, True])
        .drop_duplicates(["customer_id", "order_id"])
        .join(ordered_at, on=["customer_id", "order_id"])
        .sort_values(["customer_id", "ordered_at", "order_id"])
    )
    return steps.groupby("customer_id")[level].agg(list)


def expected_journey(journeys: pd.Series) -> dict:
    """The analysis's counts and shares from the customers' step lists, in plain Python."""
    transitions = Counter(pair for steps in journeys for pair in pairwise(steps))
    purchases = Counter(step for steps in journeys for step in steps)
    first_purchases = Counter(steps[0] for steps in journeys)
    repeaters = [steps for steps in journeys if len(steps) > 1]
    stayers = Counter(steps[0] for steps in repeaters if len(set(steps)) == 1)
    next_steps = Counter()
    for (from_step, _to), count in transitions.items():
        next_steps[from_step] += count
    repeats = sum(count for (from_step, to_step), count in transitions.items() if from_step == to_step)
    return {
        "customers": len(journeys),
        "repeat_customers": len(repeaters),
        "purchases": sum(purchases.values()),
        "transitions": sum(transitions.values()),
        "nodes": {
            name: {
                "purchases": count,
                "next_steps": next_steps[name],
                "repeats": transitions[name, name],
                "repeat_share": share(transitions[name, name], next_steps[name]) if next_steps[name] else None,
                "stayers": stayers[name],
            }
            for name, count in purchases.items()
        },
        "edges": {
            (from_step, to_step): (count, share(count, next_steps[from_step]))
            for (from_step, to_step), count in transitions.items()
            if from_step != to_step
        },
        "stay": {
            "transitions": repeats,
            "transition_share": share(repeats, sum(transitions.values())),
            "customers": sum(stayers.values()),
            "customer_share": share(sum(stayers.values()), len(repeaters)),
        },
        "first_purchases": {name: (count, share(count, len(journeys))) for name, count in first_purchases.items()},
    }


def assert_matches(result: dict, expected: dict) -> None:
    for key in ("customers", "repeat_customers", "purchases", "transitions", "stay"):
        assert result[key] == expected[key], key
    assert {node.pop("name"): node for node in result["nodes"]} == expected["nodes"]
    assert {(edge["from"], edge["to"]): (edge["transitions"], edge["share"]) for edge in result["edges"]} == expected[
        "edges"
    ]
    assert {first["name"]: (first["customers"], first["share"]) for first in result["first_purchases"]} == expected[
        "first_purchases"
    ]
    counts = [edge["transitions"] for edge in result["edges"]]
    assert counts == sorted(counts, reverse=True)


def journey_of(tenant, **params) -> dict:
    with tenant_context(tenant):
        return analysis_run("journey", params)


CASES = [
    (date(2024, 1, 1), date(2025, 12, 31), "category"),
    (date(2025, 2, 10), date(2025, 11, 20), "brand"),
    (date(2024, 4, 1), date(2025, 9, 30), "store"),
    (date(2024, 1, 1), date(2025, 6, 30), "channel"),
]


@pytest.mark.parametrize("timezone", ["Europe/Moscow", VLADIVOSTOK])
def test_journey_matches_pandas_for_periods_and_levels(generated_tenant, timezone):
    tenant = generated_tenant(timezone=timezone)
    lines = facts_frame("sales_lines", tenant.pk)
    for first, last, level in CASES:
        result = journey_of(tenant, **{"from": first, "to": last, "level": level})
        assert result["period"] == {"from": str(first), "to": str(last)}
        assert result["edges"], level
        assert_matches(result, expected_journey(expected_journeys(lines, timezone, first, last, level)))


def test_the_sankey_is_the_edges_without_cycles(generated_tenant):
    tenant = generated_tenant(customers=200)
    result = journey_of(tenant, **{"from": "2024-01-01", "to": "2025-12-31"})
    sankey = result["sankey"]
    depth = {node["name"]: node["depth"] for node in sankey["nodes"]}
    assert len(depth) == len(sankey["nodes"])  # ECharts needs unique names
    # Every link goes from the left column to the right one: no self-loop, no cycle.
    assert all(depth[link["source"]] == 0 and depth[link["target"]] == 1 for link in sankey["links"])
    assert [(link["source"], link["target"].removeprefix("→ "), link["value"]) for link in sankey["links"]] == [
        (edge["from"], edge["to"], edge["transitions"]) for edge in result["edges"]
    ]
    # A customer's first step plus their transitions are all their steps.
    assert result["purchases"] == result["customers"] + result["transitions"]
    assert result["transitions"] == sum(node["next_steps"] for node in result["nodes"])

    with tenant_context(tenant):
        today = tenant_today()
        defaults = analysis_get("journey").parse_params({})
    assert defaults == {"from": today - timedelta(days=364), "to": today, "level": "category"}


def test_an_order_is_the_step_of_its_largest_value(make_tenant):
    """Hand-made orders: the largest net amount wins, a tie goes to the first name, empty values never count."""
    tenant = make_tenant(timezone="UTC")
    day = datetime(2025, 5, 1, 10, tzinfo=UTC)
    orders = [
        # (hours after day, lines as (category, amount)); every customer buys these five orders.
        (0, [("Shoes", "30.00"), ("Bags", "20.00"), ("Bags", "15.00")]),  # Bags 35 > Shoes 30
        (24, [("Shoes", "50.00"), ("Hats", "50.00")]),  # a tie: Hats before Shoes
        (48, [("", "900.00"), ("Shoes", "1.00")]),  # the unnamed line does not count
        (72, [("", "10.00")]),  # no valued line: no step
        (96, [("Shoes", "5.00")]),
    ]
    rows = []
    for customer in range(20):
        for number, (hours, order_lines) in enumerate(orders):
            for line_no, (category, amount) in enumerate(order_lines):
                ts = day + timedelta(hours=hours, minutes=customer)
                rows.append((f"O{customer}-{number}", line_no, ts, f"C{customer}", category, Decimal(amount), 0, 1))
    # Returning a Bags line later does not change the first step.
    rows.append(("O0-0", 1, day + timedelta(days=5), "C0", "Bags", Decimal("-20.00"), 1, 1))
    tenant_insert(
        "sales_lines",
        rows,
        ["order_id", "line_no", "ts", "customer_id", "category", "amount", "is_return", "version"],
        tenant_id=tenant.pk,
    )
    result = journey_of(tenant, **{"from": "2025-05-01", "to": "2025-05-31"})
    assert (result["customers"], result["repeat_customers"], result["purchases"]) == (20, 20, 80)
    assert [(edge["from"], edge["to"], edge["transitions"], edge["share"]) for edge in result["edges"]] == [
        ("Bags", "Hats", 20, Decimal("100.00")),
        ("Hats", "Shoes", 20, Decimal("100.00")),
    ]
    assert result["first_purchases"] == [{"name": "Bags", "customers": 20, "share": Decimal("100.00")}]
    shoes = next(node for node in result["nodes"] if node["name"] == "Shoes")
    assert (shoes["purchases"], shoes["next_steps"], shoes["repeats"], shoes["repeat_share"]) == (
        40,
        20,
        20,
        Decimal("100.00"),
    )
    assert result["stay"] == {
        "transitions": 20,
        "transition_share": Decimal("33.33"),
        "customers": 0,
        "customer_share": Decimal("0.00"),
    }
    # From 3 May: Shoes, no step, Shoes — every customer stays, and a stay is never an edge.
    late = journey_of(tenant, **{"from": "2025-05-03", "to": "2025-05-31"})
    assert (late["edges"], late["sankey"]) == ([], {"nodes": [], "links": []})
    assert late["stay"]["customers"] == 20
    assert late["stay"]["customer_share"] == Decimal("100.00")


def test_each_tenant_sees_only_its_own_journeys(generated_tenant, make_tenant):
    first = generated_tenant(customers=200, seed=1)
    second = generated_tenant(customers=150, seed=2, timezone=VLADIVOSTOK)
    period = (date(2024, 1, 1), date(2025, 12, 31))
    results = {}
    for tenant, timezone in ((first, "Europe/Moscow"), (second, VLADIVOSTOK)):
        results[tenant.pk] = journey_of(tenant, **{"from": period[0], "to": period[1]})
        expected = expected_journeys(facts_frame("sales_lines", tenant.pk), timezone, *period, "category")
        assert_matches(results[tenant.pk], expected_journey(expected))
    assert results[first.pk]["customers"] != results[second.pk]["customers"]
    with pytest.raises(InsufficientDataError):
        journey_of(make_tenant(), **{"from": period[0], "to": period[1]})


def test_too_few_repeat_customers_are_refused(generated_tenant):
    tenant = generated_tenant(customers=60)
    with pytest.raises(InsufficientDataError, match="between 2025-06-02 and 2025-06-08") as error:
        journey_of(tenant, **{"from": "2025-06-02", "to": "2025-06-08"})
    assert error.value.extra["repeat_customers"] < error.value.extra["minimum"]


def test_command_and_api_answer_the_same(generated_tenant, make_user, logged_in_client):
    tenant = generated_tenant(customers=120)
    params = {"from": "2024-06-01", "to": "2025-12-31", "level": "store"}
    out = StringIO()
    pairs = [f"--param={name}={value}" for name, value in params.items()]
    call_command("analysis", "journey", "--tenant", tenant.slug, *pairs, stdout=out)
    client = logged_in_client(tenant, make_user(tenant, "analyst"))
    response = client.get("/api/v1/analyses/journey", params)
    assert response.status_code == 200
    assert response.json() == json.loads(out.getvalue())
    assert response.json() == to_jsonable(journey_of(tenant, **params))

    bad = [
        ({"level": "product"}, "level"),
        ({"to": "yesterday"}, "to"),
        ({"from": "2025-06-01", "to": "2025-01-31"}, "before it starts"),
        ({"steps": "3"}, "steps"),
        ({"from": "2010-01-01", "to": "2010-12-31"}, "two or more purchases"),
    ]
    for bad_params, message in bad:
        response = client.get("/api/v1/analyses/journey", bad_params)
        assert response.status_code == 400, bad_params
        assert message in response.json()["message"]
        pairs = [f"--param={name}={value}" for name, value in bad_params.items()]
        with pytest.raises(CommandError, match=message) as error:
            call_command("analysis", "journey", "--tenant", tenant.slug, *pairs, stdout=StringIO())
        assert error.value.returncode == 2
