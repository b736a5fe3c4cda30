"""Reading an uploaded CSV or XLSX file as a stream of string columns, whatever its encoding and delimiter.

CSV: UTF-8 (with or without BOM) or Windows-1251 — what 1C exports — detected from the first
megabyte; ``,``, ``;``, tab or ``|`` as the delimiter, detected from the header row. Parsed by
pyarrow's streaming reader in blocks, so memory stays bounded whatever the file's size.
XLSX: the first worksheet that has data, read row by row (openpyxl, read-only).

Row numbers are the ones a spreadsheet shows: the header is row 1, blank lines count. The
header is the first row of a CSV file and the first non-empty row of a worksheet.
"""

from __future__ import annotations

import codecs
import csv
import datetime as dt
import io
import os
import re
import zipfile
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.csv as pa_csv
from django.utils.translation import gettext as _

from tenants.errors import ApplicationError

SAMPLE_BYTES = 1 << 20
# ~25,000 rows of a typical sales file per batch: fewer, bigger batches cost less per row to check and insert.
CSV_BLOCK_BYTES = 4 << 20
# What Arrow reads at a time: it reads up to 32 of these ahead (a fixed queue), so they set the reader's memory
# (8 MiB); batches of ~16 of them are as cheap to check as one big block.
CSV_READ_BLOCK_BYTES = 256 << 10
XLSX_BATCH_ROWS = 20_000
DELIMITERS = (",", ";", "\t", "|")
_ZIP_MAGIC = b"PK\x03\x04"
_OLE_MAGIC = b"\xd0\xcf\x11\xe0"  # legacy .xls (and other OLE documents)


class FileUnreadableError(ApplicationError):
    """The file as a whole cannot be read: empty, binary, an unknown encoding, a broken workbook."""


@dataclass
class RawBatch:
    """Consecutive data rows: the requested columns as strings (null = empty cell) and each row's number."""

    columns: dict[int, pa.Array]
    row_numbers: np.ndarray
    # Rows that could not be split into the header's columns: (row number or None, text, reason).
    malformed: list[tuple[int | None, str, str]] = field(default_factory=list)

    @property
    def num_rows(self) -> int:
        return len(self.row_numbers)


@dataclass
class TabularFile:
    """An opened upload: its format, how it was decoded, its header row."""

    path: Path
    format: str  # "csv" or "xlsx"
    headers: list[str]
    size: int
    encoding: str = ""
    delimiter: str = ""
    sheet: str = ""
    ignored_sheets: list[str] = field(default_factory=list)
    progress: float = 0.0  # share of the file read by ``batches``, 0..1

    def batches(self, positions: Sequence[int], *, batch_bytes: int | None = None) -> Iterator[RawBatch]:
        """Stream the data rows (everything after the header), with the columns at ``positions`` only."""
        if self.format == "xlsx":
            yield from self._xlsx_batches(positions)
        else:
            yield from self._csv_batches(positions, batch_bytes or CSV_BLOCK_BYTES)
        self.progress = 1.0

    # --- CSV ----------------------------------------------------------------------------------------------------

    def _csv_reader(
        self, source: Any, column_names: list[str], include: list[str], block: int, on_invalid: Any
    ) -> pa_csv.CSVStreamingReader:
        return pa_csv.open_csv(
            source,
            read_options=pa_csv.ReadOptions(
                encoding=self.encoding,
                block_size=block,
                use_threads=False,  # serial parsing is what gives malformed rows their number
                column_names=column_names,
            ),
            parse_options=pa_csv.ParseOptions(
                delimiter=self.delimiter,
                newlines_in_values=True,
                ignore_empty_lines=False,
                invalid_row_handler=on_invalid,
            ),
            convert_options=pa_csv.ConvertOptions(
                include_columns=include,
                column_types={name: pa.string() for name in include},
                strings_can_be_null=True,
                quoted_strings_can_be_null=True,
                null_values=[""],
            ),
        )

    def _csv_batches(self, positions: Sequence[int], batch_bytes: int) -> Iterator[RawBatch]:
        names = [f"c{i}" for i in range(len(self.headers))]
        malformed: list[tuple[int | None, str, str]] = []
        skipped: list[int] = []  # numbers of the malformed rows so far, ascending

        def on_invalid(row: pa_csv.InvalidRow) -> str:
            reason = _("expected %(expected)d fields, found %(actual)d") % {
                "expected": row.expected_columns,
                "actual": row.actual_columns,
            }
            malformed.append((row.number, row.text[:200], reason))
            if row.number is not None:
                skipped.append(row.number)
            return "skip"

        # Arrow reads ahead up to 32 blocks on a thread of its own: small blocks keep that memory small (and that
        # thread reads a native stream, never calling into Python); batches of several blocks keep checks cheap.
        block = min(CSV_READ_BLOCK_BYTES, batch_bytes)
        blocks_per_batch = max(batch_bytes // block, 1)
        next_index = 0  # of the next data row

        def raw_batch(taken: list[pa.RecordBatch], *, last: bool = False) -> RawBatch:
            nonlocal next_index
            indexes = np.arange(next_index, next_index + sum(batch.num_rows for batch in taken), dtype=np.int64)
            next_index += len(indexes)
            # A data row's number: 2 (after the header) + its index + the malformed rows before it.
            shifts = np.asarray(skipped, dtype=np.int64) - np.arange(len(skipped), dtype=np.int64)
            row_numbers = indexes + 2 + np.searchsorted(shifts, indexes + 2, side="right")
            columns = {p: _concatenated([batch.column(names[p]) for batch in taken]) for p in positions}
            # Arrow parses a block ahead: malformed rows after this batch's last row wait for the next batch.
            end = np.inf if last else row_numbers[-1] if len(row_numbers) else 0
            found = [row for row in malformed if row[0] is None or row[0] < end]
            malformed[:] = [row for row in malformed if row[0] is not None and row[0] >= end]
            return RawBatch(columns=columns, row_numbers=row_numbers, malformed=found)

        with pa.input_stream(str(self.path)) as source:
            try:
                reader = self._csv_reader(source, names, [names[p] for p in positions], block, on_invalid)
                header_pending = True  # the header is the first parsed row
                taken: list[pa.RecordBatch] = []
                for batch in reader:
                    start = 1 if header_pending and batch.num_rows else 0
                    header_pending = header_pending and not batch.num_rows
                    taken.append(batch.slice(start))
                    if len(taken) == blocks_per_batch:
                        self.progress = min(source.tell() / self.size, 1.0)
                        yield raw_batch(taken)
                        taken = []
                if taken or malformed:
                    yield raw_batch(taken, last=True)
            except pa.ArrowInvalid as exc:
                raise _csv_failure(exc, self.encoding, next_index) from exc

    # --- XLSX ---------------------------------------------------------------------------------------------------

    def _xlsx_batches(self, positions: Sequence[int]) -> Iterator[RawBatch]:
        with _workbook(self.path) as workbook:
            sheet = workbook[self.sheet]
            total = sheet.max_row or 0
            header_seen = False
            numbers: list[int] = []
            values: dict[int, list[str | None]] = {p: [] for p in positions}
            for number, row in enumerate(sheet.iter_rows(values_only=True), start=1):
                if not header_seen:
                    header_seen = any(cell not in (None, "") for cell in row)
                    continue
                numbers.append(number)
                for p in positions:
                    values[p].append(_cell_text(row[p]) if p < len(row) else None)
                if len(numbers) >= XLSX_BATCH_ROWS:
                    self.progress = min(number / total, 1.0) if total else 0.0
                    yield _xlsx_batch(values, numbers)
                    numbers, values = [], {p: [] for p in positions}
            if numbers:
                yield _xlsx_batch(values, numbers)


def _concatenated(chunks: list[pa.Array]) -> pa.Array:
    """One column of the joined blocks; none (only malformed rows were left) is an empty string column."""
    if len(chunks) == 1:
        return chunks[0]
    return pa.concat_arrays(chunks) if chunks else pa.array([], pa.string())


def _xlsx_batch(values: dict[int, list[str | None]], numbers: list[int]) -> RawBatch:
    return RawBatch(
        columns={p: pa.array(column, pa.string()) for p, column in values.items()},
        row_numbers=np.asarray(numbers, dtype=np.int64),
    )


def _cell_text(value: Any) -> str | None:
    """A worksheet cell as the text a CSV export would have (dates ISO 8601, numbers without float noise)."""
    if value is None:
        return None
    if isinstance(value, bool):
        return "1" if value else "0"
    if isinstance(value, dt.datetime):  # Excel's float times carry microsecond noise: round to milliseconds
        shifted = value + dt.timedelta(microseconds=500)
        value = shifted.replace(microsecond=shifted.microsecond // 1000 * 1000)
        return value.isoformat(sep=" ", timespec="milliseconds" if value.microsecond else "seconds")
    if isinstance(value, dt.date):
        return value.isoformat()
    if isinstance(value, float):
        return str(int(value)) if value.is_integer() else repr(value)
    text = str(value)
    return text or None


def _csv_failure(exc: Exception, encoding: str, rows_before: int) -> FileUnreadableError:
    """A CSV that stops being readable: where (Arrow names the row, as a spreadsheet counts) and why."""
    message = str(exc)
    found = re.search(r"Row #(\d+)", message)
    row = int(found.group(1)) if found else None
    where = _("Row %(row)d") % {"row": row} if row else _("After row %(row)d") % {"row": rows_before + 1}
    if "invalid UTF8" in message:
        why = _("it is not valid %(encoding)s text (mixed encodings?)") % {"encoding": encoding.upper()}
    else:
        why = message
    text = _("%(where)s cannot be read: %(why)s. Nothing was imported.") % {"where": where, "why": why}
    return FileUnreadableError(text, extra={"row": row})


@contextmanager
def _workbook(path: Path) -> Iterator[Any]:
    """The workbook, read-only; closed (with its file) on exit."""
    import openpyxl  # imported here: only XLSX uploads need it
    from openpyxl.utils.exceptions import InvalidFileException

    # A file object, not the path: openpyxl would judge a path by its extension, and uploads may have none.
    with open(path, "rb") as raw:
        try:
            workbook = openpyxl.load_workbook(raw, read_only=True, data_only=True)
        except (zipfile.BadZipFile, InvalidFileException, KeyError, OSError, ValueError) as exc:
            message = _("The file is not a readable XLSX workbook: %(error)s") % {"error": exc}
            raise FileUnreadableError(message) from exc
        try:
            yield workbook
        finally:
            workbook.close()


# --- Opening: format, encoding, delimiter, header -------------------------------------------------------------


def tabular_file_open(path: Path | str) -> TabularFile:
    """Detect the file's format (and for CSV its encoding and delimiter) and read its header row."""
    path = Path(path)
    size = os.path.getsize(path)
    if size == 0:
        raise FileUnreadableError(_("The file is empty (0 bytes)."))
    with open(path, "rb") as raw:
        sample = raw.read(SAMPLE_BYTES)
    if sample.startswith(_ZIP_MAGIC):
        return _xlsx_open(path, size)
    if sample.startswith(_OLE_MAGIC):
        raise FileUnreadableError(_("Old Excel .xls files are not supported: save the sheet as .xlsx or CSV."))
    encoding = _detect_encoding(sample, complete=size <= SAMPLE_BYTES)
    text = sample.decode(encoding, errors="ignore")
    first_line = text.lstrip("\ufeff").split("\n", 1)[0]
    if not first_line.strip():
        raise FileUnreadableError(_("The first row is empty: it must hold the column names."))
    delimiter = max(DELIMITERS, key=first_line.count) if any(d in first_line for d in DELIMITERS) else ","
    headers = _csv_header(text, delimiter)
    return TabularFile(path=path, format="csv", headers=headers, size=size, encoding=encoding, delimiter=delimiter)


def _detect_encoding(sample: bytes, *, complete: bool) -> str:
    if sample.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        raise FileUnreadableError(_("UTF-16 text is not supported: save the file as UTF-8 or Windows-1251 CSV."))
    if b"\x00" in sample:
        raise FileUnreadableError(_("This is not a text file (it contains binary data): upload a CSV or XLSX file."))
    try:
        codecs.getincrementaldecoder("utf-8")().decode(sample, final=complete)
        return "utf8"
    except UnicodeDecodeError:
        pass
    try:
        text = sample.decode("cp1251")
    except UnicodeDecodeError:
        text = ""
    # Windows-1251 decodes almost any bytes; real text has few control characters and some letters.
    controls = sum(1 for ch in text if ord(ch) < 32 and ch not in "\t\r\n")
    letters = sum(1 for ch in text if ch.isalpha())
    if text and controls <= len(text) // 100 and letters >= len(text) // 10:
        return "cp1251"
    raise FileUnreadableError(
        _("The file is neither UTF-8 nor Windows-1251 text: upload a CSV export (UTF-8 or Windows-1251) or XLSX.")
    )


def _csv_header(text: str, delimiter: str) -> list[str]:
    # Python's csv module on the decoded sample: quotes and even line breaks inside names are handled.
    try:
        return next(csv.reader(io.StringIO(text.lstrip("\ufeff")), delimiter=delimiter))
    except (StopIteration, csv.Error) as exc:
        raise FileUnreadableError(_("The header row cannot be read: %(error)s") % {"error": exc}) from exc


def _xlsx_open(path: Path, size: int) -> TabularFile:
    with _workbook(path) as workbook:
        names = workbook.sheetnames
        for name in names:
            for row in workbook[name].iter_rows(values_only=True):
                if any(cell not in (None, "") for cell in row):
                    headers = [_cell_text(cell) or "" for cell in row]
                    while headers and not headers[-1]:
                        headers.pop()
                    ignored = [other for other in names if other != name]
                    return TabularFile(
                        path=path, format="xlsx", headers=headers, size=size, sheet=name, ignored_sheets=ignored
                    )
    raise FileUnreadableError(_("The workbook has no data in any sheet."))
