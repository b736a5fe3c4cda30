"""The one place every importer (files, MoySklad, events API, demo generator) writes through.

Importers turn their input into canonical rows (DESIGN §8) and hand them here; this
module normalises signs, stamps the ingest version and writes ClickHouse through the
tenant-scoped query module, and contacts (PII) to the tenant's Postgres schema only.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime
from decimal import Decimal
from operator import attrgetter

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pa_csv
from django.db import connection, transaction

from analytics.clickhouse.query import tenant_command, tenant_insert_arrow, tenant_insert_arrow_stream
from integrations.models import Contact


# Records the events API builds on its hot path are not frozen: a frozen dataclass costs three
# times as much to build.
@dataclass(slots=True)
class SalesLine:
    """One receipt line in canonical form. Returns: ``is_return`` with positive or negative numbers."""

    order_id: str
    line_no: int
    ts: datetime  # timezone-aware
    amount: Decimal
    customer_id: str = ""
    store: str = ""
    employee: str = ""
    channel: str = ""
    product_id: str = ""
    product_name: str = ""
    category: str = ""
    brand: str = ""
    qty: Decimal = Decimal(1)
    price: Decimal = Decimal(0)
    discount: Decimal = Decimal(0)
    is_return: bool = False
    promo_code: str = ""


@dataclass(frozen=True, slots=True)
class Customer:
    """A customer record: the PII part goes to Postgres, the rest to ClickHouse."""

    customer_id: str
    created_at: datetime | None = None
    first_name: str = ""
    last_name: str = ""
    gender: str = ""  # "", "f", "m"
    birth_date: date | None = None
    email: str = ""
    phone: str = ""
    city: str = ""
    store: str = ""
    consent_email: bool = False
    consent_sms: bool = False
    loyalty_program: str = ""  # "", "bonus", "discount"


def ingest_version() -> int:
    """Monotonic ingest version: the latest write of a key wins in ReplacingMergeTree."""
    return time.time_ns()


def sales_lines_write(lines: Iterable[SalesLine], *, source: str, tenant_id: int | None = None) -> int:
    """Write sales lines; returns store qty, discount and amount negative. Returns the row count."""
    lines = list(lines)
    if not lines:
        return 0
    return sales_line_columns_write(sales_line_columns(lines), source=source, tenant_id=tenant_id)


def sales_line_columns(lines: Sequence[SalesLine]) -> dict[str, pa.Array]:
    """Sales lines as the columns ``sales_lines_batch`` takes."""
    columns = {name: _strings(lines, name) for name in _SALES_LINE_TEXT}
    columns["line_no"] = pa.array(_values(lines, "line_no"), pa.uint32())
    columns["ts"] = _timestamp_array(_values(lines, "ts"))
    for name in ("qty", "price", "discount", "amount"):
        columns[name] = _decimal_array(_values(lines, name), SALES_LINE_SCHEMA.field(name).type.scale)
    columns["is_return"] = pa.array(np.fromiter(map(bool, _values(lines, "is_return")), dtype=bool, count=len(lines)))
    return columns


def sales_line_columns_write(columns: Mapping[str, pa.Array], *, source: str, tenant_id: int | None = None) -> int:
    """The columnar ``sales_lines_write``: ``columns`` as ``sales_lines_batch`` takes them. Returns the row count."""
    batch = sales_lines_batch(columns, source=source, version=ingest_version())
    return tenant_insert_arrow_stream("sales_lines", [batch], tenant_id=tenant_id)


# created_at when the source does not give it.
UNKNOWN_CREATED_AT = datetime(1970, 1, 1, tzinfo=UTC)


def contacts_upsert(customers: Sequence[Customer]) -> int:
    """The Postgres half of ``customers_write``: upsert contacts (PII) into the current tenant's schema.

    One statement whatever the number: the rows travel as one array per column (``unnest``), a
    fraction of what the ORM's bulk_create spends building and binding a row of parameters each.
    """
    assert connection.schema_name != "public", "contacts live in a tenant schema"
    # One row per customer, the last record winning: Postgres refuses to upsert a row twice in one statement.
    latest = list({c.customer_id: c for c in customers}.values())
    if not latest:
        return 0
    table = connection.ops.quote_name(Contact._meta.db_table)
    columns = ", ".join(CONTACT_COLUMNS)
    arrays = ", ".join(f"%s::{_CONTACT_SQL_TYPES.get(column, 'text')}[]" for column in CONTACT_COLUMNS)
    updates = ", ".join(f"{column} = EXCLUDED.{column}" for column in (*CONTACT_COLUMNS[1:], "imported_at"))
    fields = [("store" if column == "home_store" else column) for column in CONTACT_COLUMNS]
    with connection.cursor() as cursor:
        cursor.execute(
            f"INSERT INTO {table} ({columns}, imported_at) SELECT *, now() FROM unnest({arrays})"
            f" ON CONFLICT (customer_id) DO UPDATE SET {updates}",
            [_values(latest, name) for name in fields],
        )
    return len(latest)


# Postgres types of the contact columns that are not text, for ``contacts_upsert``'s arrays.
_CONTACT_SQL_TYPES = {"birth_date": "date", "consent_email": "boolean", "consent_sms": "boolean",
                      "created_at": "timestamptz"}  # fmt: skip


def customers_write(customers: Sequence[Customer], *, source: str, tenant_id: int | None = None) -> int:
    """Upsert contacts into the current tenant's schema and their non-PII attributes into ClickHouse."""
    if not customers:
        return 0
    contacts_upsert(customers)
    customer_attributes_write(customers, source=source, tenant_id=tenant_id)
    return len(customers)


def customer_attributes_write(customers: Sequence[Customer], *, source: str, tenant_id: int | None = None) -> int:
    """The ClickHouse half of ``customers_write``: attributes without PII. Returns the row count.

    Touches no Postgres, so it may run on a thread other than the request's (the events API does).
    """
    if not customers:
        return 0
    batch = customer_attributes_batch(customers, source=source, version=ingest_version())
    return tenant_insert_arrow_stream("customer_attributes", [batch], tenant_id=tenant_id)


# ``control``: the customer was selected for the mailing but held out on purpose (its control group), at the time
# the mailing went out; they got nothing (analytics/semantic/audiences.py compares them with the recipients).
MESSAGE_EVENT_TYPES = ("sent", "delivered", "opened", "clicked", "unsubscribed", "bounced", "control")
# Mindbox's mailing channels (emailMailing, smsMailing, viberMailing, mobilePushMailing, webPushMailing).
MESSAGE_CHANNELS = ("email", "sms", "viber", "mobile_push", "web_push")
WEB_EVENT_TYPES = ("visit", "category_view", "product_view", "add_to_cart", "checkout")
WEB_PLATFORMS = ("web", "app")


@dataclass(slots=True)
class MessageEvent:
    """What happened to one message of a mailing: sent, delivered, opened, clicked, unsubscribed, bounced; or
    control: the customer was held out of the mailing (its control group)."""

    event_id: str
    event_type: str  # one of MESSAGE_EVENT_TYPES
    ts: datetime  # timezone-aware
    customer_id: str
    mailing_id: str = ""
    campaign_id: str = ""
    channel: str = ""  # one of MESSAGE_CHANNELS


@dataclass(slots=True)
class WebEvent:
    """One step of a web or app visit: visit, category_view, product_view, add_to_cart, checkout."""

    event_id: str
    event_type: str  # one of WEB_EVENT_TYPES
    ts: datetime  # timezone-aware
    session_id: str
    customer_id: str = ""  # empty for an anonymous visitor
    platform: str = "web"  # one of WEB_PLATFORMS
    category: str = ""
    product_id: str = ""


def message_events_write(events: Iterable[MessageEvent], *, source: str, tenant_id: int | None = None) -> int:
    """Write message events; a re-sent event id replaces the earlier row. Returns the row count."""
    events = list(events)
    if not events:
        return 0
    return event_columns_write("message_events", event_columns(events), source=source, tenant_id=tenant_id)


def web_events_write(events: Iterable[WebEvent], *, source: str, tenant_id: int | None = None) -> int:
    """Write web/app events; a re-sent event id replaces the earlier row. Returns the row count."""
    events = list(events)
    if not events:
        return 0
    return event_columns_write("web_events", event_columns(events), source=source, tenant_id=tenant_id)


def event_columns(events: Sequence[MessageEvent] | Sequence[WebEvent]) -> dict[str, pa.Array]:
    """Message or web events (one kind) as the columns of their table, but source and version."""
    text = _MESSAGE_EVENT_TEXT if type(events[0]) is MessageEvent else _WEB_EVENT_TEXT
    columns = {name: _strings(events, name) for name in text}
    columns["ts"] = _timestamp_array(_values(events, "ts"))
    return columns


def event_columns_write(
    table: str, columns: Mapping[str, pa.Array], *, source: str, tenant_id: int | None = None
) -> int:
    """Write ``message_events`` or ``web_events`` from columns (every column but source and version)."""
    batch = _stamped(columns, _EVENT_SCHEMAS[table], source=source, version=ingest_version())
    return tenant_insert_arrow_stream(table, [batch], tenant_id=tenant_id)


# --- Records to Arrow columns ------------------------------------------------------------------------------------

_SALES_LINE_TEXT = ("order_id", "customer_id", "store", "employee", "channel", "product_id", "product_name",
                    "category", "brand", "promo_code")  # fmt: skip
_MESSAGE_EVENT_TEXT = ("event_id", "customer_id", "mailing_id", "campaign_id", "channel", "event_type")
_WEB_EVENT_TEXT = ("event_id", "customer_id", "session_id", "event_type", "platform", "category", "product_id")


def _values(records: Sequence[object], name: str) -> list:
    return list(map(attrgetter(name), records))


def _strings(records: Sequence[object], name: str) -> pa.Array:
    return pa.array(_values(records, name), pa.string())


def _timestamp_array(values: Sequence[datetime]) -> pa.Array:
    """Datetimes as timestamp[ms, UTC], by the ClickHouse driver's formula: whole seconds, then milliseconds.

    Through numbers, which numpy takes ten times faster than pyarrow takes datetime objects.
    """
    seconds = np.floor(np.fromiter((value.timestamp() for value in values), dtype=np.float64, count=len(values)))
    microseconds = np.fromiter((value.microsecond for value in values), dtype=np.int64, count=len(values))
    return pa.array(seconds.astype(np.int64) * 1000 + microseconds // 1000, pa.timestamp("ms", tz="UTC"))


def _decimal_array(values: Sequence[Decimal], scale: int) -> pa.Array:
    """Exact decimals as decimal128(18, scale); beyond ``scale`` places cut toward zero, as the driver did."""
    decimal_type = pa.decimal128(18, scale)
    try:
        return pa.array(values, decimal_type)
    except (pa.ArrowInvalid, pa.ArrowTypeError):  # more places than the column holds, or not a Decimal
        pass
    units = np.fromiter(
        (int((v if type(v) is Decimal else Decimal(str(v))).scaleb(scale)) for v in values),
        dtype=np.int64,
        count=len(values),
    )
    # A decimal128 is a little-endian 16-byte two's complement integer: the units, then their sign bits.
    words = np.empty((len(units), 2), dtype=np.int64)
    words[:, 0] = units
    words[:, 1] = units >> 63
    return pa.Array.from_buffers(decimal_type, len(units), [None, pa.py_buffer(words)])


def _stamped(columns: Mapping[str, pa.Array], schema: pa.Schema, *, source: str, version: int) -> pa.RecordBatch:
    """``columns`` (every column of ``schema`` but source and version) as a batch, source and version stamped."""
    length = len(next(iter(columns.values())))
    arrays = {**columns, "source": _repeated(source, length), "version": pa.array(np.full(length, version, np.uint64))}
    return pa.RecordBatch.from_arrays([arrays[name] for name in schema.names], schema=schema)


# --- Columnar bulk path (file imports, generators): whole Arrow batches, all or nothing -------------------------

# Arrow types and order of the columns this module writes to each fact table; the *_COLUMNS tuples derive from them.
SALES_LINE_SCHEMA = pa.schema(
    [
        ("order_id", pa.string()),
        ("line_no", pa.uint32()),
        ("ts", pa.timestamp("ms", tz="UTC")),
        ("customer_id", pa.string()),
        ("store", pa.string()),
        ("employee", pa.string()),
        ("channel", pa.string()),
        ("product_id", pa.string()),
        ("product_name", pa.string()),
        ("category", pa.string()),
        ("brand", pa.string()),
        ("qty", pa.decimal128(18, 3)),
        ("price", pa.decimal128(18, 2)),
        ("discount", pa.decimal128(18, 2)),
        ("amount", pa.decimal128(18, 2)),
        ("is_return", pa.uint8()),
        ("promo_code", pa.string()),
        ("source", pa.string()),
        ("version", pa.uint64()),
    ]
)
SALES_LINE_COLUMNS = tuple(SALES_LINE_SCHEMA.names)
CUSTOMER_ATTRIBUTE_SCHEMA = pa.schema(
    [
        ("customer_id", pa.string()),
        ("created_at", pa.timestamp("ms", tz="UTC")),
        ("gender", pa.string()),
        ("birth_year", pa.uint16()),
        ("city", pa.string()),
        ("home_store", pa.string()),
        ("loyalty_program", pa.string()),
        ("email_reachable", pa.uint8()),
        ("sms_reachable", pa.uint8()),
        ("source", pa.string()),
        ("version", pa.uint64()),
    ]
)
CUSTOMER_ATTRIBUTE_COLUMNS = tuple(CUSTOMER_ATTRIBUTE_SCHEMA.names)


# Skipping the merge of equal keys inside the inserted block halves the insert's time; a bulk write
# has no equal keys within itself, and FINAL and background merges collapse re-imports anyway.
BULK_INSERT_SETTINGS = {"optimize_on_insert": 0}
# Tables a bulk write may target (and compensate in), with their LowCardinality columns: those are sent
# dictionary-encoded, which ClickHouse takes for a fifth less CPU than the same values as plain strings
# (less than the encoding costs here; docs/benchmarks.md).
_BULK_LOW_CARDINALITY = {
    "sales_lines": frozenset({"store", "employee", "channel", "category", "brand", "promo_code", "source"}),
    "customer_attributes": frozenset({"gender", "city", "home_store", "loyalty_program", "source"}),
}
_BULK_TABLES = frozenset(_BULK_LOW_CARDINALITY)


def _repeated(value: str, length: int) -> pa.Array:
    # Built from its buffers (the bytes repeated, evenly spaced offsets): far faster than pa.repeat for a string.
    encoded = value.encode()
    offsets = np.arange(length + 1, dtype=np.int32) * len(encoded)
    return pa.Array.from_buffers(pa.string(), length, [None, pa.py_buffer(offsets), pa.py_buffer(encoded * length)])


def sales_lines_batch(columns: Mapping[str, pa.Array], *, source: str, version: int) -> pa.RecordBatch:
    """The columnar twin of ``sales_lines_write``'s rows: returns made negative, source and version stamped.

    ``columns`` has every column of ``SALES_LINE_SCHEMA`` but ``source`` and ``version``, with
    those types except ``is_return``, which is boolean.
    """
    is_return = columns["is_return"]

    def signed(name: str) -> pa.Array:
        return pc.if_else(is_return, pc.negate(pc.abs(columns[name])), columns[name])

    arrays = {
        **columns,
        "qty": signed("qty"),
        "price": pc.abs(columns["price"]),
        # A return gives its discount back: sources state returns either as on the sale (amount ≥ 0,
        # the discount is negated: a markup, negative, turns positive) or already negated (left as is).
        "discount": pc.if_else(
            pc.and_(is_return, pc.greater_equal(columns["amount"], pa.scalar(0, columns["amount"].type))),
            pc.negate(columns["discount"]),
            columns["discount"],
        ),
        "amount": signed("amount"),
        "is_return": pc.cast(is_return, pa.uint8()),
    }
    return _stamped(arrays, SALES_LINE_SCHEMA, source=source, version=version)


def customer_attributes_batch(customers: Sequence[Customer], *, source: str, version: int) -> pa.RecordBatch:
    """The ClickHouse half of ``customers_write`` as an Arrow batch: attributes without PII."""
    columns = {
        "customer_id": _strings(customers, "customer_id"),
        "created_at": _timestamp_array([c.created_at or UNKNOWN_CREATED_AT for c in customers]),
        "gender": _strings(customers, "gender"),
        "birth_year": pa.array([c.birth_date.year if c.birth_date else 0 for c in customers], pa.uint16()),
        "city": _strings(customers, "city"),
        "home_store": _strings(customers, "store"),
        "loyalty_program": _strings(customers, "loyalty_program"),
        "email_reachable": pa.array([int(bool(c.email) and c.consent_email) for c in customers], pa.uint8()),
        "sms_reachable": pa.array([int(bool(c.phone) and c.consent_sms) for c in customers], pa.uint8()),
    }
    return _stamped(columns, CUSTOMER_ATTRIBUTE_SCHEMA, source=source, version=version)


def facts_bulk_write(table: str, batches: Iterable[pa.RecordBatch], *, tenant_id: int | None = None) -> int:
    """Write batches to a fact table, all or nothing as far as this side can make it.

    The batches go to a staging table as they come (``tenant_insert_arrow``) and reach ``table``
    only once ``batches`` is exhausted, so an importer that finds a bad row raises from its
    generator and the table is untouched. Each write stamps its rows with ingest versions no other
    write uses (``ingest_version()``, plus a batch index at most): if ClickHouse fails while moving
    them into ``table``, the rows it kept are deleted by that version range. Known limit: an
    older row that one of those rows replaced, and that a background merge dropped in between,
    does not come back. Returns the row count.
    """
    if table not in _BULK_TABLES:
        raise ValueError(f"No bulk write into {table!r}.")
    versions: list[int] = []  # lowest and highest seen
    consumed = False

    def tracked() -> Iterator[pa.RecordBatch]:
        nonlocal consumed
        for batch in batches:
            if batch.num_rows:
                low, high = pc.min_max(batch.column("version")).values()
                versions[:] = [min([low.as_py(), *versions[:1]]), max([high.as_py(), *versions[1:]])]
            yield _dictionary_encoded(batch, _BULK_LOW_CARDINALITY[table])
        consumed = True

    try:
        return tenant_insert_arrow(table, tracked(), tenant_id=tenant_id, settings=BULK_INSERT_SETTINGS)
    except BaseException:
        if consumed and versions:  # the failure came from ClickHouse, not from the batches: undo what it kept
            fact_rows_delete(table, versions=(versions[0], versions[1]), tenant_id=tenant_id)
        raise


def _dictionary_encoded(batch: pa.RecordBatch, names: frozenset[str]) -> pa.RecordBatch:
    columns = [
        pc.dictionary_encode(column) if name in names else column
        for name, column in zip(batch.schema.names, batch.columns, strict=True)
    ]
    return pa.RecordBatch.from_arrays(columns, names=batch.schema.names)


def fact_rows_delete(table: str, *, versions: tuple[int, int], tenant_id: int | None = None) -> None:
    """Delete one write's rows from a fact table by its ingest-version range (lightweight DELETE)."""
    if table not in _BULK_TABLES:
        raise ValueError(f"No bulk write into {table!r}.")
    tenant_command(
        f"DELETE FROM {table} WHERE tenant_id = {{tenant_id:UInt32}}"
        " AND version BETWEEN {first:UInt64} AND {last:UInt64}",
        {"first": versions[0], "last": versions[1]},
        tenant_id=tenant_id,
    )


# --- Columnar contacts and events (the demo generator, any bulk importer) -------------------------------------

MESSAGE_EVENT_SCHEMA = pa.schema(
    [
        ("event_id", pa.string()),
        ("ts", pa.timestamp("ms", tz="UTC")),
        ("customer_id", pa.string()),
        ("mailing_id", pa.string()),
        ("campaign_id", pa.string()),
        ("channel", pa.string()),
        ("event_type", pa.string()),
        ("source", pa.string()),
        ("version", pa.uint64()),
    ]
)
MESSAGE_EVENT_COLUMNS = tuple(MESSAGE_EVENT_SCHEMA.names)
WEB_EVENT_SCHEMA = pa.schema(
    [
        ("event_id", pa.string()),
        ("ts", pa.timestamp("ms", tz="UTC")),
        ("customer_id", pa.string()),
        ("session_id", pa.string()),
        ("event_type", pa.string()),
        ("platform", pa.string()),
        ("category", pa.string()),
        ("product_id", pa.string()),
        ("source", pa.string()),
        ("version", pa.uint64()),
    ]
)
WEB_EVENT_COLUMNS = tuple(WEB_EVENT_SCHEMA.names)
_EVENT_SCHEMAS = {"message_events": MESSAGE_EVENT_SCHEMA, "web_events": WEB_EVENT_SCHEMA}
# Columns of a contacts table for ``contacts_copy``: Contact's fields, ``created_at`` a UTC timestamp.
CONTACT_COLUMNS = (
    "customer_id",
    "first_name",
    "last_name",
    "email",
    "phone",
    "gender",
    "birth_date",
    "city",
    "home_store",
    "consent_email",
    "consent_sms",
    "created_at",
)


def contacts_copy(contacts: pa.Table) -> int:
    """The columnar ``contacts_upsert``: COPY into a temporary table, then one upsert by ``customer_id``.

    Millions of contacts take seconds this way, where row inserts take minutes. ``contacts``
    holds ``CONTACT_COLUMNS`` (strings, ``birth_date`` a date or null, booleans). One
    transaction: every row is written or none. Returns the row count.
    """
    assert connection.schema_name != "public", "contacts live in a tenant schema"
    if contacts.num_rows == 0:
        return 0
    table = connection.ops.quote_name(Contact._meta.db_table)
    columns = ", ".join(CONTACT_COLUMNS)
    updates = ", ".join(f"{column} = EXCLUDED.{column}" for column in (*CONTACT_COLUMNS[1:], "imported_at"))
    csv = pa.BufferOutputStream()
    pa_csv.write_csv(
        contacts.select(list(CONTACT_COLUMNS)), csv, write_options=pa_csv.WriteOptions(include_header=False)
    )
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute("DROP TABLE IF EXISTS pg_temp.contact_load")
        cursor.execute(
            f"CREATE TEMPORARY TABLE contact_load ON COMMIT DROP AS SELECT {columns} FROM {table} WITH NO DATA"
        )
        with cursor.copy(f"COPY contact_load ({columns}) FROM STDIN (FORMAT csv)") as copy:
            copy.write(memoryview(csv.getvalue()))
        # A customer twice in the batch: the later row wins (rows sit in the temporary table in COPY order).
        cursor.execute(
            f"INSERT INTO {table} ({columns}, imported_at) SELECT DISTINCT ON (customer_id) {columns}, now()"
            f" FROM contact_load ORDER BY customer_id, ctid DESC ON CONFLICT (customer_id) DO UPDATE SET {updates}"
        )
    return contacts.num_rows
