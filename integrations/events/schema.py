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
- ``null`` or ``""`` means "not given".
"""

from __future__ import annotations

import json
import re
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from dataclasses import fields as dataclass_fields
from datetime import UTC, date, datetime, timedelta, tzinfo
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation
from functools import cached_property
from typing import Any

from django.utils.translation import gettext as _

from integrations.ingest import (
    MESSAGE_CHANNELS,
    MESSAGE_EVENT_TYPES,
    WEB_EVENT_TYPES,
    WEB_PLATFORMS,
    Customer,
    MessageEvent,
    SalesLine,
    WebEvent,
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


# --- Field kinds -----------------------------------------------------------------------------


def text(max_length: int = 255, *, required: bool = False, description: str = "") -> Field:
    def parse(value: Any, ctx: ParseContext) -> str:
        if type(value) is not str:
            raise FieldInvalidError(_("must be a string"))
        if len(value) > max_length:
            raise FieldInvalidError(_("is longer than %(max)d characters") % {"max": max_length})
        return value

    schema = {"type": "string", "maxLength": max_length, "description": description}
    return Field(parse, schema, required, plain_max_length=max_length)


def identifier(max_length: int = 100, *, required: bool = False, description: str = "") -> Field:
    """An id from the sender's system: a string, or an integer (stored as its decimal text)."""

    def parse(value: Any, ctx: ParseContext) -> str:
        if type(value) is int:
            value = str(value)
        elif type(value) is not str:
            raise FieldInvalidError(_("must be a string or an integer"))
        if len(value) > max_length:
            raise FieldInvalidError(_("is longer than %(max)d characters") % {"max": max_length})
        return value

    schema = {"oneOf": [{"type": "string", "maxLength": max_length}, {"type": "integer"}], "description": description}
    return Field(parse, schema, required, plain_max_length=max_length)


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
    return Field(parse, base.openapi, required)


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
    return Field(parse, schema, required, default)


def _timestamp_parse(value: Any, ctx: ParseContext) -> datetime:
    if type(value) is not str or len(value) > 40:
        raise FieldInvalidError(_("must be an ISO 8601 date-time string, e.g. 2026-03-01T10:00:00+03:00"))
    try:
        ts = datetime.fromisoformat(value)
    except ValueError:
        raise FieldInvalidError(_("is not an ISO 8601 date-time, e.g. 2026-03-01T10:00:00+03:00")) from None
    if ts.tzinfo is None:
        ts = ts.replace(tzinfo=ctx.timezone)
    ts = ts.astimezone(UTC)
    if ts < EARLIEST_TS or ts > ctx.latest:
        raise FieldInvalidError(_("is before 1970 or more than a day in the future"))
    return ts


def timestamp(*, required: bool = False, description: str = "") -> Field:
    schema = {
        "type": "string",
        "format": "date-time",
        "description": description + " ISO 8601; without a zone it is in the workspace's timezone.",
    }
    return Field(_timestamp_parse, schema, required, None)


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
    return Field(parse, schema, False, default)


def _boolean_parse(value: Any, ctx: ParseContext) -> bool:
    if type(value) is not bool:
        raise FieldInvalidError(_("must be true or false"))
    return value


def boolean(*, description: str = "") -> Field:
    return Field(_boolean_parse, {"type": "boolean", "default": False, "description": description}, False, False)


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
    return Field(_line_no_parse, {"type": "integer", "minimum": 1, "description": description}, required, None)


# Good enough to catch a name or a phone in the e-mail column; delivery proves the rest.
_EMAIL = re.compile(r"[^@\s]+@[^@\s]+\.[^@\s]+")


def _email_parse(value: Any, ctx: ParseContext) -> str:
    if type(value) is not str or len(value) > 254 or not _EMAIL.fullmatch(value):
        raise FieldInvalidError(_("is not an e-mail address"))
    return value


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
            value = str(value)[:100]
        data = {"index": self.index, "field": self.field, "reason": self.reason, "value": value}
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
        elif type(raw) is str and 0 < len(raw) <= spec.plain_max_length:
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
    computed = (values["qty"] * values["price"] - values["discount"]).quantize(CENT, ROUND_HALF_UP)
    if computed < 0:
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
        line_numbers.append(number)
    return items, line_numbers


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
