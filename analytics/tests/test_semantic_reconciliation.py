"""Every metric of the semantic layer against an independent pandas computation (reference_metrics.py)
over the same rows read back from ClickHouse: periods, granularities, slices, filters, comparisons."""

from __future__ import annotations

import os
import time
from collections import Counter, defaultdict
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

import pandas as pd
import pytest
from dateutil.relativedelta import relativedelta
from django_tenants.utils import tenant_context

from analytics.preaggregations import EVERY_BUILD, fresh_builds, preaggregations_rebuild
from analytics.selectors import metrics_query
from analytics.semantic.catalog import applicable_dimensions
from analytics.semantic.metrics import METRICS
from analytics.semantic.registry import Unit
from analytics.semantic.spec import query_parse
from analytics.tests.reference_metrics import (
    REFERENCE,
    Facts,
    ReferenceAnswer,
    ReferenceFilter,
    change,
    facts_load,
    is_blank,
    query_buckets,
    reference_query,
)
from integrations.ingest import (
    Customer,
    MessageEvent,
    SalesLine,
    WebEvent,
    customers_write,
    message_events_write,
    sales_lines_write,
    web_events_write,
)

ALL_METRICS = tuple(metric.id for metric in METRICS)
MONTH = (date(2025, 3, 1), date(2025, 3, 31))
QUARTER = (date(2025, 4, 1), date(2025, 6, 30))
ACROSS_NEW_YEAR = (date(2024, 12, 18), date(2025, 1, 12))  # starts on a Wednesday, ends on a Sunday
ONE_DAY = (date(2025, 12, 6), date(2025, 12, 6))  # a Saturday with sales and web events
WEB_MONTHS = (date(2025, 11, 1), date(2025, 12, 31))  # the demo's web events cover these two months only
WHOLE_HISTORY = (date(2024, 1, 1), date(2025, 12, 31))
# The small shop's rare mailing outcomes by week and month too: an unsubscribe, a control member who bought.
EARLY_2024 = (date(2024, 2, 1), date(2024, 4, 30))


def run_query(tenant: Any, metrics: tuple[str, ...], period: tuple[date, date], **options: Any) -> dict:
    raw = {"metrics": list(metrics), "from": period[0].isoformat(), "to": period[1].isoformat(), "limit": 50_000}
    raw["dimensions"] = list(options.get("dimensions", ()))
    raw["granularity"] = options.get("granularity")
    raw["compare"] = options.get("compare")
    raw["filters"] = [
        {"dimension": f.dimension, "values": list(f.values), "exclude": f.exclude} for f in options.get("filters", ())
    ]
    with tenant_context(tenant):
        return metrics_query(query_parse(raw))


def answer_rows(answer: dict) -> dict[tuple, dict]:
    return {(row["bucket"], tuple(row["dimensions"].values())): row["values"] for row in answer["rows"]}


def mismatches(actual: dict[str, Any], expected: dict[str, Any], where: Any) -> list[tuple]:
    return [(where, metric, actual.get(metric), want) for metric, want in expected.items() if actual[metric] != want]


def assert_reconciles(answer: dict, expected: ReferenceAnswer) -> None:
    """Every row and the totals equal the reference; a row the answer leaves out must be blank in the reference."""
    assert not answer["truncated"]
    actual = answer_rows(answer)
    wrong = mismatches(answer["totals"]["values"], expected.totals, "totals")
    for key in sorted(set(actual) | set(expected.rows), key=repr):
        want = expected.rows[key] if key in expected.rows else expected.evaluate(key)
        if key in actual:
            wrong += mismatches(actual[key], want, key)
        elif not is_blank(want):
            wrong.append((key, "row missing", None, want))
    assert not wrong, f"{len(wrong)} differences, first: {wrong[:15]}"
    for metric in answer["metrics"]:
        value = answer["totals"]["values"][metric["id"]]
        if metric["unit"] == Unit.MONEY and value is not None:
            assert isinstance(value, Decimal), (metric["id"], value)


def reconcile(tenant: Any, facts: Facts, metrics: tuple[str, ...], period: tuple[date, date], **options: Any) -> dict:
    answer = run_query(tenant, metrics, period, **options)
    options.pop("compare", None)
    assert_reconciles(answer, reference_query(facts, metrics, *period, **options))
    return answer


def applicable(dimensions: tuple[str, ...], filters: tuple[ReferenceFilter, ...] = ()) -> tuple[str, ...]:
    """The metrics every named dimension (sliced or filtered on) applies to."""
    named = {*dimensions, *(f.dimension for f in filters)}
    return tuple(m for m in ALL_METRICS if named <= set(applicable_dimensions(m)))


def test_every_metric_has_a_reference():
    assert set(REFERENCE) == set(ALL_METRICS)


@pytest.fixture
def shop(generated_tenant) -> tuple[Any, Facts]:
    tenant = generated_tenant(customers=300)
    return tenant, facts_load(tenant)


@pytest.mark.parametrize("granularity", [None, "week", "month"])
def test_every_metric_over_periods(shop, granularity):
    tenant, facts = shop
    periods = [MONTH, QUARTER, ACROSS_NEW_YEAR, ONE_DAY, WEB_MONTHS] + (
        [WHOLE_HISTORY] if not granularity else [EARLY_2024]
    )
    blank = set(ALL_METRICS)
    for period in periods:
        answer = reconcile(tenant, facts, ALL_METRICS, period, granularity=granularity)
        blank -= {metric for metric, value in answer["totals"]["values"].items() if value}
    assert not blank, f"never anything to compare: {blank}"


@dataclass(frozen=True)
class Top:
    """Filter values that exist in the generated data: the ``count`` most frequent non-empty ones of a column."""

    frame: str
    column: str
    count: int

    def values(self, facts: Facts) -> tuple[str, ...]:
        values = getattr(facts, self.frame)[self.column]
        return tuple(values[values != ""].value_counts().index[: self.count])


# name → (dimensions, filters as (dimension, values or Top, exclude), period, granularity): line, customer-level,
# time-of-day and message dimensions; filters that include and exclude.
SLICES = {
    "store by month": (("store",), (), QUARTER, "month"),
    "city by week across new year": (("city",), (), ACROSS_NEW_YEAR, "week"),
    "acquisition cohort": (("acquisition_cohort",), (), MONTH, None),
    "weekday": (("weekday",), (), QUARTER, None),
    "hour by month": (("hour",), (), WEB_MONTHS, "month"),
    "channel × gender": (("channel", "gender"), (), MONTH, None),
    "customer type by week": (("customer_type",), (), MONTH, "week"),
    "age band by quarter": (("age_band",), (), WHOLE_HISTORY, "quarter"),
    "category and platform": (("category", "platform"), (), WEB_MONTHS, None),
    "campaign × message channel": (("campaign", "message_channel"), (), WHOLE_HISTORY, None),
    "mailing in a quarter": (("mailing",), (), QUARTER, None),
    "loyalty programme, one day": (("loyalty_program",), (), ONE_DAY, None),
    "employee": (("employee",), (), QUARTER, None),
    "brand × promo code": (("brand", "promo_code"), (), MONTH, None),
    "city in two stores": (("city",), (("store", Top("lines", "store", 2), False),), QUARTER, "month"),
    "weekday without online": (("weekday",), (("channel", ("online",), True),), MONTH, None),
    "store of Moscow members": (
        ("store",),
        (("city", Top("contacts", "city", 1), False), ("loyalty_program", ("",), True)),
        ACROSS_NEW_YEAR,
        "week",
    ),
    "weekdays only, by week": ((), (("weekday", ("6", "7"), True),), QUARTER, "week"),
    "two stores by week": (("store",), (("store", Top("lines", "store", 2), False),), QUARTER, "week"),
    "channel by year without online": (("channel",), (("channel", ("online",), True),), WHOLE_HISTORY, "year"),
    "one campaign by month": (
        ("mailing",),
        (("campaign", Top("messages", "campaign_id", 1), False),),
        WHOLE_HISTORY,
        "month",
    ),
    "early cohorts, not at 9–10": (
        ("home_store",),
        (("acquisition_cohort", ("2024-01-01", "2024-02-01", "2024-03-01"), False), ("hour", ("9", "10"), True)),
        WEB_MONTHS,
        None,
    ),
}


def filters_of(facts: Facts, specs: tuple) -> tuple[ReferenceFilter, ...]:
    return tuple(
        ReferenceFilter(dimension, values.values(facts) if isinstance(values, Top) else values, exclude)
        for dimension, values, exclude in specs
    )


def reconcile_slice(tenant: Any, facts: Facts, name: str) -> None:
    dimensions, specs, period, granularity = SLICES[name]
    filters = filters_of(facts, specs)
    metrics = applicable(dimensions, filters)
    answer = reconcile(tenant, facts, metrics, period, granularity=granularity, dimensions=dimensions, filters=filters)
    filled = [row for row in answer["rows"] if any(row["values"].values())]
    assert len(filled) > 1, "a slice with a single row compares nothing a total does not"


@pytest.mark.parametrize("name", list(SLICES))
def test_every_applicable_metric_by_slice_and_filter(shop, name):
    reconcile_slice(*shop, name)


def test_preaggregations_give_the_same_answers(shop, sent):
    """With fresh pre-aggregation builds, sales and customer metrics are read from them instead of the facts."""
    tenant, facts = shop
    preaggregations_rebuild(tenant_id=tenant.pk, timezone=tenant.timezone)
    assert set(fresh_builds(tenant.pk)) == EVERY_BUILD
    for granularity in (None, "week"):
        for period in (MONTH, ACROSS_NEW_YEAR, ONE_DAY):
            reconcile(tenant, facts, ALL_METRICS, period, granularity=granularity)
    slices = ("store by month", "employee", "two stores by week", "channel by year without online")
    slices += ("city by week across new year", "age band by quarter", "loyalty programme, one day")
    for name in (*slices, "acquisition cohort", "weekday without online", "store of Moscow members"):
        reconcile_slice(tenant, facts, name)
    reconcile(tenant, facts, ALL_METRICS, QUARTER, granularity="month", compare="previous_year")
    assert any("FROM orders AS f" in sql for sql in sent)
    assert any("FROM customer_histories" in sql for sql in sent)  # customer-level slices (cohort, city)
    assert any("FROM customer_days" in sql for sql in sent)
    assert any("FROM customer_base_days" in sql for sql in sent)
    assert any("FROM customer_flows" in sql for sql in sent)  # whole calendar buckets
    assert any("FROM contact_days" in sql for sql in sent)


# --- Timezones ------------------------------------------------------------------------------------------------------


def facts_copy(facts: Facts, tenant: Any) -> None:
    """Write the same rows (the same UTC instants) into another tenant, through the ingest writers."""
    sales_lines_write(
        [
            SalesLine(
                order_id=row.order_id,
                line_no=row.line_no,
                ts=row.ts.to_pydatetime(),
                amount=row.amount,
                customer_id=row.customer_id,
                store=row.store,
                employee=row.employee,
                channel=row.channel,
                product_id=row.product_id,
                product_name=row.product_name,
                category=row.category,
                brand=row.brand,
                qty=row.qty,
                price=row.price,
                discount=row.discount,
                is_return=bool(row.is_return),
                promo_code=row.promo_code,
            )
            for row in facts.lines.itertuples()
        ],
        source="test",
        tenant_id=tenant.pk,
    )
    customers = [
        Customer(
            customer_id=row.customer_id,
            created_at=row.created_at.to_pydatetime(),
            gender=row.gender,
            birth_date=date(row.birth_year, 1, 1) if row.birth_year else None,
            email="someone@example.test" if row.email_reachable else "",
            phone="+70000000000" if row.sms_reachable else "",
            consent_email=bool(row.email_reachable),
            consent_sms=bool(row.sms_reachable),
            city=row.city,
            store=row.home_store,
            loyalty_program=row.loyalty_program,
        )
        for row in facts.contacts.itertuples()
    ]
    with tenant_context(tenant):
        customers_write(customers, source="test")
    message_events_write(
        [
            MessageEvent(
                row.event_id,
                row.event_type,
                row.ts.to_pydatetime(),
                row.customer_id,
                row.mailing_id,
                row.campaign_id,
                row.channel,
            )
            for row in facts.messages.itertuples()
        ],
        source="test",
        tenant_id=tenant.pk,
    )
    web_events_write(
        [
            WebEvent(
                row.event_id,
                row.event_type,
                row.ts.to_pydatetime(),
                row.session_id,
                row.customer_id,
                row.platform,
                row.category,
                row.product_id,
            )
            for row in facts.web.itertuples()
        ],
        source="test",
        tenant_id=tenant.pk,
    )


@pytest.fixture
def shop_in(shop, make_tenant):
    """A factory: a tenant in ``timezone`` with the same rows as ``shop`` (whose timezone is Europe/Moscow)."""

    def make(timezone: str) -> tuple[Any, Facts]:
        tenant = make_tenant(timezone=timezone)
        facts_copy(shop[1], tenant)
        return tenant, facts_load(tenant)

    return make


def test_copied_rows_are_the_same_rows(shop, shop_in):
    _tenant, facts = shop_in("Asia/Vladivostok")
    keys = {
        "lines": ["order_id", "line_no", "is_return"],
        "messages": ["event_id"],
        "web": ["event_id"],
        "contacts": ["customer_id"],
    }
    for frame, key in keys.items():
        columns = [c for c in getattr(facts, frame).columns if c not in ("local", "day")]
        original, copied = (getattr(f, frame)[columns].sort_values(key, ignore_index=True) for f in (shop[1], facts))
        pd.testing.assert_frame_equal(original, copied, check_dtype=False)


@pytest.mark.parametrize("timezone", ["Asia/Vladivostok", "America/New_York"])
def test_the_same_rows_in_another_timezone(shop_in, timezone):
    """Day buckets, weekdays and hours follow the tenant's timezone: every metric reconciles there too."""
    tenant, facts = shop_in(timezone)
    reconcile(tenant, facts, ALL_METRICS, (date(2024, 12, 28), date(2025, 1, 5)), granularity="day")
    reconcile(tenant, facts, ALL_METRICS, ONE_DAY)
    for dimension in ("weekday", "hour"):
        reconcile(tenant, facts, applicable((dimension,)), MONTH, dimensions=(dimension,))


def test_hours_and_days_shift_with_the_timezone(shop, shop_in):
    """Without the reference: Vladivostok is 7 hours ahead of Moscow all year (neither has DST)."""
    moscow = shop[0]
    vladivostok, _facts = shop_in("Asia/Vladivostok")
    metrics = ("revenue", "orders", "sends", "visits")
    every_row = (date(2023, 1, 1), date(2026, 1, 31))  # local bounds differ by 7 hours: keep every row in both

    def by(tenant: Any, dimension: str) -> dict[str, dict]:
        answer = run_query(tenant, metrics, every_row, dimensions=(dimension,))
        return {row["dimensions"][dimension]: row["values"] for row in answer["rows"]}

    in_moscow, in_vladivostok = by(moscow, "hour"), by(vladivostok, "hour")
    assert in_vladivostok == {str((int(hour) + 7) % 24): values for hour, values in in_moscow.items()}
    # Moscow's evening sales are the next morning in Vladivostok: weekdays and days differ, totals do not.
    assert by(moscow, "weekday") != by(vladivostok, "weekday")
    daily = [run_query(tenant, metrics, ACROSS_NEW_YEAR, granularity="day") for tenant in (moscow, vladivostok)]
    assert answer_rows(daily[0]) != answer_rows(daily[1])
    totals = [run_query(tenant, metrics, every_row)["totals"]["values"] for tenant in (moscow, vladivostok)]
    assert totals[0] == totals[1]
    assert all(totals[0].values())


NEW_YORK = "America/New_York"
# One single-line order each: (UTC instant, amount, local day, ISO weekday, local hour). In New York 2025-03-09
# has 23 hours (02:00 EST jumps to 03:00 EDT) and 2025-11-02 has 25 (01:00–02:00 happens twice).
DST_LINES = (
    (datetime(2025, 3, 9, 4, 30, tzinfo=UTC), "1", date(2025, 3, 8), "6", "23"),  # Saturday 23:30 EST
    (datetime(2025, 3, 9, 5, 30, tzinfo=UTC), "2", date(2025, 3, 9), "7", "0"),  # 00:30 EST
    (datetime(2025, 3, 9, 7, 30, tzinfo=UTC), "4", date(2025, 3, 9), "7", "3"),  # 03:30 EDT, an hour after 01:30
    (datetime(2025, 3, 10, 3, 30, tzinfo=UTC), "8", date(2025, 3, 9), "7", "23"),  # 23:30 EDT
    (datetime(2025, 3, 10, 4, 30, tzinfo=UTC), "16", date(2025, 3, 10), "1", "0"),  # 00:30 EDT; EST says Sunday
    (datetime(2025, 11, 2, 3, 30, tzinfo=UTC), "32", date(2025, 11, 1), "6", "23"),  # Saturday 23:30 EDT
    (datetime(2025, 11, 2, 4, 30, tzinfo=UTC), "64", date(2025, 11, 2), "7", "0"),  # 00:30 EDT
    (datetime(2025, 11, 2, 5, 30, tzinfo=UTC), "128", date(2025, 11, 2), "7", "1"),  # 01:30 EDT
    (datetime(2025, 11, 2, 6, 30, tzinfo=UTC), "256", date(2025, 11, 2), "7", "1"),  # 01:30 EST, the hour again
    (datetime(2025, 11, 3, 4, 30, tzinfo=UTC), "512", date(2025, 11, 2), "7", "23"),  # 23:30 EST; EDT says Monday
    (datetime(2025, 11, 3, 5, 30, tzinfo=UTC), "1024", date(2025, 11, 3), "1", "0"),  # Monday 00:30 EST
)
SPRING, AUTUMN = (date(2025, 3, 8), date(2025, 3, 10)), (date(2025, 11, 1), date(2025, 11, 3))


@pytest.fixture
def dst_shop(make_tenant) -> Any:
    tenant = make_tenant(timezone=NEW_YORK)
    lines = [
        SalesLine(order_id=f"O{n}", line_no=1, ts=ts, amount=Decimal(amount), customer_id=f"C{n}")
        for n, (ts, amount, *_local) in enumerate(DST_LINES)
    ]
    sales_lines_write(lines, source="test", tenant_id=tenant.pk)
    return tenant


def test_day_buckets_have_23_and_25_hours_across_dst(dst_shop):
    """Hand-checked: 2025-03-09 holds the lines from 00:30 EST to 23:30 EDT, 23 hours on; 2025-11-02 from 00:30
    EDT to 23:30 EST, 25 hours on. A fixed UTC offset would move the 16 and the 512 to the wrong day."""
    for period in (SPRING, AUTUMN):
        daily = run_query(dst_shop, ("revenue", "orders", "new_customers"), period, granularity="day")
        revenue, orders = defaultdict(Decimal), Counter()
        for _ts, amount, day, _weekday, _hour in DST_LINES:
            if period[0] <= day <= period[1]:
                revenue[day] += Decimal(amount)
                orders[day] += 1
        assert {row["bucket"]: row["values"]["revenue"] for row in daily["rows"]} == revenue
        assert {row["bucket"]: row["values"]["new_customers"] for row in daily["rows"]} == orders
    assert revenue[date(2025, 11, 2)] == 64 + 128 + 256 + 512


def test_weekday_and_hour_are_local_across_dst(dst_shop):
    answer = run_query(dst_shop, ("revenue",), (SPRING[0], AUTUMN[1]), dimensions=("weekday", "hour"))
    expected = defaultdict(Decimal)
    for _ts, amount, _day, weekday, hour in DST_LINES:
        expected[(weekday, hour)] += Decimal(amount)
    assert {tuple(row["dimensions"].values()): row["values"]["revenue"] for row in answer["rows"]} == expected
    assert expected[("7", "1")] == 128 + 256  # the repeated hour counts both of its halves
    facts = facts_load(dst_shop)
    for period in (SPRING, AUTUMN):
        reconcile(dst_shop, facts, applicable(("hour",)), period, granularity="day", dimensions=("hour",))


@pytest.fixture
def server_timezone():
    """Sets this process's timezone (TZ and tzset, as a server started elsewhere would have); restored after."""
    original = os.environ.get("TZ")

    def set_to(name: str) -> None:
        os.environ["TZ"] = name
        time.tzset()

    yield set_to
    if original is None:
        os.environ.pop("TZ", None)
    else:
        os.environ["TZ"] = original
    time.tzset()


def test_answers_do_not_depend_on_the_servers_timezone(dst_shop, server_timezone, settings):
    settings.ANALYTICS_QUERY_CACHE_SECONDS = 0  # every answer computed again
    metrics = ("revenue", "orders", "new_customers", "customer_base", "retention_rate")

    def answers() -> list[dict]:
        return [
            run_query(dst_shop, metrics, AUTUMN, granularity="day", compare="previous_year"),
            run_query(dst_shop, ("revenue",), (SPRING[0], AUTUMN[1]), dimensions=("weekday", "hour")),
        ]

    baseline = answers()
    for name in ("Pacific/Kiritimati", "America/Los_Angeles", "Asia/Kathmandu"):
        server_timezone(name)
        assert time.localtime(0).tm_hour == datetime.fromtimestamp(0, ZoneInfo(name)).hour
        assert answers() == baseline, name


def test_halves_round_up_in_every_unit(make_tenant):
    """0.125 % is 0.13 % as money's 0.125 is 0.13 (ties to even would make it 0.12)."""
    tenant = make_tenant()
    at = datetime(2025, 5, 5, 12, tzinfo=UTC)
    lines = [SalesLine(order_id=f"S{n}", line_no=1, ts=at, amount=Decimal(100)) for n in range(8)]
    lines.append(SalesLine(order_id="S0", line_no=1, ts=at, amount=Decimal(1), is_return=True))
    sales_lines_write(lines, source="test", tenant_id=tenant.pk)
    metrics = ("return_rate", "average_check", "returns", "sales_revenue")
    answer = reconcile(tenant, facts_load(tenant), metrics, (date(2025, 5, 1), date(2025, 5, 31)))
    assert answer["totals"]["values"]["return_rate"] == 0.13


# --- Comparison ----------------------------------------------------------------------------------------------------


def compared_period(period: tuple[date, date], comparison: str) -> tuple[date, date]:
    """Whole calendar months: as many months right before; other periods: the same number of days right
    before; previous_year: the same dates a year earlier (29 February: the 28th)."""
    first, last = period
    if comparison == "previous_period":
        months = (last.year - first.year) * 12 + last.month - first.month + 1
        if first.day == 1 and (last + timedelta(days=1)).day == 1:
            return first - relativedelta(months=months), first - timedelta(days=1)
        return first - (last - first) - timedelta(days=1), first - timedelta(days=1)
    return first - relativedelta(years=1), last - relativedelta(years=1)


COMPARISONS = {
    "month vs previous period": ((), MONTH, None, "previous_period"),
    "quarter by month vs previous year": ((), QUARTER, "month", "previous_year"),
    "across new year by week vs previous period": ((), ACROSS_NEW_YEAR, "week", "previous_period"),
    "web months vs previous period": ((), WEB_MONTHS, None, "previous_period"),
    "store vs previous year": (("store",), QUARTER, None, "previous_year"),
    "city by month vs previous year": (("city",), MONTH, "month", "previous_year"),
}


@pytest.mark.parametrize("name", list(COMPARISONS))
def test_comparison_deltas_equal_the_reference_over_the_shifted_period(shop, name):
    dimensions, period, granularity, comparison = COMPARISONS[name]
    reconcile_comparison(*shop, applicable(dimensions), period, comparison, granularity, dimensions)


def reconcile_comparison(
    tenant: Any,
    facts: Facts,
    metrics: tuple[str, ...],
    period: tuple[date, date],
    comparison: str,
    granularity: str | None,
    dimensions: tuple[str, ...],
) -> None:
    """The period's values, the compared period's values and the changes all equal the reference."""
    options = {"granularity": granularity, "dimensions": dimensions}
    answer = reconcile(tenant, facts, metrics, period, compare=comparison, **options)
    earlier = compared_period(period, comparison)
    assert (answer["comparison"]["from"], answer["comparison"]["to"]) == tuple(day.isoformat() for day in earlier)
    expected = reference_query(facts, metrics, *earlier, **options)
    # Rows pair up by position of their bucket: the n-th bucket with the n-th one of the earlier period.
    earlier_firsts = [bucket.first for bucket in query_buckets(*earlier, granularity)]
    current_firsts = [bucket.first for bucket in query_buckets(*period, granularity)]
    wrong = mismatches(answer["totals"]["previous"], expected.totals, "previous totals")
    now = answer["totals"]["values"]
    wrong += mismatches(answer["totals"]["change"], {m: change(m, now[m], expected.totals[m]) for m in metrics}, "Δ")
    for row in answer["rows"]:
        number = current_firsts.index(row["bucket"]) if granularity else 0
        values = tuple(row["dimensions"].values())
        if number < len(earlier_firsts):
            before = expected.evaluate((earlier_firsts[number] if granularity else None, values))
            wrong += mismatches(row["previous"], before, ("previous", row["bucket"], values))
        else:  # the earlier period has fewer buckets: nothing to compare with
            before = row["previous"]
            assert is_blank(before), (row["bucket"], values)
        changes = {m: change(m, row["values"][m], before[m]) for m in metrics}
        wrong += mismatches(row["change"], changes, ("Δ", row["bucket"], values))
    assert not wrong, f"{len(wrong)} differences, first: {wrong[:10]}"
    assert any(value["percent"] for value in answer["totals"]["change"].values())
