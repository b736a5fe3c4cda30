"""Lookups over the registry: metrics and dimensions by id, what applies to what, the printed catalog."""

from __future__ import annotations

from functools import cache
from typing import Any

from analytics.semantic.dimensions import DIMENSIONS
from analytics.semantic.metrics import METRICS
from analytics.semantic.registry import Dimension, Metric, Source

METRICS_BY_ID: dict[str, Metric] = {metric.id: metric for metric in METRICS}
DIMENSIONS_BY_ID: dict[str, Dimension] = {dimension.id: dimension for dimension in DIMENSIONS}


@cache
def base_metrics(metric_id: str) -> tuple[Metric, ...]:
    """The base metrics a metric is computed from (itself, for a base metric)."""
    metric = METRICS_BY_ID[metric_id]
    if not metric.is_ratio:
        return (metric,)
    numerator, denominator = metric.ratio
    return tuple(dict.fromkeys(base_metrics(numerator) + base_metrics(denominator)))


@cache
def metric_sources(metric_id: str) -> frozenset[Source]:
    return frozenset(base.source for base in base_metrics(metric_id))


@cache
def applicable_dimensions(metric_id: str) -> tuple[str, ...]:
    """Dimensions that apply to every source the metric reads."""
    sources = metric_sources(metric_id)
    return tuple(d.id for d in DIMENSIONS if all(d.applies_to(source) for source in sources))


def catalog() -> dict[str, Any]:
    """Every metric and dimension with its label, unit and formula (``manage.py query --catalog``, the catalog page)."""
    return {
        "metrics": [
            {
                "id": metric.id,
                "label": str(metric.label),
                "group": metric.group.value,
                "unit": metric.unit.value,
                "formula": metric.formula,
                "sql": metric.sql or None,
                "ratio_of": list(metric.ratio) if metric.ratio else None,
                "sources": sorted(source.value for source in metric_sources(metric.id)),
                "dimensions": list(applicable_dimensions(metric.id)),
            }
            for metric in METRICS
        ],
        "dimensions": [
            {
                "id": dimension.id,
                "label": str(dimension.label),
                "description": dimension.description,
                "sources": sorted(source.value for source in dimension.expressions),
            }
            for dimension in DIMENSIONS
        ],
    }
