"""Sales metrics read from the daily rollups (sales_days, assortment_days) equal the pandas reference, by every
dimension a rollup keeps, with filters and comparisons; a rollup is read only while fresh and only for its tenant."""

from __future__ import annotations

from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

from analytics.periods import Period
from analytics.preaggregations import ORDERS, preaggregations_rebuild
from analytics.semantic.catalog import DIMENSIONS_BY_ID, METRICS_BY_ID, base_metrics
from analytics.semantic.compiler import Filter, TenantSettings, compile_source
from analytics.semantic.registry import Source
from analytics.semantic.rollups import ASSORTMENT_DAYS, ROLLUP_SQL, SALES_DAYS
from analytics.tests.reference_metrics import ReferenceFilter
from analytics.tests.test_semantic_reconciliation import (
    ACROSS_NEW_YEAR,
    ALL_METRICS,
    MONTH,
    QUARTER,
    Top,
    reconcile,
    reconcile_comparison,
    run_query,
)
from integrations.ingest import SalesLine, sales_lines_write

# Every metric whose sales parts are all rolled up (ratios of them too).
ROLLED_UP = tuple(m for m in ALL_METRICS if all(base.id in ROLLUP_SQL for base in base_metrics(m)))
READS_SALES_DAYS, READS_ASSORTMENT_DAYS = f"FROM {SALES_DAYS} AS f", f"FROM {ASSORTMENT_DAYS} AS f"


def test_the_rolled_up_metrics_are_the_additive_sales_ones():
    assert {"revenue", "orders", "average_check", "discount_rate", "promo_share", "online_orders"} <= set(ROLLED_UP)
    assert not {"buyers", "return_receipts", "omnichannel_buyers"} & set(ROLLED_UP)
    assert all(METRICS_BY_ID[m].is_ratio or METRICS_BY_ID[m].source is Source.SALES for m in ROLLED_UP)


# dimension (or none) → period, granularity, comparison: each dimension a rollup keeps, by day, week and month.
BY_DIMENSION = {
    None: (ACROSS_NEW_YEAR, "day", "previous_year"),
    "store": (QUARTER, "month", "previous_year"),
    "employee": (MONTH, "week", "previous_period"),
    "channel": (ACROSS_NEW_YEAR, "day", "previous_period"),
    "category": (QUARTER, "month", "previous_period"),
    "brand": (MONTH, "week", "previous_year"),
    "product": (MONTH, None, "previous_period"),
    "promo_code": (ACROSS_NEW_YEAR, "week", "previous_period"),
}


OTHER_GRANULARITY = {None: "week", "day": "month", "week": "month", "month": "day"}


def test_every_rolled_up_metric_by_dimension_and_granularity_with_comparison(built_shop, sent):
    for dimension, (period, granularity, comparison) in BY_DIMENSION.items():
        sent.clear()
        dimensions = (dimension,) if dimension else ()
        reconcile_comparison(*built_shop, ROLLED_UP, period, comparison, granularity, dimensions)
        reconcile(*built_shop, ROLLED_UP, period, granularity=OTHER_GRANULARITY[granularity], dimensions=dimensions)
        # Rows by an assortment dimension read assortment_days; totals, and everything else, sales_days.
        rows = (
            READS_ASSORTMENT_DAYS if dimension in ("category", "brand", "product", "promo_code") else READS_SALES_DAYS
        )
        assert all(rows in sql or READS_SALES_DAYS in sql for sql in sent), dimension
        assert any(rows in sql for sql in sent), dimension


def filters_of(facts: Any, *specs: tuple) -> tuple[ReferenceFilter, ...]:
    return tuple(
        ReferenceFilter(dimension, values.values(facts) if isinstance(values, Top) else values, exclude)
        for dimension, values, exclude in specs
    )


def test_filters_and_what_a_rollup_does_not_keep(built_shop, sent):
    tenant, facts = built_shop
    two_stores = ("store", Top("lines", "store", 2), False)
    one_category = ("category", Top("lines", "category", 1), False)
    reconcile(tenant, facts, ROLLED_UP, QUARTER, dimensions=("category",), filters=filters_of(facts, two_stores))
    reconcile(tenant, facts, ROLLED_UP, MONTH, dimensions=("store",), filters=filters_of(facts, one_category))
    online = filters_of(facts, ("channel", ("online",), True))
    reconcile(tenant, facts, ROLLED_UP, MONTH, granularity="week", dimensions=("employee",), filters=online)
    without_two = filters_of(facts, ("brand", Top("lines", "brand", 2), True))
    reconcile(tenant, facts, ("revenue", "items", "discount_rate"), QUARTER, filters=without_two)
    # Rows, then totals (the filters without the dimensions), of each sliced query.
    assert [READS_ASSORTMENT_DAYS if READS_ASSORTMENT_DAYS in sql else READS_SALES_DAYS in sql for sql in sent] == [
        READS_ASSORTMENT_DAYS,
        True,
        READS_ASSORTMENT_DAYS,
        READS_ASSORTMENT_DAYS,
        True,
        True,
        READS_ASSORTMENT_DAYS,  # receipts are not asked for: the brands left add up
    ]

    # An order with lines in two categories is one receipt of both together: rows per category cannot say so.
    sent.clear()
    two_categories = filters_of(facts, ("category", Top("lines", "category", 2), False))
    reconcile(tenant, facts, ROLLED_UP, QUARTER, granularity="month", dimensions=("store",), filters=two_categories)
    assert not any(ASSORTMENT_DAYS in sql or SALES_DAYS in sql for sql in sent)

    sent.clear()
    reconcile(tenant, facts, ("revenue", "return_receipts"), MONTH, dimensions=("store",))  # not additive
    reconcile(tenant, facts, ROLLED_UP, MONTH, dimensions=("weekday",))  # a rollup row is a whole day
    reconcile(tenant, facts, ROLLED_UP, MONTH, dimensions=("employee", "category"))  # no such key
    reconcile(tenant, facts, ROLLED_UP, MONTH, dimensions=("city",))
    # Rows, then totals: the totals of the last three need no dimension.
    assert [READS_SALES_DAYS in sql for sql in sent] == [False, False, False, True, False, True, False, True]
    assert not any(ASSORTMENT_DAYS in sql for sql in sent)


def sale(order_id: str, amount: str, category: str, store: str = "A") -> SalesLine:
    return SalesLine(
        order_id=order_id,
        line_no=1,
        ts=datetime(2025, 3, 10, 12, tzinfo=UTC),
        amount=Decimal(amount),
        customer_id="C1",
        store=store,
        category=category,
    )


MARCH = (date(2025, 3, 1), date(2025, 3, 31))


def by(answer: dict) -> dict[tuple, dict]:
    return {tuple(row["dimensions"].values()): row["values"] for row in answer["rows"]}


def test_a_stale_rollup_is_not_read(tenant, sent):
    sales_lines_write([sale("R1", "100.00", "shoes")], source="test", tenant_id=tenant.pk)
    preaggregations_rebuild(tenant_id=tenant.pk, timezone=tenant.timezone)
    metrics = ("revenue", "orders")
    assert by(run_query(tenant, metrics, MARCH, dimensions=("category",))) == {
        ("shoes",): {"revenue": Decimal("100.00"), "orders": 1}
    }
    assert all(READS_ASSORTMENT_DAYS in sql or READS_SALES_DAYS in sql for sql in sent)
    sent.clear()

    sales_lines_write([sale("R2", "50.00", "hats")], source="test", tenant_id=tenant.pk)
    assert by(run_query(tenant, metrics, MARCH, dimensions=("category",))) == {
        ("shoes",): {"revenue": Decimal("100.00"), "orders": 1},
        ("hats",): {"revenue": Decimal("50.00"), "orders": 1},
    }
    assert run_query(tenant, metrics, MARCH)["totals"]["values"] == {"revenue": Decimal("150.00"), "orders": 2}
    assert sent and not any(ASSORTMENT_DAYS in sql or SALES_DAYS in sql for sql in sent)


def test_a_rollup_is_read_only_when_its_own_build_is_fresh():
    """With the orders build alone (say the rollups failed to build) sales stay on ``orders``."""
    metrics = (METRICS_BY_ID["revenue"],)
    by_store = ((DIMENSIONS_BY_ID["store"],), ())
    of_shoes = ((), (Filter(DIMENSIONS_BY_ID["category"], ("shoes",)),))

    def tables_read(builds: dict[str, int]) -> list[str]:
        settings = TenantSettings(
            ZoneInfo("Europe/Moscow"), churn_window_days=90, attribution_window_days=7, builds=builds
        )
        statements = [
            compile_source(Source.SALES, metrics, dimensions, filters, Period(*MARCH), None, settings).sql
            for dimensions, filters in (by_store, of_shoes)
        ]
        return [sql.split(" FROM ")[1].split(" AS ")[0] for sql in statements]

    assert tables_read({ORDERS: 1}) == ["orders", "sales_lines"]
    assert tables_read({ORDERS: 1, SALES_DAYS: 1}) == [SALES_DAYS, "sales_lines"]
    assert tables_read({ORDERS: 1, SALES_DAYS: 1, ASSORTMENT_DAYS: 1}) == [SALES_DAYS, ASSORTMENT_DAYS]


def test_each_tenant_reads_its_own_rollups(make_tenant, sent):
    first, second = make_tenant(), make_tenant()
    sales_lines_write([sale("A1", "100.00", "shoes")], source="test", tenant_id=first.pk)
    sales_lines_write(
        [sale("B1", "30.00", "hats", store="B"), sale("B2", "20.00", "shoes", store="B")],
        source="test",
        tenant_id=second.pk,
    )
    for tenant in (second, first):
        preaggregations_rebuild(tenant_id=tenant.pk, timezone=tenant.timezone)
    metrics = ("revenue", "orders")
    assert by(run_query(first, metrics, MARCH, dimensions=("category",))) == {
        ("shoes",): {"revenue": Decimal("100.00"), "orders": 1}
    }
    assert by(run_query(second, metrics, MARCH, dimensions=("store",))) == {
        ("B",): {"revenue": Decimal("50.00"), "orders": 2}
    }
    assert by(run_query(second, metrics, MARCH, dimensions=("category",))) == {
        ("hats",): {"revenue": Decimal("30.00"), "orders": 1},
        ("shoes",): {"revenue": Decimal("20.00"), "orders": 1},
    }
    assert any(READS_ASSORTMENT_DAYS in sql for sql in sent) and any(READS_SALES_DAYS in sql for sql in sent)
