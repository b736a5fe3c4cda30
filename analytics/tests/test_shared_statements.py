"""A dashboard render runs each distinct statement once; what it shows is what each widget alone shows."""

from __future__ import annotations

from datetime import date
from typing import Any

from django_tenants.utils import tenant_context

from analytics import selectors
from analytics.dashboards import DASHBOARDS_BY_ID, DashboardState, dashboard_render, widget_render
from analytics.periods import Comparison, Period
from analytics.preaggregations import preaggregations_rebuild

DECEMBER = Period(date(2025, 12, 1), date(2025, 12, 31))


def test_widgets_share_equal_statements_and_show_the_same(generated_tenant, monkeypatch, settings):
    settings.ANALYTICS_QUERY_CACHE_SECONDS = 0  # the query cache would hide the statements
    tenant = generated_tenant(customers=120)
    preaggregations_rebuild(tenant_id=tenant.pk, timezone=tenant.timezone)
    sent: list[tuple[str, str]] = []
    real = selectors.tenant_query

    def recording(sql: str, params: dict[str, Any], *args: Any, **kwargs: Any) -> Any:
        sent.append((sql, repr(sorted(params.items()))))
        return real(sql, params, *args, **kwargs)

    monkeypatch.setattr(selectors, "tenant_query", recording)
    dashboard = DASHBOARDS_BY_ID["kpi_overview"]
    state = DashboardState(DECEMBER, Comparison.PREVIOUS_PERIOD)
    with tenant_context(tenant):
        alone = [widget_render(widget, state) for widget in dashboard.widgets]
        run_alone = list(sent)
        sent.clear()
        together = dashboard_render(dashboard, state)
    assert together == alone
    # kpis, by_store and by_employee ask for the same totals of the same six metrics, period and comparison:
    # alone they run them three times each, together once.
    assert len(run_alone) > len(set(run_alone))
    assert sorted(sent) == sorted(set(run_alone))
