"""The shapes of the semantic layer: metrics, dimensions, and the fact sources they are defined over.

A *base* metric is an aggregate over the rows of one source (``sql``). A *ratio* metric divides
two other metrics, possibly of different sources; it applies to the dimensions both apply to.
A dimension is a String-valued SQL expression per source it applies to. Ids are stable: the API
and saved dashboards use them.
"""

from __future__ import annotations

import enum
from collections.abc import Callable
from dataclasses import dataclass, field

from django.utils.functional import Promise


class Source(enum.StrEnum):
    """Where a base metric's rows come from; each compiles differently (analytics/semantic/compiler.py)."""

    SALES = "sales"  # sales_lines in the period, one row per receipt line
    CUSTOMERS = "customers"  # each identified customer's order history, evaluated at every bucket
    CONTACTS = "contacts"  # customer_attributes, evaluated at every bucket
    MESSAGES = "messages"  # message_events in the period
    ATTRIBUTION = "attribution"  # orders in the period attributed to a mailing (delivery or click before it)
    WEB = "web"  # web_events in the period


class Unit(enum.StrEnum):
    COUNT = "count"
    MONEY = "money"
    PERCENT = "percent"
    NUMBER = "number"
    DAYS = "days"


class Group(enum.StrEnum):
    """Metric groups of seed 002's dashboards."""

    SALES = "sales"
    CRM = "crm"
    MAILINGS = "mailings"
    CUSTOMER_BASE = "customer_base"
    FUNNEL = "funnel"


@dataclass(frozen=True)
class Metric:
    id: str
    label: str | Promise
    group: Group
    unit: Unit
    formula: str  # how it is computed, in words and symbols (English), shown on the catalog page
    source: Source | None = None  # base metrics
    sql: str = ""  # base metrics: an aggregate over the source's rows
    ratio: tuple[str, str] | None = None  # ratio metrics: (numerator id, denominator id)
    decimals: int = 0  # digits kept by the answer; money keeps 2 and stays Decimal
    unknown_when_empty: bool = False  # no rows (or a NULL): None, not 0 (incremental revenue without a control group)

    @property
    def is_ratio(self) -> bool:
        return self.ratio is not None


@dataclass(frozen=True)
class Dimension:
    id: str
    label: str | Promise
    description: str
    # Per source: a String expression over the source's row alias or a customer-level join (dimensions.py).
    expressions: dict[Source, str] = field(default_factory=dict)
    sort_numeric: bool = False  # weekday, hour: order rows by the number, not the text
    # The expressions give an Array(String) of the row's values (a customer's segments): slicing counts the row
    # once under each value, a filter keeps (or excludes) the row when any of its values is among the filter's.
    multi_valued: bool = False
    value_label: Callable[[str], str] | None = None  # a value's label when the value is a code (segment ids)

    def applies_to(self, source: Source) -> bool:
        return source in self.expressions
