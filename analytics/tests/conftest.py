"""Fixtures for analytics tests: a tenant filled by the demo generator, and its facts as pandas frames.

Reconciliation tests compute every expected number with pandas from the rows read back here,
never from the generator's own bookkeeping.
"""

from __future__ import annotations

from datetime import date
from typing import Any

import pandas as pd
import pytest

from analytics import selectors
from analytics.clickhouse.query import tenant_query
from analytics.preaggregations import preaggregations_rebuild
from integrations.demo.services import demo_data_generate

GENERATED_END_DAY = date(2026, 1, 1)  # histories end on 2025-12-31
GENERATED_MONTHS = 24


def facts_frame(table: str, tenant_id: int) -> pd.DataFrame:
    """Every current row of a fact table for one tenant (FINAL: re-imports collapsed)."""
    result = tenant_query(f"SELECT * FROM {table} FINAL WHERE tenant_id = {{tenant_id:UInt32}}", tenant_id=tenant_id)
    return pd.DataFrame(result.result_rows, columns=result.column_names)


@pytest.fixture
def generated_tenant(make_tenant):
    """A factory: a tenant with ``customers`` generated customers over two years ending 2025-12-31."""

    def make(customers: int = 300, seed: int = 7, **tenant_kwargs):
        tenant = make_tenant(**tenant_kwargs)
        demo_data_generate(
            tenant=tenant, customers=customers, seed=seed, months=GENERATED_MONTHS, end_day=GENERATED_END_DAY
        )
        return tenant

    return make


@pytest.fixture
def sent(monkeypatch) -> list[str]:
    """The SQL of every statement the semantic layer sends from now on, in order."""
    statements: list[str] = []
    real = selectors.tenant_query

    def recording(sql: str, *args: Any, **kwargs: Any) -> Any:
        statements.append(sql)
        return real(sql, *args, **kwargs)

    monkeypatch.setattr(selectors, "tenant_query", recording)
    return statements


@pytest.fixture
def built_shop(generated_tenant) -> tuple[Any, Any]:
    """A generated tenant with fresh pre-aggregation builds, and its facts for the pandas reference."""
    from analytics.tests.reference_metrics import facts_load  # it imports this module: import late

    tenant = generated_tenant(customers=300)
    preaggregations_rebuild(tenant_id=tenant.pk, timezone=tenant.timezone)
    return tenant, facts_load(tenant)
