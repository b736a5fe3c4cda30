"""What the events API accepts: one declaration drives both validation and the OpenAPI description.

A batch is a list of items; each is a JSON object whose ``type`` is ``order``, ``order_line``,
``customer``, ``message_event`` or ``web_event``. Validation is a compact hand-written pass, not
DRF serializers: the API must take 50k events/s on one process (bench/bench_events_api.py), and a
per-item serializer costs more than the whole write. Every problem is reported with the item's
index and the field; the caller (services) rejects a batch with any bad item whole.

Rules the caller can rely on (also in the OpenAPI description):
- timestamps are ISO 8601; one without a zone is in the workspace's timezone; stored in UTC;
- money and quantities are JSON numbers or numeric strings, read exactly (JSON numbers are parsed
  as Decimal from their text, never through float); more decimal places than the column holds
  (2 for money, 3 for quantities) is an error, not a silent rounding; negative values are an error
  (a return is a receipt with ``is_return: true`` and positive numbers);
- unknown fields are an error (they are usually typos such as ``customerId``);
- text holds neither NUL nor a lone UTF-16 surrogate (JSON escapes ``\\u0000``, ``\\ud800``): no store takes them;
- ``null`` or ``""`` means "not given".
"""

from __future__ import annotations

import json
import re
import sys
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from dataclasses import fields as dataclass_fields
from datetime import UTC, date, datetime, timedelta, tzinfo
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation
from functools import cached_property
from itertools import chain, repeat
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from django.utils.translation import gettext as _

from integrations.events.columns import (
    ColumnParser,
    ColumnUnfitError,
    amount_column,
    boolean_column,
    choice_column,
    line_number_column,
    text_column,
    timestamp_column,
)
from integrations.ingest import (
    MESSAGE_CHANNELS,
    MESSAGE_EVENT_TYPES,
    WEB_EVENT_TYPES,
    WEB_PLATFORMS,
    Customer,
    MessageEvent,
    SalesLine,
    WebEvent,
    event_columns,
    sales_line_columns,
)
from tenants.errors import ApplicationError

MAX_ITEMS = 10_000
MAX_BODY_BYTES = 16 * 1024 * 1024
MAX_LINES_PER_ORDER = 1_000
# Errors listed in a 400 answer; the total is reported too.
MAX_REPORTED_ERRORS = 100
EARLIEST_TS = datetime(1970, 1, 1, tzinfo=UTC)
# Timestamps up to this far ahead of our clock pass (the sender's clock may run fast).
CLOCK_SKEW = timedelta(days=1)
CENT = Decimal("0.01")
AMOUNT_LIMIT = Decimal(10) ** 16  # amounts are Decimal(18, 2): below 10^16
# Numeric strings each amount field remembers as accepted (then forgets, and starts again).
ACCEPTED_NUMBERS_KEPT = 50_000


class FieldInvalidError(Exception):
    """One field's value is wrong; ``reason`` says why, for a person to read."""

    def __init__(self, reason: str):
        self.reason = reason


class NestedInvalidError(Exception):
    """Several problems inside a nested value (the lines of an order): (field path, reason, value)."""

    def __init__(self, problems: list[tuple[str, str, Any]]):
        self.problems = problems


class BatchTooLargeError(ApplicationError):
    """The batch exceeds MAX_BODY_BYTES or MAX_ITEMS (answered with 413)."""


@dataclass(frozen=True, slots=True)
class ParseContext:
    timezone: tzinfo  # of naive timestamps: the workspace's
    latest: datetime  # the latest timestamp accepted

    @classmethod
    def at(cls, *, timezone: tzinfo, now: datetime) -> ParseContext:
        return cls(timezone=timezone, latest=now + CLOCK_SKEW)


Parser = Callable[[Any, ParseContext], Any]


@dataclass(frozen=True, slots=True)
class Field:
    parse: Parser
    openapi: dict[str, Any]
    required: bool = False
    default: Any = ""
    # A non-empty string up to this long is taken as is, without calling ``parse`` (the hot path).
    plain_max_length: int = 0
    # Checks the field of every item of a kind at once (integrations.events.columns); None: per item only.
    column: ColumnParser | None = None


# --- Field kinds -----------------------------------------------------------------------------

# What JSON text may carry (as \u escapes) and no store takes: NUL (Postgres text refuses it) and
# UTF-16 surrogates, which reach a Python string only alone (a pair decodes to one character).
_UNSTORABLE = re.compile("[\x00\ud800-\udfff]")


def _storable(value: str) -> bool:
    """Whether ``value`` holds neither NUL nor a lone surrogate; ASCII (most values) is told at once."""
    return "\x00" not in value if value.isascii() else _UNSTORABLE.search(value) is None


def _text_check(value: str) -> str:
    """``value``, or FieldInvalidError naming its first NUL or lone surrogate and where it is."""
    found = _UNSTORABLE.search(value)
    if found is None:
        return value
    position = found.start() + 1
    if found.group() == "\x00":
        raise FieldInvalidError(
            _("contains a NUL character (\\u0000) at character %(position)d") % {"position": position}
        )
    raise FieldInvalidError(
        _("contains a lone UTF-16 surrogate (%(code)s) at character %(position)d; send valid Unicode text")
        % {"code": _escaped(found.group()), "position": position}
    )


def _escaped(value: str) -> str:
    """``value`` with NUL and lone surrogates written as JSON escapes, so that a report can carry it."""
    return _UNSTORABLE.sub(lambda found: f"\\u{ord(found.group()):04x}", value)


def text(max_length: int = 255, *, required: bool = False, description: str = "") -> Field:
    def parse(value: Any, ctx: ParseContext) -> str:
        if type(value) is not str:
            raise FieldInvalidError(_("must be a string"))
        if len(value) > max_length:
            raise FieldInvalidError(_("is longer than %(max)d characters") % {"max": max_length})
        return _text_check(value)

    schema = {"type": "string", "maxLength": max_length, "description": description}
    return Field(
        parse, schema, required, plain_max_length=max_length, column=text_column(parse, max_length, required=required)
    )


def identifier(max_length: int = 100, *, required: bool = False, description: str = "") -> Field:
    """An id from the sender's system: a string, or an integer (stored as its decimal text)."""

    def parse(value: Any, ctx: ParseContext) -> str:
        if type(value) is int:
            value = str(value)
        elif type(value) is not str:
            raise FieldInvalidError(_("must be a string or an integer"))
        if len(value) > max_length:
            raise FieldInvalidError(_("is longer than %(max)d characters") % {"max": max_length})
        return _text_check(value)

    schema = {"oneOf": [{"type": "string", "maxLength": max_length}, {"type": "integer"}], "description": description}
    column = text_column(parse, max_length, required=required)
    return Field(parse, schema, required, plain_max_length=max_length, column=column)


def customer_identifier(*, required: bool = False, description: str = "") -> Field:
    """A customer id; one that is an e-mail address is refused, since ids reach ClickHouse and contacts must not."""
    base = identifier(100, required=required, description=description)

    def parse(value: Any, ctx: ParseContext) -> str:
        value = base.parse(value, ctx)
        if "@" in value:
            raise FieldInvalidError(
                _("looks like an e-mail address; send your own customer id, contacts go in a customer item")
            )
        return value

    # No plain fast path: every value goes through the e-mail check.
    return Field(parse, base.openapi, required, column=text_column(parse, 100, required=required, email_refused=True))


def choice(values: Sequence[str], *, required: bool = False, default: str = "", description: str = "") -> Field:
    allowed = frozenset(values)
    listed = ", ".join(values)

    def parse(value: Any, ctx: ParseContext) -> str:
        if value in allowed and type(value) is str:
            return value
        raise FieldInvalidError(_("must be one of: %(values)s") % {"values": listed})

    schema = {"type": "string", "enum": list(values), "description": description}
    if not required:
        schema["default"] = default
    return Field(
        parse, schema, required, default, column=choice_column(parse, values, required=required, default=default)
    )


def _timestamp_parse(value: Any, ctx: ParseContext) -> datetime:
    if type(value) is not str or len(value) > 40:
        raise FieldInvalidError(_("must be an ISO 8601 date-time string, e.g. 2026-03-01T10:00:00+03:00"))
    try:
        ts = datetime.fromisoformat(value)
    except ValueError:
        raise FieldInvalidError(_("is not an ISO 8601 date-time, e.g. 2026-03-01T10:00:00+03:00")) from None
    if ts.tzinfo is None:
        ts = ts.replace(tzinfo=ctx.timezone)
    try:
        ts = ts.astimezone(UTC)
    except OverflowError:  # within a day of year 1 or 9999: far out of range
        ts = None
    if ts is None or ts < EARLIEST_TS or ts > ctx.latest:
        raise FieldInvalidError(_("is before 1970 or more than a day in the future"))
    return ts


def timestamp(*, required: bool = False, description: str = "") -> Field:
    schema = {
        "type": "string",
        "format": "date-time",
        "description": description + " ISO 8601; without a zone it is in the workspace's timezone.",
    }
    return Field(_timestamp_parse, schema, required, None, column=timestamp_column(_timestamp_parse, required=required))


def _decimal(value: Any) -> Decimal:
    kind = type(value)
    if kind is Decimal:  # a JSON number, parsed from its text (json parse_float=Decimal)
        return value
    if kind is int:
        return Decimal(value)
    if kind is str:
        try:
            return Decimal(value)
        except InvalidOperation:
            raise FieldInvalidError(_("is not a number (use a dot as the decimal separator)")) from None
    raise FieldInvalidError(_("must be a number or a numeric string"))


def amount(places: int, *, positive: bool = False, default: Decimal | None = None, description: str = "") -> Field:
    """Money (``places=2``) or a quantity (``places=3``); exact, never negative, never rounded."""
    quantum = Decimal(1).scaleb(-places)
    limit = Decimal(10) ** (18 - places)  # Decimal(18, places) in ClickHouse
    smallest_int = 1 if positive else 0
    int_limit = int(limit)
    accepted: dict[str, Decimal] = {}  # numeric strings that passed: prices and discounts repeat a lot

    def parse(value: Any, ctx: ParseContext) -> Decimal:
        kind = type(value)
        if kind is str:
            known = accepted.get(value)
            if known is not None:
                return known
        elif kind is int and smallest_int <= value < int_limit:  # a whole number in range: nothing else to check
            return Decimal(value)
        number = _decimal(value)
        if not number.is_finite() or abs(number) >= limit:
            raise FieldInvalidError(_("is not a finite number below %(limit)s") % {"limit": f"{limit:,.0f}"})
        if number.quantize(quantum) != number:
            raise FieldInvalidError(_("has more than %(places)d decimal places") % {"places": places})
        if number < 0 or (positive and number == 0):
            raise FieldInvalidError(
                _("must be greater than 0") if positive else _("must not be negative; send a return as is_return: true")
            )
        if kind is str:
            if len(accepted) >= ACCEPTED_NUMBERS_KEPT:
                accepted.clear()
            accepted[value] = number
        return number

    schema = {
        "oneOf": [{"type": "number"}, {"type": "string", "pattern": r"^\d+(\.\d+)?$"}],
        "description": description + f" Exact, at most {places} decimal places; a number or a numeric string.",
    }
    column = amount_column(parse, places, positive=positive, default=default)
    return Field(parse, schema, False, default, column=column)


def _boolean_parse(value: Any, ctx: ParseContext) -> bool:
    if type(value) is not bool:
        raise FieldInvalidError(_("must be true or false"))
    return value


def boolean(*, description: str = "") -> Field:
    schema = {"type": "boolean", "default": False, "description": description}
    return Field(_boolean_parse, schema, False, False, column=boolean_column(_boolean_parse))


def _date_parse(value: Any, ctx: ParseContext) -> date:
    if type(value) is str and len(value) == 10:
        try:
            return date.fromisoformat(value)
        except ValueError:
            pass
    raise FieldInvalidError(_("must be a date as YYYY-MM-DD"))


def calendar_date(*, description: str = "") -> Field:
    return Field(_date_parse, {"type": "string", "format": "date", "description": description}, False, None)


def _line_no_parse(value: Any, ctx: ParseContext) -> int:
    if type(value) is not int or not 1 <= value <= 4_294_967_295:
        raise FieldInvalidError(_("must be a whole number from 1"))
    return value


def line_number(*, required: bool = False, description: str = "") -> Field:
    schema = {"type": "integer", "minimum": 1, "description": description}
    return Field(_line_no_parse, schema, required, None, column=line_number_column(_line_no_parse, required=required))


# Good enough to catch a name or a phone in the e-mail column; delivery proves the rest.
_EMAIL = re.compile(r"[^@\s]+@[^@\s]+\.[^@\s]+")


def _email_parse(value: Any, ctx: ParseContext) -> str:
    if type(value) is not str or len(value) > 254 or not _EMAIL.fullmatch(value):
        raise FieldInvalidError(_("is not an e-mail address"))
    return _text_check(value)


def _object_schema(fields: dict[str, Field], *, item_type: str = "", description: str = "") -> dict[str, Any]:
    """The JSON schema of an object made of ``fields`` (an item when ``item_type`` is given)."""
    properties = {name: {k: v for k, v in spec.openapi.items() if v != ""} for name, spec in fields.items()}
    required = [name for name, spec in fields.items() if spec.required]
    schema: dict[str, Any] = {"type": "object"}
    if item_type:
        properties = {"type": {"type": "string", "enum": [item_type]}, **properties}
        required = ["type", *required]
        schema["title"] = item_type
    if description:
        schema["description"] = description
    schema = {**schema, "properties": properties, "additionalProperties": False}
    return {**schema, "required": required} if required else schema


# --- Item types --------------------------------------------------------------------------------


def event_id(*, required: bool) -> Field:
    if required:
        return identifier(200, required=True, description="The sender's id; re-sending it replaces the earlier item.")
    return identifier(200, description="Accepted and ignored: orders and customers are identified by their own ids.")


ORDER_HEADER_FIELDS: dict[str, Field] = {
    "event_id": event_id(required=False),
    "order_id": identifier(required=True, description="Receipt or order number; with line_no, a line's identity."),
    "ts": timestamp(required=True, description="When the purchase (or return) happened."),
    "customer_id": customer_identifier(description="Empty for an anonymous receipt."),
    "store": text(200),
    "employee": text(200),
    "channel": text(64, description="Sales channel, e.g. retail, online."),
    "is_return": boolean(description="A return receipt: give positive numbers, they are stored negative."),
    "promo_code": text(64),
}
LINE_FIELDS: dict[str, Field] = {
    "product_id": identifier(200),
    "product_name": text(500),
    "category": text(200),
    "brand": text(200),
    "qty": amount(3, positive=True, default=Decimal(1), description="Quantity, default 1."),
    "price": amount(2, description="Unit price before discount."),
    "discount": amount(2, default=Decimal(0), description="Discount of the whole line."),
    "amount": amount(2, description="What the line cost; default qty × price − discount, rounded half up to kopecks."),
}
CUSTOMER_FIELDS: dict[str, Field] = {
    "event_id": event_id(required=False),
    "customer_id": customer_identifier(required=True),
    "created_at": timestamp(description="When the customer joined."),
    "first_name": text(100),
    "last_name": text(100),
    "gender": choice(("f", "m"), description="f or m; leave out when unknown."),
    "birth_date": calendar_date(),
    "email": Field(_email_parse, {"type": "string", "format": "email", "maxLength": 254}),
    "phone": text(32),
    "city": text(100),
    "store": text(200, description="Home store."),
    "consent_email": boolean(),
    "consent_sms": boolean(),
    "loyalty_program": choice(("bonus", "discount"), description="The loyalty programme the customer is in."),
}
MESSAGE_EVENT_FIELDS: dict[str, Field] = {
    "event_id": event_id(required=True),
    "event_type": choice(MESSAGE_EVENT_TYPES, required=True),
    "ts": timestamp(required=True),
    "customer_id": customer_identifier(required=True),
    "mailing_id": identifier(required=True),
    "campaign_id": identifier(),
    "channel": choice(MESSAGE_CHANNELS, required=True),
}
WEB_EVENT_FIELDS: dict[str, Field] = {
    "event_id": event_id(required=True),
    "event_type": choice(WEB_EVENT_TYPES, required=True),
    "ts": timestamp(required=True),
    "session_id": identifier(200, required=True),
    "customer_id": customer_identifier(description="Leave out for an anonymous visitor."),
    "platform": choice(WEB_PLATFORMS, default="web"),
    "category": text(200, description="Required for category_view."),
    "product_id": identifier(200, description="Required for product_view and add_to_cart."),
}
# Web events that mean nothing without a field.
WEB_EVENT_NEEDS = {"category_view": "category", "product_view": "product_id", "add_to_cart": "product_id"}


@dataclass
class ValidatedBatch:
    """A batch in canonical records, ready for integrations.ingest."""

    sales_lines: list[SalesLine] = field(default_factory=list)
    # By id: a customer sent twice in one batch is upserted once, as its later item says.
    customers: dict[str, Customer] = field(default_factory=dict)
    message_events: list[MessageEvent] = field(default_factory=list)
    web_events: list[WebEvent] = field(default_factory=list)
    items_by_type: Counter[str] = field(default_factory=Counter)

    def columns(self) -> BatchColumns:
        """The records as columns: a batch that needed the per-item checks is written as one that did not."""
        return BatchColumns(
            sales_lines=sales_line_columns(self.sales_lines) if self.sales_lines else None,
            message_events=event_columns(self.message_events) if self.message_events else None,
            web_events=event_columns(self.web_events) if self.web_events else None,
            customers=list(self.customers.values()),
            items_by_type=self.items_by_type,
        )


@dataclass
class BatchColumns:
    """A valid batch as the Arrow columns integrations.ingest writes; customers stay records (for Postgres)."""

    sales_lines: dict[str, pa.Array] | None = None
    message_events: dict[str, pa.Array] | None = None
    web_events: dict[str, pa.Array] | None = None
    customers: list[Customer] = field(default_factory=list)
    items_by_type: Counter[str] = field(default_factory=Counter)

    @property
    def sales_line_count(self) -> int:
        return len(self.sales_lines["order_id"]) if self.sales_lines else 0


@dataclass(frozen=True, slots=True)
class ItemError:
    index: int  # 0-based position of the item in the batch
    field: str | None  # a path such as "lines[2].price"; None for the item as a whole
    reason: str
    value: Any = None  # what was sent, when it helps
    line: int | None = None  # 1-based line of an NDJSON body

    def as_dict(self) -> dict[str, Any]:
        value = self.value
        if not (value is None or isinstance(value, bool | int)):
            value = _escaped(str(value)[:100])
        field = self.field and _escaped(self.field)  # an unknown key may hold anything
        data = {"index": self.index, "field": field, "reason": self.reason, "value": value}
        if self.line is not None:
            data["line"] = self.line
        return data


Problems = list[tuple[str, str, Any]]  # (field path, reason, value)


_MISSING = object()


@dataclass(frozen=True, slots=True)
class FieldSet:
    """The fields of one kind of object, with what the hot path needs worked out once."""

    fields: dict[str, Field]
    defaults: dict[str, Any]  # a required field starts as _MISSING
    required: tuple[str, ...]

    @classmethod
    def of(cls, fields: dict[str, Field]) -> FieldSet:
        defaults = {name: _MISSING if spec.required else spec.default for name, spec in fields.items()}
        return cls(fields, defaults, tuple(name for name, spec in fields.items() if spec.required))


def _fields_parse(
    obj: dict,
    field_set: FieldSet,
    ctx: ParseContext,
    problems: Problems,
    prefix: str = "",
    envelope: frozenset[str] = frozenset(),
) -> dict[str, Any]:
    """Parse ``obj`` (a missing field gets its default); add every problem to ``problems``.

    Keys in ``envelope`` (an item's ``type``) are neither fields nor unknown. Walks the keys
    present rather than every declared field: most items leave most optional fields out.
    """
    fields = field_set.fields
    values = field_set.defaults.copy()
    for name, raw in obj.items():
        spec = fields.get(name)
        if spec is None:
            if name not in envelope:
                problems.append((prefix + name, _("is not a known field"), None))
        elif type(raw) is str and 0 < len(raw) <= spec.plain_max_length and _storable(raw):
            values[name] = raw
        elif raw is not None and raw != "":  # null and "" mean "not given"
            try:
                values[name] = spec.parse(raw, ctx)
            except FieldInvalidError as exc:
                values[name] = None
                problems.append((prefix + name, exc.reason, raw))
            except NestedInvalidError as exc:
                values[name] = None
                problems.extend((prefix + name + path, reason, value) for path, reason, value in exc.problems)
    for name in field_set.required:
        if values[name] is _MISSING:
            problems.append((prefix + name, _("is required"), None))
    return values


def _line_amount(values: dict[str, Any], problems: Problems, prefix: str) -> None:
    """Fill in a line's amount from qty × price − discount when it was left out; price 0 when unknown."""
    if values["amount"] is not None:
        if values["price"] is None:
            values["price"] = Decimal(0)
        return
    if values["price"] is None:
        problems.append((prefix + "amount", _("give amount, or price (and qty)"), None))
        return
    exact = values["qty"] * values["price"] - values["discount"]
    # Only an amount below the limit is rounded: quantize refuses a result of more than 28 digits.
    computed = exact.quantize(CENT, ROUND_HALF_UP) if exact < AMOUNT_LIMIT else exact
    if computed >= AMOUNT_LIMIT:
        reason = _("qty × price − discount does not fit: amounts are below %(limit)s")
        problems.append((prefix + "amount", reason % {"limit": f"{AMOUNT_LIMIT:,.0f}"}, None))
    elif computed < 0:
        problems.append((prefix + "discount", _("is larger than qty × price"), values["discount"]))
    values["amount"] = computed


ORDER_LINE_FIELDS: dict[str, Field] = {
    "line_no": line_number(description="Position in the order; default: position in lines, from 1."),
    **LINE_FIELDS,
}
ORDER_LINE_FIELD_SET = FieldSet.of(ORDER_LINE_FIELDS)


def _order_lines_parse(value: Any, ctx: ParseContext) -> list[dict[str, Any]]:
    if type(value) is not list or not value:
        raise FieldInvalidError(_("must be a non-empty array of lines"))
    if len(value) > MAX_LINES_PER_ORDER:
        raise FieldInvalidError(_("has more than %(max)d lines") % {"max": MAX_LINES_PER_ORDER})
    problems: Problems = []
    lines, seen = [], set()
    for position, raw in enumerate(value):
        prefix = f"[{position}]."
        if type(raw) is not dict:
            problems.append((f"[{position}]", _("must be an object"), None))
            continue
        known = len(problems)
        line = _fields_parse(raw, ORDER_LINE_FIELD_SET, ctx, problems, prefix)
        if len(problems) == known:
            _line_amount(line, problems, prefix)
        line_no = line.get("line_no") or position + 1
        if line_no in seen:  # two lines with one key would collapse into one row
            problems.append((prefix + "line_no", _("repeats a line number of this order"), line_no))
        seen.add(line_no)
        line["line_no"] = line_no
        lines.append(line)
    if problems:
        raise NestedInvalidError(problems)
    return lines


ORDER_FIELDS: dict[str, Field] = {
    **ORDER_HEADER_FIELDS,
    "lines": Field(
        _order_lines_parse,
        {"type": "array", "minItems": 1, "maxItems": MAX_LINES_PER_ORDER, "items": _object_schema(ORDER_LINE_FIELDS)},
        required=True,
    ),
}
FLAT_LINE_FIELDS: dict[str, Field] = {
    **ORDER_HEADER_FIELDS,
    "line_no": line_number(required=True, description="With order_id, the line's identity."),
    **LINE_FIELDS,
}
# SalesLine's fields in order: orders build their lines by position, a third of the cost of named arguments.
_SALES_LINE_FIELDS = ("order_id", "line_no", "ts", "amount", "customer_id", "store", "employee", "channel",
                      "product_id", "product_name", "category", "brand", "qty", "price", "discount", "is_return",
                      "promo_code")  # fmt: skip
if tuple(f.name for f in dataclass_fields(SalesLine)) != _SALES_LINE_FIELDS:
    raise ImportError("SalesLine's fields changed: update _SALES_LINE_FIELDS and _order_build.")


def _order_build(values: dict[str, Any], problems: Problems, batch: ValidatedBatch) -> None:
    order_id, ts, customer_id, store = values["order_id"], values["ts"], values["customer_id"], values["store"]
    employee, channel, is_return = values["employee"], values["channel"], values["is_return"]
    promo_code = values["promo_code"]
    append = batch.sales_lines.append
    for line in values["lines"]:
        append(
            SalesLine(  # by position, in _SALES_LINE_FIELDS order
                order_id,
                line["line_no"],
                ts,
                line["amount"],
                customer_id,
                store,
                employee,
                channel,
                line["product_id"],
                line["product_name"],
                line["category"],
                line["brand"],
                line["qty"],
                line["price"],
                line["discount"],
                is_return,
                promo_code,
            )
        )


def _order_line_build(values: dict[str, Any], problems: Problems, batch: ValidatedBatch) -> None:
    _line_amount(values, problems, "")
    del values["event_id"]
    batch.sales_lines.append(SalesLine(**values))


def _customer_build(values: dict[str, Any], problems: Problems, batch: ValidatedBatch) -> None:
    del values["event_id"]
    batch.customers[values["customer_id"]] = Customer(**values)


def _message_event_build(values: dict[str, Any], problems: Problems, batch: ValidatedBatch) -> None:
    batch.message_events.append(MessageEvent(**values))


def _web_event_build(values: dict[str, Any], problems: Problems, batch: ValidatedBatch) -> None:
    needed = WEB_EVENT_NEEDS.get(values["event_type"])
    if needed and not values[needed]:
        problems.append((needed, _("is required for %(type)s") % {"type": values["event_type"]}, None))
    batch.web_events.append(WebEvent(**values))


@dataclass(frozen=True)
class ItemType:
    fields: dict[str, Field]
    # Turns parsed values into canonical records; may add problems that involve several fields.
    build: Callable[[dict[str, Any], Problems, ValidatedBatch], None]
    description: str

    @cached_property
    def field_set(self) -> FieldSet:
        return FieldSet.of(self.fields)


ITEM_TYPES: dict[str, ItemType] = {
    "order": ItemType(ORDER_FIELDS, _order_build, "A receipt (or a return) with its lines inline."),
    "order_line": ItemType(FLAT_LINE_FIELDS, _order_line_build, "One receipt line, its order's fields repeated."),
    "customer": ItemType(
        CUSTOMER_FIELDS,
        _customer_build,
        "A customer. Contacts stay in the workspace's own database; a record replaces the previous one whole.",
    ),
    "message_event": ItemType(MESSAGE_EVENT_FIELDS, _message_event_build, "What happened to one mailing message."),
    "web_event": ItemType(WEB_EVENT_FIELDS, _web_event_build, "One step of a web or app visit."),
}


ENVELOPE = frozenset({"type"})


def events_validate(
    items: Sequence[Any], *, context: ParseContext, line_numbers: Sequence[int] | None = None
) -> tuple[ValidatedBatch, list[ItemError]]:
    """Check every item; return the canonical records and every problem found (all of them, not the first)."""
    batch = ValidatedBatch()
    errors: list[ItemError] = []
    counts = batch.items_by_type
    for index, item in enumerate(items):
        problems: Problems = []
        kind = item.get("type") if type(item) is dict else None
        item_type = ITEM_TYPES.get(kind) if type(kind) is str else None
        if item_type is not None:
            values = _fields_parse(item, item_type.field_set, context, problems, envelope=ENVELOPE)
            if not problems:
                item_type.build(values, problems, batch)
                counts[kind] += 1
        elif type(item) is dict:
            problems.append(("type", _("must be one of: %(types)s") % {"types": ", ".join(ITEM_TYPES)}, kind))
        else:
            problems.append(("", _("must be a JSON object"), None))
        if problems:
            line = line_numbers[index] if line_numbers is not None else None
            errors.extend(ItemError(index, path or None, reason, value, line) for path, reason, value in problems)
    return batch, errors


# --- Whole columns ---------------------------------------------------------------------------------


def events_columns(items: Sequence[Any], *, context: ParseContext) -> BatchColumns | None:
    """The batch as columns when every item passes the whole-column checks; None when one does not.

    The fast path of ``events_validate``: each field of every item of a kind is checked at once
    (integrations.events.columns), and the lines of orders stay columns up to the write. It accepts
    exactly the batches ``events_validate`` accepts, with the same rows (customers, a few per batch,
    go through the per-item checks). None says an item has a problem (or a value the columns cannot
    tell about): the caller runs ``events_validate``, which names every problem.
    """
    if set(map(type, items)) != {dict}:
        return None
    kinds = list(map(dict.get, items, repeat("type")))
    if set(map(type, kinds)) != {str}:
        return None
    positions: dict[str, list[int]] = {}
    for position, kind in enumerate(kinds):
        positions.setdefault(kind, []).append(position)
    if not positions.keys() <= ITEM_TYPES.keys():
        return None
    of_kind = {kind: [items[position] for position in kind_positions] for kind, kind_positions in positions.items()}
    batch = BatchColumns(
        items_by_type=Counter({kind: len(kind_positions) for kind, kind_positions in positions.items()})
    )
    try:
        lines = []  # (columns, the item position of each line)
        if "order" in of_kind:
            columns, order_of_line = _order_lines_columns(of_kind["order"], context)
            lines.append((columns, np.asarray(positions["order"])[order_of_line]))
        if "order_line" in of_kind:
            columns = _kind_columns(of_kind["order_line"], FLAT_LINE_FIELDS, context, known=_ITEM_KEYS["order_line"])
            del columns["event_id"]
            lines.append((columns, np.asarray(positions["order_line"])))
        if lines:
            batch.sales_lines = _in_item_order(lines)
            _line_amounts_fill(batch.sales_lines)
        if "message_event" in of_kind:
            batch.message_events = _kind_columns(
                of_kind["message_event"], MESSAGE_EVENT_FIELDS, context, known=_ITEM_KEYS["message_event"]
            )
        if "web_event" in of_kind:
            batch.web_events = _kind_columns(
                of_kind["web_event"], WEB_EVENT_FIELDS, context, known=_ITEM_KEYS["web_event"]
            )
            _web_event_needs_check(batch.web_events)
        if "customer" in of_kind:
            customers, errors = events_validate(of_kind["customer"], context=context)
            if errors:
                return None
            batch.customers = list(customers.customers.values())
    except (ColumnUnfitError, FieldInvalidError, pa.ArrowException, OverflowError, UnicodeEncodeError):
        return None
    return batch


# The keys an item of each type, and a line of an order, may have.
_ITEM_KEYS = {kind: ENVELOPE.union(item_type.fields) for kind, item_type in ITEM_TYPES.items()}
_ORDER_LINE_KEYS = frozenset(ORDER_LINE_FIELDS)


def _kind_columns(
    dicts: list[dict], fields: dict[str, Field], ctx: ParseContext, *, known: frozenset[str]
) -> dict[str, pa.Array]:
    """The columns of ``fields`` over ``dicts``, whose keys must be among ``known``."""
    present = set(chain.from_iterable(dicts))
    if not present <= known:
        raise ColumnUnfitError  # an unknown field
    absent = [None] * len(dicts)  # a field no item has is not looked up in each (most optional fields)
    return {
        name: spec.column(list(map(dict.get, dicts, repeat(name))) if name in present else absent, ctx)
        for name, spec in fields.items()
    }


def _order_lines_columns(orders: list[dict], ctx: ParseContext) -> tuple[dict[str, pa.Array], np.ndarray]:
    """The sales-line columns of ``orders`` and, for each line, its order's position in ``orders``."""
    order_lines = list(map(dict.get, orders, repeat("lines")))
    if set(map(type, order_lines)) != {list}:
        raise ColumnUnfitError
    counts = np.fromiter(map(len, order_lines), np.int64, len(orders))
    if counts.min() < 1 or counts.max() > MAX_LINES_PER_ORDER:
        raise ColumnUnfitError
    lines = list(chain.from_iterable(order_lines))
    if set(map(type, lines)) != {dict}:
        raise ColumnUnfitError
    columns = _kind_columns(lines, ORDER_LINE_FIELDS, ctx, known=_ORDER_LINE_KEYS)
    order_of_line = np.repeat(np.arange(len(orders)), counts)
    # A line without line_no is numbered by its position in the order, from 1.
    line_no = np.arange(1, len(lines) + 1) - np.repeat(np.cumsum(counts) - counts, counts)
    given = columns["line_no"]
    if given.null_count < len(given):
        line_no = np.where(given.is_null().to_numpy(zero_copy_only=False), line_no, given.fill_null(0).to_numpy())
        keys = (order_of_line << 32) | line_no
        if len(np.unique(keys)) != len(keys):
            raise ColumnUnfitError  # two lines of one order with one number would collapse into one row
    columns["line_no"] = pa.array(line_no, pa.uint32())
    header = _kind_columns(orders, ORDER_HEADER_FIELDS, ctx, known=_ITEM_KEYS["order"])
    del header["event_id"]
    take = pa.array(order_of_line)
    columns.update((name, column.take(take)) for name, column in header.items())
    return columns, order_of_line


def _in_item_order(parts: list[tuple[dict[str, pa.Array], np.ndarray]]) -> dict[str, pa.Array]:
    """Sales lines of orders and of order_line items as one set of columns, in the order of their items.

    The order matters: of two copies of a line in one batch, the later one is kept.
    """
    if len(parts) == 1:
        return parts[0][0]
    (first, first_positions), (second, second_positions) = parts
    order = pa.array(np.argsort(np.concatenate([first_positions, second_positions]), kind="stable"))
    return {name: pa.concat_arrays([column, second[name]]).take(order) for name, column in first.items()}


def _line_amounts_fill(columns: dict[str, pa.Array]) -> None:
    """``_line_amount`` on columns: where amount is not given, qty × price − discount rounded half up to
    kopecks; where price is not given, 0."""
    amount, price = columns["amount"], columns["price"]
    if amount.null_count:
        missing = amount.is_null()
        if pc.any(pc.and_(missing, price.is_null())).as_py():
            raise ColumnUnfitError  # neither amount nor price
        computed = pc.round(
            pc.subtract(pc.multiply(columns["qty"], price), columns["discount"]),
            2,
            round_mode="half_towards_infinity",  # ROUND_HALF_UP: halves away from zero
        )
        if pc.any(pc.and_(missing, pc.less(computed, pa.scalar(0, computed.type)))).as_py():
            raise ColumnUnfitError  # a discount larger than qty × price
        columns["amount"] = pc.if_else(missing, computed.cast(amount.type), amount)
    if price.null_count:
        columns["price"] = price.fill_null(pa.scalar(0, price.type))


def _web_event_needs_check(columns: dict[str, pa.Array]) -> None:
    for event_type, needed in WEB_EVENT_NEEDS.items():
        if pc.any(pc.and_(pc.equal(columns["event_type"], event_type), pc.equal(columns[needed], ""))).as_py():
            raise ColumnUnfitError


# --- Bodies ------------------------------------------------------------------------------------

_decoder = json.JSONDecoder(parse_float=Decimal)  # JSON numbers with a fraction are read exactly


def body_too_large() -> BatchTooLargeError:
    return BatchTooLargeError(
        _("The body is larger than %(max)d MiB; split the batch (at most %(items)d items per request).")
        % {"max": MAX_BODY_BYTES // (1024 * 1024), "items": MAX_ITEMS}
    )


def _too_many_items() -> BatchTooLargeError:
    return BatchTooLargeError(_("The batch has more than %(max)d items; split it.") % {"max": MAX_ITEMS})


def events_parse(body: bytes, *, ndjson: bool) -> tuple[list[Any], list[int] | None]:
    """Decode a JSON array or an NDJSON body into items (and, for NDJSON, each item's 1-based line)."""
    if len(body) > MAX_BODY_BYTES:
        raise body_too_large()
    try:
        text_body = body.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ApplicationError(
            _("The body is not UTF-8: invalid byte at position %(position)d.") % {"position": exc.start},
            {"position": exc.start},
        ) from None
    if ndjson:
        items, line_numbers = _ndjson_parse(text_body)
    else:
        items, line_numbers = _json_array_parse(text_body), None
    if not items:
        raise ApplicationError(_("The batch is empty: send at least one item."))
    if len(items) > MAX_ITEMS:
        raise _too_many_items()
    return items, line_numbers


def _json_array_parse(text_body: str) -> list[Any]:
    try:
        items = _decoder.decode(text_body)
    except json.JSONDecodeError as exc:
        raise ApplicationError(
            _("The body is not valid JSON: %(error)s at line %(line)d, column %(column)d (character %(position)d).")
            % {"error": exc.msg, "line": exc.lineno, "column": exc.colno, "position": exc.pos},
            {"line": exc.lineno, "column": exc.colno, "position": exc.pos},
        ) from None
    except (ValueError, RecursionError) as exc:
        raise ApplicationError(_("The body is not valid JSON: %(error)s.") % {"error": _undecodable(exc)}) from None
    if type(items) is not list:
        raise ApplicationError(
            _("The body must be a JSON array of items (or NDJSON, sent as Content-Type: application/x-ndjson).")
        )
    return items


def _ndjson_parse(text_body: str) -> tuple[list[Any], list[int]]:
    items: list[Any] = []
    line_numbers: list[int] = []
    decode = _decoder.decode
    for number, line in enumerate(text_body.split("\n"), start=1):
        if not line or line.isspace():  # blank lines (a trailing newline) carry nothing
            continue
        if len(items) == MAX_ITEMS:
            raise _too_many_items()
        try:
            items.append(decode(line))
        except json.JSONDecodeError as exc:
            raise ApplicationError(
                _("Line %(line)d is not valid JSON: %(error)s at column %(column)d.")
                % {"line": number, "error": exc.msg, "column": exc.colno},
                {"line": number, "column": exc.colno},
            ) from None
        except (ValueError, RecursionError) as exc:
            raise ApplicationError(
                _("Line %(line)d is not valid JSON: %(error)s.") % {"line": number, "error": _undecodable(exc)},
                {"line": number},
            ) from None
        line_numbers.append(number)
    return items, line_numbers


def _undecodable(exc: ValueError | RecursionError) -> str:
    """Why well-formed JSON could not be read: the two limits of Python's decoder."""
    if isinstance(exc, RecursionError):
        return _("arrays or objects are nested too deeply")
    # The only ValueError other than JSONDecodeError: an integer beyond Python's int_max_str_digits.
    return _("a number has more than %(max)d digits") % {"max": sys.get_int_max_str_digits()}


# --- OpenAPI -----------------------------------------------------------------------------------


def item_openapi_schema() -> dict[str, Any]:
    """The JSON schema of one item, generated from the declarations the validator runs."""
    return {
        "oneOf": [
            _object_schema(item_type.fields, item_type=name, description=item_type.description)
            for name, item_type in ITEM_TYPES.items()
        ]
    }


def batch_openapi_schema() -> dict[str, Any]:
    return {"type": "array", "minItems": 1, "maxItems": MAX_ITEMS, "items": item_openapi_schema()}
