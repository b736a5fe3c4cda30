"""Generate a demo retailer's history into a tenant: contacts to Postgres, facts to ClickHouse.

Chunks of customers are generated on a worker thread while ClickHouse takes the previous chunk on
another and Postgres its contacts on this one, so the three work side by side and memory holds three
chunks at most, whatever the number of customers. Every row is keyed by its id in a
ReplacingMergeTree (contacts: upsert by customer id), so generating the same seed and size again
replaces the data instead of adding to it.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import date
from zoneinfo import ZoneInfo

import pyarrow as pa
from django.db import connection
from django.utils import timezone
from django.utils.translation import gettext as _
from django_tenants.utils import tenant_context

from analytics.clickhouse.query import tenant_insert_arrow_stream
from integrations.demo.batches import ChunkBatches, chunk_batches
from integrations.demo.catalog import catalog_build, mailing_plan_build
from integrations.demo.model import CHUNK_CUSTOMERS, GenerationPlan, acquisition_curve, chunk_generate
from integrations.demo.timeline import timeline_build
from integrations.ingest import contacts_copy, ingest_version
from integrations.models import Contact, DataSource, ImportRun
from tenants.errors import ApplicationError
from tenants.models import Tenant

SOURCE = "demo"
DATA_SOURCE_NAME = "Demo data generator"
DEFAULT_MONTHS = 36
MAX_MONTHS = 120
MAX_CUSTOMERS = 50_000_000
MAX_SEED = 2**63 - 1
# Generated blocks hold each key once, so ClickHouse may skip its on-insert replacing pass
# (half the insert cost); FINAL reads and background merges still collapse re-imports. Blocks come
# one per month (the tables' partition): not squashing them spares ClickHouse splitting them again,
# which takes a third off the insert's CPU and lets it write the parts in parallel.
BULK_INSERT_SETTINGS = {"optimize_on_insert": 0, "min_insert_block_size_rows": 0, "min_insert_block_size_bytes": 0}


@dataclass
class DemoDataResult:
    customers: int
    first_day: date
    end_day: date
    import_run_id: int
    seconds: float = 0.0
    rows: dict[str, int] = field(default_factory=dict)  # table → rows written


def demo_plan_build(
    *,
    seed: int,
    customers: int,
    months: int,
    end_day: date,
    timezone_name: str,
    chunk_customers: int = CHUNK_CUSTOMERS,
) -> GenerationPlan:
    """Everything shared by the chunks: calendar, shop, mailing calendar."""
    timeline = timeline_build(end_day=end_day, months=months, timezone=timezone_name)
    return GenerationPlan(
        seed=seed,
        customers=customers,
        timeline=timeline,
        catalog=catalog_build(seed=seed, customers=customers),
        mailings=mailing_plan_build(timeline),
        acquisition=acquisition_curve(timeline),
        chunk_customers=chunk_customers,
    )


def _chunk_build(plan: GenerationPlan, number: int, version: int) -> ChunkBatches:
    return chunk_batches(plan, chunk_generate(plan, number), source=SOURCE, version=version)


def _validate(*, customers: int, seed: int, months: int, end_day: date, today: date) -> None:
    if not 1 <= customers <= MAX_CUSTOMERS:
        raise ApplicationError(
            _("Customers must be between 1 and %(max)s, got %(value)s.") % {"max": MAX_CUSTOMERS, "value": customers}
        )
    if not 0 <= seed <= MAX_SEED:
        raise ApplicationError(
            _("Seed must be between 0 and %(max)s, got %(value)s.") % {"max": MAX_SEED, "value": seed}
        )
    if not 1 <= months <= MAX_MONTHS:
        raise ApplicationError(
            _("Months of history must be between 1 and %(max)s, got %(value)s.") % {"max": MAX_MONTHS, "value": months}
        )
    if end_day > today:
        raise ApplicationError(
            _("The end date %(end)s is in the future (today is %(today)s in the tenant's timezone).")
            % {"end": end_day.isoformat(), "today": today.isoformat()}
        )


def demo_data_generate(
    *,
    tenant: Tenant,
    customers: int,
    seed: int,
    months: int = DEFAULT_MONTHS,
    end_day: date | None = None,
    chunk_customers: int = CHUNK_CUSTOMERS,
    progress: Callable[[int, int, int], None] | None = None,
) -> DemoDataResult:
    """Generate ``months`` of history ending before ``end_day`` (default: today, in the tenant's timezone).

    Deterministic: the same seed, size, months and end day (and chunk size, which bounds memory)
    give the same rows. ``progress`` is called after each chunk with (chunks done, chunks in all,
    rows written so far).
    """
    today = timezone.now().astimezone(ZoneInfo(tenant.timezone)).date()
    end_day = end_day or today
    _validate(customers=customers, seed=seed, months=months, end_day=end_day, today=today)
    started = time.perf_counter()
    plan = demo_plan_build(
        seed=seed,
        customers=customers,
        months=months,
        end_day=end_day,
        timezone_name=tenant.timezone,
        chunk_customers=chunk_customers,
    )
    version = ingest_version()
    with tenant_context(tenant):
        data_source, _created = DataSource.objects.get_or_create(kind=DataSource.Kind.DEMO, name=DATA_SOURCE_NAME)
        data_source.config = {"seed": seed, "customers": customers, "months": months, "end_day": end_day.isoformat()}
        data_source.save(update_fields=["config"])
        run = ImportRun.objects.create(data_source=data_source, dataset="demo", message=_describe(plan, months))
        result = DemoDataResult(
            customers=customers, first_day=plan.timeline.first_day, end_day=end_day, import_run_id=run.pk
        )
        try:
            with _contact_indexes_deferred():
                _generate_into(plan, tenant=tenant, version=version, run=run, result=result, progress=progress)
        except BaseException as exc:
            run.status = ImportRun.Status.FAILED
            run.message = f"{run.message}\n{type(exc).__name__}: {exc}"
            run.finished_at = timezone.now()
            run.save(update_fields=["status", "message", "finished_at"])
            raise
        run.status = ImportRun.Status.SUCCEEDED
        run.progress = 1.0
        run.finished_at = timezone.now()
        run.save(update_fields=["status", "progress", "finished_at"])
    result.seconds = time.perf_counter() - started
    return result


@contextmanager
def _contact_indexes_deferred() -> Iterator[None]:
    """Into an empty contacts table, build the e-mail and phone indexes once at the end, not row by row.

    Random e-mails and phones scatter every insert across indexes that outgrow Postgres' buffers
    (at 5M contacts the bulk of the generator's tail, docs/benchmarks.md); one sort at the end costs
    a fraction. Indexes missing after an earlier run died half-way are rebuilt first.
    """
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT indexname FROM pg_indexes WHERE schemaname = current_schema() AND tablename = %s",
            [Contact._meta.db_table],
        )
        present = {name for (name,) in cursor.fetchall()}
    with connection.schema_editor() as editor:
        for index in Contact._meta.indexes:
            if index.name not in present:
                editor.add_index(Contact, index)
    if Contact.objects.exists():
        yield
        return
    with connection.schema_editor() as editor:
        for index in Contact._meta.indexes:
            editor.remove_index(Contact, index)
    try:
        yield
    finally:
        with connection.schema_editor() as editor:
            for index in Contact._meta.indexes:
                editor.add_index(Contact, index)


def _describe(plan: GenerationPlan, months: int) -> str:
    return (
        f"seed {plan.seed}, {plan.customers} customers, {months} months"
        f" {plan.timeline.first_day.isoformat()} – {plan.timeline.end_day.isoformat()} (end exclusive)"
    )


def _facts_write(facts: dict[str, list[pa.RecordBatch]], *, tenant_id: int) -> dict[str, int]:
    return {
        table: tenant_insert_arrow_stream(table, batches, tenant_id=tenant_id, settings=BULK_INSERT_SETTINGS)
        for table, batches in facts.items()
    }


def _generate_into(
    plan: GenerationPlan,
    *,
    tenant: Tenant,
    version: int,
    run: ImportRun,
    result: DemoDataResult,
    progress: Callable[[int, int, int], None] | None,
) -> None:
    """Three stages side by side: numpy builds chunk k+1 and ClickHouse takes chunk k's facts on worker
    threads while this thread copies chunk k's contacts into Postgres (on its own, tenant-scoped connection).
    """
    written = 0

    def count(rows: dict[str, int]) -> None:
        nonlocal written
        for table, number in rows.items():
            result.rows[table] = result.rows.get(table, 0) + number
            written += number

    with (
        ThreadPoolExecutor(max_workers=1, thread_name_prefix="demo-generate") as generator,
        ThreadPoolExecutor(max_workers=1, thread_name_prefix="demo-clickhouse") as clickhouse,
    ):
        building = generator.submit(_chunk_build, plan, 0, version)
        writing: Future[dict[str, int]] | None = None
        for number in range(plan.chunks):
            batches = building.result()
            if number + 1 < plan.chunks:
                building = generator.submit(_chunk_build, plan, number + 1, version)
            if writing is not None:
                count(writing.result())  # at most one chunk in flight to ClickHouse: memory stays bounded
            writing = clickhouse.submit(_facts_write, batches.facts, tenant_id=tenant.pk)
            count({"contacts": contacts_copy(batches.contacts)})
            ImportRun.objects.filter(pk=run.pk).update(
                rows_read=written, rows_written=written, progress=number / plan.chunks, heartbeat_at=timezone.now()
            )
            if progress:
                progress(number + 1, plan.chunks, written)
        if writing is not None:
            count(writing.result())
    ImportRun.objects.filter(pk=run.pk).update(rows_read=written, rows_written=written)
