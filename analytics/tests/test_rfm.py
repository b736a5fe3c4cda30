"""RFM against an independent pandas computation over the same sales lines read back from ClickHouse."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal
from io import StringIO

import pandas as pd
import pytest
from django.core.management import CommandError, call_command
from django_tenants.utils import tenant_context

from analytics.analyses.base import InsufficientDataError, analysis_run, fresh_histories_build
from analytics.analyses.rfm import SEGMENT_OF_SCORES, SEGMENTS, rfm_customers_sql
from analytics.clickhouse.query import tenant_insert, tenant_query
from analytics.periods import tenant_timezone
from analytics.preaggregations import preaggregations_rebuild
from analytics.serialization import to_jsonable
from analytics.tests.conftest import facts_frame

CENT = Decimal("0.01")
VLADIVOSTOK = "Asia/Vladivostok"
# The R×F grid as the module docstring draws it: R from 5 down, F from 1 to 5.
GRID = """
5 new_customers  potential_loyalists potential_loyalists champions       champions
4 promising      potential_loyalists potential_loyalists loyal_customers loyal_customers
3 about_to_sleep about_to_sleep      need_attention      loyal_customers loyal_customers
2 hibernating    hibernating         at_risk             at_risk         cant_lose_them
1 lost           lost                at_risk             at_risk         cant_lose_them
"""
SEGMENT_OF = {
    (int(recency), frequency): segment
    for recency, *segments in (line.split() for line in GRID.strip().splitlines())
    for frequency, segment in enumerate(segments, start=1)
}


def quintile_scores(values: pd.Series, *, higher_is_better: bool) -> pd.Series:
    """1 + ⌊5 · (customers strictly worse) / n⌋: equal values, equal scores."""
    worse = values.rank(method="min", ascending=higher_is_better).astype(int) - 1
    return 1 + (5 * worse) // len(values)


def expected_rfm(lines: pd.DataFrame, timezone: str, as_of: date, lookback_days: int) -> pd.DataFrame:
    """Per customer: recency, frequency, monetary (cents), the three scores and the segment, with pandas."""
    ts = pd.to_datetime(lines.ts, utc=True)
    lines = lines.assign(
        day=ts.dt.tz_convert(timezone).dt.date, ts=ts, cents=[int(amount * 100) for amount in lines.amount]
    )
    window = lines[
        (lines.customer_id != "") & (lines.day > as_of - timedelta(days=lookback_days)) & (lines.day <= as_of)
    ]
    # An order's time is its earliest line; the last purchase is the latest order.
    orders = window[window.is_return == 0].groupby(["customer_id", "order_id"]).ts.min()
    by_customer = orders.groupby(level="customer_id")
    frame = pd.DataFrame(
        {
            "recency_days": by_customer.max().dt.tz_convert(timezone).dt.date.map(lambda day: (as_of - day).days),
            "frequency": by_customer.size(),
        }
    )
    frame["monetary_cents"] = window.groupby("customer_id").cents.sum().reindex(frame.index)
    frame["r_score"] = quintile_scores(frame.recency_days, higher_is_better=False)
    frame["f_score"] = quintile_scores(frame.frequency, higher_is_better=True)
    frame["m_score"] = quintile_scores(frame.monetary_cents, higher_is_better=True)
    frame["segment"] = [SEGMENT_OF[pair] for pair in zip(frame.r_score, frame.f_score, strict=True)]
    return frame.sort_index()


def ratio(numerator: Decimal | int, denominator: Decimal | int, scale: int = 1) -> Decimal:
    return (Decimal(numerator) * scale / Decimal(denominator)).quantize(CENT, ROUND_HALF_UP)


def rfm_of(tenant, **params) -> dict:
    with tenant_context(tenant):
        return analysis_run("rfm", params)


def customers_of(tenant, as_of: date, lookback_days: int) -> pd.DataFrame:
    """The public per-customer SELECT (from the fresh customer histories if built), run as the subquery the semantic
    layer will make of it."""
    with tenant_context(tenant):
        sql, params = rfm_customers_sql(
            as_of=as_of,
            lookback_days=lookback_days,
            timezone=tenant_timezone(),
            histories_build=fresh_histories_build(),
        )
        result = tenant_query(f"SELECT * FROM ({sql}) ORDER BY customer_id", params)
    frame = pd.DataFrame(result.result_rows, columns=result.column_names).set_index("customer_id")
    frame["monetary_cents"] = [int(value * 100) for value in frame.pop("monetary")]
    return frame


def assert_matches(result: dict, expected: pd.DataFrame) -> None:
    customers, revenue = len(expected), Decimal(int(expected.monetary_cents.sum())) / 100
    assert (result["customers"], result["revenue"]) == (customers, revenue)
    segments = {segment["segment"]: segment for segment in result["segments"]}
    assert list(segments) == [segment.id for segment in SEGMENTS]
    for segment_id, answer in segments.items():
        members = expected[expected.segment == segment_id]
        money = Decimal(int(members.monetary_cents.sum())) / 100
        assert answer["customers"] == len(members), segment_id
        assert answer["revenue"] == money, segment_id
        assert answer["share"] == ratio(len(members), customers, 100)
        assert answer["revenue_share"] == ratio(money, revenue, 100)
        if len(members):
            assert answer["avg_recency_days"] == ratio(int(members.recency_days.sum()), len(members))
            assert answer["avg_frequency"] == ratio(int(members.frequency.sum()), len(members))
            assert answer["avg_monetary"] == ratio(money, len(members))
        else:
            assert answer["avg_monetary"] is None
    grid = expected.groupby(["r_score", "f_score"]).size().to_dict()
    assert len(result["grid"]) == 25
    for cell in result["grid"]:
        key = (cell["r_score"], cell["f_score"])
        assert (cell["customers"], cell["segment"]) == (grid.get(key, 0), SEGMENT_OF[key])
    running = expected.monetary_cents.sort_values(ascending=False).cumsum().to_numpy()
    for point in result["pareto"]:
        needed = int((running * 100 >= int(running[-1]) * point["revenue_share"]).argmax()) + 1
        assert point["customers"] == needed, point
        assert point["customer_share"] == ratio(needed, customers, 100)


@pytest.mark.parametrize("timezone", ["Europe/Moscow", VLADIVOSTOK])
def test_rfm_matches_pandas_for_several_dates(generated_tenant, timezone):
    tenant = generated_tenant(timezone=timezone)
    lines = facts_frame("sales_lines", tenant.pk)
    for as_of, lookback_days in ((date(2025, 12, 31), 365), (date(2025, 3, 15), 180), (date(2024, 12, 1), 90)):
        expected = expected_rfm(lines, timezone, as_of, lookback_days)
        customers = customers_of(tenant, as_of, lookback_days)
        pd.testing.assert_frame_equal(customers[expected.columns], expected, check_dtype=False)
        result = rfm_of(tenant, as_of=as_of, lookback_days=lookback_days)
        assert result["window"] == {"from": str(as_of - timedelta(days=lookback_days - 1)), "to": str(as_of)}
        assert_matches(result, expected)
    # Ties stay together: every customer with one order has the same F score, and it is the lowest.
    once = expected[expected.frequency == 1]
    assert len(once) and set(once.f_score) == {1}
    assert expected.segment.nunique() > 3


def test_the_grid_names_every_cell_with_eleven_segments():
    assert SEGMENT_OF_SCORES == SEGMENT_OF
    assert len({segment.id for segment in SEGMENTS}) == len(SEGMENTS) == 11


def test_each_tenant_sees_only_its_own_customers(generated_tenant, make_tenant):
    first = generated_tenant(customers=200, seed=1)
    second = generated_tenant(customers=90, seed=2, timezone=VLADIVOSTOK)
    for tenant, timezone in ((first, "Europe/Moscow"), (second, VLADIVOSTOK)):
        expected = expected_rfm(facts_frame("sales_lines", tenant.pk), timezone, date(2025, 12, 31), 365)
        assert_matches(rfm_of(tenant, as_of="2025-12-31"), expected)
        assert customers_of(tenant, date(2025, 12, 31), 365).index.tolist() == expected.index.tolist()
    with pytest.raises(InsufficientDataError):
        rfm_of(make_tenant(), as_of="2025-12-31")


@pytest.mark.parametrize("from_histories", [False, True])
def test_fewer_than_twenty_customers_is_refused(make_tenant, from_histories):
    tenant = make_tenant()
    # Customer k buys once on 1 May + k days, at noon UTC; a return in the window nets out.
    rows = [(f"R{k}", 1, datetime(2025, 5, 1 + k, 12, tzinfo=UTC), f"C{k}", Decimal("100.00"), 0, 1) for k in range(20)]
    rows.append(("R0", 1, datetime(2025, 5, 25, 12, tzinfo=UTC), "C0", Decimal("-40.00"), 1, 1))
    tenant_insert(
        "sales_lines",
        rows,
        ["order_id", "line_no", "ts", "customer_id", "amount", "is_return", "version"],
        tenant_id=tenant.pk,
    )
    if from_histories:
        preaggregations_rebuild(tenant_id=tenant.pk, timezone=tenant.timezone)
    with pytest.raises(InsufficientDataError, match=r"at least 20 customers .* there are 19"):
        rfm_of(tenant, as_of="2025-05-19")
    result = rfm_of(tenant, as_of="2025-05-31", lookback_days=31)
    assert (result["customers"], result["revenue"]) == (20, Decimal("1960.00"))
    # One order each, bought on 20 different days: F ties at 1, R spreads 1 … 5 by four customers.
    assert [cell["customers"] for cell in result["grid"] if cell["f_score"] == 1] == [4, 4, 4, 4, 4]
    assert {segment["segment"]: segment["customers"] for segment in result["segments"] if segment["customers"]} == {
        "new_customers": 4,
        "promising": 4,
        "about_to_sleep": 4,
        "hibernating": 4,
        "lost": 4,
    }


def test_command_and_api_answer_the_same(generated_tenant, make_user, logged_in_client):
    tenant = generated_tenant(customers=120)
    out = StringIO()
    call_command(
        "analysis",
        "rfm",
        "--tenant",
        tenant.slug,
        "--param",
        "as_of=2025-11-30",
        "--param",
        "lookback_days=200",
        stdout=out,
    )
    client = logged_in_client(tenant, make_user(tenant, "viewer"))
    response = client.get("/api/v1/analyses/rfm", {"as_of": "2025-11-30", "lookback_days": "200"})
    assert response.status_code == 200
    assert response.json() == json.loads(out.getvalue())
    assert response.json() == to_jsonable(rfm_of(tenant, as_of="2025-11-30", lookback_days=200))

    bad = [
        ({"as_of": "yesterday"}, "as_of"),
        ({"lookback_days": "0"}, "lookback_days"),
        ({"lookback_days": "a year"}, "lookback_days"),
        ({"window": "365"}, "window"),
        ({"as_of": "2020-01-01"}, "at least 20 customers"),
    ]
    for params, message in bad:
        response = client.get("/api/v1/analyses/rfm", params)
        assert response.status_code == 400
        assert message in response.json()["message"]
        pairs = [f"--param={name}={value}" for name, value in params.items()]
        with pytest.raises(CommandError, match=message) as error:
            call_command("analysis", "rfm", "--tenant", tenant.slug, *pairs, stdout=StringIO())
        assert error.value.returncode == 2


def test_the_rfm_segment_dimension_slices_metrics_by_the_analysis_segments(generated_tenant):
    """Buyers of the RFM window by ``rfm_segment`` are the analysis' customers of each segment; contacts
    outside the window have no segment."""
    from analytics.analyses.rfm import rfm_window
    from analytics.selectors import metrics_query
    from analytics.semantic.spec import query_parse

    tenant = generated_tenant()
    as_of = date(2025, 12, 31)
    window = rfm_window(as_of, 365)
    with tenant_context(tenant):
        segments = {row["segment"]: row["customers"] for row in analysis_run("rfm", {"as_of": as_of})["segments"]}
        answer = metrics_query(
            query_parse(
                {
                    "metrics": ["buyers", "contacts"],
                    "dimensions": ["rfm_segment"],
                    "from": window.start,
                    "to": window.end,
                }
            )
        )
    buyers = {row["dimensions"]["rfm_segment"]: row["values"]["buyers"] for row in answer["rows"]}
    assert {segment: count for segment, count in buyers.items() if segment and count} == {
        segment: count for segment, count in segments.items() if count
    }
    assert buyers.get("", 0) == 0  # every buyer of the window has a segment
    unscored = next(row for row in answer["rows"] if row["dimensions"]["rfm_segment"] == "")
    assert unscored["values"]["contacts"] > 0  # customers who did not buy in the window
