"""A metric query as the API, the command and dashboards state it, validated against the registry."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from django.utils.translation import gettext as _

from analytics.periods import Comparison, Granularity, Period, parse_choice, parse_period
from analytics.semantic.catalog import DIMENSIONS_BY_ID, METRICS_BY_ID, applicable_dimensions
from analytics.semantic.compiler import Filter
from tenants.errors import ApplicationError

MAX_METRICS = 100
MAX_DIMENSIONS = 3
DEFAULT_ROW_LIMIT = 1000
MAX_ROW_LIMIT = 50_000


@dataclass(frozen=True)
class MetricQuery:
    metrics: tuple[str, ...]
    period: Period
    dimensions: tuple[str, ...] = ()
    filters: tuple[Filter, ...] = ()
    granularity: Granularity | None = None
    comparison: Comparison | None = None
    limit: int = DEFAULT_ROW_LIMIT

    def cache_key(self) -> str:
        filters = [(f.dimension.id, f.values, f.exclude) for f in self.filters]
        parts = (self.metrics, self.period, self.dimensions, filters, self.granularity, self.comparison, self.limit)
        return repr(parts)


def query_parse(raw: Mapping[str, Any]) -> MetricQuery:
    """``{"metrics": [...], "dimensions": [...], "filters": [...], "from", "to", "granularity", "compare", "limit"}``.

    Filters are ``{"dimension": id, "values": [...], "exclude": bool}``. Unknown ids, a dimension that
    does not apply to a metric and a bad period raise an ApplicationError that lists what is valid.
    """
    metrics = _ids(raw.get("metrics"), "metrics")
    if not metrics:
        raise ApplicationError(_("Name at least one metric."), {"valid": list(METRICS_BY_ID)})
    if len(metrics) > MAX_METRICS:
        raise ApplicationError(_("At most %(n)d metrics in one query.") % {"n": MAX_METRICS})
    _known(metrics, METRICS_BY_ID, "metric")
    dimensions = _ids(raw.get("dimensions"), "dimensions")
    if len(dimensions) > MAX_DIMENSIONS:
        raise ApplicationError(_("At most %(n)d dimensions in one query.") % {"n": MAX_DIMENSIONS})
    _known(dimensions, DIMENSIONS_BY_ID, "dimension")
    filters = tuple(_filter(item) for item in raw.get("filters") or ())
    for dimension_id in (*dimensions, *(f.dimension.id for f in filters)):
        for metric_id in metrics:
            valid = applicable_dimensions(metric_id)
            if dimension_id not in valid:
                raise ApplicationError(
                    _("Dimension “%(dimension)s” does not apply to metric “%(metric)s”. Valid: %(valid)s.")
                    % {"dimension": dimension_id, "metric": metric_id, "valid": ", ".join(valid) or "—"},
                    {"dimension": dimension_id, "metric": metric_id, "valid": list(valid)},
                )
    if raw.get("from") in (None, "") or raw.get("to") in (None, ""):
        raise ApplicationError(_("Give the period: “from” and “to” dates (YYYY-MM-DD)."))
    limit = DEFAULT_ROW_LIMIT if raw.get("limit") in (None, "") else raw["limit"]  # 0 is a bad limit, not none
    if (not isinstance(limit, int) and not str(limit).isdigit()) or not 0 < int(limit) <= MAX_ROW_LIMIT:
        raise ApplicationError(_("“limit” must be a number from 1 to %(max)d.") % {"max": MAX_ROW_LIMIT})
    return MetricQuery(
        metrics=metrics,
        period=parse_period(raw["from"], raw["to"]),
        dimensions=dimensions,
        filters=filters,
        granularity=parse_choice(raw.get("granularity"), Granularity, "granularity"),
        comparison=parse_choice(raw.get("compare"), Comparison, "compare"),
        limit=int(limit),
    )


def _ids(value: Any, name: str) -> tuple[str, ...]:
    if value in (None, ""):
        return ()
    if isinstance(value, str):
        value = value.split(",")
    if not isinstance(value, list | tuple) or not all(isinstance(item, str) for item in value):
        raise ApplicationError(_("“%(name)s” must be a list of ids.") % {"name": name})
    return tuple(dict.fromkeys(item.strip() for item in value if item.strip()))


def _known(ids: tuple[str, ...], registry: Mapping[str, Any], kind: str) -> None:
    unknown = [item for item in ids if item not in registry]
    if unknown:
        raise ApplicationError(
            _("Unknown %(kind)s: %(unknown)s. Valid: %(valid)s.")
            % {"kind": kind, "unknown": ", ".join(unknown), "valid": ", ".join(registry)},
            {"unknown": unknown, "valid": list(registry)},
        )


def _filter(item: Any) -> Filter:
    if not isinstance(item, Mapping) or not isinstance(item.get("dimension"), str):
        raise ApplicationError(_("A filter is {“dimension”: id, “values”: [...], “exclude”: false}."))
    _known((item["dimension"],), DIMENSIONS_BY_ID, "dimension")
    values = item.get("values")
    if isinstance(values, str):
        values = [values]
    if not isinstance(values, list) or not values or not all(isinstance(v, str | int) for v in values):
        raise ApplicationError(
            _("Filter on “%(dimension)s” needs a non-empty list of values.") % {"dimension": item["dimension"]}
        )
    return Filter(DIMENSIONS_BY_ID[item["dimension"]], tuple(str(v) for v in values), bool(item.get("exclude")))
