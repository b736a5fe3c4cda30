"""Churns and channel buyers from customer_flows (analytics/semantic/customer_days.py): per whole calendar bucket
they read one row per bucket and slice value, and equal the pandas reference for every granularity, slice and
timezone; a clipped bucket still reads the days; a change of the tenant's churn window makes the flows stale until
the next rebuild; each tenant reads its own flows."""

from __future__ import annotations

from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

import pytest
from django_tenants.utils import tenant_context

from analytics.dashboards import DASHBOARDS, DashboardState, dashboard_render
from analytics.periods import Comparison, Period
from analytics.preaggregations import (
    EVERY_BUILD,
    fresh_builds,
    preaggregations_rebuild,
    preaggregations_rebuild_current,
)
from analytics.semantic.catalog import base_metrics
from analytics.semantic.customer_days import CUSTOMER_DAYS, CUSTOMER_FLOWS
from analytics.tests.reference_metrics import facts_load
from analytics.tests.test_semantic_reconciliation import (
    ACROSS_NEW_YEAR,
    ALL_METRICS,
    MONTH,
    QUARTER,
    WHOLE_HISTORY,
    answer_rows,
    applicable,
    reconcile,
    run_query,
)
from integrations.ingest import SalesLine, sales_lines_write

# The metrics counted from the churns and channel_purchases roles (and ratios of them).
FLOWED = {"churned_customers", "online_buyers", "offline_buyers", "omnichannel_buyers"}
FLOW_METRICS = tuple(m for m in ALL_METRICS if FLOWED & {base.id for base in base_metrics(m)})
CHURN_METRICS = tuple(m for m in FLOW_METRICS if "churned_customers" in {base.id for base in base_metrics(m)})
YEAR_2025 = (date(2025, 1, 1), date(2025, 12, 31))
# (granularity, period, whether the period too is a whole calendar bucket): every bucket is a whole calendar bucket
# (the window before each the bucket before). The totals of a period that is not one read the days.
WHOLE_BUCKETS = (
    (None, MONTH, True),
    (None, QUARTER, True),
    (None, YEAR_2025, True),
    ("day", (date(2025, 12, 1), date(2025, 12, 7)), True),
    ("week", (date(2025, 3, 3), date(2025, 3, 30)), False),
    ("month", QUARTER, True),
    ("month", (date(2026, 1, 1), date(2026, 6, 30)), False),  # churns after the last purchase
    ("quarter", YEAR_2025, True),
    ("quarter", WHOLE_HISTORY, False),
    ("year", WHOLE_HISTORY, False),
)
SLICES = ((), ("store",), ("employee",), ("channel",))


@pytest.fixture
def sent(sent, settings) -> list[str]:
    """The conftest's recorded statements, with every answer computed (none cached)."""
    settings.ANALYTICS_QUERY_CACHE_SECONDS = 0
    return sent


def reads(statements: list[str], table: str) -> bool:
    return any(f"FROM {table} " in sql for sql in statements)


def from_flows(statements: list[str]) -> list[str]:
    """The statements reading customer_flows: of the buckets, and of the totals when the period is a whole bucket."""
    return [sql for sql in statements if reads([sql], CUSTOMER_FLOWS)]


def reconcile_whole_buckets(tenant: Any, facts: Any, sent: list[str], slices: tuple = SLICES) -> None:
    """Every flow metric in whole buckets equals the reference; their statement reads the flows, not the days."""
    for granularity, period, whole_period in WHOLE_BUCKETS:
        for dimensions in slices:
            metrics = tuple(m for m in applicable(dimensions) if m in FLOW_METRICS)
            sent.clear()
            reconcile(tenant, facts, metrics, period, granularity=granularity, dimensions=dimensions)
            where = (granularity, period, dimensions)
            # The rows' statement, and the totals' when the period is whole too. Sliced, the channel buyers are
            # sales metrics (orders): the flows then answer the churns.
            flows = from_flows(sent)
            assert flows and all("churned_customers" in sql for sql in flows), where
            assert not reads(flows, CUSTOMER_DAYS), where
            assert dimensions or all("online_buyers" in sql for sql in flows), where
            assert not whole_period or not reads(sent, CUSTOMER_DAYS), where


def test_churns_and_channel_buyers_of_whole_buckets_read_the_flows(built_shop, sent):
    tenant, facts = built_shop
    assert set(fresh_builds(tenant.pk)) == EVERY_BUILD
    assert {"churned_customers", "churn_rate", "online_buyers", "omnichannel_buyers"} <= set(FLOW_METRICS)
    reconcile_whole_buckets(tenant, facts, sent)


def test_a_clipped_week_reads_the_days_and_the_whole_weeks_the_flows(built_shop, sent):
    tenant, facts = built_shop
    for dimensions in ((), ("store",)):
        sent.clear()
        metrics = tuple(m for m in applicable(dimensions) if m in FLOW_METRICS)
        # 2024-12-18 is a Wednesday: the first week is clipped, the three after it are whole.
        reconcile(tenant, facts, metrics, ACROSS_NEW_YEAR, granularity="week", dimensions=dimensions)
        (statement,) = from_flows(sent)  # the totals (not a calendar bucket) read the days only
        assert "churned_customers" in statement and reads([statement], CUSTOMER_DAYS)
        assert "{from_days:Array(UInt8)}[n] = 1" in statement


@pytest.mark.parametrize("timezone", ["Asia/Vladivostok", "America/New_York"])
def test_flows_follow_the_tenants_timezone(generated_tenant, sent, timezone):
    tenant = generated_tenant(customers=150, seed=5, timezone=timezone)
    preaggregations_rebuild(tenant_id=tenant.pk, timezone=tenant.timezone)
    reconcile_whole_buckets(tenant, facts_load(tenant), sent, slices=((), ("store",)))


def sale(order_id: str, customer_id: str, day: date, store: str, channel: str) -> SalesLine:
    at = datetime(day.year, day.month, day.day, 9, tzinfo=UTC)  # noon in Moscow, the tenant's timezone
    return SalesLine(
        order_id=order_id,
        line_no=1,
        ts=at,
        amount=Decimal("10.00"),
        customer_id=customer_id,
        store=store,
        channel=channel,
    )


def test_flows_count_churns_under_the_tenants_window_and_a_customer_once_per_long_bucket(make_tenant, sent):
    """Hand-checked under a 30-day window. C1 buys on 01-10 and 03-01: churns on 02-09 and 03-31; C3 buys on 01-10
    and 01-20: churns on 02-19; C2 buys on 06-15: churns on 07-15. Built under the default 180 days the churns
    would fall in July–September; counting churn rows in Q1 (90 days) or the year would count C1 twice."""
    tenant = make_tenant()
    tenant.churn_window_days = 30
    tenant.save()
    sales = [
        sale("O1", "C1", date(2025, 1, 10), "A", "offline"),
        sale("O2", "C1", date(2025, 3, 1), "A", "online"),
        sale("O3", "C3", date(2025, 1, 10), "A", "offline"),
        sale("O4", "C3", date(2025, 1, 20), "A", "online"),
        sale("O5", "C2", date(2025, 6, 15), "B", "online"),
    ]
    sales_lines_write(sales, source="test", tenant_id=tenant.pk)
    preaggregations_rebuild(tenant_id=tenant.pk, timezone=tenant.timezone)

    def churns(granularity: str | None, dimensions: tuple[str, ...] = ()) -> dict[tuple, int]:
        answer = run_query(tenant, ("churned_customers",), YEAR_2025, granularity=granularity, dimensions=dimensions)
        values = {key: row["churned_customers"] for key, row in answer_rows(answer).items()}
        return {key: value for key, value in values.items() if value}

    sent.clear()
    month = {(date(2025, 2, 1), ()): 2, (date(2025, 3, 1), ()): 1, (date(2025, 7, 1), ()): 1}
    assert churns("month") == month
    assert churns("quarter") == {(date(2025, 1, 1), ()): 2, (date(2025, 7, 1), ()): 1}
    assert churns(None) == {(None, ()): 3}
    assert churns(None, ("store",)) == {(None, ("A",)): 2, (None, ("B",)): 1}
    assert reads(sent, CUSTOMER_FLOWS) and not reads(sent, CUSTOMER_DAYS)

    january = (date(2025, 1, 1), date(2025, 1, 31))
    channels = run_query(tenant, ("online_buyers", "offline_buyers", "omnichannel_buyers"), january)
    assert channels["totals"]["values"] == {"online_buyers": 1, "offline_buyers": 2, "omnichannel_buyers": 1}


def test_a_churn_window_change_makes_the_flows_stale_until_the_rebuild(built_shop, sent):
    tenant, _facts = built_shop
    tenant.churn_window_days = 30  # shorter than a 31-day month: months, quarters and years count customers
    tenant.save()
    assert set(fresh_builds(tenant.pk)) == EVERY_BUILD - {CUSTOMER_FLOWS}
    facts = facts_load(tenant)  # the reference under the new window
    periods = {"month": YEAR_2025, "quarter": WHOLE_HISTORY, "year": WHOLE_HISTORY}
    stale = {g: reconcile(tenant, facts, CHURN_METRICS, period, granularity=g) for g, period in periods.items()}
    assert reads(sent, CUSTOMER_DAYS) and not reads(sent, CUSTOMER_FLOWS)

    sent.clear()
    with tenant_context(tenant):  # the beat task sees the flows are not fresh and rebuilds with the tenant's window
        assert preaggregations_rebuild_current()
    assert set(fresh_builds(tenant.pk)) == EVERY_BUILD
    for granularity, period in periods.items():
        rebuilt = reconcile(tenant, facts, CHURN_METRICS, period, granularity=granularity)
        assert rebuilt["rows"] == stale[granularity]["rows"]
    assert from_flows(sent) and not reads(from_flows(sent), CUSTOMER_DAYS)
    # A rebuild told another window than the tenant's records it: its flows are not this tenant's.
    preaggregations_rebuild(tenant_id=tenant.pk, timezone=tenant.timezone, churn_window_days=180)
    assert set(fresh_builds(tenant.pk)) == EVERY_BUILD - {CUSTOMER_FLOWS}


def test_each_tenant_reads_its_own_flows(built_shop, generated_tenant, sent):
    first, first_facts = built_shop
    second = generated_tenant(customers=120, seed=11)
    second.churn_window_days = 60
    second.save()
    preaggregations_rebuild(tenant_id=second.pk, timezone=second.timezone)
    assert set(fresh_builds(first.pk)) == EVERY_BUILD  # the second tenant's rebuild left the first's builds alone
    answers = [
        reconcile(tenant, facts, FLOW_METRICS, QUARTER, granularity="month")
        for tenant, facts in ((first, first_facts), (second, facts_load(second)))
    ]
    assert answers[0]["totals"] != answers[1]["totals"]
    assert reads(sent, CUSTOMER_FLOWS) and not reads(sent, CUSTOMER_DAYS)


def test_customer_dashboards_of_whole_months_read_no_customer_days(built_shop, sent):
    tenant, _facts = built_shop
    state = DashboardState(Period(*YEAR_2025), Comparison.PREVIOUS_PERIOD)
    for dashboard in DASHBOARDS:
        if dashboard.id in ("kpi_overview", "customer_base"):
            with tenant_context(tenant):
                dashboard_render(dashboard, state)
    assert any("churned_customers" in sql for sql in sent) and any("online_buyers" in sql for sql in sent)
    assert reads(sent, CUSTOMER_FLOWS) and not reads(sent, CUSTOMER_DAYS)
