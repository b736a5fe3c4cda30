"""The analytics pages: index, dashboards, analyses and the metric catalog, as a logged-in user sees them."""

from __future__ import annotations

import json
import re
from datetime import date

import pytest
from django_tenants.utils import tenant_context

from analytics.analyses.base import analyses
from analytics.dashboards import DASHBOARDS, WidgetKind
from analytics.selectors import metrics_query
from analytics.semantic.catalog import METRICS_BY_ID
from analytics.semantic.spec import query_parse
from tenants.accounts.roles import Role

YEAR_2025 = {"from": "2025-01-01", "to": "2025-12-31", "compare": "previous_period"}
PAGES = ["/analytics/", "/analytics/catalog/", "/analytics/dashboards/kpi_overview/", "/analytics/analyses/cohorts/"]


def chart_scripts(page: str) -> dict[str, dict]:
    """The JSON of every chart on a page, by its script's id."""
    scripts = re.findall(r'<script id="([\w-]+)" type="application/json">(.*?)</script>', page, re.S)
    return {script_id: json.loads(text) for script_id, text in scripts}


def analysis_params(name: str) -> dict[str, str]:
    """2025 for every analysis: a ``from`` parameter starts it, any other date ends it."""
    params = {}
    for param in analyses()[name].params:
        if param.kind is date:
            params[param.name] = "2025-01-01" if param.name == "from" else "2025-12-31"
    return params


def kpi_value(response, metric: str):
    widget = next(w for w in response.context["widgets"] if w["kind"] == WidgetKind.KPI)
    return next(card["value"] for card in widget["cards"] if card["metric"] == metric)


@pytest.fixture
def analyst_client(make_user, logged_in_client):
    def make(tenant):
        return logged_in_client(tenant, make_user(tenant, Role.ANALYST))

    return make


def test_every_dashboard_page_shows_its_widgets_to_an_analyst(generated_tenant, analyst_client):
    tenant = generated_tenant(customers=150, seed=21)
    client = analyst_client(tenant)
    for dashboard in DASHBOARDS:
        response = client.get(f"/analytics/dashboards/{dashboard.id}/", YEAR_2025)
        assert response.status_code == 200, dashboard.id
        page = response.content.decode()
        charts = chart_scripts(page)
        for widget in dashboard.widgets:
            assert str(widget.title) in page
            if widget.kind in (WidgetKind.KPI, WidgetKind.TABLE):
                assert f'id="widget-{widget.id}"' in page
            else:
                assert charts[f"chart-{widget.id}"]["type"] in ("line", "bar", "heatmap", "funnel")
        assert 'data-chart="chart-' in page or not charts
    response = client.get("/analytics/dashboards/kpi_overview/", YEAR_2025)
    page = response.content.decode()
    assert "vendor/echarts/echarts.min.js" in page and "analytics/charts.js" in page
    assert 'class="delta ' in page  # the KPI cards carry their change against 2024
    stores = response.context["store_options"]
    assert stores and all(f'<option value="{store}"' in page for store in stores)


def test_index_and_catalog_list_everything(analyst_client, tenant):
    client = analyst_client(tenant)
    index = client.get("/analytics/").content.decode()
    for dashboard in DASHBOARDS:
        assert f'href="/analytics/dashboards/{dashboard.id}/"' in index
    for name, analysis in analyses().items():
        assert (f'href="/analytics/analyses/{name}/"' in index) is not analysis.staff_only
    assert 'href="/analytics/catalog/"' in index
    catalog = client.get("/analytics/catalog/").content.decode()
    for metric in METRICS_BY_ID.values():
        assert f'id="metric-{metric.id}"' in catalog and metric.formula.replace(">", "&gt;")[:20] in catalog


def test_a_dashboard_shows_only_its_own_tenants_numbers(generated_tenant, analyst_client):
    shops = [generated_tenant(customers=150, seed=seed) for seed in (31, 32)]
    shown = []
    for shop in shops:
        response = analyst_client(shop).get("/analytics/dashboards/kpi_overview/", YEAR_2025)
        with tenant_context(shop):
            query = query_parse({"metrics": ["revenue", "orders"], "from": "2025-01-01", "to": "2025-12-31"})
            expected = metrics_query(query)["totals"]["values"]
        assert kpi_value(response, "revenue") == expected["revenue"]
        assert kpi_value(response, "orders") == expected["orders"]
        shown.append(kpi_value(response, "revenue"))
    assert shown[0] != shown[1]


def test_a_bad_period_is_explained_on_the_page(tenant, analyst_client):
    client = analyst_client(tenant)
    cases = [
        ({"from": "2025-02-30", "to": "2025-03-01"}, "“2025-02-30” is not a date for “from”"),
        ({"from": "2025-03-01", "to": "2025-02-01"}, "ends (2025-02-01) before it starts (2025-03-01)"),
        ({"from": "2025-03-01"}, "Give both ends of the period"),
        ({"from": "2025-01-01", "to": "2025-01-31", "compare": "yesterday"}, "Unknown compare “yesterday”"),
    ]
    for params, message in cases:
        response = client.get("/analytics/dashboards/kpi_overview/", params)
        assert response.status_code == 400
        assert message in response.content.decode().replace("&ldquo;", "“").replace("&rdquo;", "”")
    assert client.get("/analytics/dashboards/no_such_dashboard/").status_code == 404


def test_dashboards_of_a_tenant_without_data_render_empty(tenant, analyst_client):
    client = analyst_client(tenant)
    for dashboard in DASHBOARDS:
        response = client.get(f"/analytics/dashboards/{dashboard.id}/")
        assert response.status_code == 200, dashboard.id
    assert "No data in this period." in client.get("/analytics/dashboards/managers/").content.decode()


def test_analytics_pages_need_the_view_analytics_permission(tenant, make_user, logged_in_client, tenant_client):
    no_role = logged_in_client(tenant, make_user(tenant, "", email="nobody@example.test"))
    viewer = logged_in_client(tenant, make_user(tenant, Role.VIEWER))
    for url in PAGES:
        assert no_role.get(url).status_code == 403, url
        assert tenant_client(tenant).get(url)["Location"].startswith("/login/"), url
    assert viewer.get("/analytics/").status_code == 200
    assert 'href="/analytics/"' in viewer.get("/").content.decode()
    assert 'href="/analytics/"' not in no_role.get("/").content.decode()


def test_every_analysis_page_renders_its_result_or_why_there_is_none(generated_tenant, analyst_client):
    tenant = generated_tenant(customers=150, seed=41)
    client = analyst_client(tenant)
    for name, analysis in analyses().items():
        response = client.get(f"/analytics/analyses/{name}/", analysis_params(name))
        if analysis.staff_only:
            assert response.status_code == 404, name
            continue
        assert response.status_code == 200, name
        context = response.context
        assert context.get("sections") or context.get("insufficient"), name
        page = response.content.decode()
        assert str(analysis.label) in page
        for param in analysis.params:
            assert f'name="{param.name}"' in page
    cohorts = client.get("/analytics/analyses/cohorts/", analysis_params("cohorts"))
    heatmap = cohorts.context["charts"][0]["chart"]
    assert heatmap["type"] == "heatmap" and len(heatmap["y"]) == 12
    rfm = client.get("/analytics/analyses/rfm/", analysis_params("rfm"))
    assert [chart["chart"]["type"] for chart in rfm.context["charts"]] == ["bar", "line"]
    assert set(chart_scripts(rfm.content.decode())) == {"analysis-chart-1", "analysis-chart-2"}
    if "journey" in analyses():
        journey = client.get("/analytics/analyses/journey/", analysis_params("journey"))
        sankey = journey.context["charts"][0]["chart"]
        assert sankey["type"] == "sankey" and sankey["links"]
        assert "Sankey" not in [section["title"] for section in journey.context["sections"]]  # drawn, not listed


def test_an_analysis_page_explains_bad_parameters_and_missing_data(tenant, analyst_client):
    client = analyst_client(tenant)
    bad = client.get("/analytics/analyses/cohorts/", {"metric": "happiness"})
    assert bad.status_code == 400 and "happiness" in bad.context["error"]
    empty = client.get("/analytics/analyses/cohorts/", analysis_params("cohorts"))
    assert empty.status_code == 200 and "Not enough data" in empty.content.decode()
    assert "no cohorts to show" in empty.context["insufficient"]
    assert client.get("/analytics/analyses/no_such_analysis/").status_code == 404
