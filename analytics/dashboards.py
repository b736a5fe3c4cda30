"""Built-in dashboards (seeds 000–004) as data, and the read that answers one for a period.

A dashboard is a list of widgets; a widget is a metric query without its period (metrics,
dimensions, granularity, filters) plus how it is drawn. ``dashboard_render`` runs each widget
through the semantic layer (``metrics_query``) for the page's period, comparison and stores and
returns what the page shows: KPI cards and tables ready to print, chart data shaped for ECharts
(frontend/static/analytics/charts.js). Chart values stay exact (a Decimal becomes its string);
the browser turns them into numbers only to draw.

A trend widget names its coarsest granularity (month); over a period too short to hold
``MIN_TREND_BUCKETS`` of those, it steps down (week, then day), so "last 30 days" still has a trend.
"""

from __future__ import annotations

import enum
import json
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date, timedelta
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

from dateutil.relativedelta import relativedelta
from django.utils.dates import WEEKDAYS_ABBR
from django.utils.formats import number_format
from django.utils.functional import Promise
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

from analytics.analyses.journey import SANKEY_TARGET_PREFIX
from analytics.labels import FIELD_LABELS, field_label, result_value_labels, value_label
from analytics.periods import Comparison, Granularity, Period, bucket_start, buckets, parse_choice, parse_period
from analytics.selectors import metrics_query, shared_statements
from analytics.semantic.catalog import DIMENSIONS_BY_ID, METRICS_BY_ID, applicable_dimensions
from analytics.semantic.registry import Unit
from analytics.semantic.spec import MAX_ROW_LIMIT, query_parse
from analytics.serialization import to_jsonable
from tenants.errors import ApplicationError

MIN_TREND_BUCKETS = 3
# Series a chart sliced by a dimension draws (the largest by the first metric); more are unreadable.
CHART_SERIES = 10
STORE = "store"
# Where a rise is bad news: KPI deltas of these are coloured the other way round.
LOWER_IS_BETTER = frozenset(
    {
        "churned_customers",
        "churn_rate",
        "returns",
        "return_receipts",
        "return_rate",
        "unsubscribes",
        "unsubscribe_rate",
        "bounces",
        "bounce_rate",
        "unreachable_contacts",
    }
)
# Neither good nor bad by itself (seed 004: a deeper discount is not a better one).
NEUTRAL = frozenset({"discounts", "discount_rate"})


class WidgetKind(enum.StrEnum):
    KPI = "kpi"  # one card per metric: the period's total and its change
    LINE = "line"
    BAR = "bar"
    STACKED_BAR = "stacked_bar"
    TABLE = "table"  # rendered on the server
    HEATMAP = "heatmap"  # two dimensions, one metric
    FUNNEL = "funnel"  # the metrics are the steps, in order


@dataclass(frozen=True)
class Widget:
    id: str
    title: str | Promise
    kind: WidgetKind
    metrics: tuple[str, ...]
    dimensions: tuple[str, ...] = ()
    granularity: Granularity | None = None  # the coarsest: see the module docstring
    filters: tuple[Mapping[str, Any], ...] = ()  # as query_parse takes them
    compare: bool = True  # shows the comparison period when the page asks for one
    top: int | None = None  # tables: rows; charts by a dimension: series
    wide: bool = False  # spans the page's width

    @property
    def store_filterable(self) -> bool:
        """Whether the page's store filter applies: every metric must know the store (mailings do not)."""
        return all(STORE in applicable_dimensions(metric) for metric in self.metrics)

    def query(self, period: Period, comparison: Comparison | None, stores: tuple[str, ...] = ()) -> dict[str, Any]:
        """The widget's metric query for the page's period, comparison and stores, as ``query_parse`` takes it."""
        filters = list(self.filters)
        if stores and self.store_filterable:
            filters.append({"dimension": STORE, "values": list(stores)})
        granularity = trend_granularity(period, self.granularity) if self.granularity else None
        # A table's rows come ordered by its first metric, so the query can cut them; a chart over
        # time picks its series from all rows (a cut would drop whole buckets).
        limit = self.top if self.top and self.kind is WidgetKind.TABLE and not granularity else MAX_ROW_LIMIT
        return {
            "metrics": list(self.metrics),
            "dimensions": list(self.dimensions),
            "filters": filters,
            "from": period.start.isoformat(),
            "to": period.end.isoformat(),
            "granularity": granularity.value if granularity else None,
            "compare": comparison.value if comparison and self.compare else None,
            "limit": limit,
        }


@dataclass(frozen=True)
class Dashboard:
    id: str
    label: str | Promise
    description: str | Promise
    widgets: tuple[Widget, ...]


MONTH = Granularity.MONTH
KPI, LINE, BAR, STACKED, TABLE = (
    WidgetKind.KPI,
    WidgetKind.LINE,
    WidgetKind.BAR,
    WidgetKind.STACKED_BAR,
    WidgetKind.TABLE,
)
SALES_BY = ("revenue", "orders", "average_check", "discounts", "customer_base_growth", "churned_customers")
ASSORTMENT = ("revenue", "orders", "items", "average_item_price", "discounts", "discount_rate")
MAILING_RATES = ("delivery_rate", "open_rate", "click_rate", "click_to_open_rate", "unsubscribe_rate")
MAILING_OUTCOME = (
    "mailing_orders",
    "mailing_revenue",
    "mailing_average_check",
    "revenue_per_email",
    "order_conversion",
)
# Recipients against the control group (per mailing, summed): the lift a mailing brought beyond what it would anyway.
MAILING_LIFT = ("control_group_size", "incremental_revenue")
MANAGER = ("buyers", "new_customers", "repeat_customers", "repeat_share", "revenue", "orders", "average_check")

DASHBOARDS: tuple[Dashboard, ...] = (
    Dashboard(
        "kpi_overview",
        gettext_lazy("KPI overview"),
        gettext_lazy(
            "Customer base growth, churn, average check, receipts, sales and discounts, by store and employee."
        ),
        (
            Widget(
                "kpis",
                gettext_lazy("Key figures"),
                KPI,
                ("customer_base_growth", "churned_customers", "average_check", "orders", "revenue", "discounts"),
            ),
            Widget("by_store", gettext_lazy("By store"), TABLE, SALES_BY, ("store",), wide=True),
            Widget("by_employee", gettext_lazy("By employee"), TABLE, SALES_BY, ("employee",), top=50, wide=True),
            Widget(
                "revenue_trend", gettext_lazy("Sales and discounts"), LINE, ("revenue", "discounts"), granularity=MONTH
            ),
            Widget("orders_trend", gettext_lazy("Receipts"), BAR, ("orders",), granularity=MONTH),
            Widget(
                "base_trend",
                gettext_lazy("Base growth and churned customers"),
                BAR,
                ("customer_base_growth", "churned_customers"),
                granularity=MONTH,
                compare=False,
                wide=True,
            ),
        ),
    ),
    Dashboard(
        "sales_by_category_brand",
        gettext_lazy("Sales by category and brand"),
        gettext_lazy("Revenue by product category and brand over time, and the leaders."),
        (
            Widget(
                "category_trend",
                gettext_lazy("Revenue by category"),
                STACKED,
                ("revenue",),
                ("category",),
                MONTH,
                top=CHART_SERIES,
                wide=True,
            ),
            Widget(
                "brand_trend",
                gettext_lazy("Revenue by brand"),
                STACKED,
                ("revenue",),
                ("brand",),
                MONTH,
                top=CHART_SERIES,
                wide=True,
            ),
            Widget("top_categories", gettext_lazy("Top categories"), TABLE, ASSORTMENT, ("category",), top=20),
            Widget("top_brands", gettext_lazy("Top brands"), TABLE, ASSORTMENT, ("brand",), top=20),
            Widget(
                "top_products",
                gettext_lazy("Top products"),
                TABLE,
                ("revenue", "items", "orders", "average_item_price"),
                ("product",),
                top=20,
                wide=True,
            ),
        ),
    ),
    Dashboard(
        "crm",
        gettext_lazy("CRM"),
        gettext_lazy("Buyers, new and repeat customers, frequency, retention, churn, lifetime and LTV."),
        (
            Widget(
                "kpis",
                gettext_lazy("Customers"),
                KPI,
                (
                    "buyers",
                    "new_customers",
                    "repeat_customers",
                    "purchase_frequency",
                    "revenue_per_buyer",
                    "retention_rate",
                    "churn_rate",
                    "repeat_share",
                    "lifetime_days",
                    "ltv",
                ),
            ),
            Widget(
                "buyers_trend",
                gettext_lazy("Buyers, new and repeat"),
                LINE,
                ("buyers", "new_customers", "repeat_customers"),
                granularity=MONTH,
            ),
            Widget(
                "retention_trend",
                gettext_lazy("Retention and churn"),
                LINE,
                ("retention_rate", "churn_rate", "repeat_share"),
                granularity=MONTH,
            ),
            Widget(
                "by_store",
                gettext_lazy("By store"),
                TABLE,
                ("buyers", "new_customers", "repeat_customers", "purchase_frequency", "revenue_per_buyer", "ltv"),
                ("store",),
                wide=True,
            ),
        ),
    ),
    Dashboard(
        "mailings",
        gettext_lazy("Mailings"),
        gettext_lazy("Sends, deliveries, opens, clicks, unsubscribes, and the orders and revenue mailings brought."),
        (
            Widget(
                "kpis",
                gettext_lazy("Mailings"),
                KPI,
                (
                    "sends",
                    "deliveries",
                    "delivery_rate",
                    "opens",
                    "open_rate",
                    "clicks",
                    "click_rate",
                    "click_to_open_rate",
                    "unsubscribes",
                    "unsubscribe_rate",
                    "mailing_orders",
                    "mailing_revenue",
                    "revenue_per_email",
                    "order_conversion",
                    "incremental_revenue",
                ),
            ),
            Widget(
                "sends_trend", gettext_lazy("Sends and deliveries"), BAR, ("sends", "deliveries"), granularity=MONTH
            ),
            Widget(
                "rates_trend",
                gettext_lazy("Open, click and unsubscribe rates"),
                LINE,
                ("open_rate", "click_rate", "unsubscribe_rate"),
                granularity=MONTH,
            ),
            Widget(
                "by_mailing",
                gettext_lazy("By mailing"),
                TABLE,
                ("sends", *MAILING_RATES, *MAILING_OUTCOME, *MAILING_LIFT),
                ("mailing",),
                top=50,
                wide=True,
            ),
            Widget(
                "by_campaign",
                gettext_lazy("By campaign"),
                TABLE,
                ("sends", *MAILING_RATES, *MAILING_OUTCOME, *MAILING_LIFT),
                ("campaign",),
                top=50,
                wide=True,
            ),
        ),
    ),
    Dashboard(
        "customer_base",
        gettext_lazy("Customer base"),
        gettext_lazy("Contacts, how many can be reached, and buyers online and offline."),
        (
            Widget(
                "kpis",
                gettext_lazy("Customer base"),
                KPI,
                (
                    "contacts",
                    "new_contacts",
                    "reachable_contacts",
                    "reachability_rate",
                    "unreachable_contacts",
                    "online_buyers",
                    "offline_buyers",
                    "online_share",
                    "offline_share",
                ),
            ),
            Widget(
                "contacts_trend",
                gettext_lazy("Contacts and reachable contacts"),
                LINE,
                ("contacts", "reachable_contacts", "unreachable_contacts"),
                granularity=MONTH,
            ),
            Widget("new_contacts_trend", gettext_lazy("New contacts"), BAR, ("new_contacts",), granularity=MONTH),
            Widget(
                "channel_trend",
                gettext_lazy("Buyers online and offline"),
                BAR,
                ("online_buyers", "offline_buyers", "omnichannel_buyers"),
                granularity=MONTH,
                wide=True,
            ),
            Widget(
                "by_city",
                gettext_lazy("By city"),
                TABLE,
                ("contacts", "reachable_contacts", "reachability_rate", "new_contacts"),
                ("city",),
                top=20,
                wide=True,
            ),
        ),
    ),
    Dashboard(
        "campaign_comparison",
        gettext_lazy("Campaign comparison"),
        gettext_lazy("Campaigns side by side: mailing metrics and the revenue attributed to them."),
        (
            Widget(
                "table",
                gettext_lazy("Campaigns"),
                TABLE,
                ("sends", "deliveries", *MAILING_RATES, "mailing_buyers", *MAILING_OUTCOME),
                ("campaign",),
                top=50,
                wide=True,
            ),
            Widget(
                "rates",
                gettext_lazy("Open and click rates"),
                BAR,
                ("open_rate", "click_rate", "click_to_open_rate"),
                ("campaign",),
                compare=False,
                top=CHART_SERIES,
            ),
            Widget(
                "revenue",
                gettext_lazy("Attributed revenue"),
                BAR,
                ("mailing_revenue",),
                ("campaign",),
                top=CHART_SERIES,
            ),
        ),
    ),
    Dashboard(
        "orders_from_mailings",
        gettext_lazy("Orders from mailings"),
        gettext_lazy("Orders, revenue and average check attributed to each mailing, over time."),
        (
            Widget(
                "kpis",
                gettext_lazy("Orders from mailings"),
                KPI,
                ("mailing_orders", "mailing_revenue", "mailing_average_check", "mailing_buyers"),
            ),
            Widget(
                "revenue_trend",
                gettext_lazy("Revenue by mailing"),
                STACKED,
                ("mailing_revenue",),
                ("mailing",),
                MONTH,
                top=CHART_SERIES,
                wide=True,
            ),
            Widget(
                "orders_trend",
                gettext_lazy("Orders by mailing"),
                LINE,
                ("mailing_orders",),
                ("mailing",),
                MONTH,
                top=CHART_SERIES,
            ),
            Widget(
                "check_trend",
                gettext_lazy("Average check of mailing orders"),
                LINE,
                ("mailing_average_check",),
                (),
                MONTH,
            ),
            Widget(
                "by_mailing",
                gettext_lazy("By mailing"),
                TABLE,
                ("mailing_orders", "mailing_revenue", "mailing_average_check", "mailing_buyers"),
                ("mailing",),
                top=50,
                wide=True,
            ),
        ),
    ),
    Dashboard(
        "sales_funnel",
        gettext_lazy("Sales funnel"),
        gettext_lazy("Visits to category and product views, carts, checkouts and online orders."),
        (
            Widget(
                "funnel",
                gettext_lazy("Funnel"),
                WidgetKind.FUNNEL,
                ("visits", "category_views", "product_views", "add_to_carts", "checkouts", "online_orders"),
                compare=False,
            ),
            Widget("kpis", gettext_lazy("Conversion"), KPI, ("cart_rate", "checkout_rate", "visit_conversion")),
            Widget(
                "conversion_trend",
                gettext_lazy("Conversion over time"),
                LINE,
                ("cart_rate", "checkout_rate", "visit_conversion"),
                granularity=MONTH,
                wide=True,
            ),
            Widget(
                "by_category",
                gettext_lazy("By category"),
                TABLE,
                ("category_views", "product_views", "add_to_carts", "checkouts"),
                ("category",),
                top=20,
                wide=True,
            ),
        ),
    ),
    Dashboard(
        "weekday_hour_load",
        gettext_lazy("Weekday and hour load"),
        gettext_lazy("Receipts by day of week and hour: when stores are busy and when they are empty."),
        (
            Widget(
                "heatmap",
                gettext_lazy("Receipts by weekday and hour"),
                WidgetKind.HEATMAP,
                ("orders",),
                ("weekday", "hour"),
                compare=False,
                wide=True,
            ),
            Widget("by_weekday", gettext_lazy("Receipts by weekday"), BAR, ("orders",), ("weekday",)),
            Widget("by_hour", gettext_lazy("Receipts by hour"), BAR, ("orders",), ("hour",)),
        ),
    ),
    Dashboard(
        "managers",
        gettext_lazy("Managers"),
        gettext_lazy("Per employee: buyers, new customers, one-purchase and repeat customers, revenue, by month."),
        (
            Widget("by_employee", gettext_lazy("By employee"), TABLE, MANAGER, ("employee",), top=50, wide=True),
            Widget(
                "repeat",
                gettext_lazy("One-time and repeat buyers"),
                BAR,
                ("buyers", "one_time_customers", "repeat_customers"),
                ("employee",),
                compare=False,
                top=CHART_SERIES,
                wide=True,
            ),
            Widget(
                "buyers_trend",
                gettext_lazy("Buyers by employee"),
                LINE,
                ("buyers",),
                ("employee",),
                MONTH,
                top=CHART_SERIES,
            ),
            Widget(
                "revenue_trend",
                gettext_lazy("Revenue by employee"),
                STACKED,
                ("revenue",),
                ("employee",),
                MONTH,
                top=CHART_SERIES,
            ),
        ),
    ),
)
DASHBOARDS_BY_ID: dict[str, Dashboard] = {dashboard.id: dashboard for dashboard in DASHBOARDS}


# --- The page's period, comparison and stores -------------------------------------------------------------------


class Preset(enum.StrEnum):
    LAST_30_DAYS = "last_30_days"
    THIS_MONTH = "this_month"
    LAST_MONTH = "last_month"
    THIS_QUARTER = "this_quarter"
    THIS_YEAR = "this_year"
    LAST_12_MONTHS = "last_12_months"


PRESET_LABELS = {
    Preset.LAST_30_DAYS: gettext_lazy("Last 30 days"),
    Preset.THIS_MONTH: gettext_lazy("This month"),
    Preset.LAST_MONTH: gettext_lazy("Last month"),
    Preset.THIS_QUARTER: gettext_lazy("This quarter"),
    Preset.THIS_YEAR: gettext_lazy("This year"),
    Preset.LAST_12_MONTHS: gettext_lazy("Last 12 months"),
}
DEFAULT_PRESET = Preset.LAST_30_DAYS
DEFAULT_COMPARISON = Comparison.PREVIOUS_PERIOD


def preset_period(preset: Preset, today: date) -> Period:
    """The local dates a preset means on ``today`` (the tenant's today); "this …" periods end today."""
    if preset is Preset.LAST_30_DAYS:
        return Period(today - timedelta(days=29), today)
    if preset is Preset.THIS_MONTH:
        return Period(bucket_start(today, Granularity.MONTH), today)
    if preset is Preset.LAST_MONTH:
        first = bucket_start(today, Granularity.MONTH) - relativedelta(months=1)
        return Period(first, bucket_start(today, Granularity.MONTH) - timedelta(days=1))
    if preset is Preset.THIS_QUARTER:
        return Period(bucket_start(today, Granularity.QUARTER), today)
    if preset is Preset.THIS_YEAR:
        return Period(bucket_start(today, Granularity.YEAR), today)
    return Period(bucket_start(today, Granularity.MONTH) - relativedelta(months=11), today)


@dataclass(frozen=True)
class DashboardState:
    """What the page shows: a period, an optional comparison, the stores (none: all)."""

    period: Period
    comparison: Comparison | None
    stores: tuple[str, ...] = ()


def dashboard_state_parse(raw: Mapping[str, Any], stores: tuple[str, ...], today: date) -> DashboardState:
    """From the page's query string: ``from``/``to`` (or ``preset``), ``compare`` and the ``store`` values.

    No period means the default preset; no ``compare`` key means the previous period, an empty one none.
    A bad date or choice raises an ApplicationError that names it.
    """
    preset = parse_choice(raw.get("preset"), Preset, "preset")
    if preset:
        period = preset_period(preset, today)
    elif raw.get("from") in (None, "") and raw.get("to") in (None, ""):
        period = preset_period(DEFAULT_PRESET, today)
    elif raw.get("from") in (None, "") or raw.get("to") in (None, ""):
        raise ApplicationError(_("Give both ends of the period: “from” and “to” (YYYY-MM-DD)."))
    else:
        period = parse_period(raw["from"], raw["to"])
    comparison = parse_choice(raw.get("compare"), Comparison, "compare") if "compare" in raw else DEFAULT_COMPARISON
    return DashboardState(period, comparison, tuple(dict.fromkeys(store for store in stores if store)))


def store_list(period: Period) -> list[str]:
    """The stores with receipts in ``period``, busiest first (the options of the page's store filter)."""
    query = {"metrics": ["orders"], "dimensions": [STORE], "from": period.start, "to": period.end}
    answer = metrics_query(query_parse({**query, "limit": MAX_ROW_LIMIT}))
    return [row["dimensions"][STORE] for row in answer["rows"] if row["dimensions"][STORE]]


def trend_granularity(period: Period, coarsest: Granularity) -> Granularity:
    """``coarsest``, or the first finer one that splits ``period`` into ``MIN_TREND_BUCKETS`` buckets or more."""
    order = list(Granularity)[::-1]  # year … day
    for granularity in order[order.index(coarsest) :]:
        if len(buckets(period, granularity)) >= MIN_TREND_BUCKETS:
            return granularity
    return Granularity.DAY


# --- Rendering ----------------------------------------------------------------------------------------------------


def dashboard_render(dashboard: Dashboard, state: DashboardState) -> list[dict[str, Any]]:
    """Every widget of ``dashboard`` answered for ``state``, in order (sharing the statements they have in common)."""
    with shared_statements():
        return [widget_render(widget, state) for widget in dashboard.widgets]


def widget_render(widget: Widget, state: DashboardState) -> dict[str, Any]:
    """One widget: ``cards`` (KPI), ``table`` or ``chart`` (ECharts data), and whether the store filter applied."""
    answer = metrics_query(query_parse(widget.query(state.period, state.comparison, state.stores)))
    rendered: dict[str, Any] = {
        "id": widget.id,
        "title": str(widget.title),
        "kind": widget.kind.value,
        "wide": widget.wide,
        "store_ignored": bool(state.stores) and not widget.store_filterable,
    }
    if widget.kind is WidgetKind.KPI:
        rendered["cards"] = kpi_cards(answer)
    elif widget.kind is WidgetKind.TABLE:
        rendered["table"] = answer_table(answer, widget.top)
    else:
        rendered["chart"] = to_jsonable(CHART_BUILDERS[widget.kind](answer, widget))
    return rendered


def kpi_cards(answer: dict[str, Any]) -> list[dict[str, Any]]:
    totals = answer["totals"]
    cards = []
    for metric in answer["metrics"]:
        value = totals["values"][metric["id"]]
        card = {"metric": metric["id"], "label": metric["label"], "value": value, "text": value_text(value, metric)}
        if "change" in totals:
            card["previous_text"] = value_text(totals["previous"][metric["id"]], metric)
            card["change"] = change_text(totals["change"][metric["id"]], metric)
        cards.append(card)
    return cards


def answer_table(answer: dict[str, Any], top: int | None = None) -> dict[str, Any]:
    """Header and rows of printed cells; with a comparison each metric cell carries its change."""
    granularity = answer["granularity"]
    header = ([_("Period")] if granularity else []) + [d["label"] for d in answer["dimensions"]]
    rows = []
    for row in answer["rows"][:top]:
        cells: list[dict[str, Any]] = []
        if granularity:
            cells.append({"text": bucket_label(row["bucket"], Granularity(granularity))})
        cells.extend({"text": dimension_value_label(d, v)} for d, v in row["dimensions"].items())
        for metric in answer["metrics"]:
            cell = {"text": value_text(row["values"][metric["id"]], metric), "numeric": True}
            if "change" in row:
                cell["change"] = change_text(row["change"][metric["id"]], metric)
            cells.append(cell)
        rows.append(cells)
    metrics = [metric["label"] for metric in answer["metrics"]]
    return {
        "header": header,
        "metrics": metrics,
        "columns": len(header) + len(metrics),
        "rows": rows,
        "shown": len(rows),
        "row_count": answer["row_count"],
    }


def value_text(value: Any, metric: Mapping[str, Any]) -> str:
    """A metric value as the page prints it, in the active language's number format."""
    if value is None:
        return "—"
    unit = Unit(metric["unit"])
    if unit is Unit.MONEY:
        return _number(value, 2)
    if unit is Unit.COUNT:
        return _number(value, 0)
    if unit is Unit.PERCENT:
        return f"{_number(value, 1)} %"
    if unit is Unit.DAYS:
        return _("%(days)s d") % {"days": _number(value, 0)}
    return _number(value, METRICS_BY_ID[metric["id"]].decimals or 2)


def change_text(change: Mapping[str, Any], metric: Mapping[str, Any]) -> dict[str, str]:
    """The change against the comparison: in % of the previous value, or in points for a percentage."""
    if Unit(metric["unit"]) is Unit.PERCENT:
        amount = change["absolute"]
        text = None if amount is None else _("%(change)s pp") % {"change": _signed(amount, 1)}
    else:
        amount = change["percent"]
        text = None if amount is None else f"{_signed(amount, 1)} %"
    if text is None:
        return {"text": "—", "tone": "neutral"}
    if not amount or metric["id"] in NEUTRAL:
        tone = "neutral"
    else:
        tone = "good" if (amount > 0) != (metric["id"] in LOWER_IS_BETTER) else "bad"
    return {"text": text, "tone": tone}


def _number(value: Any, decimals: int | None = None) -> str:
    """``value`` in the active language's format, rounded half up (Django's number_format truncates)."""
    if decimals is not None:
        value = Decimal(str(value)).quantize(Decimal(1).scaleb(-decimals), rounding=ROUND_HALF_UP)
    return number_format(value, decimals, force_grouping=True)


def _signed(value: Any, decimals: int) -> str:
    return ("+" if value > 0 else "") + _number(value, decimals)


def bucket_label(start: date, granularity: Granularity) -> str:
    """A bucket by its calendar name: 2025-03, 2025 Q1, 2025; days and weeks by their (first) date."""
    if granularity is Granularity.MONTH:
        return start.strftime("%Y-%m")
    if granularity is Granularity.QUARTER:
        return f"{start.year} Q{(start.month - 1) // 3 + 1}"
    if granularity is Granularity.YEAR:
        return str(start.year)
    return start.isoformat()


def dimension_value_label(dimension_id: str, value: str) -> str:
    if value == "":
        return _("(not set)")
    if dimension_id == "weekday" and value.isdigit() and 1 <= int(value) <= 7:
        return str(WEEKDAYS_ABBR[int(value) - 1])
    if dimension_id == "hour" and value.isdigit():
        return f"{int(value):02d}:00"
    dimension = DIMENSIONS_BY_ID.get(dimension_id)
    if dimension is not None and dimension.value_label is not None:
        return dimension.value_label(value)
    return value


# --- Chart data (frontend/static/analytics/charts.js draws it) ----------------------------------------------------


def _first_unit(answer: dict[str, Any]) -> str:
    """The unit of the chart's value axis: a chart's metrics share one (test_dashboards.py checks)."""
    return answer["metrics"][0]["unit"]


def _bucket_labels(answer: dict[str, Any]) -> list[str]:
    granularity = Granularity(answer["granularity"])
    return [bucket_label(date.fromisoformat(bucket["from"]), granularity) for bucket in answer["buckets"]]


def _bucket_index(answer: dict[str, Any], row: dict[str, Any]) -> int:
    return [bucket["from"] for bucket in answer["buckets"]].index(row["bucket"].isoformat())


def series_chart(answer: dict[str, Any], widget: Widget) -> dict[str, Any]:
    """Line and bar charts: over time (buckets on the x axis) or over a dimension's values.

    Over time and by a dimension: one series per value (the widget's ``top`` largest by the first
    metric's sum). Otherwise one series per metric, and with a comparison one more per metric for the
    compared period.
    """
    stacked = widget.kind is WidgetKind.STACKED_BAR
    kind = "line" if widget.kind is WidgetKind.LINE else "bar"
    chart: dict[str, Any] = {"type": kind, "stacked": stacked, "unit": _first_unit(answer)}
    rows, metrics = answer["rows"], answer["metrics"]
    if answer["granularity"]:
        chart["categories"] = _bucket_labels(answer)
        if answer["dimensions"]:
            chart["series"] = _series_by_dimension(answer, widget.top or CHART_SERIES)
            return chart
        positions = {row["bucket"].isoformat(): row for row in rows}
        keys = [bucket["from"] for bucket in answer["buckets"]]
        picked = [positions.get(key) for key in keys]
    else:
        if answer["dimensions"]:
            picked = rows[: widget.top or CHART_SERIES]
            chart["categories"] = [
                ", ".join(dimension_value_label(d, v) for d, v in row["dimensions"].items()) for row in picked
            ]
        else:
            picked = rows
            chart["categories"] = [""]
    chart["series"] = [
        {"name": metric["label"], "data": [row["values"][metric["id"]] if row else None for row in picked]}
        for metric in metrics
    ]
    if answer["comparison"]:
        chart["series"] += [
            {
                "name": _("%(metric)s, compared period") % {"metric": metric["label"]},
                "data": [row["previous"][metric["id"]] if row else None for row in picked],
                "previous": True,
            }
            for metric in metrics
        ]
    return chart


def _series_by_dimension(answer: dict[str, Any], top: int) -> list[dict[str, Any]]:
    """One series per dimension value over the buckets, the ``top`` values with the largest sum of the metric."""
    metric_id = answer["metrics"][0]["id"]
    dimension_id = answer["dimensions"][0]["id"]
    by_value: dict[str, list[Any]] = {}
    for row in answer["rows"]:
        data = by_value.setdefault(row["dimensions"][dimension_id], [None] * len(answer["buckets"]))
        data[_bucket_index(answer, row)] = row["values"][metric_id]
    ranked = sorted(by_value, key=lambda value: (-sum(v for v in by_value[value] if v is not None), value))
    return [{"name": dimension_value_label(dimension_id, value), "data": by_value[value]} for value in ranked[:top]]


def heatmap_chart(answer: dict[str, Any], widget: Widget) -> dict[str, Any]:
    """Rows: the first dimension's values; columns: the second's; cells ``[column, row, value]``."""
    y_dimension, x_dimension = (d["id"] for d in answer["dimensions"])
    metric_id = answer["metrics"][0]["id"]
    ys = _axis_values(y_dimension, {row["dimensions"][y_dimension] for row in answer["rows"]})
    xs = _axis_values(x_dimension, {row["dimensions"][x_dimension] for row in answer["rows"]})
    cells = [
        [xs.index(row["dimensions"][x_dimension]), ys.index(row["dimensions"][y_dimension]), row["values"][metric_id]]
        for row in answer["rows"]
    ]
    return {
        "type": "heatmap",
        "unit": _first_unit(answer),
        "x": [dimension_value_label(x_dimension, value) for value in xs],
        "y": [dimension_value_label(y_dimension, value) for value in ys],
        "cells": cells,
    }


def _axis_values(dimension_id: str, found: set[str]) -> list[str]:
    """Weekday and hour axes are complete (1–7, 0–23) so an empty hour shows as empty; others as found."""
    if dimension_id == "weekday":
        return [str(day) for day in range(1, 8)]
    if dimension_id == "hour":
        return [str(hour) for hour in range(24)]
    if DIMENSIONS_BY_ID[dimension_id].sort_numeric:
        return sorted(found, key=lambda value: int(value) if value.isdigit() else -1)
    return sorted(found)


def funnel_chart(answer: dict[str, Any], widget: Widget) -> dict[str, Any]:
    """The steps in the widget's order, each with its share of the first step."""
    totals = answer["totals"]["values"]
    first = totals[answer["metrics"][0]["id"]]
    steps = []
    for metric in answer["metrics"]:
        value = totals[metric["id"]]
        share = Decimal(value) * 100 / Decimal(first) if first and value is not None else None
        steps.append({"name": metric["label"], "value": value, "share": round(share, 1) if share is not None else None})
    return {"type": "funnel", "unit": _first_unit(answer), "steps": steps}


CHART_BUILDERS = {
    WidgetKind.LINE: series_chart,
    WidgetKind.BAR: series_chart,
    WidgetKind.STACKED_BAR: series_chart,
    WidgetKind.HEATMAP: heatmap_chart,
    WidgetKind.FUNNEL: funnel_chart,
}


# --- Analyses: any result printed as sections, and charts for the shapes this page knows ---------------------------

MAX_ANALYSIS_TABLE_ROWS = 500
# Keys the page shows elsewhere: the name in the title, the parameters in the form, chart data in the chart.
ANALYSIS_HIDDEN_KEYS = frozenset({"analysis", "params", "sankey", "matrix"})


def analysis_sections(result: Mapping[str, Any]) -> list[dict[str, Any]]:
    """An analysis result as printed sections, whatever its shape.

    Its scalars become a list of facts; a nested mapping its own sections (titled by the path to it);
    a list of mappings a table (the first ``MAX_ANALYSIS_TABLE_ROWS`` rows); anything else (a matrix)
    is printed as JSON.
    """
    shown = {key: value for key, value in result.items() if key not in ANALYSIS_HIDDEN_KEYS}
    return _ResultPrinter(result).mapping_sections("", shown)


class _ResultPrinter:
    """Prints one result: its keys labelled in the analysis's sense, its coded values by their labels."""

    def __init__(self, result: Mapping[str, Any]) -> None:
        self.analysis = str(result.get("analysis", ""))
        self.value_labels = result_value_labels(result)

    def label(self, key: str) -> str:
        return field_label(key, self.analysis)

    def text(self, key: str, value: Any) -> str:
        label = value_label(self.value_labels, key, value)
        return label if label is not None else cell_text(value)

    def mapping_sections(self, title: str, mapping: Mapping[str, Any]) -> list[dict[str, Any]]:
        facts = [(self.label(key), self.text(key, value)) for key, value in mapping.items() if _is_plain(value)]
        sections: list[dict[str, Any]] = [{"kind": "facts", "title": title, "facts": facts}] if facts else []
        for key, value in mapping.items():
            path = f"{title} · {self.label(key)}" if title else self.label(key)
            if _is_plain(value):
                continue
            if isinstance(value, Mapping):
                sections.extend(self.mapping_sections(path, value))
            elif isinstance(value, list) and value and all(isinstance(item, Mapping) for item in value):
                sections.append(self.table_section(path, value))
            else:
                sections.append({"kind": "json", "title": path, "text": _json_text(value)})
        return sections

    def table_section(self, title: str, items: list[Mapping[str, Any]]) -> dict[str, Any]:
        columns = list(dict.fromkeys(name for item in items for name in item))
        rows = [
            [{"text": self.text(name, item.get(name)), "numeric": _is_number(item.get(name))} for name in columns]
            for item in items[:MAX_ANALYSIS_TABLE_ROWS]
        ]
        return {
            "kind": "table",
            "title": title,
            "header": [self.label(name) for name in columns],
            "metrics": [],
            "columns": len(columns),
            "rows": rows,
            "shown": len(rows),
            "row_count": len(items),
        }


def _is_plain(value: Any) -> bool:
    """A value printed in one cell: a scalar, or a short list of scalars."""
    if isinstance(value, list | tuple):
        return all(not isinstance(item, Mapping | list | tuple) for item in value) and len(value) <= 20
    return not isinstance(value, Mapping)


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float | Decimal) and not isinstance(value, bool)


def cell_text(value: Any) -> str:
    """A value of an analysis result as printed: exact money, grouped numbers, ISO dates."""
    if value is None:
        return "—"
    if isinstance(value, bool):
        return _("yes") if value else _("no")
    if isinstance(value, Decimal):
        return _number(value, 2)
    if isinstance(value, int):
        return _number(value, 0)
    if isinstance(value, float):
        return _number(round(value, 4)) if value == value else "—"
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, list | tuple):
        return ", ".join(cell_text(item) for item in value)
    if isinstance(value, Mapping):
        return _json_text(value)
    return str(value)


def _json_text(value: Any) -> str:
    return json.dumps(to_jsonable(value), ensure_ascii=False, indent=1)


def analysis_charts(name: str, result: Mapping[str, Any]) -> list[dict[str, Any]]:
    """Charts for the analyses whose result shape is known; none for others (their tables still show)."""
    builder = ANALYSIS_CHART_BUILDERS.get(name)
    charts = builder(result) if builder else []
    return [
        {"id": f"analysis-chart-{number}", "title": str(title), "chart": to_jsonable(chart)}
        for number, (title, chart) in enumerate(charts, start=1)
    ]


def _cohorts_charts(result: Mapping[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    matrix, cohorts = result.get("matrix"), result.get("cohorts")
    if not isinstance(matrix, list) or not isinstance(cohorts, list):
        return []
    metric = result.get("metric", "")
    unit = {"customers": Unit.COUNT, "retention": Unit.PERCENT}.get(metric, Unit.MONEY)
    granularity = Granularity(result.get("granularity", Granularity.MONTH))
    chart = {
        "type": "heatmap",
        "unit": unit.value,
        "x": [str(number) for number in result.get("periods", range(len(cohorts)))],
        "y": [bucket_label(cohort["cohort"], granularity) for cohort in cohorts],
        "cells": [
            [offset, number, value]
            for number, row in enumerate(matrix)
            for offset, value in enumerate(row)
            if value is not None
        ],
    }
    title = _("Cohorts: %(metric)s by periods since acquisition") % {"metric": field_label(metric)}
    return [(title, chart)]


def _rfm_charts(result: Mapping[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    charts = []
    segments = result.get("segments")
    if isinstance(segments, list) and segments:
        series = [
            {"name": str(FIELD_LABELS[key]), "data": [segment.get(key) for segment in segments]}
            for key in ("share", "revenue_share")
        ]
        charts.append(
            (
                _("Segments: share of customers and of revenue"),
                {
                    "type": "bar",
                    "unit": Unit.PERCENT.value,
                    "categories": [segment.get("label", segment.get("segment")) for segment in segments],
                    "series": series,
                },
            )
        )
    pareto = result.get("pareto")
    if isinstance(pareto, list) and pareto:
        charts.append(
            (
                _("Pareto: the share of customers that brings each share of revenue"),
                {
                    "type": "line",
                    "unit": Unit.PERCENT.value,
                    "categories": [f"{point['revenue_share']} %" for point in pareto],
                    "series": [
                        {"name": str(FIELD_LABELS["customer_share"]), "data": [p["customer_share"] for p in pareto]}
                    ],
                },
            )
        )
    return charts


def _discount_depth_charts(result: Mapping[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    rows = result.get("rows")
    if not isinstance(rows, list) or not rows:
        return []
    labels = list(dict.fromkeys(row["label"] for row in rows))
    segments = list(dict.fromkeys(row.get("segment", "") for row in rows))
    value_labels = result_value_labels(result)
    charts = []
    for key, unit in (("average_check", Unit.MONEY), ("repeat_rate", Unit.PERCENT)):
        values = {(row.get("segment", ""), row["label"]): row.get(key) for row in rows}
        series = [
            {
                "name": value_label(value_labels, "segment", segment) or segment or field_label(key),
                "data": [values.get((segment, label)) for label in labels],
            }
            for segment in segments
        ]
        chart = {"type": "bar", "unit": unit.value, "categories": labels, "series": series}
        charts.append((_("%(value)s by discount depth") % {"value": field_label(key)}, chart))
    return charts


def _journey_charts(result: Mapping[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    """The analysis's own Sankey data (targets are separate nodes, so A → B → A is no cycle)."""
    sankey = result.get("sankey")
    if not isinstance(sankey, Mapping) or not sankey.get("links"):
        return []
    value_labels = result_value_labels(result)

    def step(node: str) -> str:
        """A node's name with its step's label (a channel's, say); a target keeps its prefix."""
        name = node.removeprefix(SANKEY_TARGET_PREFIX)
        shown = value_label(value_labels, "name", name) or name
        return SANKEY_TARGET_PREFIX + shown if node != name else shown

    nodes = [{**node, "name": step(node["name"])} for node in sankey["nodes"]]
    links = [{**link, "source": step(link["source"]), "target": step(link["target"])} for link in sankey["links"]]
    chart = {"type": "sankey", "unit": Unit.COUNT.value, "nodes": nodes, "links": links}
    return [(_("From one purchase to the next"), chart)]


ANALYSIS_CHART_BUILDERS = {
    "cohorts": _cohorts_charts,
    "rfm": _rfm_charts,
    "discount_depth": _discount_depth_charts,
    "journey": _journey_charts,
}
