"""Analytics pages of the workspace: the index, the built-in dashboards, the analyses, the metric catalog.

Views parse the query string, call analytics.dashboards / the analyses registry, and render;
a bad period or parameter is shown on the page with what to fix (HTTP 400), never a 500.
"""

from __future__ import annotations

from datetime import date
from typing import Any
from urllib.parse import urlencode

from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import render
from django.utils.translation import gettext_lazy as _
from django.views.decorators.http import require_GET

from analytics.analyses.base import Analysis, InsufficientDataError, analyses, analysis_get, analysis_run
from analytics.dashboards import (
    DASHBOARDS,
    DASHBOARDS_BY_ID,
    PRESET_LABELS,
    DashboardState,
    analysis_charts,
    analysis_sections,
    dashboard_render,
    dashboard_state_parse,
    preset_period,
    store_list,
)
from analytics.labels import UNIT_LABELS, VALUE_LABELS, field_label
from analytics.periods import Comparison, tenant_today
from analytics.semantic.catalog import catalog
from analytics.semantic.registry import Group, Unit
from tenants.accounts.roles import Permission, permission_label
from tenants.accounts.views import permission_required_or_403
from tenants.errors import ApplicationError

VIEW_ANALYTICS = permission_label(Permission.VIEW_ANALYTICS)
COMPARISON_LABELS = {
    "": _("No comparison"),
    Comparison.PREVIOUS_PERIOD: _("Previous period"),
    Comparison.PREVIOUS_YEAR: _("Same period last year"),
}
GROUP_LABELS = {
    Group.SALES: _("Sales"),
    Group.CRM: _("CRM"),
    Group.MAILINGS: _("Mailings"),
    Group.CUSTOMER_BASE: _("Customer base"),
    Group.FUNNEL: _("Sales funnel"),
}


def _tenant_analyses() -> list[Analysis]:
    return [analysis for analysis in analyses().values() if not analysis.staff_only]


@require_GET
@permission_required_or_403(VIEW_ANALYTICS)
def analytics_index(request: HttpRequest) -> HttpResponse:
    return render(request, "analytics/index.html", {"dashboards": DASHBOARDS, "analyses": _tenant_analyses()})


@require_GET
@permission_required_or_403(VIEW_ANALYTICS)
def dashboard_detail(request: HttpRequest, dashboard_id: str) -> HttpResponse:
    dashboard = DASHBOARDS_BY_ID.get(dashboard_id)
    if dashboard is None:
        raise Http404(dashboard_id)
    today = tenant_today()
    stores = tuple(request.GET.getlist("store"))
    context: dict[str, Any] = {"dashboard": dashboard, "dashboards": DASHBOARDS}
    try:
        state = dashboard_state_parse(request.GET, stores, today)
    except ApplicationError as exc:
        form = {"from": request.GET.get("from", ""), "to": request.GET.get("to", ""), "compare": "", "stores": stores}
        context.update(error=exc.message, form=form, compare_options=_compare_options(""), store_options=stores)
        return render(request, "analytics/dashboard.html", context, status=400)
    compare = state.comparison.value if state.comparison else ""
    context.update(
        state=state,
        compared=state.period.compared(state.comparison) if state.comparison else None,
        form={"from": state.period.start, "to": state.period.end, "compare": compare, "stores": state.stores},
        compare_options=_compare_options(compare),
        store_options=list(dict.fromkeys([*state.stores, *store_list(state.period)])),
        presets=_preset_links(state, today),
        widgets=dashboard_render(dashboard, state),
    )
    return render(request, "analytics/dashboard.html", context)


def _compare_options(selected: str) -> list[dict[str, Any]]:
    return [
        {"value": value, "label": label, "selected": value == selected} for value, label in COMPARISON_LABELS.items()
    ]


def _preset_links(state: DashboardState, today: date) -> list[dict[str, Any]]:
    """The preset periods as links that keep the page's comparison and stores."""
    links = []
    for preset, label in PRESET_LABELS.items():
        period = preset_period(preset, today)
        query = {
            "from": period.start.isoformat(),
            "to": period.end.isoformat(),
            "compare": state.comparison.value if state.comparison else "",
            "store": list(state.stores),
        }
        links.append({"label": label, "query": urlencode(query, doseq=True), "current": period == state.period})
    return links


@require_GET
@permission_required_or_403(VIEW_ANALYTICS)
def analysis_detail(request: HttpRequest, name: str) -> HttpResponse:
    try:
        analysis = analysis_get(name)
    except ApplicationError:
        raise Http404(name) from None
    context: dict[str, Any] = {"analysis": analysis, "fields": _param_fields(analysis, request.GET)}
    status = 200
    try:
        result = analysis_run(name, request.GET.dict())
    except InsufficientDataError as exc:
        context["insufficient"] = exc.message
    except ApplicationError as exc:
        context["error"] = exc.message
        status = 400
    else:
        context.update(sections=analysis_sections(result), charts=analysis_charts(name, result))
    return render(request, "analytics/analysis.html", context, status=status)


def _param_fields(analysis: Analysis, raw: Any) -> list[dict[str, Any]]:
    """The form's fields: the submitted value, else the default; the input type from the parameter's kind."""
    fields = []
    for param in analysis.params:
        value = raw.get(param.name)
        if value in (None, ""):
            value = param.default_value()
        if param.choices:
            input_type = "select"
        elif param.kind is date:
            input_type = "date"
        elif param.kind in (int, float):
            input_type = "number"
        else:
            input_type = "text"
        fields.append(
            {
                "name": param.name,
                "label": field_label(param.name, analysis.name),
                "type": input_type,
                "value": value.isoformat() if isinstance(value, date) else value,
                "choices": [(choice, VALUE_LABELS.get(param.name, {}).get(choice, choice)) for choice in param.choices],
                "help": param.help,
                "step": "any" if param.kind is float else "1",
            }
        )
    return fields


@require_GET
@permission_required_or_403(VIEW_ANALYTICS)
def metric_catalog(request: HttpRequest) -> HttpResponse:
    described = catalog()
    groups = []
    for group, label in GROUP_LABELS.items():
        metrics = [
            {**metric, "unit_label": UNIT_LABELS[Unit(metric["unit"])]}
            for metric in described["metrics"]
            if metric["group"] == group
        ]
        groups.append({"id": group.value, "label": label, "metrics": metrics})
    return render(request, "analytics/catalog.html", {"groups": groups, "dimensions": described["dimensions"]})
