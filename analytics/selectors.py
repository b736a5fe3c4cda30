"""Reads of the semantic layer: a metric query answered with rows, totals and the comparison's deltas."""

from __future__ import annotations

import hashlib
from collections import defaultdict
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from decimal import ROUND_HALF_UP, Decimal
from typing import Any
from zoneinfo import ZoneInfo

from django.conf import settings
from django.core.cache import caches
from django.db import connection
from django.utils import translation

from analytics.clickhouse.query import data_version, tenant_query
from analytics.periods import Period
from analytics.preaggregations import fresh_builds
from analytics.semantic.catalog import DIMENSIONS_BY_ID, METRICS_BY_ID, base_metrics
from analytics.semantic.compiler import CompiledQuery, TenantSettings, bucket_number, compile_source, time_buckets
from analytics.semantic.customer_days import customer_days_source
from analytics.semantic.registry import Metric, Source, Unit
from analytics.semantic.spec import MetricQuery

RowKey = tuple[int, tuple[str, ...]]  # (bucket number, dimension values)
_shared_rows: ContextVar[dict[tuple, list[tuple]] | None] = ContextVar("shared_rows", default=None)
CENT = Decimal("0.01")


def metrics_query(query: MetricQuery) -> dict[str, Any]:
    """Answer ``query`` for the current tenant, from the cache when that tenant's data has not changed since."""
    tenant = connection.tenant
    seconds = settings.ANALYTICS_QUERY_CACHE_SECONDS
    if not seconds:
        return _answer(query, tenant)
    digest = hashlib.sha256(query.cache_key().encode()).hexdigest()
    # The tenant's query settings are in the key: changing the timezone or churn window changes answers;
    # so is the language, which the answer's labels are in.
    key = f"query:{tenant.pk}:{data_version(tenant.pk)}:{tenant.timezone}:{tenant.churn_window_days}:"
    key += f"{tenant.attribution_window_days}:{translation.get_language()}:{digest}"
    cache = caches["analytics"]
    answer = cache.get(key)
    if answer is None:
        answer = _answer(query, tenant)
        cache.set(key, answer, seconds)
    return answer


def _answer(query: MetricQuery, tenant: Any) -> dict[str, Any]:
    tenant_settings = TenantSettings(
        timezone=ZoneInfo(tenant.timezone),
        churn_window_days=tenant.churn_window_days,
        attribution_window_days=tenant.attribution_window_days,
        builds=fresh_builds(tenant.pk),
    )
    rows, totals = _evaluate(query, query.period, tenant_settings)
    compared_period = query.period.compared(query.comparison) if query.comparison else None
    previous_rows, previous_totals = _evaluate(query, compared_period, tenant_settings) if compared_period else ({}, {})
    periods = time_buckets(query.period, query.granularity)
    ordered = _ordered(query, rows)
    answer_rows = []
    for key in ordered[: query.limit]:
        number, values = key
        row: dict[str, Any] = {
            "bucket": periods[number].start if query.granularity else None,
            "dimensions": dict(zip(query.dimensions, values, strict=True)),
            "values": rows[key],
        }
        if compared_period:
            row["previous"] = previous_rows.get(key, _empty(query.metrics))
            row["change"] = _changes(row["values"], row["previous"])
        answer_rows.append(row)
    answer_totals: dict[str, Any] = {"values": totals}
    if compared_period:
        answer_totals["previous"] = previous_totals
        answer_totals["change"] = _changes(totals, previous_totals)
    return {
        "period": query.period.as_json(),
        "comparison": {"type": query.comparison.value, **compared_period.as_json()} if compared_period else None,
        "granularity": query.granularity.value if query.granularity else None,
        "buckets": [bucket.as_json() for bucket in periods] if query.granularity else [],
        "metrics": [_describe_metric(METRICS_BY_ID[m]) for m in query.metrics],
        "dimensions": [{"id": d, "label": str(DIMENSIONS_BY_ID[d].label)} for d in query.dimensions],
        "rows": answer_rows,
        "row_count": len(ordered),
        "truncated": len(ordered) > query.limit,
        "totals": answer_totals,
    }


def _describe_metric(metric: Metric) -> dict[str, Any]:
    return {"id": metric.id, "label": str(metric.label), "unit": metric.unit.value, "group": metric.group.value}


def _evaluate(
    query: MetricQuery, period: Period, tenant_settings: TenantSettings
) -> tuple[dict[RowKey, dict[str, Any]], dict[str, Any]]:
    """Per row key (bucket, dimension values) the value of every requested metric, and the totals."""
    sliced = bool(query.dimensions) or query.granularity is not None
    rows = _base_values(query, period, tenant_settings, query.dimensions, query.granularity)
    totals = _base_values(query, period, tenant_settings, (), None) if sliced else rows
    total_values = _metric_values(query.metrics, totals.get((0, ()), {}))
    return {key: _metric_values(query.metrics, base) for key, base in rows.items()}, total_values


def _base_values(
    query: MetricQuery, period: Period, tenant_settings: TenantSettings, dimension_ids: tuple[str, ...], granularity
) -> dict[RowKey, dict[str, Any]]:
    dimensions = tuple(DIMENSIONS_BY_ID[d] for d in dimension_ids)
    filtered_by = tuple(condition.dimension for condition in query.filters)
    by_source: dict[Source, list[Metric]] = defaultdict(list)
    for metric_id in sorted(query.metrics):  # one order whatever the query's: equal statements are shared
        for base in base_metrics(metric_id):
            source = customer_days_source(base, dimensions, filtered_by, tenant_settings.builds)
            if base not in by_source[source]:
                by_source[source].append(base)
    values: dict[RowKey, dict[str, Any]] = defaultdict(dict)
    for source, metrics in by_source.items():
        compiled = compile_source(
            source, tuple(metrics), dimensions, query.filters, period, granularity, tenant_settings
        )
        for row in _statement_rows(compiled):
            key = (bucket_number(compiled, row[0]), tuple(row[1 : 1 + len(dimensions)]))
            for metric, value in zip(metrics, row[1 + len(dimensions) :], strict=True):
                values[key][metric.id] = value
    return values


def _statement_rows(compiled: CompiledQuery) -> list[tuple]:
    """The statement's rows; inside ``shared_statements`` a statement already run there is not run again."""
    shared = _shared_rows.get()
    if shared is None:
        return tenant_query(compiled.sql, compiled.params).result_rows
    key = (connection.tenant.pk, compiled.sql, repr(sorted(compiled.params.items())))
    if key not in shared:
        shared[key] = tenant_query(compiled.sql, compiled.params).result_rows
    return shared[key]


@contextmanager
def shared_statements() -> Iterator[None]:
    """Within the block, equal statements (the same SQL and parameters) run once: a dashboard's widgets often ask
    for the same totals and comparisons. Not a cache: nothing outlives the block."""
    token = _shared_rows.set({})
    try:
        yield
    finally:
        _shared_rows.reset(token)


def _metric_values(metric_ids: tuple[str, ...], base: dict[str, Any]) -> dict[str, Any]:
    return {metric_id: _value(METRICS_BY_ID[metric_id], base) for metric_id in metric_ids}


def _value(metric: Metric, base: dict[str, Any]) -> Any:
    if not metric.is_ratio:
        value = base.get(metric.id)
        if value is None:  # no rows in this slice: a count or a sum is zero, a mean is unknown
            return None if metric.unit is Unit.DAYS or metric.unknown_when_empty else _rounded(metric, 0)
        return _rounded(metric, value)
    numerator, denominator = (_exact(METRICS_BY_ID[part], base) for part in metric.ratio)
    if numerator is None or not denominator:
        return None
    quotient = Decimal(numerator) / Decimal(denominator)
    return _rounded(metric, quotient * 100 if metric.unit is Unit.PERCENT else quotient)


def _exact(metric: Metric, base: dict[str, Any]) -> Any:
    """A metric's unrounded value, for use inside a ratio."""
    if not metric.is_ratio:
        return base.get(metric.id, 0)
    numerator, denominator = (_exact(METRICS_BY_ID[part], base) for part in metric.ratio)
    if numerator is None or not denominator:
        return None
    return Decimal(numerator) / Decimal(denominator)


def _rounded(metric: Metric, value: Any) -> Any:
    """Money to the cent (Decimal), counts whole, the rest to the metric's decimals; halves round up everywhere."""
    if value is None:
        return None
    if metric.unit is Unit.MONEY:
        return Decimal(value).quantize(CENT, rounding=ROUND_HALF_UP)
    if metric.unit is Unit.COUNT:
        return int(value)
    return float(Decimal(value).quantize(Decimal(1).scaleb(-metric.decimals), rounding=ROUND_HALF_UP))


def _empty(metric_ids: tuple[str, ...]) -> dict[str, Any]:
    return _metric_values(metric_ids, {})


def _changes(current: dict[str, Any], previous: dict[str, Any]) -> dict[str, Any]:
    """Each metric's change between the shown values: absolute in its unit, relative in % of the previous one."""
    changes = {}
    for metric_id, value in current.items():
        before = previous.get(metric_id)
        if value is None or before is None:
            changes[metric_id] = {"absolute": None, "percent": None}
            continue
        # The shown numbers exactly: a float's str is the rounded value, not its binary neighbour.
        now, then = Decimal(str(value)), Decimal(str(before))
        percent = ((now - then) / abs(then) * 100).quantize(CENT, rounding=ROUND_HALF_UP) if then else None
        changes[metric_id] = {
            "absolute": _rounded(METRICS_BY_ID[metric_id], now - then),
            "percent": None if percent is None else float(percent),
        }
    return changes


def _ordered(query: MetricQuery, rows: dict[RowKey, dict[str, Any]]) -> list[RowKey]:
    """By bucket; within a bucket by the dimensions' natural order for weekday/hour, else by the first metric."""
    first = query.metrics[0]
    numeric = [DIMENSIONS_BY_ID[d].sort_numeric for d in query.dimensions]

    def order(key: RowKey) -> tuple:
        number, values = key
        if numeric and all(numeric):
            return (number, tuple(int(v) if v.isdigit() else -1 for v in values))
        value = rows[key][first]
        return (number, value is None, -(value or 0), values)

    return sorted(rows, key=order)
