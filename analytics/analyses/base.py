"""What every analysis shares: typed parameters, the registry, and how a run is answered.

An analysis is a module of this package that defines ``ANALYSIS``, an ``Analysis`` whose
``compute`` runs inside the tenant (the tenant-scoped query module finds it) and returns
plain data: dicts, lists, numbers, ``Decimal`` for money, dates. The command, the API and
the pages all call ``analysis_run``, so they validate the same way and answer the same.
"""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import date
from decimal import ROUND_HALF_UP, Decimal
from functools import cache
from typing import Any

from django.utils.functional import Promise
from django.utils.translation import gettext as _

from analytics.clickhouse.query import current_tenant_id
from analytics.preaggregations import CUSTOMER_HISTORIES, fresh_builds
from tenants.errors import ApplicationError

CENT = Decimal("0.01")


def decimal_ratio(numerator: int | Decimal, denominator: int | Decimal, *, scale: int = 1) -> Decimal | None:
    """``numerator × scale / denominator`` to the cent (half up); None when there is nothing to divide by."""
    if not denominator:
        return None
    return (Decimal(numerator) * scale / Decimal(denominator)).quantize(CENT, ROUND_HALF_UP)


class InsufficientDataError(ApplicationError):
    """Too little data for an answer that means something (DESIGN guardrails): never a number that looks fine."""


@dataclass(frozen=True)
class Param:
    """A parameter: ``kind`` is int, float, str or date; ``default`` a value or a callable giving one."""

    name: str
    kind: type
    default: Any
    help: str | Promise
    choices: tuple[str, ...] = ()
    minimum: float | None = None
    maximum: float | None = None

    def default_value(self) -> Any:
        return self.default() if callable(self.default) else self.default

    def parse(self, raw: Any) -> Any:
        try:
            value = date.fromisoformat(str(raw)) if self.kind is date else self.kind(raw)
        except (TypeError, ValueError):
            raise ApplicationError(
                _("Parameter “%(name)s”: “%(value)s” is not a valid %(kind)s.")
                % {"name": self.name, "value": raw, "kind": self.kind.__name__},
                {"param": self.name, "value": str(raw)},
            ) from None
        if self.choices and value not in self.choices:
            raise ApplicationError(
                _("Parameter “%(name)s”: “%(value)s” is not one of %(valid)s.")
                % {"name": self.name, "value": raw, "valid": ", ".join(self.choices)},
                {"param": self.name, "value": str(raw), "valid": list(self.choices)},
            )
        if (self.minimum is not None and value < self.minimum) or (self.maximum is not None and value > self.maximum):
            raise ApplicationError(
                _("Parameter “%(name)s” must be between %(min)s and %(max)s, not %(value)s.")
                % {"name": self.name, "min": self.minimum, "max": self.maximum, "value": raw},
                {"param": self.name, "value": str(raw)},
            )
        return value

    def describe(self) -> dict[str, Any]:
        default = None if callable(self.default) else self.default
        described = {"name": self.name, "type": self.kind.__name__, "default": default, "help": str(self.help)}
        if self.choices:
            described["choices"] = list(self.choices)
        return described


@dataclass(frozen=True)
class Analysis:
    """``compute(params)`` answers for the current tenant; ``staff_only`` analyses are for the agency console."""

    name: str
    label: str | Promise
    description: str | Promise
    compute: Callable[[dict[str, Any]], dict[str, Any]]
    params: tuple[Param, ...] = field(default=())
    staff_only: bool = False

    def parse_params(self, raw: Mapping[str, Any]) -> dict[str, Any]:
        known = {param.name: param for param in self.params}
        unknown = sorted(set(raw) - set(known))
        if unknown:
            raise ApplicationError(
                _("Unknown parameter(s) %(unknown)s for %(name)s. Valid: %(valid)s.")
                % {"unknown": ", ".join(unknown), "name": self.name, "valid": ", ".join(known) or "—"},
                {"unknown": unknown, "valid": list(known)},
            )
        return {
            name: param.parse(raw[name]) if raw.get(name) not in (None, "") else param.default_value()
            for name, param in known.items()
        }

    def describe(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "label": str(self.label),
            "description": str(self.description),
            "params": [param.describe() for param in self.params],
        }


@cache
def analyses() -> dict[str, Analysis]:
    """Every analysis of this package, by name (each module that defines ``ANALYSIS``)."""
    found = {}
    for module_info in pkgutil.iter_modules(importlib.import_module(__package__).__path__):
        analysis = getattr(importlib.import_module(f"{__package__}.{module_info.name}"), "ANALYSIS", None)
        if isinstance(analysis, Analysis):
            found[analysis.name] = analysis
    return dict(sorted(found.items()))


def fresh_histories_build() -> int | None:
    """The current tenant's fresh ``customer_histories`` build; None while it is stale (then read the facts)."""
    return fresh_builds(current_tenant_id()).get(CUSTOMER_HISTORIES)


def analysis_get(name: str, *, staff: bool = False) -> Analysis:
    available = {key: value for key, value in analyses().items() if staff or not value.staff_only}
    if name not in available:
        raise ApplicationError(
            _("Unknown analysis “%(name)s”. Valid: %(valid)s.") % {"name": name, "valid": ", ".join(available)},
            {"analysis": name, "valid": list(available)},
        )
    return available[name]


def analysis_run(name: str, raw_params: Mapping[str, Any], *, staff: bool = False) -> dict[str, Any]:
    """Validate the parameters and run ``name`` for the current tenant."""
    analysis = analysis_get(name, staff=staff)
    params = analysis.parse_params(raw_params)
    return {"analysis": analysis.name, "params": params, **analysis.compute(params)}
