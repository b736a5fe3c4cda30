"""Arrow inserts into embedded ClickHouse: chdb reads the batches in place (``Python()``), and the rows
that land are those the driver's Arrow stream path (``raw_insert``, kept for a clickhouse-server) writes."""

from __future__ import annotations

import threading
import uuid
from datetime import UTC, datetime
from decimal import Decimal

import pyarrow as pa
import pyarrow.compute as pc
import pytest
from clickhouse_connect.driver.exceptions import DatabaseError

import analytics.clickhouse.query as query_module
from analytics.clickhouse.client import get_client
from analytics.clickhouse.query import STAGING_PREFIX, tenant_insert_arrow, tenant_insert_arrow_stream, tenant_query
from integrations.ingest import CUSTOMER_ATTRIBUTE_SCHEMA, MESSAGE_EVENT_SCHEMA, SALES_LINE_SCHEMA

MS = pa.timestamp("ms", tz="UTC")
# Instants at the edges: before the epoch, milliseconds, far future.
TIMESTAMPS = [
    datetime(1969, 12, 31, 23, 59, 59, 999000, tzinfo=UTC),
    datetime(2026, 3, 29, 1, 30, 0, 123000, tzinfo=UTC),
    datetime(2026, 3, 29, 1, 30, 0, 124000, tzinfo=UTC),
    datetime(2105, 12, 31, 23, 59, 59, 999000, tzinfo=UTC),
]
TEXTS = ["", "Кофе ☕", 'O\'Brien \\ "quoted"\n', "x" * 300]
# Far above any real ingest version: the UInt64 range, not Int64.
VERSIONS = [0, 1, 2**63, 2**64 - 1]


def dictionary_encoded(batch: pa.RecordBatch, names: set[str]) -> pa.RecordBatch:
    """As the bulk importers send LowCardinality columns."""
    columns = [pc.dictionary_encode(batch[name]) if name in names else batch[name] for name in batch.schema.names]
    return pa.RecordBatch.from_arrays(columns, names=batch.schema.names)


def sales_lines_batch() -> pa.RecordBatch:
    batch = pa.RecordBatch.from_pydict(
        {
            "order_id": ["o-1", "o-1", "o-2", "o-3"],
            "line_no": [1, 2, 0, 2**32 - 1],
            "ts": TIMESTAMPS,
            "customer_id": ["C1", None, "", "C2"],  # a null lands as the column's default, ""
            "store": TEXTS,
            "employee": ["E1", "E1", "E2", None],
            "channel": ["offline", "online", "offline", "online"],
            "product_id": ["SKU-1", "SKU-2", "", "SKU-1"],
            "product_name": TEXTS[::-1],
            "category": ["Cat", "Cat", "", "Кат"],
            "brand": ["B", "", "B", "B"],
            "qty": [Decimal("1.000"), Decimal("-0.001"), Decimal("999999999999999.999"), Decimal("2.5")],
            "price": [Decimal("0.01"), Decimal("-9999999999999999.99"), Decimal("9999999999999999.99"), Decimal(0)],
            "discount": [Decimal("0.00"), Decimal("-1.50"), Decimal("12.34"), Decimal("0.99")],
            "amount": [Decimal("0.01"), Decimal("-12.35"), Decimal("1E+6"), Decimal("-0.01")],
            "is_return": [0, 1, 0, 1],
            "promo_code": ["", "SPRING10", "", None],
            "source": ["file", "file", "api", "file"],
            "version": VERSIONS,
        },
        schema=SALES_LINE_SCHEMA,
    )
    return dictionary_encoded(batch, {"store", "employee", "channel", "category", "brand", "promo_code", "source"})


def message_events_batch() -> pa.RecordBatch:
    return pa.RecordBatch.from_pydict(
        {
            "event_id": ["e1", "e2", "e3", "e4"],
            "ts": TIMESTAMPS,
            "customer_id": ["C1", "", None, "C2"],
            "mailing_id": TEXTS,
            "campaign_id": ["camp", "", "camp", "Кампания"],
            "channel": ["email", "sms", "viber", "mobile_push"],
            "event_type": ["sent", "delivered", "opened", "clicked"],
            "source": ["api", "api", "api", "api"],
            "version": VERSIONS,
        },
        schema=MESSAGE_EVENT_SCHEMA,
    )


def customer_attributes_batch() -> pa.RecordBatch:
    batch = pa.RecordBatch.from_pydict(
        {
            "customer_id": ["C1", "C2", "C3", "C4"],
            "created_at": TIMESTAMPS,
            "gender": ["f", "m", "", None],
            "birth_year": [0, 1990, 2**16 - 1, 2001],
            "city": TEXTS,
            "home_store": ["Store 1", "", "Store 2", "Store 1"],
            "loyalty_program": ["", "bonus", "discount", ""],
            "email_reachable": [1, 0, 1, 0],
            "sms_reachable": [0, 0, 1, 1],
            "source": ["file", "file", "file", "file"],
            "version": VERSIONS,
        },
        schema=CUSTOMER_ATTRIBUTE_SCHEMA,
    )
    return dictionary_encoded(batch, {"gender", "city", "home_store", "loyalty_program", "source"})


def rows_of(table: str, tenant_id: int) -> list[tuple]:
    return tenant_query(
        f"SELECT * EXCEPT tenant_id FROM {table} WHERE tenant_id = {{tenant_id:UInt32}} ORDER BY ALL",
        tenant_id=tenant_id,
    ).result_rows


@pytest.fixture
def raw_insert_calls(monkeypatch) -> list[str]:
    """Tables this thread's client sent through the driver's ``raw_insert`` (the Arrow stream path)."""
    client = get_client()
    calls: list[str] = []
    real = client.raw_insert

    def recording(table: str, *args, **kwargs):
        calls.append(table)
        return real(table, *args, **kwargs)

    monkeypatch.setattr(client, "raw_insert", recording)
    return calls


@pytest.mark.parametrize(
    ("table", "make_batch", "staged"),
    [
        ("sales_lines", sales_lines_batch, True),
        ("sales_lines", sales_lines_batch, False),
        ("message_events", message_events_batch, False),
        ("customer_attributes", customer_attributes_batch, True),
    ],
)
def test_direct_path_writes_the_rows_of_the_arrow_stream_path(
    make_tenant, monkeypatch, raw_insert_calls, table, make_batch, staged
):
    direct, streamed = make_tenant(), make_tenant()
    insert = tenant_insert_arrow if staged else tenant_insert_arrow_stream
    settings = {"optimize_on_insert": 0}  # passed through on both paths, as the bulk importers do

    assert insert(table, [make_batch()], tenant_id=direct.pk, settings=settings) == 4
    assert raw_insert_calls == []
    monkeypatch.setattr(query_module, "is_embedded", lambda: False)  # the path a clickhouse-server takes
    assert insert(table, [make_batch()], tenant_id=streamed.pk, settings=settings) == 4
    assert len(raw_insert_calls) == 1

    rows = rows_of(table, direct.pk)
    assert len(rows) == 4
    assert rows == rows_of(table, streamed.pk)


@pytest.mark.parametrize("embedded", [True, False])
def test_settings_apply_to_the_insert(tenant, monkeypatch, embedded):
    """``optimize_on_insert = 0`` keeps a batch's replaced rows in the part it writes (ReplacingMergeTree would
    collapse them on insert otherwise): written into the statement for chdb, passed to the driver for a server.
    A table of its own, without merges, so that only the insert can collapse rows."""
    if not embedded:
        monkeypatch.setattr(query_module, "is_embedded", lambda: False)
    table = f"replacing_probe_{uuid.uuid4().hex}"
    client = get_client()
    client.command(
        f"CREATE TABLE {table} (tenant_id UInt32, event_id String, version UInt64)"
        " ENGINE = ReplacingMergeTree(version) ORDER BY (tenant_id, event_id)"
    )
    client.command(f"SYSTEM STOP MERGES {table}")
    twice = pa.RecordBatch.from_pydict({"event_id": ["e1", "e2", "e1", "e2"], "version": [1, 1, 1, 1]})
    try:
        tenant_insert_arrow_stream(table, [twice], tenant_id=tenant.pk, settings={"optimize_on_insert": 0})
        tenant_insert_arrow_stream(table, [twice], tenant_id=tenant.pk)
        parts = client.query(
            "SELECT rows FROM system.parts WHERE database = currentDatabase() AND table = {table:String} AND active"
            " ORDER BY modification_time, name",
            parameters={"table": table},
        ).result_rows
    finally:
        client.command(f"DROP TABLE {table} SYNC")
    assert sorted(rows for (rows,) in parts) == [2, 4]


def test_a_setting_name_that_is_not_a_name_is_refused(tenant):
    with pytest.raises(ValueError, match="setting name"):
        tenant_insert_arrow_stream(
            "message_events", [message_events_batch()], tenant_id=tenant.pk, settings={"max_threads = 1, x": 1}
        )
    assert rows_of("message_events", tenant.pk) == []


def test_values_land_exactly(make_tenant):
    tenant = make_tenant()
    tenant_insert_arrow("sales_lines", [sales_lines_batch()], tenant_id=tenant.pk)
    result = tenant_query(
        "SELECT line_no, ts, customer_id, store, qty, price, is_return, promo_code, version FROM sales_lines"
        " WHERE tenant_id = {tenant_id:UInt32} ORDER BY line_no",
        tenant_id=tenant.pk,
    )
    by_line = {row[0]: row for row in result.result_rows}
    assert by_line[2**32 - 1][4:] == (Decimal("2.5"), Decimal(0), 1, "", 2**64 - 1)
    assert by_line[2][2:6] == ("", "Кофе ☕", Decimal("-0.001"), Decimal("-9999999999999999.99"))
    assert [by_line[n][1].replace(tzinfo=UTC) for n in (1, 2, 0, 2**32 - 1)] == TIMESTAMPS


def test_timestamps_in_another_zone_land_as_the_same_instants(make_tenant):
    tenant = make_tenant()
    batch = message_events_batch()
    moscow = batch.set_column(1, "ts", batch["ts"].cast(pa.timestamp("ms", tz="Europe/Moscow")))
    tenant_insert_arrow_stream("message_events", [moscow], tenant_id=tenant.pk)
    stored = tenant_query(
        "SELECT ts FROM message_events WHERE tenant_id = {tenant_id:UInt32} ORDER BY ts", tenant_id=tenant.pk
    ).result_rows
    assert [ts.replace(tzinfo=UTC) for (ts,) in stored] == TIMESTAMPS


def staging_tables() -> set[str]:
    rows = (
        get_client()
        .query(
            "SELECT name FROM system.tables WHERE database = currentDatabase() AND startsWith(name, {prefix:String})",
            parameters={"prefix": STAGING_PREFIX},
        )
        .result_rows
    )
    return {name for (name,) in rows}


def test_a_value_of_the_wrong_type_is_an_error_and_writes_nothing(tenant, monkeypatch):
    monkeypatch.setattr(query_module, "STAGE_ROWS", 1)  # each batch its own INSERT: the first one is staged
    batch = customer_attributes_batch()
    # Strings where the table has UInt16: read leniently, "abc" would land as 0.
    wrong = batch.set_column(3, "birth_year", pa.array(["1990", "abc", "2001", "1985"]))
    before = staging_tables()
    with pytest.raises(DatabaseError, match=r"Cannot parse .*abc.* as UInt16"):
        tenant_insert_arrow("customer_attributes", [batch, wrong], tenant_id=tenant.pk)
    assert rows_of("customer_attributes", tenant.pk) == []
    assert staging_tables() == before

    events = message_events_batch()
    bad_ts = events.set_column(1, "ts", pa.array(["2026-01-01 10:00:00", "yesterday", "", "2026-01-02"]))
    with pytest.raises(DatabaseError, match="DateTime"):
        tenant_insert_arrow_stream("message_events", [bad_ts], tenant_id=tenant.pk)
    assert rows_of("message_events", tenant.pk) == []


def test_a_column_the_table_does_not_have_is_an_error(tenant):
    batch = message_events_batch()
    misnamed = batch.rename_columns([*batch.schema.names[:-1], "versio"])
    with pytest.raises(DatabaseError, match="versio"):
        tenant_insert_arrow_stream("message_events", [misnamed], tenant_id=tenant.pk)
    assert rows_of("message_events", tenant.pk) == []


def test_concurrent_inserts_each_write_their_own_rows(make_tenant):
    """Two inserting threads (each its own chdb connection, the same ``Python()`` name) and a thread that
    holds the GIL in Python and pyarrow work, as the file import's parser does: every insert lands its
    own rows, and nothing deadlocks."""
    tenants = [make_tenant(), make_tenant()]
    inserts, rows_per_insert = 6, 20_000
    stop = threading.Event()
    errors: list[BaseException] = []

    def insert(tenant_id: int, first_line: int) -> None:
        try:
            for number in range(inserts):
                lines = pa.array(
                    range(first_line + number * rows_per_insert, first_line + (number + 1) * rows_per_insert)
                )
                batch = pa.RecordBatch.from_pydict(
                    {
                        "event_id": pc.cast(lines, pa.string()),
                        "ts": pa.array([TIMESTAMPS[1]] * rows_per_insert, MS),
                        "customer_id": pc.cast(lines, pa.string()),
                        "mailing_id": [""] * rows_per_insert,
                        "campaign_id": [""] * rows_per_insert,
                        "channel": ["email"] * rows_per_insert,
                        "event_type": ["sent"] * rows_per_insert,
                        "source": ["api"] * rows_per_insert,
                        "version": pc.cast(lines, pa.uint64()),
                    },
                    schema=MESSAGE_EVENT_SCHEMA,
                )
                tenant_insert_arrow_stream("message_events", [batch], tenant_id=tenant_id)
        except BaseException as error:  # raised in the test's thread below
            errors.append(error)

    def busy() -> None:
        while not stop.is_set():
            sum(range(10_000))
            pc.sum(pa.array(range(10_000)))

    busy_thread = threading.Thread(target=busy, daemon=True)
    busy_thread.start()
    inserters = [
        threading.Thread(target=insert, args=(tenant.pk, index * 10_000_000), daemon=True)
        for index, tenant in enumerate(tenants)
    ]
    for thread in inserters:
        thread.start()
    for thread in inserters:
        thread.join(timeout=300)  # a deadlock fails the test instead of hanging it
    stop.set()
    busy_thread.join()
    assert not any(thread.is_alive() for thread in inserters)
    assert errors == []
    total = inserts * rows_per_insert
    for index, tenant in enumerate(tenants):
        [(count, low, high, distinct)] = tenant_query(
            "SELECT count(), min(version), max(version), uniqExact(event_id) FROM message_events"
            " WHERE tenant_id = {tenant_id:UInt32}",
            tenant_id=tenant.pk,
        ).result_rows
        assert (count, low, high, distinct) == (total, index * 10_000_000, index * 10_000_000 + total - 1, total)
