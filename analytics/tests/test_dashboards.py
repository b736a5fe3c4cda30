"""Built-in dashboards: every widget is a valid query, and what they show matches pandas over the same facts."""

from __future__ import annotations

from datetime import date
from decimal import Decimal

import pandas as pd
import pytest
from django_tenants.utils import tenant_context

from analytics.dashboards import (
    DASHBOARDS,
    DashboardState,
    Preset,
    WidgetKind,
    dashboard_render,
    dashboard_state_parse,
    preset_period,
    store_list,
    trend_granularity,
    widget_render,
)
from analytics.periods import Comparison, Granularity, Period
from analytics.semantic.catalog import METRICS_BY_ID
from analytics.semantic.spec import query_parse
from analytics.tests.conftest import facts_frame
from tenants.errors import ApplicationError

YEAR_2025 = Period(date(2025, 1, 1), date(2025, 12, 31))
WIDGETS = [(dashboard, widget) for dashboard in DASHBOARDS for widget in dashboard.widgets]
CHARTS = (WidgetKind.LINE, WidgetKind.BAR, WidgetKind.STACKED_BAR, WidgetKind.HEATMAP, WidgetKind.FUNNEL)


def local_lines(tenant) -> pd.DataFrame:
    """Sales lines with their local date, weekday (1 = Monday) and hour in the tenant's timezone."""
    lines = facts_frame("sales_lines", tenant.pk)
    local = pd.to_datetime(lines.ts, utc=True).dt.tz_convert(tenant.timezone)
    return lines.assign(
        day=local.dt.date, month=local.dt.strftime("%Y-%m"), weekday=local.dt.day_of_week + 1, hour=local.dt.hour
    )


def in_period(frame: pd.DataFrame, period: Period) -> pd.DataFrame:
    return frame[(frame.day >= period.start) & (frame.day <= period.end)]


def cards_by_metric(rendered: dict) -> dict:
    return {card["metric"]: card for card in rendered["cards"]}


def widget_of(dashboard_id: str, widget_id: str):
    return next(w for d, w in WIDGETS if d.id == dashboard_id and w.id == widget_id)


@pytest.mark.parametrize(("dashboard", "widget"), WIDGETS, ids=[f"{d.id}.{w.id}" for d, w in WIDGETS])
def test_every_widget_is_a_valid_query_of_the_registry(dashboard, widget):
    for comparison in (None, Comparison.PREVIOUS_PERIOD, Comparison.PREVIOUS_YEAR):
        for stores in ((), ("Store 1", "Store 2")):
            for period in (YEAR_2025, Period(date(2025, 3, 1), date(2025, 3, 7))):
                query = query_parse(widget.query(period, comparison, stores))
                assert query.metrics == widget.metrics and query.dimensions == widget.dimensions
                assert (query.comparison is not None) == (comparison is not None and widget.compare)
                assert bool(query.filters) == (bool(stores) and widget.store_filterable)
    assert str(dashboard.label) and str(widget.title)
    if widget.kind in CHARTS:  # one value axis per chart
        assert len({METRICS_BY_ID[m].unit for m in widget.metrics}) == 1, widget.metrics
    if widget.kind is WidgetKind.HEATMAP:
        assert len(widget.dimensions) == 2 and len(widget.metrics) == 1
    if widget.kind is WidgetKind.FUNNEL:
        assert not widget.dimensions and not widget.granularity
    if widget.dimensions and widget.granularity and widget.kind in CHARTS:
        assert len(widget.metrics) == 1 and len(widget.dimensions) == 1


def test_ids_are_unique():
    assert len({d.id for d in DASHBOARDS}) == len(DASHBOARDS)
    for dashboard in DASHBOARDS:
        assert len({w.id for w in dashboard.widgets}) == len(dashboard.widgets), dashboard.id


def test_presets_are_the_calendar_periods_of_today():
    today = date(2025, 5, 15)
    assert preset_period(Preset.LAST_30_DAYS, today) == Period(date(2025, 4, 16), today)
    assert preset_period(Preset.THIS_MONTH, today) == Period(date(2025, 5, 1), today)
    assert preset_period(Preset.LAST_MONTH, today) == Period(date(2025, 4, 1), date(2025, 4, 30))
    assert preset_period(Preset.LAST_MONTH, date(2025, 1, 3)) == Period(date(2024, 12, 1), date(2024, 12, 31))
    assert preset_period(Preset.THIS_QUARTER, today) == Period(date(2025, 4, 1), today)
    assert preset_period(Preset.THIS_YEAR, today) == Period(date(2025, 1, 1), today)
    assert preset_period(Preset.LAST_12_MONTHS, today) == Period(date(2024, 6, 1), today)


def test_a_trend_steps_down_to_a_granularity_that_gives_several_points():
    assert trend_granularity(YEAR_2025, Granularity.MONTH) is Granularity.MONTH
    assert trend_granularity(Period(date(2025, 3, 1), date(2025, 3, 30)), Granularity.MONTH) is Granularity.WEEK
    assert trend_granularity(Period(date(2025, 3, 3), date(2025, 3, 9)), Granularity.MONTH) is Granularity.DAY
    assert trend_granularity(Period(date(2025, 3, 3), date(2025, 3, 3)), Granularity.MONTH) is Granularity.DAY


def test_the_page_state_from_the_query_string():
    today = date(2025, 5, 15)
    default = dashboard_state_parse({}, (), today)
    assert default == DashboardState(preset_period(Preset.LAST_30_DAYS, today), Comparison.PREVIOUS_PERIOD)
    state = dashboard_state_parse({"from": "2025-01-01", "to": "2025-01-31", "compare": ""}, ("A", "", "A"), today)
    assert state == DashboardState(Period(date(2025, 1, 1), date(2025, 1, 31)), None, ("A",))
    assert dashboard_state_parse({"preset": "this_year", "compare": "previous_year"}, (), today) == DashboardState(
        Period(date(2025, 1, 1), today), Comparison.PREVIOUS_YEAR
    )


@pytest.mark.parametrize(
    ("raw", "says"),
    [
        ({"from": "2025-13-01", "to": "2025-12-31"}, "2025-13-01"),
        ({"from": "2025-02-01", "to": "2025-01-01"}, "before it starts"),
        ({"from": "2025-02-01"}, "both ends"),
        ({"from": "2025-01-01", "to": "2025-01-31", "compare": "last_week"}, "last_week"),
        ({"preset": "yesterday"}, "yesterday"),
    ],
)
def test_a_bad_page_state_says_what_is_wrong(raw, says):
    with pytest.raises(ApplicationError, match=says):
        dashboard_state_parse(raw, (), date(2025, 5, 15))


def test_every_dashboard_answers_on_a_generated_tenant_as_pandas_does(generated_tenant):
    tenant = generated_tenant(customers=150, seed=11)
    lines = local_lines(tenant)
    year, previous = in_period(lines, YEAR_2025), in_period(lines, Period(date(2024, 1, 1), date(2024, 12, 31)))
    state = DashboardState(YEAR_2025, Comparison.PREVIOUS_PERIOD)
    with tenant_context(tenant):
        rendered = {dashboard.id: {w["id"]: w for w in dashboard_render(dashboard, state)} for dashboard in DASHBOARDS}
        stores = store_list(YEAR_2025)

    # KPI cards: the year's revenue and receipts, and their change against 2024.
    kpis = cards_by_metric(rendered["kpi_overview"]["kpis"])
    assert kpis["revenue"]["value"] == year.amount.sum() == Decimal(kpis["revenue"]["text"].replace(",", ""))
    sales, previous_sales = year[year.is_return == 0], previous[previous.is_return == 0]
    assert kpis["orders"]["value"] == sales.order_id.nunique()
    change = Decimal(sales.order_id.nunique() - previous_sales.order_id.nunique()) / previous_sales.order_id.nunique()
    # Shown to 0.1 % after the answer's own rounding to 0.01 %.
    shown = Decimal(kpis["orders"]["change"]["text"].removesuffix(" %"))
    assert abs(shown - change * 100) <= Decimal("0.055")
    assert kpis["orders"]["change"]["tone"] == ("good" if change > 0 else "bad")

    # The store table: a row per store with receipts, as pandas counts them.
    by_store = rendered["kpi_overview"]["by_store"]["table"]
    expected_stores = sales.groupby("store").order_id.nunique()
    assert {
        row[0]["text"]: int(row[2]["text"].replace(",", "")) for row in by_store["rows"]
    } == expected_stores.to_dict()
    assert set(stores) == set(expected_stores.index)

    # Stacked revenue by category: each drawn series is that category's monthly revenue.
    chart = rendered["sales_by_category_brand"]["category_trend"]["chart"]
    assert chart["categories"] == [f"2025-{month:02d}" for month in range(1, 13)]
    monthly = year.groupby(["category", "month"]).amount.sum()
    top = year.groupby("category").amount.sum().sort_values(ascending=False).index[: len(chart["series"])]
    assert [series["name"] for series in chart["series"]] == list(top)
    for series in chart["series"]:
        drawn = [None if value is None else Decimal(value) for value in series["data"]]
        assert drawn == [monthly.get((series["name"], month)) for month in chart["categories"]]

    # The weekday × hour heatmap: receipts by the local weekday and hour of their lines.
    heatmap = rendered["weekday_hour_load"]["heatmap"]["chart"]
    assert len(heatmap["y"]) == 7 and len(heatmap["x"]) == 24
    expected_cells = sales.groupby(["weekday", "hour"]).order_id.nunique()
    # An hour with only returns in it has a cell of 0 receipts.
    assert {(y + 1, x): value for x, y, value in heatmap["cells"] if value} == expected_cells.to_dict()

    # The funnel: its steps are the totals of the web events and online orders.
    web = facts_frame("web_events", tenant.pk)
    web_day = pd.to_datetime(web.ts, utc=True).dt.tz_convert(tenant.timezone).dt.date
    web = web[(web_day >= YEAR_2025.start) & (web_day <= YEAR_2025.end)]
    steps = rendered["sales_funnel"]["funnel"]["chart"]["steps"]
    assert steps[0]["value"] == (web.event_type == "visit").sum() > 0
    assert steps[-1]["value"] == sales[sales.channel == "online"].order_id.nunique()

    # Every other widget answered and has something to show.
    for dashboard_id, widgets in rendered.items():
        for widget_id, widget in widgets.items():
            assert widget.get("cards") or widget.get("table", {}).get("rows") or widget.get("chart"), (
                dashboard_id,
                widget_id,
            )


def test_the_store_filter_applies_where_the_metrics_know_the_store(generated_tenant):
    tenant = generated_tenant(customers=150, seed=12)
    sales = in_period(local_lines(tenant), YEAR_2025)
    store = sales.store.value_counts().index[0]
    state = DashboardState(YEAR_2025, None, (store,))
    with tenant_context(tenant):
        kpis = widget_render(widget_of("kpi_overview", "kpis"), state)
        mailings = widget_render(widget_of("mailings", "kpis"), state)
        unfiltered = widget_render(widget_of("mailings", "kpis"), DashboardState(YEAR_2025, None))
    assert not kpis["store_ignored"] and "change" not in kpis["cards"][0]
    assert cards_by_metric(kpis)["revenue"]["value"] == sales[sales.store == store].amount.sum()
    assert mailings["store_ignored"] and mailings["cards"] == unfiltered["cards"]
