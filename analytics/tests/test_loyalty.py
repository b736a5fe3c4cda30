"""Loyalty programmes against an independent pandas computation over the facts read back from ClickHouse."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal
from fractions import Fraction
from io import StringIO

import pandas as pd
import pytest
from django.core.management import CommandError, call_command
from django_tenants.utils import tenant_context

from analytics.analyses.base import InsufficientDataError, analysis_run
from analytics.clickhouse.query import tenant_insert
from analytics.serialization import to_jsonable
from analytics.tests.conftest import facts_frame

CENT = Decimal("0.01")
VLADIVOSTOK = "Asia/Vladivostok"


def per(numerator: int, denominator: int, scale: Fraction = Fraction(1)) -> Decimal | None:
    if not denominator:
        return None
    exact = Fraction(int(numerator)) * scale / int(denominator)
    return (Decimal(exact.numerator) / Decimal(exact.denominator)).quantize(CENT, ROUND_HALF_UP)


def expected_loyalty(tenant, timezone: str, first: date, last: date) -> dict[str, dict]:
    """Per programme: sums in cents and counts, each customer's days taken in the tenant's calendar."""
    lines = facts_frame("sales_lines", tenant.pk)
    lines = lines.assign(
        day=pd.to_datetime(lines.ts, utc=True).dt.tz_convert(timezone).dt.date,
        amount_cents=[int(value * 100) for value in lines.amount],
        discount_cents=[int(value * 100) for value in lines.discount],
    )
    lines = lines[(lines.customer_id != "") & (lines.day <= last)]
    attributes = facts_frame("customer_attributes", tenant.pk)
    created = pd.to_datetime(attributes.created_at, utc=True).dt.tz_convert(timezone).dt.date
    previous_first = first - timedelta(days=(last - first).days + 1)

    known = set(attributes.customer_id[created <= last]) | set(lines.customer_id)
    programme = attributes.set_index("customer_id").loyalty_program
    sales = lines[lines.is_return == 0]
    period_lines = lines[lines.day >= first]
    period_sales = sales[sales.day >= first]
    orders_in_period = period_sales.groupby("customer_id").order_id.nunique()
    orders_to_end = sales.groupby("customer_id").order_id.nunique()
    previous = set(sales[(sales.day >= previous_first) & (sales.day < first)].customer_id)

    groups: dict[str, dict] = {}
    for customer in known:
        group = groups.setdefault(
            programme.get(customer, ""),
            dict.fromkeys(("customers", "buyers", "orders", "repeat_buyers", "previous_buyers", "retained"), 0),
        )
        orders = int(orders_in_period.get(customer, 0))
        group["customers"] += 1
        group["buyers"] += orders > 0
        group["orders"] += orders
        group["repeat_buyers"] += orders > 0 and orders_to_end.get(customer, 0) >= 2
        group["previous_buyers"] += customer in previous
        group["retained"] += customer in previous and orders > 0
    group_of = period_lines.customer_id.map(lambda customer: programme.get(customer, ""))
    sales_group_of = period_sales.customer_id.map(lambda customer: programme.get(customer, ""))
    for name, group in groups.items():
        group["revenue"] = int(period_lines.amount_cents[group_of == name].sum())
        group["discounts"] = int(period_lines.discount_cents[group_of == name].sum())
        mine = period_sales[sales_group_of == name]
        group["gross"] = int((mine.amount_cents + mine.discount_cents).sum())
    return groups


def assert_group_matches(answer: dict, want: dict) -> None:
    for count in ("customers", "buyers", "orders", "repeat_buyers", "previous_buyers", "retained"):
        assert answer[count] == want[count], (answer["programme"], count)
    assert answer["revenue"] == Decimal(want["revenue"]) / 100
    assert answer["discounts"] == Decimal(want["discounts"]) / 100
    assert answer["orders_per_buyer"] == per(want["orders"], want["buyers"])
    assert answer["average_check"] == per(want["revenue"], want["orders"], Fraction(1, 100))
    assert answer["revenue_per_buyer"] == per(want["revenue"], want["buyers"], Fraction(1, 100))
    assert answer["discount_share"] == per(want["discounts"], want["gross"], Fraction(100))
    assert answer["repeat_share"] == per(want["repeat_buyers"], want["buyers"], Fraction(100))
    assert answer["retention"] == per(want["retained"], want["previous_buyers"], Fraction(100))


def assert_matches(result: dict, expected: dict[str, dict]) -> None:
    # Non-members first, then the programmes by name.
    assert [group["programme"] for group in result["groups"]] == sorted(expected, key=lambda name: (name != "", name))
    for answer in result["groups"]:
        assert_group_matches(answer, expected[answer["programme"]])
    total = {name: sum(group[name] for group in expected.values()) for name in next(iter(expected.values()))}
    assert_group_matches(result["total"], total)


def loyalty_of(tenant, **params) -> dict:
    with tenant_context(tenant):
        return analysis_run("loyalty", params)


@pytest.mark.parametrize(
    ("timezone", "first", "last"),
    [
        ("Europe/Moscow", date(2025, 1, 1), date(2025, 12, 31)),
        (VLADIVOSTOK, date(2025, 1, 1), date(2025, 12, 31)),
        # Days at the ends of the periods, and the previous period of equal length starts mid-month.
        (VLADIVOSTOK, date(2024, 11, 17), date(2025, 3, 2)),
        ("Europe/Moscow", date(2025, 6, 1), date(2025, 6, 30)),
    ],
)
def test_loyalty_matches_pandas(generated_tenant, timezone, first, last):
    tenant = generated_tenant(customers=150, seed=3, timezone=timezone)
    result = loyalty_of(tenant, **{"from": first, "to": last})
    assert result["period"] == {"from": first.isoformat(), "to": last.isoformat()}
    previous = (last - first).days + 1
    assert result["previous_period"] == {
        "from": (first - timedelta(days=previous)).isoformat(),
        "to": (first - timedelta(days=1)).isoformat(),
    }
    expected = expected_loyalty(tenant, timezone, first, last)
    assert set(expected) == {"", "bonus", "discount"}
    assert_matches(result, expected)
    labels = {group["programme"]: group["label"] for group in result["groups"]}
    assert labels == {"": "Not a member", "bonus": "Bonus card", "discount": "Discount card"}
    assert result["total"]["label"] == "All customers"


def test_discount_cardholders_pay_less_of_the_gross(generated_tenant):
    # The generator gives discount cards 5 % on every receipt and bonus cards 10 % on a fifth of them.
    tenant = generated_tenant(customers=150, seed=3)
    groups = {
        group["programme"]: group
        for group in loyalty_of(tenant, **{"from": "2024-01-01", "to": "2025-12-31"})["groups"]
    }
    assert groups[""]["discount_share"] < groups["bonus"]["discount_share"] < groups["discount"]["discount_share"]


def test_each_tenant_sees_only_its_own_customers(generated_tenant, make_tenant):
    first = generated_tenant(customers=150, seed=1)
    second = generated_tenant(customers=150, seed=2, timezone=VLADIVOSTOK)
    params = {"from": "2025-01-01", "to": "2025-12-31"}
    for tenant, timezone in ((first, "Europe/Moscow"), (second, VLADIVOSTOK)):
        assert_matches(
            loyalty_of(tenant, **params), expected_loyalty(tenant, timezone, date(2025, 1, 1), date(2025, 12, 31))
        )
    assert loyalty_of(first, **params)["total"] != loyalty_of(second, **params)["total"]
    with pytest.raises(InsufficientDataError):
        loyalty_of(make_tenant(), **params)


def test_customers_without_attributes_are_non_members_and_later_sign_ups_do_not_count(make_tenant):
    tenant = make_tenant()
    may = datetime(2025, 5, 10, 12, tzinfo=UTC)
    attributes = [
        ("C1", may - timedelta(days=400), "bonus", 1),
        ("C2", may, "discount", 1),
        ("C3", datetime(2025, 7, 1, tzinfo=UTC), "bonus", 1),  # joins after the period
    ]
    tenant_insert(
        "customer_attributes",
        attributes,
        ["customer_id", "created_at", "loyalty_program", "version"],
        tenant_id=tenant.pk,
    )
    sales = [
        (
            "O1",
            1,
            may - timedelta(days=300),
            "C1",
            Decimal("100.00"),
            0,
            1,
        ),  # in the previous period (2024-07-04 … 2024-12-31)
        ("O2", 1, may, "C1", Decimal("300.00"), 0, 1),
        ("O3", 1, may, "C9", Decimal("50.00"), 0, 1),  # no attributes: not a member
        ("O3", 1, may + timedelta(days=3), "C9", Decimal("-50.00"), 1, 1),
    ]
    tenant_insert(
        "sales_lines",
        sales,
        ["order_id", "line_no", "ts", "customer_id", "amount", "is_return", "version"],
        tenant_id=tenant.pk,
    )
    result = loyalty_of(tenant, **{"from": "2025-01-01", "to": "2025-06-30"})
    groups = {group["programme"]: group for group in result["groups"]}
    assert [group["programme"] for group in result["groups"]] == ["", "bonus", "discount"]
    assert (groups[""]["customers"], groups[""]["buyers"], groups[""]["revenue"]) == (1, 1, Decimal("0.00"))
    assert (groups["bonus"]["customers"], groups["bonus"]["buyers"], groups["bonus"]["revenue"]) == (
        1,
        1,
        Decimal("300.00"),
    )
    assert (groups["bonus"]["repeat_share"], groups["bonus"]["retention"]) == (Decimal("100.00"), Decimal("100.00"))
    assert (groups["discount"]["customers"], groups["discount"]["buyers"]) == (1, 0)
    assert groups["discount"]["average_check"] is None
    assert (result["total"]["customers"], result["total"]["buyers"], result["total"]["orders"]) == (3, 2, 2)


def test_command_api_and_bad_parameters(generated_tenant, make_user, logged_in_client):
    tenant = generated_tenant(customers=150, seed=3)
    client = logged_in_client(tenant, make_user(tenant, "marketer"))
    params = {"from": "2025-04-01", "to": "2025-09-30"}
    response = client.get("/api/v1/analyses/loyalty", params)
    assert response.status_code == 200
    assert response.json() == to_jsonable(loyalty_of(tenant, **params))
    out = StringIO()
    call_command(
        "analysis", "loyalty", "--tenant", tenant.slug, "--param=from=2025-04-01", "--param=to=2025-09-30", stdout=out
    )
    assert json.loads(out.getvalue()) == response.json()

    bad = [
        ({"from": "April"}, "from"),
        ({"to": "2025-04-31"}, "to"),
        ({"from": "2025-06-01", "to": "2025-01-31"}, "before it starts"),
        ({"programme": "bonus"}, "Unknown parameter"),
        ({"from": "2020-01-01", "to": "2020-12-31"}, "nothing to compare"),
    ]
    for params, message in bad:
        response = client.get("/api/v1/analyses/loyalty", params)
        assert response.status_code == 400, params
        assert message in response.json()["message"]
        pairs = [f"--param={name}={value}" for name, value in params.items()]
        with pytest.raises(CommandError, match=message) as error:
            call_command("analysis", "loyalty", "--tenant", tenant.slug, *pairs, stdout=StringIO())
        assert error.value.returncode == 2
