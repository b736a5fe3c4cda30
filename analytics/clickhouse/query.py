"""The single door to ClickHouse for tenant data (DESIGN §2).

Every statement names its tenant through the ``{tenant_id:UInt32}`` placeholder, and
this module — not the caller — binds it, from an explicit tenant or from the tenant of
the current Postgres connection. Every user value is a bound parameter; a statement
without the placeholder, or a call without a tenant, is refused before it is sent.
"""

from __future__ import annotations

import re
import threading
import uuid
from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any, TypeVar

import numpy as np
import pyarrow as pa
from clickhouse_connect.driver.binding import format_query_value, quote_identifier
from clickhouse_connect.driver.query import QueryResult
from django.db import connection
from django_tenants.utils import get_public_schema_name

from analytics.clickhouse.client import get_client, is_embedded
from analytics.clickhouse.sql import FACT_TABLES

TENANT_PLACEHOLDER = "{tenant_id:UInt32}"
# A literal tenant id in a statement bypasses the binding; refuse it outright.
_LITERAL_TENANT = re.compile(r"\btenant_id\s*(=|!=|<>|\bIN\b)\s*\(?\s*\d", re.IGNORECASE)
# Limits every tenant query runs with, so one dashboard cannot starve the others.
QUERY_SETTINGS = {"max_execution_time": 60}


# Writes to these change answers and bump the tenant's data version (cached results and pre-aggregations
# built before are stale); pre-aggregations are derived from them and do not.
TENANT_SETTINGS_TABLE = "tenant_settings"
_SOURCE_TABLES = frozenset((*FACT_TABLES, TENANT_SETTINGS_TABLE))
_WRITTEN_TABLE = re.compile(
    r"^\s*(?:INSERT\s+INTO|DELETE\s+FROM|ALTER\s+TABLE|TRUNCATE\s+TABLE)\s+(\w+)", re.IGNORECASE
)


class TenantScopeError(Exception):
    """A ClickHouse statement that is not scoped to exactly one tenant."""


def current_tenant_id() -> int:
    """The tenant of the current Postgres connection (request, task, or ``tenant_context``)."""
    tenant = getattr(connection, "tenant", None)
    if tenant is None or connection.schema_name == get_public_schema_name() or getattr(tenant, "pk", None) is None:
        raise TenantScopeError("No tenant is active: ClickHouse data can only be read inside a tenant.")
    return int(tenant.pk)


def _resolve_tenant(tenant_id: int | None) -> int:
    resolved = current_tenant_id() if tenant_id is None else tenant_id
    if isinstance(resolved, bool) or not isinstance(resolved, int) or resolved <= 0:
        raise TenantScopeError(f"Invalid tenant id {resolved!r}.")
    return resolved


def _check_statement(sql: str, params: dict[str, Any] | None) -> None:
    if TENANT_PLACEHOLDER not in sql:
        raise TenantScopeError(f"Statement does not filter on {TENANT_PLACEHOLDER}: {sql[:200]}")
    if _LITERAL_TENANT.search(sql):
        raise TenantScopeError("Statement compares tenant_id with a literal; bind it with {tenant_id:UInt32}.")
    if params and "tenant_id" in params:
        raise TenantScopeError("'tenant_id' is bound by the query module, not passed as a parameter.")


def tenant_query(
    sql: str,
    params: dict[str, Any] | None = None,
    *,
    tenant_id: int | None = None,
    settings: dict[str, Any] | None = None,
) -> QueryResult:
    """Run a SELECT for one tenant. ``sql`` uses ``{name:Type}`` placeholders for every value."""
    _check_statement(sql, params)
    bound = {**(params or {}), "tenant_id": _resolve_tenant(tenant_id)}
    return get_client().query(sql, parameters=bound, settings={**QUERY_SETTINGS, **(settings or {})})


def tenant_query_arrow(
    sql: str,
    params: dict[str, Any] | None = None,
    *,
    tenant_id: int | None = None,
    settings: dict[str, Any] | None = None,
) -> pa.Table:
    """``tenant_query`` answered as an Arrow table: millions of rows become numpy columns without a Python
    object per value (a customer summary of 5M rows: seconds faster)."""
    _check_statement(sql, params)
    bound = {**(params or {}), "tenant_id": _resolve_tenant(tenant_id)}
    return get_client().query_arrow(sql, parameters=bound, settings={**QUERY_SETTINGS, **(settings or {})})


_NAME = re.compile(r"[a-z_][a-z0-9_]*")


def _name_check(name: str, kind: str) -> None:
    """Refuse a table or setting name that is not a plain identifier: such names are written into statements."""
    if not _NAME.fullmatch(name):
        raise ValueError(f"Invalid {kind} name {name!r}.")


def tenant_insert(
    table: str,
    rows: Iterable[Sequence[Any]],
    column_names: Sequence[str],
    *,
    tenant_id: int | None = None,
    settings: dict[str, Any] | None = None,
) -> int:
    """Insert rows for one tenant; the module prepends ``tenant_id`` to every row. Returns the row count."""
    if "tenant_id" in column_names:
        raise TenantScopeError("'tenant_id' is set by the query module, not passed as a column.")
    _name_check(table, "table")
    resolved = _resolve_tenant(tenant_id)
    data = [(resolved, *row) for row in rows]
    if data:
        get_client().insert(table, data, column_names=["tenant_id", *column_names], settings=settings or {})
        _data_changed(table, resolved)
    return len(data)


# Rows a staged insert sends per INSERT into its staging table: enough that ClickHouse's fixed cost per
# INSERT stays small, few enough that the last one, which nothing overlaps, is short.
STAGE_ROWS = 200_000
STAGING_PREFIX = "staging_"
# A staging table this old was left by a process that died mid-import; the next staged insert drops it.
STAGING_ORPHAN_HOURS = 24
_PARTITION_ID = re.compile(r"[A-Za-z0-9_-]+")


def tenant_insert_arrow(
    table: str,
    batches: Iterable[pa.RecordBatch],
    *,
    tenant_id: int | None = None,
    settings: dict[str, Any] | None = None,
) -> int:
    """Bulk columnar insert for one tenant, all or nothing; the module adds the ``tenant_id`` column.

    The batches (one schema, column names = table columns) go, ``STAGE_ROWS`` at a time, into a
    staging table made for this call with ``table``'s structure, so ClickHouse takes them while the
    caller produces the next ones (chdb releases the GIL: a parser in another thread goes on) and
    memory stays bounded whatever their number. Only once the iterable is exhausted are the staging
    table's partitions attached to ``table`` (hard links: milliseconds); if it raises, ``table`` is
    untouched. The staging table holds the rows this call stamped with its tenant, nothing else, and
    is dropped on the way out. Returns the row count.
    """
    _name_check(table, "table")
    resolved = _resolve_tenant(tenant_id)
    client = get_client()
    _staging_orphans_drop()
    staging = f"{STAGING_PREFIX}{table}_{uuid.uuid4().hex}"
    client.command(f"CREATE TABLE {staging} AS {table}")
    try:
        rows = pending_rows = 0
        pending: list[pa.RecordBatch] = []
        for batch in batches:
            pending.append(_with_tenant_column(batch, resolved))
            pending_rows += batch.num_rows
            if pending_rows >= STAGE_ROWS:
                rows += _arrow_stream_insert(staging, pending, settings)
                pending, pending_rows = [], 0
        rows += _arrow_stream_insert(staging, pending, settings)
        if rows:
            partitions = client.query(
                "SELECT DISTINCT partition_id FROM system.parts"
                " WHERE database = currentDatabase() AND table = {staging:String} AND active",
                parameters={"staging": staging},
            ).result_rows
            for (partition,) in partitions:
                if not _PARTITION_ID.fullmatch(partition):
                    raise ValueError(f"Unexpected partition id {partition!r} in {staging}.")
                client.command(f"ALTER TABLE {table} ATTACH PARTITION ID '{partition}' FROM {staging}")
            _data_changed(table, resolved)
    finally:  # SYNC: the staging parts go now, not minutes later (an Atomic database delays drops)
        client.command(f"DROP TABLE IF EXISTS {staging} SYNC")
    return rows


def _staging_orphans_drop() -> None:
    client = get_client()
    orphans = client.query(
        "SELECT name FROM system.tables WHERE database = currentDatabase() AND startsWith(name, {prefix:String})"
        " AND metadata_modification_time < now() - toIntervalHour({hours:UInt32})",
        parameters={"prefix": STAGING_PREFIX, "hours": STAGING_ORPHAN_HOURS},
    ).result_rows
    for (name,) in orphans:
        client.command(f"DROP TABLE IF EXISTS {name}")


def _arrow_stream_insert(table: str, batches: Sequence[pa.RecordBatch], settings: dict[str, Any] | None) -> int:
    """Send ``batches`` (tenant column included, one schema) as one INSERT; returns the row count."""
    batches = [batch for batch in batches if batch.num_rows]
    if not batches:
        return 0
    if is_embedded():
        _chdb_arrow_insert(table, batches, settings)
    else:
        stream = pa.BufferOutputStream()
        with pa.ipc.new_stream(stream, batches[0].schema) as writer:
            for batch in batches:
                writer.write_batch(batch)
        data = pa.BufferReader(stream.getvalue())
        get_client().raw_insert(table, batches[0].schema.names, data, settings=settings or {}, fmt="ArrowStream")
    return sum(batch.num_rows for batch in batches)


def _chdb_arrow_insert(table: str, batches: Sequence[pa.RecordBatch], settings: dict[str, Any] | None) -> None:
    """INSERT … SELECT from the batches in place: chdb's ``Python()`` table function reads them in this
    process, where the driver's ``raw_insert`` spools an Arrow stream to a temporary file for ClickHouse
    to parse back (~0.3 CPU-s more per million sales lines, a seventh of a whole file import's CPU).

    ``Python(name)`` finds its table by variable name in the calling frames, from the innermost out:
    each thread walks its own frames and queries through its own chdb connection, so concurrent
    inserts do not see each other's rows. Columns inferred as nullable would be converted to the
    table's types leniently (a string 'abc' for a UInt16 becomes 0); without that inference a value
    of the wrong type is an error, as in the Arrow stream format, and nulls become defaults as there.
    """
    columns = ", ".join(quote_identifier(name) for name in batches[0].schema.names)
    chdb_insert_rows = pa.Table.from_batches(batches)  # noqa: F841 (read by name through Python())
    get_client().command(
        f"INSERT INTO {table} ({columns}){_settings_clause(settings)}"
        f" SELECT {columns} FROM Python(chdb_insert_rows) SETTINGS schema_inference_make_columns_nullable = 0"
    )


def _settings_clause(settings: dict[str, Any] | None) -> str:
    """`` SETTINGS k = v, …`` for a statement's text: chdb's driver applies per-call settings with a query
    of system.settings, a SET and a restoring SET each, which cost a small INSERT over a third of its time."""
    if not settings:
        return ""
    for name in settings:
        _name_check(name, "setting")
    return " SETTINGS " + ", ".join(f"{name} = {format_query_value(value)}" for name, value in settings.items())


def _with_tenant_column(batch: pa.RecordBatch, tenant_id: int) -> pa.RecordBatch:
    if "tenant_id" in batch.schema.names:
        raise TenantScopeError("'tenant_id' is set by the query module, not passed as a column.")
    return batch.add_column(0, "tenant_id", pa.array(np.full(batch.num_rows, tenant_id, dtype=np.uint32)))


def tenant_insert_arrow_stream(
    table: str,
    batches: Sequence[pa.RecordBatch],
    *,
    tenant_id: int | None = None,
    settings: dict[str, Any] | None = None,
) -> int:
    """Insert Arrow batches for one tenant as one INSERT; the module adds the ``tenant_id`` column.

    For data that is whole in memory already (the demo generator): no spool, no re-encoding, the
    fastest path into ClickHouse (embedded chdb reads the batches in place). Over HTTP each batch
    arrives as a block of its own (unless ``settings`` squash blocks), so a caller that cuts its rows
    by partition spares ClickHouse splitting them.
    Dictionary-encoded columns stay encoded on the way: worth it for repeated values (stores,
    products); near-unique ids are read faster as plain strings. Returns the row count.
    """
    _name_check(table, "table")
    resolved = _resolve_tenant(tenant_id)
    rows = _arrow_stream_insert(table, [_with_tenant_column(batch, resolved) for batch in batches], settings)
    if rows:
        _data_changed(table, resolved)
    return rows


def tenant_command(
    sql: str,
    params: dict[str, Any] | None = None,
    *,
    tenant_id: int | None = None,
    settings: dict[str, Any] | None = None,
) -> None:
    """Run a statement that returns no rows for one tenant: ``INSERT … SELECT``, a lightweight ``DELETE``.

    The same rules as ``tenant_query``: the statement must use ``{tenant_id:UInt32}`` (for an
    INSERT … SELECT, as the value of the tenant_id column and in any filter on existing rows).
    """
    _check_statement(sql, params)
    bound = {**(params or {}), "tenant_id": _resolve_tenant(tenant_id)}
    get_client().command(sql, parameters=bound, settings={**QUERY_SETTINGS, **(settings or {})})
    written = _WRITTEN_TABLE.match(sql)
    _data_changed(written.group(1) if written else "", bound["tenant_id"])


def data_version(tenant_id: int | None = None) -> int:
    """The tenant's data version: it grows with every write to its facts (0 before the first)."""
    resolved = _resolve_tenant(tenant_id)
    sql = "SELECT max(version) FROM data_versions WHERE tenant_id = {tenant_id:UInt32}"
    return get_client().query(sql, parameters={"tenant_id": resolved}).result_rows[0][0]


class _WrittenTables:
    """The tables per tenant that one ``data_changes_grouped`` block wrote, from its own thread and from the
    threads it handed writes to (``data_changes_carried``): hence the lock."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._tables: defaultdict[int, set[str]] | None = defaultdict(set)

    def add(self, tenant_id: int, table: str) -> bool:
        """Record a write; False once the block has ended, its bump done (the write must bump by itself)."""
        with self._lock:
            if self._tables is None:
                return False
            self._tables[tenant_id].add(table)
            return True

    def close(self) -> dict[int, set[str]]:
        """End the block: the tables written, by tenant; later writes are refused by ``add``."""
        with self._lock:
            tables, self._tables = self._tables, None
        return tables or {}


# The ``_WrittenTables`` of the ``data_changes_grouped`` block this thread writes in (None: no block).
_grouped = threading.local()


@contextmanager
def data_changes_grouped() -> Iterator[None]:
    """Within the block, writes bump each tenant's data version once, on the way out (even on an error,
    for the writes that landed), instead of after every write: a statement saved per table written.
    Nested blocks join the outermost one; writes on other threads join it through ``data_changes_carried``."""
    if getattr(_grouped, "tables", None) is not None:
        yield
        return
    _grouped.tables = _WrittenTables()
    try:
        yield
    finally:
        written = _grouped.tables.close()
        _grouped.tables = None
        for tenant_id in sorted(written):
            _data_version_bump(tenant_id, written[tenant_id])


_WriteResult = TypeVar("_WriteResult")


def data_changes_carried(write: Callable[[], _WriteResult]) -> Callable[[], _WriteResult]:
    """``write`` made to join this thread's ``data_changes_grouped`` block (if any) on whichever thread runs it.

    The block is thread-local, so a write handed to a pool would otherwise bump on its own. The caller waits
    for the write before leaving the block, so that the block's one bump covers it; a write that lands after
    the block ended bumps by itself rather than be lost.
    """
    group = getattr(_grouped, "tables", None)
    if group is None:
        return write

    def joined() -> _WriteResult:
        outer, _grouped.tables = getattr(_grouped, "tables", None), group
        try:
            return write()
        finally:  # a pool thread must not keep writing into this block after this write
            _grouped.tables = outer

    return joined


def _data_changed(table: str, tenant_id: int) -> None:
    if table in _SOURCE_TABLES:
        group = getattr(_grouped, "tables", None)
        if group is None or not group.add(tenant_id, table):
            _data_version_bump(tenant_id, {table})


def _data_version_bump(tenant_id: int, tables: set[str]) -> None:
    """Bump the tenant's data version after writes to fact tables, recording which: the clock, or one past
    the last version if the clock is behind it, so a version never repeats whichever process writes."""
    get_client().command(
        "INSERT INTO data_versions (tenant_id, fact, version) SELECT {tenant_id:UInt32}, fact, version"
        " FROM (SELECT greatest(toUInt64(toUnixTimestamp64Nano(now64(9))),"
        " (SELECT max(version) + 1 FROM data_versions WHERE tenant_id = {tenant_id:UInt32})) AS version)"
        " ARRAY JOIN {tables:Array(String)} AS fact",
        parameters={"tenant_id": tenant_id, "tables": sorted(tables)},
    )
