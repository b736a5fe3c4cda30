"""Discount depth against an independent pandas computation over the sales lines read back from ClickHouse."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime, time, timedelta
from decimal import ROUND_HALF_UP, Decimal
from fractions import Fraction
from io import StringIO
from zoneinfo import ZoneInfo

import pandas as pd
import pytest
from django.core.management import CommandError, call_command
from django_tenants.utils import tenant_context

from analytics.analyses.base import InsufficientDataError, analysis_run
from analytics.analyses.discount_depth import MIN_SAMPLE
from analytics.clickhouse.query import tenant_insert
from analytics.serialization import to_jsonable
from analytics.tests.conftest import facts_frame

CENT = Decimal("0.01")
VLADIVOSTOK = "Asia/Vladivostok"
SEGMENT_COLUMNS = {"loyalty_program": "loyalty_program", "gender": "gender", "city": "city"}


def utc_midnight(day: date, timezone: str) -> pd.Timestamp:
    return pd.Timestamp(datetime.combine(day, time(), tzinfo=ZoneInfo(timezone)))


def rounded(value: Fraction) -> Decimal:
    """A fraction to the cent, half up, without passing through a float."""
    return (Decimal(value.numerator) / Decimal(value.denominator)).quantize(CENT, ROUND_HALF_UP)


def per(numerator: int, denominator: int, scale: int = 1) -> Decimal | None:
    """numerator / (denominator × scale) to the cent: cents per order when scale is 100; None for no denominator."""
    return rounded(Fraction(int(numerator), int(denominator) * scale)) if denominator else None


def depth_band(discount: int, gross: int, edges: list[int]) -> int:
    """0 for no discount, else 1 + the index of the last edge not above the depth rounded to a whole percent."""
    if discount <= 0:
        return 0
    percent = 100 if gross <= 0 else int((Decimal(100 * discount) / Decimal(gross)).quantize(Decimal(1), ROUND_HALF_UP))
    return sum(edge <= percent for edge in edges)


def expected_depth(tenant, timezone: str, first: date, last: date, edges: list[int], segment_by: str) -> dict:
    """Per (segment, band): orders, promo orders, buyers, revenue and discounts in cents, observed and repeated."""
    lines = facts_frame("sales_lines", tenant.pk)
    lines = lines.assign(
        ts=pd.to_datetime(lines.ts, utc=True),
        amount_cents=[int(value * 100) for value in lines.amount],
        discount_cents=[int(value * 100) for value in lines.discount],
    )
    start, end = utc_midnight(first, timezone), utc_midnight(last + timedelta(days=1), timezone)
    purchases = lines[(lines.customer_id != "") & (lines.is_return == 0)]
    in_period = purchases[(purchases.ts >= start) & (purchases.ts < end)]
    orders = (
        in_period.assign(with_promo=in_period.promo_code != "")
        .groupby(["customer_id", "order_id"])
        .agg(
            order_ts=("ts", "min"),
            channel=("channel", "min"),
            sales=("amount_cents", "sum"),
            discount=("discount_cents", "sum"),
            with_promo=("with_promo", "any"),
        )
        .reset_index()
    )
    returns = lines[lines.is_return == 1].groupby("order_id").amount_cents.sum()
    orders["revenue"] = orders.sales + orders.order_id.map(returns).fillna(0).astype(int)
    orders["band"] = [
        depth_band(discount, sales + discount, edges)
        for discount, sales in zip(orders.discount, orders.sales, strict=True)
    ]
    if segment_by in SEGMENT_COLUMNS:
        attributes = facts_frame("customer_attributes", tenant.pk).set_index("customer_id")
        orders["segment"] = orders.customer_id.map(attributes[SEGMENT_COLUMNS[segment_by]]).fillna("")
    else:
        orders["segment"] = orders.channel if segment_by == "channel" else ""

    # Every identified order of the history: the repeat window may run past the period.
    times = purchases.groupby(["customer_id", "order_id"]).ts.min().groupby(level="customer_id").apply(list)
    last_fact = lines.ts.max()
    window = pd.Timedelta(days=90)
    buyers = orders.groupby(["segment", "band", "customer_id"]).order_ts.min().reset_index()
    buyers["observed"] = buyers.order_ts + window <= last_fact
    buyers["repeated"] = [
        any(first_ts < other <= first_ts + window for other in times[customer])
        for customer, first_ts in zip(buyers.customer_id, buyers.order_ts, strict=True)
    ]
    buyers["observed_repeated"] = buyers.observed & buyers.repeated

    per_band = orders.groupby(["segment", "band"]).agg(
        orders=("order_id", "size"),
        promo_orders=("with_promo", "sum"),
        buyers=("customer_id", "nunique"),
        revenue=("revenue", "sum"),
        discounts=("discount", "sum"),
    )
    repeats = buyers.groupby(["segment", "band"]).agg(
        observed=("observed", "sum"), repeated=("observed_repeated", "sum")
    )
    return per_band.join(repeats).to_dict("index")


def change(row: dict, base: dict, numerator: str, denominator: str, *, difference: bool) -> Decimal | None:
    """The band against the baseline from exact fractions: check change in %, repeat-rate change in points."""
    if min(row[denominator], base[denominator]) < MIN_SAMPLE:
        return None
    value = Fraction(row[numerator], row[denominator])
    baseline = Fraction(base[numerator], base[denominator])
    return rounded((value - baseline) * 100 if difference else (value / baseline - 1) * 100)


def assert_matches(result: dict, expected: dict, edges: list[int]) -> None:
    bands = ["no_discount", *map(str, edges)]
    assert [band["band"] for band in result["bands"]] == bands
    segments = sorted({segment for segment, _band in expected})
    assert [row["segment"] for row in result["rows"]] == [segment for segment in segments for _band in bands]
    empty = {"orders": 0, "promo_orders": 0, "buyers": 0, "revenue": 0, "discounts": 0, "observed": 0, "repeated": 0}
    for row in result["rows"]:
        number = bands.index(row["band"])
        want = expected.get((row["segment"], number), empty)
        base = expected.get((row["segment"], 0), empty)
        assert row["orders"] == want["orders"], row
        assert row["promo_code_orders"] == want["promo_orders"], row
        assert row["buyers"] == want["buyers"], row
        assert row["revenue"] == Decimal(int(want["revenue"])) / 100, row
        assert row["discounts"] == Decimal(int(want["discounts"])) / 100, row
        assert row["average_check"] == per(want["revenue"], want["orders"], 100), row
        assert row["revenue_per_buyer"] == per(want["revenue"], want["buyers"], 100), row
        assert row["repeat_observed_buyers"] == want["observed"], row
        assert row["repeat_buyers"] == want["repeated"], row
        assert row["repeat_rate"] == per(100 * want["repeated"], want["observed"]), row
        against = number != 0
        assert row["average_check_vs_baseline_pct"] == (
            change(want, base, "revenue", "orders", difference=False) if against else None
        ), row
        assert row["repeat_rate_vs_baseline_pp"] == (
            change(want, base, "repeated", "observed", difference=True) if against else None
        ), row


def depth_of(tenant, **params) -> dict:
    with tenant_context(tenant):
        return analysis_run("discount_depth", params)


@pytest.mark.parametrize(
    ("timezone", "first", "last", "bands", "segment_by"),
    [
        ("Europe/Moscow", date(2024, 1, 1), date(2025, 12, 31), "0,5,10,15,20,25,30", "none"),
        (VLADIVOSTOK, date(2024, 1, 1), date(2025, 12, 31), "0,5,10,15,20,25,30", "loyalty_program"),
        # The repeat window of the last months runs past the data: those buyers are not observed.
        (VLADIVOSTOK, date(2025, 4, 12), date(2025, 11, 30), "10,0,20", "channel"),
        ("Europe/Moscow", date(2024, 7, 1), date(2025, 6, 30), "0,8", "city"),
        ("Europe/Moscow", date(2024, 7, 1), date(2025, 6, 30), "0,5,10,15,20,25,30", "gender"),
    ],
)
def test_discount_depth_matches_pandas(generated_tenant, timezone, first, last, bands, segment_by):
    tenant = generated_tenant(customers=150, seed=4, timezone=timezone)
    edges = sorted(int(edge) for edge in bands.split(","))
    result = depth_of(tenant, **{"from": first, "to": last, "bands": bands, "segment_by": segment_by})
    assert result["period"] == {"from": first.isoformat(), "to": last.isoformat()}
    assert result["segment_by"] == segment_by
    assert_matches(result, expected_depth(tenant, timezone, first, last, edges, segment_by), edges)


def test_the_whole_history_compares_bands_with_the_baseline(generated_tenant):
    tenant = generated_tenant(customers=150, seed=4)
    result = depth_of(tenant, **{"from": "2024-01-01", "to": "2025-12-31"})
    by_band = {row["band"]: row for row in result["rows"]}
    # Discount cards (5 %) and bonus points (10 %) make bands big enough to be compared; offers are rarer.
    assert by_band["5"]["average_check_vs_baseline_pct"] is not None
    assert by_band["no_discount"]["average_check_vs_baseline_pct"] is None
    assert by_band["no_discount"]["orders"] > by_band["20"]["orders"] > 0
    assert by_band["20"]["promo_code_orders"] == by_band["20"]["orders"]
    labels = [band["label"] for band in result["bands"]]
    assert labels == ["No discount", "0–5 %", "5–10 %", "10–15 %", "15–20 %", "20–25 %", "25–30 %", "30 %+"]


def test_each_tenant_sees_only_its_own_orders(generated_tenant, make_tenant):
    first = generated_tenant(customers=150, seed=1)
    second = generated_tenant(customers=150, seed=2, timezone=VLADIVOSTOK)
    empty = make_tenant()
    edges = [0, 5, 10, 15, 20, 25, 30]
    params = {"from": "2025-01-01", "to": "2025-12-31", "segment_by": "loyalty_program"}
    results = []
    for tenant, timezone in ((first, "Europe/Moscow"), (second, VLADIVOSTOK)):
        result = depth_of(tenant, **params)
        expected = expected_depth(tenant, timezone, date(2025, 1, 1), date(2025, 12, 31), edges, "loyalty_program")
        assert_matches(result, expected, edges)
        results.append(result)
    assert results[0]["rows"] != results[1]["rows"]
    with pytest.raises(InsufficientDataError):
        depth_of(empty, **params)


def test_guardrails_and_bad_parameters(generated_tenant, make_user, logged_in_client):
    tenant = generated_tenant(customers=150, seed=4)
    client = logged_in_client(tenant, make_user(tenant, "analyst"))
    params = {"from": "2025-01-01", "to": "2025-06-30", "segment_by": "channel", "bands": "0,10,20"}
    response = client.get("/api/v1/analyses/discount_depth", params)
    assert response.status_code == 200
    assert response.json() == to_jsonable(depth_of(tenant, **params))
    out = StringIO()
    pairs = [f"--param={name}={value}" for name, value in params.items()]
    call_command("analysis", "discount_depth", "--tenant", tenant.slug, *pairs, stdout=out)
    assert json.loads(out.getvalue()) == response.json()

    bad = [
        ({"bands": "0,five"}, "bands"),
        ({"bands": "5,10"}, "the first one 0"),
        ({"bands": "0,100"}, "bands"),
        ({"bands": ","}, "bands"),
        ({"segment_by": "store"}, "segment_by"),
        ({"from": "2025-02-30"}, "from"),
        ({"from": "2025-06-01", "to": "2025-01-31"}, "before it starts"),
        ({"depth": "10"}, "Unknown parameter"),
        ({"from": "2021-01-01", "to": "2021-12-31"}, "no orders to compare"),
    ]
    for params, message in bad:
        response = client.get("/api/v1/analyses/discount_depth", params)
        assert response.status_code == 400, params
        assert message in response.json()["message"]
        pairs = [f"--param={name}={value}" for name, value in params.items()]
        with pytest.raises(CommandError, match=message) as error:
            call_command("analysis", "discount_depth", "--tenant", tenant.slug, *pairs, stdout=StringIO())
        assert error.value.returncode == 2


def test_depth_rounds_to_whole_percents_and_repeats_count_exactly_90_days(make_tenant):
    tenant = make_tenant()
    may_10, may_20 = datetime(2025, 5, 10, 12, tzinfo=UTC), datetime(2025, 5, 20, 12, tzinfo=UTC)
    ninety_days = timedelta(days=90)
    columns = ["order_id", "line_no", "ts", "customer_id", "discount", "amount", "is_return", "promo_code", "version"]
    rows = [
        ("O1", 1, may_10, "C1", Decimal("4.50"), Decimal("95.50"), 0, "", 1),  # 4.5 % → 5 %
        ("O2", 1, may_10, "C2", Decimal("4.49"), Decimal("95.51"), 0, "", 1),  # 4.49 % → 4 %
        ("O3", 1, may_10, "C3", Decimal("-10.00"), Decimal("110.00"), 0, "", 1),  # a markup: no discount
        ("O4", 1, may_20, "C1", Decimal("0.00"), Decimal("200.00"), 0, "", 1),
        ("O4", 2, may_20, "C1", Decimal("30.00"), Decimal("70.00"), 0, "SPRING", 1),  # 30 of 300: 10 %
        ("O5", 1, may_10, "C4", Decimal("0.00"), Decimal("50.00"), 0, "", 1),
        ("O5", 1, may_20, "C4", Decimal("0.00"), Decimal("-20.00"), 1, "", 1),  # returned in part
        ("O8", 1, may_10, "C5", Decimal("10.00"), Decimal("0.00"), 0, "", 1),  # given away: 100 %
        ("O6", 1, may_10 + ninety_days, "C2", Decimal("0.00"), Decimal("10.00"), 0, "", 1),  # on the last instant
        ("O7", 1, may_10 + ninety_days + timedelta(seconds=1), "C3", Decimal("0.00"), Decimal("10.00"), 0, "", 1),
    ]
    tenant_insert("sales_lines", rows, columns, tenant_id=tenant.pk)
    result = depth_of(tenant, **{"from": "2025-05-01", "to": "2025-05-31"})
    by_band = {row["band"]: row for row in result["rows"]}
    expected = {
        # band: orders, promo orders, buyers, revenue, discounts, observed, repeated
        "no_discount": (2, 0, 2, Decimal("140.00"), Decimal("-10.00"), 2, 0),
        "0": (1, 0, 1, Decimal("95.51"), Decimal("4.49"), 1, 1),
        "5": (1, 0, 1, Decimal("95.50"), Decimal("4.50"), 1, 1),
        # C1's window after 20 May is not over by the last fact (8 August): not observed.
        "10": (1, 1, 1, Decimal("270.00"), Decimal("30.00"), 0, 0),
        "30": (1, 0, 1, Decimal("0.00"), Decimal("10.00"), 1, 0),
    }
    columns = ("orders", "promo_code_orders", "buyers", "revenue", "discounts")
    columns += ("repeat_observed_buyers", "repeat_buyers")
    for band, row in by_band.items():
        assert tuple(row[column] for column in columns) == expected.get(band, (0, 0, 0, 0, 0, 0, 0)), band
    assert by_band["0"]["repeat_rate"] == Decimal("100.00")
    assert by_band["10"]["repeat_rate"] is None
