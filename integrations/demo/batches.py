"""A generated chunk as Arrow: contacts for Postgres, fact batches in ``integrations.ingest``'s layouts.

Strings come from small dictionaries (stores, products, mailings) by index, ids are formatted
column-wise, money is built from integer kopecks: no Python object per row, no float on the way.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from integrations.demo.catalog import CHANNELS, MESSAGE_CHANNELS
from integrations.demo.model import (
    ID_STRIDE,
    LOYALTY_PROGRAMS,
    MESSAGE_EVENT_TYPES,
    WEB_EVENT_TYPES,
    Chunk,
    GenerationPlan,
)
from integrations.demo.people import contacts_columns
from integrations.ingest import (
    CUSTOMER_ATTRIBUTE_SCHEMA,
    MESSAGE_EVENT_SCHEMA,
    SALES_LINE_SCHEMA,
    WEB_EVENT_SCHEMA,
)

GENDERS = ("", "f", "m")
PLATFORMS = ("web", "app")
ID_DIGITS = 11  # order and session numbers: chunk × ID_STRIDE + n


@dataclass(frozen=True)
class ChunkBatches:
    contacts: pa.Table  # PII, for Postgres only
    facts: dict[str, list[pa.RecordBatch]]  # ClickHouse table → its rows, one batch per partition (month)


def decimal_array(minor_units: np.ndarray, scale: int) -> pa.Array:
    """Exact Decimal(18, scale) values from integer minor units (kopecks, thousandths)."""
    # A decimal128 is a little-endian two's-complement 128-bit integer: low word, then the sign-extended high word.
    words = np.empty(2 * len(minor_units), dtype=np.int64)
    words[0::2] = minor_units
    words[1::2] = minor_units >> 63
    return pa.Array.from_buffers(pa.decimal128(18, scale), len(minor_units), [None, pa.py_buffer(words)])


def numbered_ids(prefix: str, numbers: np.ndarray, digits: int) -> pa.Array:
    """``prefix`` + zero-padded numbers: fixed width, so text order is numeric order (ClickHouse sort keys)."""
    return pc.binary_join_element_wise(
        prefix, pc.utf8_lpad(pc.cast(pa.array(numbers, pa.int64()), pa.string()), digits, "0"), ""
    )


def _ids_at(ids: pa.Array, index: np.ndarray) -> pa.Array:
    """``ids[index]`` as plain strings; index -1 is "" (an anonymous customer).

    Ids are nearly unique per row, and ClickHouse reads such columns faster as plain strings
    than as a dictionary (twice as fast for a sales batch): only repeated values are encoded.
    """
    with_blank = pa.concat_arrays([ids, pa.array([""], pa.string())])
    return pc.take(with_blank, pa.array(np.where(index < 0, len(ids), index)))


def _lookup(values: Sequence[str], index: np.ndarray) -> pa.DictionaryArray:
    """``values[index]``, dictionary-encoded; index -1 is "" (no promo code, no cashier …)."""
    # ClickHouse refuses a dictionary with repeated values: encode each distinct value once.
    distinct = list(dict.fromkeys([*values, ""]))
    position = {value: number for number, value in enumerate(distinct)}
    remap = np.array([position[value] for value in [*values, ""]], dtype=np.int32)
    return pa.DictionaryArray.from_arrays(
        pa.array(remap[np.where(index < 0, len(values), index)]), pa.array(distinct, pa.string())
    )


def _timestamps(ms: np.ndarray) -> pa.Array:
    return pa.array(ms, pa.timestamp("ms", tz="UTC"))


def _stamped(columns: dict[str, pa.Array], schema: pa.Schema, *, source: str, version: int) -> pa.RecordBatch:
    """The batch in ``schema``'s column order, with ``source`` and ``version`` on every row.

    String columns are plain or dictionary-encoded as built (ClickHouse takes both for a String).
    """
    length = len(next(iter(columns.values())))
    columns = {
        **columns,
        "source": _lookup([source], np.zeros(length, dtype=np.int64)),
        "version": pa.array(np.full(length, version, dtype=np.uint64)),
    }
    arrays = [columns[f.name] for f in schema]
    for field, array in zip(schema, arrays, strict=True):
        value_type = array.type.value_type if pa.types.is_dictionary(array.type) else array.type
        assert value_type == field.type, f"{field.name}: {array.type} where {field.type} is expected"
    return pa.RecordBatch.from_arrays(arrays, names=schema.names)


def by_month(batch: pa.RecordBatch) -> list[pa.RecordBatch]:
    """A batch sorted by time cut into one slice per UTC month: the partitions of the fact tables."""
    month = batch.column("ts").to_numpy().astype("datetime64[M]")
    bounds = [0, *(np.flatnonzero(month[1:] != month[:-1]) + 1).tolist(), batch.num_rows]
    return [batch.slice(start, end - start) for start, end in itertools.pairwise(bounds)]


def customer_id_digits(customers: int) -> int:
    return max(8, len(str(customers - 1)))


def chunk_batches(plan: GenerationPlan, chunk: Chunk, *, source: str, version: int) -> ChunkBatches:
    catalog, mailings = plan.catalog, plan.mailings
    people, sales, messages, web = chunk.customers, chunk.sales, chunk.messages, chunk.web
    customer_ids = numbered_ids("C", people.index, customer_id_digits(plan.customers))
    first_id = chunk.number * ID_STRIDE  # order and session numbers of this chunk start here

    def numbered(prefix: str, numbers: np.ndarray) -> pa.Array:
        count = int(numbers.max()) - first_id + 1 if len(numbers) else 0
        return _ids_at(numbered_ids(prefix, first_id + np.arange(count), ID_DIGITS), numbers - first_id)

    gender = _lookup(GENDERS, people.gender)
    city = _lookup(plan.catalog.cities, people.city)
    home_store = _lookup(catalog.stores, people.home_store)
    created_at = _timestamps(people.created_ms)
    # Names follow gender; those who did not state it still have a name (mostly women's, as the base).
    names_rng = np.random.default_rng([plan.seed, chunk.number, 1])
    female = (people.gender == 1) | ((people.gender == 0) & (names_rng.random(len(people.index)) < 0.75))
    pii = contacts_columns(names_rng, female=female, has_email=people.has_email, has_phone=people.has_phone)
    known_birth = people.birth_year > 0
    birth_years = np.where(known_birth, people.birth_year, 1970) - 1970  # unknown ones are masked below
    birth_days = birth_years.astype("datetime64[Y]").astype("datetime64[D]")
    birth_days = birth_days.astype(np.int64) + np.minimum(people.birth_day_of_year, 364)
    contacts = pa.table(
        {
            "customer_id": customer_ids,
            **pii,
            "gender": gender.dictionary_decode(),
            "birth_date": pa.array(birth_days.astype(np.int32), pa.date32(), mask=~known_birth),
            "city": city.dictionary_decode(),
            "home_store": home_store.dictionary_decode(),
            "consent_email": pa.array(people.consent_email),
            "consent_sms": pa.array(people.consent_sms),
            "created_at": created_at,
        }
    )
    customer_attributes = _stamped(
        {
            "customer_id": customer_ids,
            "created_at": created_at,
            "gender": gender,
            "birth_year": pa.array(people.birth_year.astype(np.uint16)),
            "city": city,
            "home_store": home_store,
            "loyalty_program": _lookup(LOYALTY_PROGRAMS, people.loyalty),
            "email_reachable": pa.array((people.has_email & people.consent_email).astype(np.uint8)),
            "sms_reachable": pa.array((people.has_phone & people.consent_sms).astype(np.uint8)),
        },
        CUSTOMER_ATTRIBUTE_SCHEMA,
        source=source,
        version=version,
    )

    # Returns carry negative quantities and money, as integrations.ingest stores them.
    sign = np.where(sales.is_return, -1, 1)
    sales_lines = _stamped(
        {
            "order_id": numbered("R", sales.order_number),
            "line_no": pa.array(sales.line_no.astype(np.uint32)),
            "ts": _timestamps(sales.ts_ms),
            "customer_id": _ids_at(customer_ids, sales.customer),
            "store": _lookup(catalog.stores, sales.store),
            "employee": _lookup(catalog.employees, sales.employee),
            "channel": _lookup(CHANNELS, sales.channel),
            "product_id": _lookup(catalog.product_ids, sales.product),
            "product_name": _lookup(catalog.product_names, sales.product),
            "category": _lookup(catalog.categories, catalog.product_category[sales.product]),
            "brand": _lookup(catalog.brands, catalog.product_brand[sales.product]),
            "qty": decimal_array(sign * sales.qty_milli, 3),
            "price": decimal_array(sales.price, 2),
            "discount": decimal_array(sign * sales.discount, 2),
            "amount": decimal_array(sign * sales.amount, 2),
            "is_return": pa.array(sales.is_return.astype(np.uint8)),
            "promo_code": _lookup(mailings.promo_codes, sales.promo),
        },
        SALES_LINE_SCHEMA,
        source=source,
        version=version,
    )
    # One send makes several events (sent, delivered, opened …): its number plus the event type.
    send_digits = len(str(len(mailings) * plan.customers))
    message_events = _stamped(
        {
            "event_id": pc.binary_join_element_wise(
                numbered_ids("M", messages.send_number, send_digits),
                pc.cast(pa.array(messages.event_type), pa.string()),
                "",
            ),
            "ts": _timestamps(messages.ts_ms),
            "customer_id": _ids_at(customer_ids, messages.customer),
            "mailing_id": _lookup(mailings.mailing_ids, messages.mailing),
            "campaign_id": _lookup(mailings.campaign_ids, messages.mailing),
            "channel": _lookup(MESSAGE_CHANNELS, mailings.channel[messages.mailing]),
            "event_type": _lookup(MESSAGE_EVENT_TYPES, messages.event_type),
        },
        MESSAGE_EVENT_SCHEMA,
        source=source,
        version=version,
    )
    web_events = _stamped(
        {
            "event_id": pc.binary_join_element_wise(
                numbered_ids("W", web.session_number, ID_DIGITS), numbered_ids("", web.step, 2), ""
            ),
            "ts": _timestamps(web.ts_ms),
            "customer_id": _ids_at(customer_ids, web.customer),
            "session_id": numbered("S", web.session_number),
            "event_type": _lookup(WEB_EVENT_TYPES, web.event_type),
            "platform": _lookup(PLATFORMS, web.platform),
            "category": _lookup(catalog.categories, web.category),
            "product_id": _lookup(catalog.product_ids, web.product),
        },
        WEB_EVENT_SCHEMA,
        source=source,
        version=version,
    )
    return ChunkBatches(
        contacts=contacts,
        facts={
            "customer_attributes": [customer_attributes],
            "sales_lines": by_month(sales_lines),
            "message_events": by_month(message_events),
            "web_events": by_month(web_events),
        },
    )
