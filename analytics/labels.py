"""Labels of analysis results in the page's language: every key an analysis can return, and its coded values.

The analysis pages print a result whatever its shape (``dashboards.analysis_sections``): a key becomes
a fact's or a column's label, a value a cell. A key is labelled by ``FIELD_LABELS`` (or, where one
analysis gives it a meaning of its own, ``ANALYSIS_FIELD_LABELS``), else by the metric of that id; a
value that is a code (an RFM segment id, a loyalty programme, a level) by ``result_value_labels``. The
analyses keep returning codes: the API and the command answer the same in every language.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from django.utils.functional import Promise
from django.utils.text import format_lazy
from django.utils.translation import gettext_lazy

from analytics.analyses.clv import QUANTILES
from analytics.analyses.loyalty import PROGRAMME_LABELS
from analytics.analyses.rfm import SEGMENTS as RFM_SEGMENTS
from analytics.periods import Granularity
from analytics.semantic.catalog import DIMENSIONS_BY_ID, METRICS_BY_ID
from analytics.semantic.registry import Unit
from integrations.models import Contact

FIELD_LABELS: dict[str, str | Promise] = {
    # Shared by several analyses.
    "customers": gettext_lazy("Customers"),
    "share": gettext_lazy("Share, %"),
    "revenue_share": gettext_lazy("Share of revenue, %"),
    "customer_share": gettext_lazy("Share of customers, %"),
    "segment": gettext_lazy("Segment"),
    "label": gettext_lazy("Name"),
    "name": gettext_lazy("Name"),
    "period": gettext_lazy("Period"),
    "previous_period": gettext_lazy("Previous period"),
    "from": gettext_lazy("From"),
    "to": gettext_lazy("To"),
    "level": gettext_lazy("Level"),
    "limit": gettext_lazy("Rows to show"),
    "repeat_buyers": gettext_lazy("Repeat buyers"),
    "retention": gettext_lazy("Retention, %"),
    # Cohorts.
    "metric": gettext_lazy("Metric"),
    "granularity": gettext_lazy("Granularity"),
    "cohorts": gettext_lazy("Cohorts"),
    "cohort": gettext_lazy("Cohort"),
    "size": gettext_lazy("Cohort size"),
    "periods": gettext_lazy("Periods since acquisition"),
    "cells": gettext_lazy("Cohort cells"),
    "revenue_per_customer": gettext_lazy("Revenue per cohort customer"),
    # RFM.
    "as_of": gettext_lazy("As of"),
    "lookback_days": gettext_lazy("Window, days"),
    "window": gettext_lazy("Window"),
    "segments": gettext_lazy("Segments"),
    "grid": gettext_lazy("R×F grid"),
    "pareto": gettext_lazy("Pareto: customers bringing a share of revenue"),
    "avg_recency_days": gettext_lazy("Average recency, days"),
    "avg_frequency": gettext_lazy("Average frequency, orders"),
    "avg_monetary": gettext_lazy("Average revenue per customer"),
    "r_score": gettext_lazy("R score"),
    "f_score": gettext_lazy("F score"),
    # Customer lifetime value.
    "calibration_end": gettext_lazy("Calibration end"),
    "horizon_days": gettext_lazy("Horizon, days"),
    "annual_discount_rate": gettext_lazy("Annual discount rate"),
    "model": gettext_lazy("Model"),
    "time_unit": gettext_lazy("Time unit"),
    "bg_nbd": gettext_lazy("BG/NBD: purchases"),
    "gamma_gamma": gettext_lazy("Gamma-Gamma: order value"),
    "r": gettext_lazy("r: shape of the purchase rate"),
    "alpha": gettext_lazy("α: scale of the purchase rate"),
    "p": gettext_lazy("p: shape of an order's value"),
    "q": gettext_lazy("q: shape of the spread of order values"),
    "v": gettext_lazy("v: scale of the spread of order values"),
    "log_likelihood": gettext_lazy("Log-likelihood"),
    "distinct_histories": gettext_lazy("Distinct histories"),
    "iterations": gettext_lazy("Iterations"),
    "frequency_monetary_correlation": gettext_lazy("Correlation of frequency and order value"),
    "population_order_value": gettext_lazy("Average order value over all customers"),
    "summary": gettext_lazy("Summary"),
    "history_days": gettext_lazy("History, days"),
    "expected_purchases": gettext_lazy("Expected purchases"),
    "expected_alive_customers": gettext_lazy("Expected active customers"),
    "clv": gettext_lazy("CLV"),
    "average_clv": gettext_lazy("Average CLV"),
    "quantiles": gettext_lazy("Percentiles"),
    "probability_alive": gettext_lazy("Probability of being active"),
    **{
        f"p{round(share * 100)}": format_lazy(gettext_lazy("{percent}th percentile"), percent=round(share * 100))
        for share in QUANTILES
    },
    "customer_id": gettext_lazy("Customer ID"),
    "frequency": gettext_lazy("Repeat purchase days"),
    "recency": gettext_lazy("Days from first to last purchase"),
    "T": gettext_lazy("Days since first purchase"),
    "monetary": gettext_lazy("Average repeat purchase value"),
    "expected_days_to_next_order": gettext_lazy("Expected days to the next order"),
    "median_days_to_next_order": gettext_lazy("Median days to the next order"),
    "expected_order_value": gettext_lazy("Expected order value"),
    # Basket.
    "sort": gettext_lazy("Sort by"),
    "min_orders": gettext_lazy("Minimum orders"),
    "max_items": gettext_lazy("Maximum items per order"),
    "multi_item_orders": gettext_lazy("Orders with two or more items"),
    "orders_over_cap": gettext_lazy("Orders over the item limit"),
    "pairs": gettext_lazy("Pairs"),
    "a_name": gettext_lazy("Product A"),
    "b_name": gettext_lazy("Product B"),
    "orders_a": gettext_lazy("Orders with A"),
    "orders_b": gettext_lazy("Orders with B"),
    "support": gettext_lazy("Support, %"),
    "confidence_a_b": gettext_lazy("Confidence A→B, %"),
    "confidence_b_a": gettext_lazy("Confidence B→A, %"),
    "lift": gettext_lazy("Lift"),
    # Journey.
    "purchases": gettext_lazy("Purchases"),
    "transitions": gettext_lazy("Transitions"),
    "nodes": gettext_lazy("Steps"),
    "edges": gettext_lazy("Transitions between steps"),
    "next_steps": gettext_lazy("Next purchases"),
    "repeats": gettext_lazy("Stayed at the step"),
    "stayers": gettext_lazy("Customers who never left the step"),
    "stay": gettext_lazy("Staying at the same step"),
    "transition_share": gettext_lazy("Share of transitions, %"),
    "first_purchases": gettext_lazy("First purchases"),
    # Discount depth.
    "bands": gettext_lazy("Discount bands"),
    "band": gettext_lazy("Band"),
    "segment_by": gettext_lazy("Split by"),
    "repeat_days": gettext_lazy("Repeat window, days"),
    "min_sample": gettext_lazy("Minimum sample"),
    "promo_code_orders": gettext_lazy("Orders with a promo code"),
    "repeat_observed_buyers": gettext_lazy("Buyers observed for a repeat"),
    "repeat_rate": gettext_lazy("Repeat rate, %"),
    "average_check_vs_baseline_pct": gettext_lazy("Average check against no discount, %"),
    "repeat_rate_vs_baseline_pp": gettext_lazy("Repeat rate against no discount, pp"),
    # Loyalty programmes.
    "groups": gettext_lazy("Programmes"),
    "programme": gettext_lazy("Programme"),
    "orders_per_buyer": gettext_lazy("Orders per buyer"),
    "discount_share": gettext_lazy("Discount share, %"),
    "retained": gettext_lazy("Retained buyers"),
    "total": gettext_lazy("Total"),
    # Peers.
    "peers": gettext_lazy("Peers"),
    "kpis": gettext_lazy("KPIs"),
    "kpi": gettext_lazy("KPI"),
    "unit": gettext_lazy("Unit"),
    "value": gettext_lazy("Value"),
    "peer_median": gettext_lazy("Peer median"),
    "difference_pct": gettext_lazy("Difference, %"),
}
# Keys one analysis uses in a sense of its own (basket's items A and B, the model's a and b), by analysis.
ANALYSIS_FIELD_LABELS: dict[str, dict[str, str | Promise]] = {
    "basket": {"a": gettext_lazy("Item A"), "b": gettext_lazy("Item B")},
    "clv": {
        "a": gettext_lazy("a: dropout shape"),
        "b": gettext_lazy("b: dropout shape"),
        "rows": gettext_lazy("Customers by CLV"),
    },
    "discount_depth": {"rows": gettext_lazy("Orders by discount depth")},
    # Everyone known by the period's end, against the buyers of the period.
    "loyalty": {"customers": gettext_lazy("Customers in the group")},
    "journey": {
        "name": gettext_lazy("Step"),
        "repeat_share": gettext_lazy("Stayed at the step, share of next purchases, %"),
        "repeat_customers": gettext_lazy("Customers with two or more purchases"),
    },
}

UNIT_LABELS: dict[str, str | Promise] = {
    Unit.COUNT: gettext_lazy("count"),
    Unit.MONEY: gettext_lazy("money"),
    Unit.PERCENT: gettext_lazy("percent"),
    Unit.NUMBER: gettext_lazy("number"),
    Unit.DAYS: gettext_lazy("days"),
}
GRANULARITY_LABELS: dict[str, str | Promise] = {
    Granularity.DAY: gettext_lazy("Day"),
    Granularity.WEEK: gettext_lazy("Week"),
    Granularity.MONTH: gettext_lazy("Month"),
    Granularity.QUARTER: gettext_lazy("Quarter"),
    Granularity.YEAR: gettext_lazy("Year"),
}
CHANNEL_LABELS: dict[str, str | Promise] = {"offline": gettext_lazy("Offline"), "online": gettext_lazy("Online")}
# Values of the dimensions an analysis splits or steps by, where they are codes (a city or a brand is a name).
DIMENSION_VALUE_LABELS: dict[str, Mapping[str, str | Promise]] = {
    "channel": CHANNEL_LABELS,
    "gender": dict(Contact.Gender.choices),
    "loyalty_program": PROGRAMME_LABELS,
}
DIMENSION_LABELS: dict[str, str | Promise] = {
    "none": gettext_lazy("No split"),
    **{dimension.id: dimension.label for dimension in DIMENSIONS_BY_ID.values()},
}
# Fields holding values of the dimension that another field of the same result names (journey steps by
# ``level``, discount depth splits by ``segment_by``).
DIMENSION_VALUED_FIELDS = {"level": ("name", "from", "to", "a", "b"), "segment_by": ("segment",)}
# What a field whose values are result keys or metric ids (the cohorts' metric, the basket's sort, the peers'
# KPIs) shows for them.
KEY_LABELS: dict[str, str | Promise] = {
    **{metric.id: metric.label for metric in METRICS_BY_ID.values()},
    **FIELD_LABELS,
}
# Coded values by field, whatever the analysis.
VALUE_LABELS: dict[str, Mapping[str, str | Promise]] = {
    "segment": {segment.id: segment.label for segment in RFM_SEGMENTS},
    "programme": PROGRAMME_LABELS,
    "granularity": GRANULARITY_LABELS,
    "time_unit": GRANULARITY_LABELS,
    "unit": UNIT_LABELS,
    "level": DIMENSION_LABELS,
    "segment_by": DIMENSION_LABELS,
    "band": {"no_discount": gettext_lazy("No discount")},
    "metric": KEY_LABELS,
    "sort": KEY_LABELS,
    "kpi": KEY_LABELS,
}


def known_field_label(key: str, analysis: str = "") -> str | Promise | None:
    """The label of a result key of ``analysis``: its own sense, the shared one, or the metric's; None if unknown."""
    own = ANALYSIS_FIELD_LABELS.get(analysis, {})
    if key in own:
        return own[key]
    if key in FIELD_LABELS:
        return FIELD_LABELS[key]
    return METRICS_BY_ID[key].label if key in METRICS_BY_ID else None


def field_label(key: str, analysis: str = "") -> str:
    """A result key's label; an unknown key in words (English: every key an analysis returns has a label)."""
    label = known_field_label(key, analysis)
    return str(label) if label is not None else key.replace("_", " ").capitalize()


def result_value_labels(result: Mapping[str, Any]) -> dict[str, Mapping[str, str | Promise]]:
    """The labels of a result's coded values, by field: what a cell shows instead of the code."""
    labels = dict(VALUE_LABELS)
    for naming_field, fields in DIMENSION_VALUED_FIELDS.items():
        if naming_field in result:
            dimension_values = DIMENSION_VALUE_LABELS.get(result[naming_field], {})
            labels.update(dict.fromkeys(fields, dimension_values))
    return labels


def value_label(labels: Mapping[str, Mapping[str, str | Promise]], key: str, value: Any) -> str | None:
    """The label of ``value`` of field ``key`` (``labels`` from ``result_value_labels``); None for no code."""
    if not isinstance(value, str) or value not in labels.get(key, {}):
        return None
    return str(labels[key][value])
