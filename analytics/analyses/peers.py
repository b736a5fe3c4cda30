"""Peers (seed 001, "comparison with competitors"): a tenant's KPIs against the anonymous median of the others.

Agency staff only. Every tenant's KPIs come from the semantic layer (DESIGN §5 definitions, as its
dashboards show them: money to the kopeck, ratios to 2 decimals), computed inside that tenant's own
``tenant_context``, over the period's local dates in that tenant's own timezone. A tenant contributes
when it has at least one identified buyer in the period; the comparison needs ``MIN_PEERS`` other
contributors, so that no single tenant can be read off the answer. Of the others only the median of
each KPI leaves this module, over the contributors whose value is defined and only when there are
``MIN_PEERS`` of them: never a name, nor a number that can be told to be one tenant's.
"""

from __future__ import annotations

from datetime import date
from decimal import ROUND_HALF_UP, Decimal
from statistics import median
from typing import Any

from django.db import connection
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy
from django_tenants.utils import get_public_schema_name, tenant_context

from analytics.analyses.base import Analysis, InsufficientDataError, Param, decimal_ratio
from analytics.periods import Period, last_twelve_months_start, parse_period, tenant_today
from analytics.selectors import metrics_query
from analytics.semantic.catalog import METRICS_BY_ID
from analytics.semantic.registry import Unit
from analytics.semantic.spec import MetricQuery
from tenants.models import Tenant

KPIS = ("revenue_per_buyer", "average_check", "purchase_frequency", "repeat_share", "discount_rate", "return_rate")
MIN_PEERS = 5
HUNDREDTH = Decimal("0.01")


def _kpis(period: Period) -> dict[str, Any] | None:
    """The current tenant's KPIs over ``period``, or None when it has no identified buyer in it."""
    values = metrics_query(MetricQuery(metrics=("buyers", *KPIS), period=period))["totals"]["values"]
    return {kpi: values[kpi] for kpi in KPIS} if values["buyers"] else None


def _peer_kpis(period: Period) -> list[dict[str, Any]]:
    """The KPIs of every other tenant with data, each computed inside that tenant's own context."""
    others = Tenant.objects.exclude(schema_name=get_public_schema_name()).exclude(pk=connection.tenant.pk)
    found = []
    for other in others:
        with tenant_context(other):
            kpis = _kpis(period)
        if kpis is not None:
            found.append(kpis)
    return found


def _median(values: list[Any], unit: Unit) -> Any:
    """The median to the hundredth; None below ``MIN_PEERS`` values, which would let one tenant show through."""
    if len(values) < MIN_PEERS:
        return None
    middle = median(Decimal(str(value)) for value in values).quantize(HUNDREDTH, ROUND_HALF_UP)
    return middle if unit is Unit.MONEY else float(middle)


def peers_compute(params: dict[str, Any]) -> dict[str, Any]:
    period = parse_period(params["from"], params["to"])
    own = _kpis(period) or dict.fromkeys(KPIS)
    peers = _peer_kpis(period)
    if len(peers) < MIN_PEERS:
        raise InsufficientDataError(
            _(
                "A peer comparison needs at least %(minimum)s other workspaces with buyers between %(from)s and "
                "%(to)s; there are %(count)s."
            )
            % {"minimum": MIN_PEERS, "from": period.start, "to": period.end, "count": len(peers)},
            {"minimum": MIN_PEERS, "peers": len(peers)},
        )
    kpis = []
    for kpi in KPIS:
        metric = METRICS_BY_ID[kpi]
        peer_median = _median([peer[kpi] for peer in peers if peer[kpi] is not None], metric.unit)
        value = own[kpi]
        difference = None
        if value is not None and peer_median is not None:
            value_exact, median_exact = Decimal(str(value)), Decimal(str(peer_median))
            difference = decimal_ratio(value_exact - median_exact, abs(median_exact), scale=100)
        kpis.append(
            {
                "kpi": kpi,
                "label": str(metric.label),
                "unit": metric.unit.value,
                "value": value,
                "peer_median": peer_median,
                "difference_pct": difference,
            }
        )
    return {"period": period.as_json(), "peers": len(peers), "kpis": kpis}


ANALYSIS = Analysis(
    name="peers",
    label=gettext_lazy("Peer comparison"),
    description=gettext_lazy(
        "The workspace's KPIs against the median of the agency's other clients (at least five, anonymous): "
        "revenue per buyer, average check, purchase frequency, repeat share, discount share, return share."
    ),
    compute=peers_compute,
    params=(
        Param(
            "from",
            date,
            last_twelve_months_start,
            gettext_lazy("First day of the period (each tenant's own timezone)."),
        ),
        Param("to", date, tenant_today, gettext_lazy("Last day of the period (included).")),
    ),
    staff_only=True,
)
