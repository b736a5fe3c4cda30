"""Customer metrics from customer_days and customer_base_days, and contact metrics from contact_days, in two
tenants whose generated data share customer ids, store names and cities: the same queries give each tenant its
own numbers (its pandas reference), from its own fresh builds, and never read the facts."""

from __future__ import annotations

from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

import pytest

from analytics.preaggregations import (
    CONTACT_DAYS,
    EVERY_BUILD,
    MESSAGE_DAYS,
    WEB_DAYS,
    fresh_builds,
    preaggregations_rebuild,
)
from analytics.semantic.catalog import base_metrics, metric_sources
from analytics.semantic.customer_days import CUSTOMER_BASE_DAYS, CUSTOMER_DAYS, CUSTOMER_FLOWS
from analytics.semantic.metrics import CUSTOMER_DAYS_SQL
from analytics.semantic.registry import Source
from analytics.tests.reference_metrics import Facts, ReferenceFilter, facts_load
from analytics.tests.test_event_rollups import reads
from analytics.tests.test_semantic_reconciliation import (
    ACROSS_NEW_YEAR,
    ALL_METRICS,
    MONTH,
    QUARTER,
    WHOLE_HISTORY,
    Top,
    applicable,
    reconcile,
)
from integrations.ingest import SalesLine, sales_lines_write

# Buyers by sales channel are counted for the whole shop only: the plain month query covers them.
CHANNEL_BUYERS = frozenset(("online_buyers", "offline_buyers", "omnichannel_buyers"))
CUSTOMER_METRICS = tuple(m for m in ALL_METRICS if all(b.id in CUSTOMER_DAYS_SQL for b in base_metrics(m)))
SLICED_CUSTOMER_METRICS = tuple(m for m in CUSTOMER_METRICS if not {b.id for b in base_metrics(m)} & CHANNEL_BUYERS)
CONTACT_METRICS = tuple(m for m in ALL_METRICS if metric_sources(m) == {Source.CONTACTS})
# What the general paths read instead of the pre-aggregations.
FACT_TABLES = ("sales_lines", "orders", "customer_histories", "customer_attributes")

# (dimensions, period, granularity): each slice the customer builds keep, over buckets that are not whole calendar
# ones (a week clipped by the period, a period of no calendar length), so the purchase days themselves are read.
CUSTOMER_QUERIES = (
    ((), ACROSS_NEW_YEAR, "week"),
    (("store",), (date(2025, 4, 10), date(2025, 6, 20)), None),
    (("employee",), MONTH, "week"),
    (("channel",), (date(2025, 2, 12), date(2025, 5, 20)), None),
)
# (dimensions, period, granularity, filtered to the two commonest values of the dimension): every contact_days grain.
CONTACT_QUERIES = (
    ((), ACROSS_NEW_YEAR, "week", False),
    (("city",), QUARTER, "month", True),
    (("gender",), WHOLE_HISTORY, "quarter", False),
    (("age_band",), (date(2025, 5, 3), date(2025, 9, 14)), "month", False),
    (("home_store",), MONTH, None, False),
    (("loyalty_program",), ACROSS_NEW_YEAR, None, False),
)


@pytest.fixture
def sent(sent, settings) -> list[str]:
    """The conftest's recorded statements, with every answer computed (none cached)."""
    settings.ANALYTICS_QUERY_CACHE_SECONDS = 0
    return sent


@pytest.fixture
def two_shops(built_shop, generated_tenant) -> list[tuple[Any, Facts]]:
    """The conftest's built shop and a smaller one from another seed, built after it."""
    second = generated_tenant(customers=200, seed=11)
    preaggregations_rebuild(tenant_id=second.pk, timezone=second.timezone)
    return [built_shop, (second, facts_load(second))]


def customer_answers(tenant: Any, facts: Facts) -> list[dict]:
    answers = [reconcile(tenant, facts, CUSTOMER_METRICS, MONTH)]
    for dimensions, period, granularity in CUSTOMER_QUERIES:
        metrics = tuple(m for m in SLICED_CUSTOMER_METRICS if m in applicable(dimensions))
        answers.append(reconcile(tenant, facts, metrics, period, granularity=granularity, dimensions=dimensions))
    return answers


def contact_answers(tenant: Any, facts: Facts) -> list[dict]:
    answers = []
    for dimensions, period, granularity, filtered in CONTACT_QUERIES:
        filters = (ReferenceFilter(dimensions[0], Top("contacts", dimensions[0], 2).values(facts)),) if filtered else ()
        options = {"granularity": granularity, "dimensions": dimensions, "filters": filters}
        answers.append(reconcile(tenant, facts, CONTACT_METRICS, period, **options))
    return answers


def reads_customer_builds(sql: str) -> bool:
    """Whether a statement reads the base, and the purchase days or their sums per calendar bucket."""
    return reads([sql], CUSTOMER_BASE_DAYS) and (reads([sql], CUSTOMER_DAYS) or reads([sql], CUSTOMER_FLOWS))


def test_the_shops_share_customer_ids_stores_and_cities(two_shops):
    (_first, first), (_second, second) = two_shops
    for frame, column in (("lines", "customer_id"), ("lines", "store"), ("lines", "employee"), ("contacts", "city")):
        shared = set(getattr(first, frame)[column]) & set(getattr(second, frame)[column]) - {""}
        assert len(shared) > 3, (frame, column)


def test_each_tenant_reads_its_own_customer_and_contact_days(two_shops, sent):
    (first, _facts), (second, _second_facts) = two_shops
    # The second tenant's rebuild left the first's builds alone.
    assert set(fresh_builds(first.pk)) == set(fresh_builds(second.pk)) == EVERY_BUILD
    answers = []
    for tenant, facts in two_shops:
        sent.clear()
        customers = customer_answers(tenant, facts)
        assert sent and all(reads_customer_builds(sql) for sql in sent)
        # The rows of each query over buckets that are not whole calendar ones read the purchase days themselves.
        assert sum(reads([sql], CUSTOMER_DAYS) for sql in sent) >= len(CUSTOMER_QUERIES)
        sent.clear()
        contacts = contact_answers(tenant, facts)
        assert sent and all(reads([sql], CONTACT_DAYS) for sql in sent)
        answers.append(customers + contacts)
    assert not any(reads(sent, table) for table in FACT_TABLES)
    # The same query gives the two tenants different numbers: had one read the other's rows, a reference would differ.
    for first_answer, second_answer in zip(*answers, strict=True):
        assert first_answer["totals"]["values"] != second_answer["totals"]["values"]


def test_new_data_in_one_tenant_leaves_the_other_on_its_builds(two_shops, sent):
    (first, first_facts), (second, _facts) = two_shops
    sales_lines_write(
        [
            SalesLine(
                order_id="O-late",
                line_no=1,
                ts=datetime(2025, 3, 12, 12, tzinfo=UTC),
                amount=Decimal("90.00"),
                customer_id="C-late",
            )
        ],
        source="test",
        tenant_id=second.pk,
    )
    # Every build derived from the second tenant's sales is stale there; the first tenant's are all fresh.
    assert set(fresh_builds(second.pk)) == {CONTACT_DAYS, MESSAGE_DAYS, WEB_DAYS}
    assert set(fresh_builds(first.pk)) == EVERY_BUILD
    second_facts = facts_load(second)
    customer_answers(second, second_facts)
    assert reads(sent, "orders") or reads(sent, "sales_lines")
    assert not any(reads(sent, table) for table in (CUSTOMER_DAYS, CUSTOMER_BASE_DAYS))
    sent.clear()
    customer_answers(first, first_facts)
    assert all(reads_customer_builds(sql) for sql in sent)
    assert not any(reads(sent, table) for table in FACT_TABLES)
