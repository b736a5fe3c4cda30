"""Writes of the events API: a validated batch goes through integrations.ingest, whole or not at all.

A batch with any bad item is rejected before anything is written. A good batch is written
table by table, its ClickHouse tables side by side (ClickHouse has no transaction across
tables); if a write fails the caller gets an error and re-sends the batch, which is safe:
every row is keyed by its source identity (order id + line, event id, customer id) in a
ReplacingMergeTree, so a row written twice counts once. Each request is recorded as an
ImportRun of the workspace's "Events API" data source, so the agency sees posts, their
counts and their errors in the import history.
"""

from __future__ import annotations

import gc
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor, wait
from contextlib import contextmanager
from dataclasses import dataclass
from functools import partial
from zoneinfo import ZoneInfo

from django.utils import timezone
from django.utils.translation import gettext as _

from analytics.clickhouse.query import data_changes_carried, data_changes_grouped
from integrations.events.schema import (
    MAX_REPORTED_ERRORS,
    BatchColumns,
    ItemError,
    ParseContext,
    events_columns,
    events_parse,
    events_validate,
)
from integrations.ingest import (
    contacts_upsert,
    customer_attributes_write,
    event_columns_write,
    sales_line_columns_write,
)
from integrations.models import DataSource, ImportRun
from tenants.errors import ApplicationError
from tenants.models import Tenant

SOURCE = "events_api"
DATA_SOURCE_NAME = "Events API"


@dataclass(frozen=True)
class EventsIngestResult:
    items: int
    items_by_type: dict[str, int]
    sales_lines: int
    import_run_id: int


def events_data_source_ensure() -> DataSource:
    """The current workspace's events API data source, created on its first post."""
    source, _created = DataSource.objects.get_or_create(kind=DataSource.Kind.EVENTS_API, name=DATA_SOURCE_NAME)
    return source


@contextmanager
def _gc_paused() -> Iterator[None]:
    """Hold the cyclic garbage collector while a batch is processed.

    A batch allocates some 100k objects (items, records, rows) that hold no reference cycles and
    are freed by reference counting when ``_batch_process`` returns. Left on, the collector
    rescans them and the rest of the process again and again: a fifth to a quarter of a
    request's time, measured with bench/bench_events_api.py. A collector another thread paused
    is left paused.
    """
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


# A batch's ClickHouse inserts run side by side on these threads, one per table it writes (four at most):
# ClickHouse works outside the GIL (chdb in this process, or a server over HTTP), and each thread keeps its own
# client (analytics.clickhouse.client.get_client) from one request to the next. Postgres stays on the request's
# thread, whose connection is set to the tenant's schema.
_CLICKHOUSE_WRITERS = ThreadPoolExecutor(max_workers=4, thread_name_prefix="events-clickhouse")


def _clickhouse_writes(batch: BatchColumns, *, tenant_id: int) -> list[Callable[[], int]]:
    """The ClickHouse inserts of a batch, one per table it has rows for; each names its tenant."""
    writes = []
    if batch.customers:
        writes.append(partial(customer_attributes_write, batch.customers, source=SOURCE, tenant_id=tenant_id))
    if batch.sales_lines:
        writes.append(partial(sales_line_columns_write, batch.sales_lines, source=SOURCE, tenant_id=tenant_id))
    for table, columns in (("message_events", batch.message_events), ("web_events", batch.web_events)):
        if columns:
            writes.append(partial(event_columns_write, table, columns, source=SOURCE, tenant_id=tenant_id))
    return writes


def _batch_write(batch: BatchColumns, *, tenant_id: int) -> None:
    """Write a valid batch: its ClickHouse tables side by side on the pool, its contacts meanwhile on this thread.

    Every insert is waited for, even after another write failed, so that the block's one data-version bump
    covers each table written; then the first error (Postgres's, else in table order) is raised here.
    """
    with data_changes_grouped():  # one data-version bump for the batch, not one per table (~8 ms each)
        inserts = [
            _CLICKHOUSE_WRITERS.submit(data_changes_carried(write))
            for write in _clickhouse_writes(batch, tenant_id=tenant_id)
        ]
        try:
            if batch.customers:
                contacts_upsert(batch.customers)
        finally:
            wait(inserts)
        for insert in inserts:
            insert.result()


@dataclass(frozen=True)
class _Outcome:
    items: int
    items_by_type: dict[str, int]
    sales_lines: int
    errors: list[ItemError]  # empty: the batch was written


def _batch_process(*, body: bytes, ndjson: bool, tenant: Tenant) -> _Outcome:
    """Parse and validate a batch, and write it when every item is valid.

    Returns only counts and errors: everything big allocated here is freed when it returns.
    """
    items, line_numbers = events_parse(body, ndjson=ndjson)
    context = ParseContext.at(timezone=ZoneInfo(tenant.timezone), now=timezone.now())
    batch = events_columns(items, context=context)
    if batch is None:  # some item has a problem: the per-item checks name each one
        records, errors = events_validate(items, context=context, line_numbers=line_numbers)
        if errors:
            return _Outcome(len(items), dict(records.items_by_type), len(records.sales_lines), errors)
        batch = records.columns()
    _batch_write(batch, tenant_id=tenant.pk)
    return _Outcome(len(items), dict(batch.items_by_type), batch.sales_line_count, [])


def _invalid_batch_error(outcome: _Outcome) -> ApplicationError:
    invalid_items = len({error.index for error in outcome.errors})
    message = _(
        "%(invalid)d of %(total)d items are invalid; nothing was written. Fix them and send the batch again."
    ) % {"invalid": invalid_items, "total": outcome.items}
    return ApplicationError(
        message,
        {
            "errors": [error.as_dict() for error in outcome.errors[:MAX_REPORTED_ERRORS]],
            "error_count": len(outcome.errors),
            "invalid_items": invalid_items,
        },
    )


def _run_finish(run: ImportRun, *, outcome: _Outcome | None, message: str = "") -> None:
    """Record how a post ended; a failure before the batch was read has no ``outcome``."""
    errors = outcome.errors if outcome else []
    run.rows_read = outcome.items if outcome else 0
    run.rows_rejected = len({error.index for error in errors})
    shown = [error.as_dict() for error in errors[:MAX_REPORTED_ERRORS]]  # as the 400 answer shows them
    run.errors = [
        {"row": e["index"], "column": e["field"] or "", "value": e["value"], "reason": e["reason"]} for e in shown
    ]
    if message:
        run.status = ImportRun.Status.FAILED
        run.message = f"{run.message}: {message}"
    else:
        run.status = ImportRun.Status.SUCCEEDED
        run.rows_written = run.rows_read
        run.progress = 1
    run.finished_at = timezone.now()
    run.save()


def events_ingest(*, body: bytes, ndjson: bool, tenant: Tenant, principal: str) -> EventsIngestResult:
    """Parse, validate and write one batch posted to the events API, in the current tenant's schema.

    Raises ApplicationError (BatchTooLargeError for the size limits) naming every bad item and
    field; then nothing is written.
    """
    posted_by = _("Posted by %(principal)s") % {"principal": principal}
    run = ImportRun.objects.create(data_source=events_data_source_ensure(), dataset="events", message=posted_by)
    outcome = None
    try:
        with _gc_paused():
            outcome = _batch_process(body=body, ndjson=ndjson, tenant=tenant)
        if outcome.errors:
            raise _invalid_batch_error(outcome)
    except ApplicationError as exc:
        _run_finish(run, outcome=outcome, message=exc.message)
        raise
    except Exception as exc:
        # Not the caller's fault (storage down): the batch may be re-sent as it is.
        _run_finish(run, outcome=outcome, message=_("write failed: %(error)s") % {"error": exc})
        raise
    _run_finish(run, outcome=outcome)
    return EventsIngestResult(
        items=outcome.items,
        items_by_type=outcome.items_by_type,
        sales_lines=outcome.sales_lines,
        import_run_id=run.pk,
    )
