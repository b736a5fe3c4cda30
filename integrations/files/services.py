"""File imports (DESIGN §8): preview, import, and the column mapping saved per data source.

A bad file commits nothing. Sales: the file is parsed and checked in one streaming pass whose
typed batches ``facts_bulk_write`` streams into a staging table as they come (ClickHouse takes
them while the next ones are parsed); they reach ``sales_lines`` only after the last row passed,
and if that step fails its rows are deleted again. Customers: a first pass
checks the whole file, a second one writes contacts (Postgres, one transaction) and their
attributes (ClickHouse, one INSERT, deleted again if the transaction does not commit).
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from queue import Full, Queue
from typing import TypeVar
from zoneinfo import ZoneInfo

import pyarrow as pa
from django.core.files.storage import default_storage
from django.core.files.uploadedfile import UploadedFile
from django.db import connection, transaction
from django.utils import timezone, translation
from django.utils.translation import gettext as _

from integrations.files.columns import (
    COLUMNS,
    Dataset,
    ResolvedColumns,
    columns_resolve,
    header_key,
    header_targets,
    mapping_suggest,
)
from integrations.files.parsing import FileParser, ParsedBatch, RowError
from integrations.files.reader import FileUnreadableError, RawBatch, TabularFile, tabular_file_open
from integrations.files.selectors import file_mapping_saved
from integrations.ingest import (
    Customer,
    contacts_upsert,
    customer_attributes_batch,
    fact_rows_delete,
    facts_bulk_write,
    ingest_version,
    sales_lines_batch,
)
from integrations.models import DataSource, ImportRun

logger = logging.getLogger(__name__)
T = TypeVar("T")

DEFAULT_SOURCE_NAME = "File uploads"
PREVIEW_ROWS = 20
PROGRESS_INTERVAL_SECONDS = 0.5
# Threads that check a file's values (pyarrow releases the GIL): the machines we run on have two cores.
PARSE_WORKERS = 2
UPLOAD_DIRECTORY = "imports"


class FileRejectedError(Exception):
    """Raised from the batch generator once the whole file was read and found bad: nothing is sent."""


# --- Data sources and mappings ----------------------------------------------------------------------------------


def file_source_get_or_create(*, name: str = "") -> DataSource:
    """The file-upload data source called ``name`` (the default one when empty), created on first use."""
    source, _created = DataSource.objects.get_or_create(
        kind=DataSource.Kind.FILE, name=name.strip() or DEFAULT_SOURCE_NAME
    )
    return source


def file_mapping_save(*, data_source: DataSource, dataset: Dataset, mapping: Mapping[str, str]) -> None:
    """Remember ``mapping`` (merged over what was saved) for the next ``dataset`` file of this source."""
    if not mapping:
        return
    saved = {**file_mapping_saved(data_source=data_source, dataset=dataset), **mapping}
    data_source.config = {**data_source.config, "mapping": {**data_source.config.get("mapping", {}), dataset: saved}}
    data_source.save(update_fields=["config"])


def _mapping_effective(data_source: DataSource, dataset: Dataset, overrides: Mapping[str, str] | None) -> dict:
    return {**file_mapping_saved(data_source=data_source, dataset=dataset), **(overrides or {})}


# --- Preview ------------------------------------------------------------------------------------------------------


@dataclass
class FilePreview:
    """What the mapping form shows: how the file was read, its columns, and its first rows as they would import."""

    dataset: Dataset
    file: TabularFile
    mapping: dict[str, str]  # header -> the canonical column it feeds ("" = ignored)
    suggested: dict[str, str]
    problems: list[dict] = field(default_factory=list)
    columns: list[str] = field(default_factory=list)  # canonical columns of the preview rows
    rows: list[dict] = field(default_factory=list)  # {"row": number, "values": [display values]}
    errors: list[dict] = field(default_factory=list)


def file_preview(
    *, path: Path | str, dataset: Dataset, data_source: DataSource, mapping: Mapping[str, str] | None = None
) -> FilePreview:
    """Read the header and the first rows of a file with the saved mapping plus ``mapping``; write nothing.

    Without ``mapping`` (the first look at an upload) known synonyms of the canonical columns are
    proposed for the headers the saved mapping does not cover. Raises ``FileUnreadableError`` when
    the file cannot be read at all.
    """
    opened = tabular_file_open(path)
    effective = _mapping_effective(data_source, dataset, mapping)
    suggested = mapping_suggest(opened.headers, dataset)
    if mapping is None:  # a first look: propose known synonyms where the saved mapping says nothing
        covered = {header_key(header) for header in effective}
        taken = set(header_targets(opened.headers, dataset, effective))
        proposals = {h: c for h, c in suggested.items() if header_key(h) not in covered and c not in taken}
        effective = {**proposals, **effective}
    resolved = columns_resolve(opened.headers, dataset, effective)
    preview = FilePreview(
        dataset=dataset,
        file=opened,
        mapping=dict(zip(opened.headers, header_targets(opened.headers, dataset, effective), strict=True)),
        suggested=suggested,
        problems=_header_errors(resolved),
    )
    if resolved.problems:
        return preview
    parser = FileParser(dataset, resolved.positions, connection.tenant.timezone, timezone.now())
    first = next(opened.batches(list(resolved.positions.values()), batch_bytes=1 << 16), None)
    if first is None:
        return preview
    head = RawBatch(
        columns={p: values.slice(0, PREVIEW_ROWS) for p, values in first.columns.items()},
        row_numbers=first.row_numbers[:PREVIEW_ROWS],
        malformed=[m for m in first.malformed if m[0] is None or m[0] <= PREVIEW_ROWS + 1],
    )
    local = ZoneInfo(connection.tenant.timezone)
    for parsed in parser.parse([head]):
        shown = {*resolved.positions, *_DERIVED_COLUMNS[dataset]}  # what the file gives, and what is computed
        preview.columns = [name for name in _display_order(dataset) if name in shown]
        table = pa.table({name: parsed.columns[name] for name in preview.columns}).to_pylist()
        preview.rows = [
            {"row": int(number), "values": [_display(values[name], local) for name in preview.columns]}
            for number, values in zip(parsed.row_numbers, table, strict=True)
        ]
    preview.errors = parser.report.as_list()
    return preview


# Columns the import fills even when the file lacks them (defaults, line numbers), shown in the preview.
_DERIVED_COLUMNS = {
    Dataset.SALES: ("line_no", "qty", "price", "discount", "amount", "is_return"),
    Dataset.CUSTOMERS: (),
}


def _display_order(dataset: Dataset) -> list[str]:
    columns = list(COLUMNS[dataset])
    return [*columns[:1], "line_no", *columns[1:]] if dataset is Dataset.SALES else columns


def _display(value: object, local: ZoneInfo) -> str:
    if value is None:
        return ""
    if hasattr(value, "astimezone"):  # timestamps are shown in the tenant's timezone, as the file had them
        return value.astimezone(local).strftime("%Y-%m-%d %H:%M:%S")
    if isinstance(value, bool):
        return _("yes") if value else _("no")
    return str(value)


def _header_errors(resolved: ResolvedColumns) -> list[dict]:
    return [{"row": 1, "column": p.column, "value": p.value, "reason": p.reason} for p in resolved.problems]


# --- Import -------------------------------------------------------------------------------------------------------


def import_run_create(*, data_source: DataSource, dataset: Dataset, file_name: str) -> ImportRun:
    return ImportRun.objects.create(
        data_source=data_source, dataset=dataset.value, file_name=file_name[:255], status=ImportRun.Status.RUNNING
    )


class _Progress:
    """Saves the run's progress and rows read, at most every PROGRESS_INTERVAL_SECONDS (the UI polls it)."""

    def __init__(self, run: ImportRun):
        self.run = run
        self.saved_at = 0.0

    def update(self, progress: float, rows_read: int) -> None:
        now = time.monotonic()
        if now - self.saved_at >= PROGRESS_INTERVAL_SECONDS:
            ImportRun.objects.filter(pk=self.run.pk).update(
                progress=progress, rows_read=rows_read, heartbeat_at=timezone.now()
            )
            self.saved_at = now


def file_import(*, import_run: ImportRun, path: Path | str, mapping: Mapping[str, str] | None = None) -> ImportRun:
    """Import the file at ``path`` into ``import_run``'s data source and dataset; the run records the outcome.

    ``mapping`` ({file header: canonical column or ""}) applies over the mapping saved for the
    source and, once the header matches, is saved with it. A bad file writes nothing; the run says
    why (row, column, value, reason). Unexpected failures mark the run failed and propagate.
    """
    try:
        _file_import(import_run, Path(path), mapping)
    except Exception as exc:
        logger.exception("Import run %s failed", import_run.pk)
        _run_finish(
            import_run, status=ImportRun.Status.FAILED, message=_("The import failed: %(error)s") % {"error": exc}
        )
        raise
    return import_run


def _file_import(run: ImportRun, path: Path, mapping: Mapping[str, str] | None) -> None:
    dataset = Dataset(run.dataset)
    try:
        opened = tabular_file_open(path)
    except FileUnreadableError as exc:
        errors = [{"row": None, "column": "", "value": "", "reason": exc.message}]
        _run_finish(run, status=ImportRun.Status.FAILED, message=exc.message, errors=errors)
        return
    resolved = columns_resolve(opened.headers, dataset, _mapping_effective(run.data_source, dataset, mapping))
    if resolved.problems:
        message = _("The file's columns do not fit the %(dataset)s format; nothing was imported.") % {
            "dataset": dataset.value
        }
        _run_finish(run, status=ImportRun.Status.FAILED, message=message, errors=_header_errors(resolved))
        return
    file_mapping_save(data_source=run.data_source, dataset=dataset, mapping=mapping or {})
    parser = FileParser(dataset, resolved.positions, connection.tenant.timezone, timezone.now())
    source = f"file:{run.data_source_id}"
    write = _sales_write if dataset is Dataset.SALES else _customers_write
    try:
        written = write(opened, parser, list(resolved.positions.values()), source, _Progress(run))
    except (FileRejectedError, FileUnreadableError) as exc:
        report = parser.report
        if isinstance(exc, FileUnreadableError):  # e.g. the encoding breaks halfway through the file
            report.add(RowError(row=exc.extra.get("row"), column="", value="", reason=exc.message))
            message = exc.message
        else:
            message = _(
                "%(rows)d rows are bad (%(errors)d errors); nothing was imported. Fix them and upload the file again."
            ) % {"rows": report.rows_rejected, "errors": report.total}
        run.rows_read, run.rows_rejected, run.errors = parser.rows_read, report.rows_rejected, report.as_list()
        _run_finish(run, status=ImportRun.Status.FAILED, message=message)
        return
    run.rows_read, run.rows_written = parser.rows_read, written
    message = _("%(written)d rows imported.") % {"written": written}
    _run_finish(run, status=ImportRun.Status.SUCCEEDED, message=message)


def _sales_write(
    opened: TabularFile, parser: FileParser, positions: list[int], source: str, progress: _Progress
) -> int:
    version = ingest_version()

    def typed_batches() -> Iterator[pa.RecordBatch | None]:  # runs in a background thread: no database here
        for parsed in parser.parse(opened.batches(positions), workers=PARSE_WORKERS):
            clean = not parser.report.total and parsed.num_rows
            yield sales_lines_batch(parsed.columns, source=source, version=version) if clean else None

    def batches() -> Iterator[pa.RecordBatch]:
        for batch in _in_background(typed_batches()):
            progress.update(opened.progress, parser.rows_read)
            if batch is not None:
                yield batch
        if parser.report.total:
            raise FileRejectedError

    return facts_bulk_write("sales_lines", batches())


class _Failed:
    def __init__(self, error: BaseException):
        self.error = error


def _in_background(items: Iterator[T], *, ahead: int = 8) -> Iterator[T]:
    """Yield ``items`` as a background thread produces them, up to ``ahead`` in advance.

    Parsing the next batches (pyarrow, which releases the GIL) then overlaps with what the caller
    does with these (an INSERT of ``STAGE_ROWS``, ~8 batches, into the staging table, during which
    chdb releases the GIL too): the two use both cores. The producer's errors are raised here;
    if the caller stops early, the producer stops too.
    """
    queue: Queue = Queue(maxsize=ahead)
    stop = threading.Event()
    finished = object()
    language = translation.get_language()

    def put(item: object) -> bool:
        while not stop.is_set():
            try:
                queue.put(item, timeout=0.1)
                return True
            except Full:
                continue
        return False

    def produce() -> None:
        with translation.override(language):  # the report's reasons in the caller's language
            try:
                for item in items:
                    if not put(item):
                        return
                put(finished)
            except BaseException as error:  # handed to the consumer, raised there
                put(_Failed(error))

    thread = threading.Thread(target=produce, name="file-import-parse", daemon=True)
    thread.start()
    try:
        while (item := queue.get()) is not finished:
            if isinstance(item, _Failed):
                raise item.error
            yield item
    finally:
        stop.set()
        thread.join()


def _customers_write(
    opened: TabularFile, parser: FileParser, positions: list[int], source: str, progress: _Progress
) -> int:
    # First pass: check everything, write nothing. The second pass runs in a transaction, where
    # progress saves would not be seen, so the first pass counts for the first half of the bar.
    for _parsed in parser.parse(opened.batches(positions), workers=PARSE_WORKERS):
        progress.update(opened.progress / 2, parser.rows_read)
    if parser.report.total:
        raise FileRejectedError
    writer = FileParser(parser.dataset, parser.positions, parser.timezone, parser.now)
    version = ingest_version()
    written = batch_count = 0
    attributes_sent = False

    def batches(parsed_batches: Iterator[ParsedBatch]) -> Iterator[pa.RecordBatch]:
        nonlocal written, batch_count, attributes_sent
        for parsed in parsed_batches:
            customers = _customers_from_columns(parsed.columns)
            written += contacts_upsert(customers)
            # One version per batch, increasing, so a customer repeated later in the file wins in ClickHouse too.
            yield customer_attributes_batch(customers, source=source, version=version + batch_count)
            batch_count += 1
        attributes_sent = True

    try:
        with transaction.atomic():
            facts_bulk_write("customer_attributes", batches(writer.parse(opened.batches(positions))))
    except BaseException:
        if attributes_sent:  # the contacts did not commit: take their attributes back out of ClickHouse
            fact_rows_delete("customer_attributes", versions=(version, version + batch_count))
        raise
    return written


def _customers_from_columns(columns: dict[str, pa.Array]) -> list[Customer]:
    """Parsed customer columns as ``Customer`` records; a customer_id repeated in the batch keeps its last row."""
    latest = {row["customer_id"]: row for row in pa.table(columns).to_pylist()}
    return [Customer(**row) for row in latest.values()]


def _run_finish(run: ImportRun, *, status: str, message: str, errors: list[dict] | None = None) -> None:
    run.status = status
    run.message = message
    if errors is not None:
        run.errors = errors
    run.progress = 1.0
    run.finished_at = timezone.now()
    run.save()


# --- Uploads (UI) -------------------------------------------------------------------------------------------------


def file_upload_store(*, uploaded: UploadedFile) -> str:
    """Keep an uploaded file in the tenant's storage until it is imported; returns its storage name."""
    suffix = Path(uploaded.name or "").suffix.lower()[:10]
    return default_storage.save(f"{UPLOAD_DIRECTORY}/{uuid.uuid4().hex}{suffix}", uploaded)


def file_upload_path(*, stored_name: str) -> Path | None:
    """Where an upload kept by ``file_upload_store`` is, or None once it was imported or discarded."""
    return Path(default_storage.path(stored_name)) if default_storage.exists(stored_name) else None


def file_upload_discard(*, stored_name: str) -> None:
    default_storage.delete(stored_name)


def file_import_start(
    *, data_source: DataSource, dataset: Dataset, stored_name: str, file_name: str, mapping: Mapping[str, str]
) -> ImportRun:
    """Save the confirmed mapping, create the run and queue the import (after this transaction commits)."""
    from integrations.files.tasks import file_import_task

    file_mapping_save(data_source=data_source, dataset=dataset, mapping=mapping)
    run = import_run_create(data_source=data_source, dataset=dataset, file_name=file_name)
    transaction.on_commit(lambda: file_import_task.delay(run.pk, stored_name))
    return run


def file_import_stored(*, import_run_id: int, stored_name: str) -> ImportRun:
    """Import an upload kept by ``file_upload_store``, then delete it (it may hold personal data)."""
    run = ImportRun.objects.select_related("data_source").get(pk=import_run_id)
    path = file_upload_path(stored_name=stored_name)
    if path is None:  # e.g. "Import" pressed twice: the first run took the file
        _run_finish(run, status=ImportRun.Status.FAILED, message=_("The uploaded file is gone: upload it again."))
        return run
    try:
        return file_import(import_run=run, path=path)
    finally:
        default_storage.delete(stored_name)
