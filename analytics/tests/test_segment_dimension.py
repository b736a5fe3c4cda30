"""The ``segment`` dimension against an independent pandas computation: a customer belongs to a segment for a
period when the segment's latest snapshot computed by the end of the period's last day (tenant's timezone) lists
them. Each segment's row is the reference over its members' rows only; a filter is the reference over the members
of the segments named (or everyone else's rows, excluding them); the totals stay the un-sliced totals."""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pandas as pd
import pytest
from django.utils import translation

from analytics.clickhouse.query import tenant_insert, tenant_query
from analytics.dashboards import dimension_value_label
from analytics.preaggregations import EVERY_BUILD, fresh_builds, preaggregations_rebuild
from analytics.tests.reference_metrics import (
    Facts,
    ReferenceAnswer,
    ReferenceFilter,
    facts_load,
    is_blank,
    reference_query,
)
from analytics.tests.test_semantic_query import run_command
from analytics.tests.test_semantic_reconciliation import (
    ALL_METRICS,
    applicable,
    assert_reconciles,
    facts_copy,
    run_query,
)

MARCH = (date(2025, 3, 1), date(2025, 3, 31))
SECOND_QUARTER = (date(2025, 4, 1), date(2025, 6, 30))
NEW_YORK = "America/New_York"
# (segment id, UTC instant it was computed at, members: a slice of the tenant's customers sorted by id).
# Moscow is UTC+3 and New York UTC-4 (from 9 March): the snapshots of 31 March 22:30 and 30 June 23:30 UTC are
# after March's and the quarter's end in Moscow, before them in New York. Segment 4 is computed after every period.
SNAPSHOTS = (
    (1, datetime(2025, 1, 10, 3, 0), slice(0, 80)),
    (1, datetime(2025, 3, 31, 22, 30), slice(50, 140)),
    (1, datetime(2025, 5, 20, 8, 0), slice(100, 190)),
    (1, datetime(2025, 7, 1, 12, 0), slice(200, 300)),
    (2, datetime(2025, 2, 14, 12, 0), slice(60, 160)),
    (2, datetime(2025, 6, 30, 23, 30), slice(0, 40)),
    (3, datetime(2025, 4, 15, 9, 0), slice(150, 230)),
    (4, datetime(2025, 9, 1, 0, 0), slice(0, 300)),
)
# Builds that add customers up (no customer id left to join the snapshots with). The per-customer ones (orders,
# customer_histories, attributed_orders) still serve a segment query: joined with the snapshots like the facts.
ROLLUPS = ("sales_days", "assortment_days", "customer_days", "customer_base_days", "customer_flows")
ROLLUPS += ("message_days", "web_days", "contact_days")


def snapshots_write(tenant: Any, snapshots: tuple = SNAPSHOTS) -> None:
    customers = sorted(facts_load(tenant).contacts.customer_id)
    rows = [
        (segment, computed_at.replace(tzinfo=UTC), customer)
        for segment, computed_at, members in snapshots
        for customer in customers[members]
    ]
    tenant_insert("segment_snapshots", rows, ["segment_id", "computed_at", "customer_id"], tenant_id=tenant.pk)


def memberships(tenant: Any, last_day: date) -> dict[str, set[str]]:
    """Segment id → its members for a period ending on ``last_day``, from the snapshot rows read back."""
    result = tenant_query(
        "SELECT segment_id, computed_at, customer_id FROM segment_snapshots WHERE tenant_id = {tenant_id:UInt32}",
        tenant_id=tenant.pk,
    )
    snapshots = pd.DataFrame(result.result_rows, columns=result.column_names)
    snapshots["computed_at"] = pd.to_datetime(snapshots.computed_at, utc=True)
    end = pd.Timestamp(last_day + timedelta(days=1)).tz_localize(tenant.timezone)  # the local midnight after it
    known = snapshots[snapshots.computed_at < end]
    latest = known[known.computed_at == known.groupby("segment_id").computed_at.transform("max")]
    return {str(segment): set(rows.customer_id) for segment, rows in latest.groupby("segment_id")}


def facts_of(facts: Facts, customers: set[str], keep: bool = True) -> Facts:
    """The facts with only these customers' rows (``keep``) or only everyone else's, anonymous rows included."""
    frames = {"lines": facts.lines, "messages": facts.messages, "web": facts.web, "contacts": facts.contacts}
    return replace(facts, **{name: frame[frame.customer_id.isin(customers) == keep] for name, frame in frames.items()})


def sliced_reference(
    facts: Facts, membership: dict[str, set[str]], metrics: tuple[str, ...], period: tuple, granularity: str | None
) -> ReferenceAnswer:
    """Each segment's rows: the reference over its members; the totals: over everyone."""
    by_segment = {
        segment: reference_query(facts_of(facts, members), metrics, *period, granularity)
        for segment, members in membership.items()
    }
    nobody = reference_query(facts_of(facts, set()), metrics, *period, granularity)
    rows = {
        (bucket, (segment,)): values
        for segment, answer in by_segment.items()
        for (bucket, _values), values in answer.rows.items()
    }

    def evaluate(key: tuple) -> dict[str, Any]:
        bucket, (segment,) = key
        return by_segment.get(segment, nobody).evaluate((bucket, ()))

    return ReferenceAnswer(rows, reference_query(facts, metrics, *period, granularity).totals, evaluate)


def reconcile_segments(tenant: Any, facts: Facts, period: tuple[date, date], granularity: str | None) -> None:
    """Sliced by segment, filtered to two segments, excluding one, and filtered while sliced by city."""
    membership = memberships(tenant, period[1])
    sliced = run_query(tenant, ALL_METRICS, period, dimensions=("segment",), granularity=granularity)
    assert_reconciles(sliced, sliced_reference(facts, membership, ALL_METRICS, period, granularity))
    shown = {row["dimensions"]["segment"] for row in sliced["rows"] if not is_blank(row["values"])}
    assert shown == set(membership) and "4" not in shown, "segment 4 is computed after the period's end"
    named = ReferenceFilter("segment", ("1", "3"))
    members = set().union(*(membership.get(segment, set()) for segment in named.values))
    filtered = run_query(tenant, ALL_METRICS, period, granularity=granularity, filters=(named,))
    assert_reconciles(filtered, reference_query(facts_of(facts, members), ALL_METRICS, *period, granularity))
    excluded = ReferenceFilter("segment", ("2",), exclude=True)
    answer = run_query(tenant, ALL_METRICS, period, granularity=granularity, filters=(excluded,))
    everyone_else = facts_of(facts, membership["2"], keep=False)
    assert_reconciles(answer, reference_query(everyone_else, ALL_METRICS, *period, granularity))
    by_city = applicable(("city",))
    answer = run_query(tenant, by_city, period, dimensions=("city",), filters=(named,))
    assert_reconciles(answer, reference_query(facts_of(facts, members), by_city, *period, dimensions=("city",)))


@pytest.fixture
def shop(generated_tenant) -> tuple[Any, Facts]:
    """A generated tenant in Moscow with the snapshots written."""
    tenant = generated_tenant(customers=300)
    snapshots_write(tenant)
    return tenant, facts_load(tenant)


# Tenant B's own snapshots: segment 1 again, computed in the quarter after A's last one in it, and segment 7.
OTHER_TENANTS_SNAPSHOTS = (*SNAPSHOTS, (1, datetime(2025, 6, 15, 10, 0), slice(20, 45)))
OTHER_TENANTS_SNAPSHOTS += ((7, datetime(2025, 3, 1, 10, 0), slice(0, 300)),)


@pytest.fixture
def new_york_shop(shop, make_tenant) -> tuple[Any, Facts]:
    """The same rows in a tenant in New York, with snapshots of its own: A's, a later one of segment 1, segment 7."""
    tenant = make_tenant(timezone=NEW_YORK)
    facts_copy(shop[1], tenant)
    snapshots_write(tenant, OTHER_TENANTS_SNAPSHOTS)
    return tenant, facts_load(tenant)


def test_segments_reconcile_in_two_timezones_and_tenants(shop, new_york_shop):
    for tenant, facts in (shop, new_york_shop):
        for period, granularity in ((MARCH, None), (SECOND_QUARTER, "month")):
            reconcile_segments(tenant, facts, period, granularity)
    moscow, new_york = (memberships(tenant, MARCH[1]) for tenant, _facts in (shop, new_york_shop))
    # The data tells the cases apart: the snapshot of 31 March 22:30 UTC is in March in New York only, tenant B's
    # segment 1 of June changes its quarter only, and customers are in two segments.
    assert moscow["1"] != new_york["1"]
    assert memberships(shop[0], SECOND_QUARTER[1])["1"] != memberships(new_york_shop[0], SECOND_QUARTER[1])["1"]
    assert moscow["1"] & moscow["2"]
    assert "7" in new_york and "7" not in moscow
    seven = (ReferenceFilter("segment", ("7",)),)
    assert is_blank(run_query(shop[0], ALL_METRICS, MARCH, filters=seven)["totals"]["values"])
    assert not is_blank(run_query(new_york_shop[0], ALL_METRICS, MARCH, filters=seven)["totals"]["values"])


def test_a_segment_of_no_one_is_an_empty_answer(shop):
    tenant, _facts = shop
    for values in (("999",), ("not-an-id",)):
        answer = run_query(tenant, ALL_METRICS, SECOND_QUARTER, filters=(ReferenceFilter("segment", values),))
        assert answer["rows"] == []
        assert is_blank(answer["totals"]["values"])
    answer = run_query(tenant, ALL_METRICS, SECOND_QUARTER, filters=(ReferenceFilter("segment", ("1",)),))
    assert not is_blank(answer["totals"]["values"])


def test_preaggregations_leave_segments_to_the_general_path(generated_tenant, sent):
    """With every build fresh, a segment slice or filter is answered without the rollups (no customer left in them
    to join the snapshots with), from the per-customer builds, and the answers equal the reference."""
    tenant = generated_tenant(customers=120)
    snapshots_write(tenant)  # before the builds: a snapshot written after them makes them stale
    preaggregations_rebuild(tenant_id=tenant.pk, timezone=tenant.timezone)
    assert set(fresh_builds(tenant.pk)) == EVERY_BUILD
    facts = facts_load(tenant)
    membership = memberships(tenant, SECOND_QUARTER[1])
    named = ReferenceFilter("segment", ("1", "2"))
    for granularity in (None, "month"):
        sent.clear()
        answer = run_query(tenant, ALL_METRICS, SECOND_QUARTER, granularity=granularity, filters=(named,))
        members = membership["1"] | membership["2"]
        assert_reconciles(answer, reference_query(facts_of(facts, members), ALL_METRICS, *SECOND_QUARTER, granularity))
        assert sent and all("segment_snapshots" in sql for sql in sent)
        assert not [table for table in ROLLUPS for sql in sent if f"FROM {table}" in sql]
        assert any("FROM orders AS f" in sql for sql in sent) and any("FROM customer_histories" in sql for sql in sent)
        sent.clear()
        answer = run_query(tenant, ALL_METRICS, SECOND_QUARTER, dimensions=("segment",), granularity=granularity)
        expected = sliced_reference(facts, membership, ALL_METRICS, SECOND_QUARTER, granularity)
        assert_reconciles(answer, expected)
        sliced = [sql for sql in sent if "segment_snapshots" in sql]
        assert sliced and not [table for table in ROLLUPS for sql in sliced if f"FROM {table}" in sql]
    assert any(f"FROM {table}" in sql for table in ROLLUPS for sql in sent), "the un-sliced totals read them"


def test_the_catalog_lists_the_segment_dimension():
    printed = json.loads(run_command("--catalog"))
    (segment,) = [dimension for dimension in printed["dimensions"] if dimension["id"] == "segment"]
    assert segment["label"] == "Segment"
    assert segment["sources"] == ["attribution", "contacts", "customers", "messages", "sales", "web"]
    assert "do not add up to the total" in segment["description"]
    every_metric = {metric["id"]: metric["dimensions"] for metric in printed["metrics"]}
    assert all("segment" in dimensions for dimensions in every_metric.values())


def test_segment_values_are_labelled_in_the_language():
    assert dimension_value_label("segment", "12") == "Segment 12"
    with translation.override("ru"):
        assert dimension_value_label("segment", "12") == "Сегмент 12"
