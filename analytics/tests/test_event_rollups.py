"""Message, web and attributed-order metrics over the event rollups (analytics/semantic/event_rollups.py) against
the pandas reference: every slice the rollups hold, every granularity, comparisons; and when they are not read
(stale, another attribution window, a slice they do not hold)."""

from __future__ import annotations

from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

import pytest
from django_tenants.utils import tenant_context

from analytics.preaggregations import (
    AUDIENCE_SENDS,
    CONTACT_DAYS,
    EVERY_BUILD,
    fresh_builds,
    preaggregations_rebuild,
    preaggregations_rebuild_current,
)
from analytics.semantic.catalog import base_metrics
from analytics.semantic.event_rollups import ATTRIBUTED_ORDERS, MESSAGE_DAYS, WEB_DAYS
from analytics.semantic.metrics import METRICS
from analytics.semantic.registry import Source
from analytics.tests.reference_metrics import Facts, ReferenceFilter, change, facts_load, reference_query
from analytics.tests.test_semantic_reconciliation import (
    ACROSS_NEW_YEAR,
    QUARTER,
    WEB_MONTHS,
    WHOLE_HISTORY,
    Top,
    applicable,
    compared_period,
    mismatches,
    reconcile,
)
from integrations.ingest import (
    MessageEvent,
    SalesLine,
    WebEvent,
    message_events_write,
    sales_lines_write,
    web_events_write,
)

EVENT_SOURCES = frozenset((Source.MESSAGES, Source.WEB, Source.ATTRIBUTION))
EVENT_METRICS = tuple(m.id for m in METRICS if any(b.source in EVENT_SOURCES for b in base_metrics(m.id)))
# Distinct recipients do not add up over days, and the audience metrics follow each member to their orders: the event
# metrics the message rollup does not answer.
NOT_ROLLED_UP = ("recipients", "control_group_size", "control_revenue", "incremental_revenue")
ROLLED_UP = tuple(m for m in EVENT_METRICS if m not in NOT_ROLLED_UP)
SLICES = ((), ("mailing",), ("campaign",), ("message_channel",), ("category",), ("platform",), ("category", "platform"))
PERIODS = {
    None: (WEB_MONTHS, WHOLE_HISTORY),
    "day": ((date(2025, 11, 24), date(2025, 12, 7)),),
    "week": (WEB_MONTHS, ACROSS_NEW_YEAR),
    "month": (QUARTER, WEB_MONTHS),
}
EVENT_TABLES = ("message_events", "web_events")


def event_metrics(dimensions: tuple[str, ...], filters: tuple[ReferenceFilter, ...] = ()) -> tuple[str, ...]:
    return tuple(m for m in applicable(dimensions, filters) if m in ROLLED_UP)


@pytest.fixture
def sent(sent, settings) -> list[str]:
    """The conftest's recorded statements, with every answer computed (none cached)."""
    settings.ANALYTICS_QUERY_CACHE_SECONDS = 0
    return sent


def reads(statements: list[str], table: str) -> bool:
    return any(f"FROM {table} " in sql or f"FROM {table}\n" in sql for sql in statements)


@pytest.mark.parametrize("granularity", list(PERIODS))
def test_every_event_metric_from_the_rollups_by_slice(built_shop, sent, granularity):
    tenant, facts = built_shop
    assert set(fresh_builds(tenant.pk)) == EVERY_BUILD
    for period in PERIODS[granularity]:
        for dimensions in SLICES:
            reconcile(tenant, facts, event_metrics(dimensions), period, granularity=granularity, dimensions=dimensions)
    assert reads(sent, MESSAGE_DAYS) and reads(sent, WEB_DAYS) and reads(sent, ATTRIBUTED_ORDERS)
    assert not any(reads(sent, table) for table in EVENT_TABLES), "an event metric read the events"


def test_filters_and_comparisons_over_the_rollups(built_shop, sent):
    tenant, facts = built_shop
    filtered = {
        ("mailing",): (ReferenceFilter("campaign", Top("messages", "campaign_id", 2).values(facts)),),
        ("campaign",): (ReferenceFilter("message_channel", ("sms",), exclude=True),),
        ("platform",): (ReferenceFilter("category", Top("web", "category", 3).values(facts)),),
    }
    for dimensions, filters in filtered.items():
        metrics = event_metrics(dimensions, filters)
        reconcile(tenant, facts, metrics, WHOLE_HISTORY, granularity="month", dimensions=dimensions, filters=filters)
    for dimensions, period, granularity, comparison in (
        ((), WEB_MONTHS, "month", "previous_year"),
        (("campaign",), QUARTER, None, "previous_period"),
        (("category",), (date(2025, 12, 1), date(2025, 12, 31)), "week", "previous_period"),
    ):
        assert_comparison_reconciles(tenant, facts, dimensions, period, granularity, comparison)
    assert not any(reads(sent, table) for table in EVENT_TABLES)


def assert_comparison_reconciles(
    tenant: Any, facts: Facts, dimensions: tuple[str, ...], period: tuple[date, date], granularity, comparison: str
) -> None:
    metrics = event_metrics(dimensions)
    options = {"granularity": granularity, "dimensions": dimensions}
    answer = reconcile(tenant, facts, metrics, period, compare=comparison, **options)
    earlier = reference_query(facts, metrics, *compared_period(period, comparison), **options)
    wrong = mismatches(answer["totals"]["previous"], earlier.totals, "previous totals")
    now = answer["totals"]["values"]
    wrong += mismatches(answer["totals"]["change"], {m: change(m, now[m], earlier.totals[m]) for m in metrics}, "Δ")
    if granularity is None:
        for row in answer["rows"]:
            key = (None, tuple(row["dimensions"].values()))
            wrong += mismatches(row["previous"], earlier.evaluate(key), key)
    assert not wrong, wrong[:10]
    assert any(value["percent"] for value in answer["totals"]["change"].values())


def test_what_the_rollups_do_not_hold_reads_the_events(built_shop, sent):
    """Distinct recipients, and slices by hour, weekday or a customer attribute, keep the event path."""
    tenant, facts = built_shop
    reconcile(tenant, facts, ("recipients", "sends"), WHOLE_HISTORY, granularity="month", dimensions=("mailing",))
    assert reads(sent, "message_events")
    sent.clear()
    for dimension in ("hour", "weekday", "city"):
        metrics = tuple(m for m in applicable((dimension,)) if m in EVENT_METRICS)
        reconcile(tenant, facts, metrics, WEB_MONTHS, dimensions=(dimension,))
    assert reads(sent, "message_events") and reads(sent, "web_events")
    assert reads(sent, ATTRIBUTED_ORDERS)  # every attribution slice: its rows carry the customer and time


def test_a_stale_build_is_not_read(built_shop, sent):
    tenant, _facts = built_shop
    at = datetime(2025, 12, 3, 12, tzinfo=UTC)
    buyer = "C-stale"
    message_events_write(
        [MessageEvent("E-stale", "delivered", at, buyer, "M-stale", "K-stale", "email")],
        source="test",
        tenant_id=tenant.pk,
    )
    sales_lines_write(
        [SalesLine(order_id="O-stale", line_no=1, ts=at, amount=Decimal("70.00"), customer_id=buyer)],
        source="test",
        tenant_id=tenant.pk,
    )
    web_events_write([WebEvent("W-stale", "visit", at, "S-stale", buyer)], source="test", tenant_id=tenant.pk)
    assert set(fresh_builds(tenant.pk)) == {CONTACT_DAYS}  # only the contacts did not change
    facts = facts_load(tenant)
    answer = reconcile(tenant, facts, event_metrics(("mailing",)), WEB_MONTHS, dimensions=("mailing",))
    assert answer_for(answer, "M-stale") == {"deliveries": 1, "mailing_orders": 1, "mailing_revenue": Decimal("70.00")}
    reconcile(tenant, facts, event_metrics(("platform",)), WEB_MONTHS, dimensions=("platform",))
    assert reads(sent, "message_events") and reads(sent, "web_events")
    assert not any(reads(sent, table) for table in (MESSAGE_DAYS, WEB_DAYS, ATTRIBUTED_ORDERS))


def answer_for(answer: dict, mailing: str) -> dict[str, Any]:
    (row,) = [row for row in answer["rows"] if row["dimensions"]["mailing"] == mailing]
    return {metric: row["values"][metric] for metric in ("deliveries", "mailing_orders", "mailing_revenue")}


# The builds made with the tenant's attribution window.
WITH_ATTRIBUTION_WINDOW = {ATTRIBUTED_ORDERS, AUDIENCE_SENDS}


def test_a_build_made_with_another_attribution_window_is_not_read(built_shop, sent):
    tenant, _facts = built_shop
    tenant.attribution_window_days += 9
    tenant.save()
    assert set(fresh_builds(tenant.pk)) == EVERY_BUILD - WITH_ATTRIBUTION_WINDOW
    facts = facts_load(tenant)
    attributed = tuple(m for m in ROLLED_UP if Source.ATTRIBUTION in {b.source for b in base_metrics(m)})
    wider = reconcile(tenant, facts, attributed, WHOLE_HISTORY, granularity="month", dimensions=("campaign",))
    assert reads(sent, "message_events") and not reads(sent, ATTRIBUTED_ORDERS)

    sent.clear()
    with tenant_context(tenant):  # the beat task sees the build is not fresh and rebuilds with the tenant's window
        assert preaggregations_rebuild_current()
    assert set(fresh_builds(tenant.pk)) == EVERY_BUILD
    again = reconcile(tenant, facts, attributed, WHOLE_HISTORY, granularity="month", dimensions=("campaign",))
    assert reads(sent, ATTRIBUTED_ORDERS) and not reads(sent, "message_events")
    assert again["rows"] == wider["rows"]
    # A rebuild told another window than the tenant's records it: its attributed orders are not for this tenant.
    preaggregations_rebuild(tenant_id=tenant.pk, timezone=tenant.timezone, attribution_window_days=1)
    assert set(fresh_builds(tenant.pk)) == EVERY_BUILD - WITH_ATTRIBUTION_WINDOW


def test_each_tenant_reads_its_own_rollups(built_shop, generated_tenant, sent):
    first, first_facts = built_shop
    second = generated_tenant(customers=120, seed=11)
    preaggregations_rebuild(tenant_id=second.pk, timezone=second.timezone)
    second_facts = facts_load(second)
    assert set(fresh_builds(first.pk)) == EVERY_BUILD  # the second tenant's rebuild left the first's builds alone
    answers = []
    for tenant, facts in ((first, first_facts), (second, second_facts)):
        answers.append(reconcile(tenant, facts, ROLLED_UP, WEB_MONTHS, granularity="week"))
    assert answers[0]["totals"] != answers[1]["totals"]
    assert reads(sent, MESSAGE_DAYS) and reads(sent, ATTRIBUTED_ORDERS)
    assert not any(reads(sent, table) for table in EVENT_TABLES)
