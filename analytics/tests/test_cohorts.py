"""Cohorts against an independent pandas computation over the same sales lines read back from ClickHouse."""

from __future__ import annotations

import json
from datetime import date, timedelta
from decimal import ROUND_HALF_UP, Decimal
from io import StringIO

import pandas as pd
import pytest
from dateutil.relativedelta import relativedelta
from django.core.management import CommandError, call_command
from django_tenants.utils import tenant_context

from analytics.analyses.base import InsufficientDataError, analysis_get, analysis_run
from analytics.periods import tenant_today
from analytics.serialization import to_jsonable
from analytics.tests.conftest import facts_frame

CENT = Decimal("0.01")
VLADIVOSTOK = "Asia/Vladivostok"


def bucket_of(day: date, granularity: str) -> date:
    return day.replace(day=1) if granularity == "month" else day - timedelta(days=day.weekday())


def nth_bucket(cohort: date, periods: int, granularity: str) -> date:
    return cohort + (relativedelta(months=periods) if granularity == "month" else timedelta(weeks=periods))


def expected_cohorts(lines: pd.DataFrame, timezone: str, first: date, last: date, granularity: str) -> dict:
    """Cohort sizes and per-(cohort, bucket) active customers and net revenue in cents, with pandas."""
    ts = pd.to_datetime(lines.ts, utc=True)
    lines = lines.assign(
        day=ts.dt.tz_convert(timezone).dt.date, ts=ts, cents=[int(amount * 100) for amount in lines.amount]
    )
    identified = lines[lines.customer_id != ""]
    purchases = identified[identified.is_return == 0]
    # A customer's first order: the earliest order, an order's time being its earliest line.
    first_order = purchases.groupby(["customer_id", "order_id"]).ts.min().groupby(level="customer_id").min()
    first_day = first_order.dt.tz_convert(timezone).dt.date
    start = bucket_of(first, granularity)
    acquired = first_day[(first_day >= start) & (first_day <= last)]
    cohort_of = acquired.map(lambda day: bucket_of(day, granularity))
    observed = identified[(identified.day >= start) & (identified.day <= last)]
    observed = observed[observed.customer_id.isin(cohort_of.index)].assign(
        cohort=lambda frame: frame.customer_id.map(cohort_of),
        bucket=lambda frame: frame.day.map(lambda day: bucket_of(day, granularity)),
    )
    observed = observed[observed.bucket >= observed.cohort]
    return {
        "sizes": cohort_of.value_counts().to_dict(),
        "active": observed[observed.is_return == 0].groupby(["cohort", "bucket"]).customer_id.nunique().to_dict(),
        "cents": observed.groupby(["cohort", "bucket"]).cents.sum().to_dict(),
    }


def ratio(numerator: Decimal | int, denominator: int, scale: int = 1) -> Decimal:
    return (Decimal(numerator) * scale / denominator).quantize(CENT, ROUND_HALF_UP)


def assert_matches(result: dict, expected: dict, granularity: str) -> None:
    sizes = {cohort["cohort"]: cohort["size"] for cohort in result["cohorts"] if cohort["size"]}
    assert sizes == expected["sizes"]
    assert result["customers"] == sum(expected["sizes"].values())
    cells = {
        (cell["cohort"], nth_bucket(cell["cohort"], cell["period"], granularity)): cell for cell in result["cells"]
    }
    # Every bucket with activity has its cell; cells without it are zero.
    assert set(expected["cents"]) <= set(cells)
    cumulative: dict[date, Decimal] = {}
    for (cohort, bucket), cell in sorted(cells.items()):
        size = expected["sizes"][cohort]
        revenue = Decimal(expected["cents"].get((cohort, bucket), 0)) / 100
        cumulative[cohort] = cumulative.get(cohort, Decimal(0)) + revenue
        assert cell["customers"] == expected["active"].get((cohort, bucket), 0), (cohort, bucket)
        assert cell["revenue"] == revenue, (cohort, bucket)
        assert cell["retention"] == ratio(cell["customers"], size, 100)
        assert cell["revenue_per_customer"] == ratio(revenue, size)
        assert cell["ltv"] == ratio(cumulative[cohort], size)


def cohorts_of(tenant, **params) -> dict:
    with tenant_context(tenant):
        return analysis_run("cohorts", params)


@pytest.mark.parametrize("timezone", ["Europe/Moscow", VLADIVOSTOK])
def test_cohorts_match_pandas_for_several_ranges(generated_tenant, timezone):
    tenant = generated_tenant(timezone=timezone)
    lines = facts_frame("sales_lines", tenant.pk)
    ranges = [
        (date(2024, 1, 1), date(2025, 12, 31), "month"),
        # A ``from`` inside a month takes the whole month; ``to`` inside one cuts its activity short.
        (date(2024, 6, 20), date(2025, 3, 10), "month"),
        (date(2025, 9, 3), date(2025, 12, 31), "week"),
    ]
    for first, last, granularity in ranges:
        result = cohorts_of(tenant, **{"from": first, "to": last, "granularity": granularity})
        assert_matches(result, expected_cohorts(lines, timezone, first, last, granularity), granularity)

    result = cohorts_of(tenant, **{"from": "2024-01-01", "to": "2025-12-31"})
    assert result["period"] == {"from": "2024-01-01", "to": "2025-12-31"}
    assert [cohort["cohort"] for cohort in result["cohorts"]] == [
        date(2024, 1, 1) + relativedelta(months=months) for months in range(24)
    ]
    # The triangle: the first cohort is observed 24 months, the last one month; retention starts at 100 %.
    assert result["periods"] == list(range(24))
    assert [sum(value is not None for value in row) for row in result["matrix"]] == list(range(24, 0, -1))
    assert all(cell["retention"] == 100 for cell in result["cells"] if cell["period"] == 0)


def test_the_matrix_holds_the_chosen_metric(generated_tenant):
    tenant = generated_tenant(customers=120)
    for metric in ("customers", "retention", "revenue", "revenue_per_customer", "ltv"):
        result = cohorts_of(tenant, **{"from": "2025-01-01", "to": "2025-12-31", "metric": metric})
        assert result["metric"] == metric
        starts = [cohort["cohort"] for cohort in result["cohorts"]]
        for cell in result["cells"]:
            assert result["matrix"][starts.index(cell["cohort"])][cell["period"]] == cell[metric]

    # The defaults, read without running: the generated history ends 2025-12-31, "today" moves on.
    with tenant_context(tenant):
        today = tenant_today()
        default = analysis_get("cohorts").parse_params({})
    assert default["metric"] == "retention"
    assert (default["from"], default["to"]) == ((today - relativedelta(months=11)).replace(day=1), today)


def test_each_tenant_sees_only_its_own_cohorts(generated_tenant, make_tenant):
    first = generated_tenant(customers=200, seed=1)
    second = generated_tenant(customers=80, seed=2, timezone=VLADIVOSTOK)
    empty = make_tenant()
    params = {"from": "2024-01-01", "to": "2025-12-31"}
    for tenant, timezone in ((first, "Europe/Moscow"), (second, VLADIVOSTOK)):
        expected = expected_cohorts(
            facts_frame("sales_lines", tenant.pk), timezone, date(2024, 1, 1), date(2025, 12, 31), "month"
        )
        assert_matches(cohorts_of(tenant, **params), expected, "month")
    assert cohorts_of(first, **params)["customers"] != cohorts_of(second, **params)["customers"]
    with pytest.raises(InsufficientDataError):
        cohorts_of(empty, **params)


def test_a_range_without_new_customers_is_refused(generated_tenant):
    tenant = generated_tenant(customers=60)
    with pytest.raises(InsufficientDataError, match="between 2022-03-01 and 2022-12-31"):
        cohorts_of(tenant, **{"from": "2022-03-15", "to": "2022-12-31"})


def test_command_and_api_answer_the_same(generated_tenant, make_user, logged_in_client):
    tenant = generated_tenant(customers=80)
    out = StringIO()
    call_command(
        "analysis",
        "cohorts",
        "--tenant",
        tenant.slug,
        "--param",
        "from=2025-01-01",
        "--param",
        "metric=ltv",
        stdout=out,
    )
    client = logged_in_client(tenant, make_user(tenant, "analyst"))
    response = client.get("/api/v1/analyses/cohorts", {"from": "2025-01-01", "metric": "ltv"})
    assert response.status_code == 200
    assert response.json() == json.loads(out.getvalue())
    assert response.json() == to_jsonable(cohorts_of(tenant, **{"from": "2025-01-01", "metric": "ltv"}))

    bad = [
        ({"metric": "profit"}, "metric"),
        ({"granularity": "day"}, "granularity"),
        ({"from": "2025-13-01"}, "from"),
        ({"from": "2025-06-01", "to": "2025-01-31"}, "before it starts"),
        ({"from": "2010-01-01", "to": "2010-12-31"}, "no cohorts"),
    ]
    for params, message in bad:
        response = client.get("/api/v1/analyses/cohorts", params)
        assert response.status_code == 400
        assert message in response.json()["message"]
        pairs = [f"--param={name}={value}" for name, value in params.items()]
        with pytest.raises(CommandError, match=message) as error:
            call_command("analysis", "cohorts", "--tenant", tenant.slug, *pairs, stdout=StringIO())
        assert error.value.returncode == 2
