"""From raw string columns to canonical typed columns, vectorised, with a report of every bad value.

Each column is parsed a whole batch at a time with pyarrow compute; only a batch that fails the
fast path is looked at value by value, to say which values are bad and why. Rules:

- empty cells (and cells of spaces) are missing values; a row whose mapped cells are all empty
  is a blank row and is skipped, not an error;
- numbers: ``1234.5``, ``1 234,50`` (spaces as thousands separators, decimal comma as 1C
  writes it); money has at most 2 decimal places, quantities 3;
- dates and times: ISO 8601 (``2026-03-01``, ``2026-03-01 10:15``, ``2026-03-01T10:15:00.250``)
  or 1C's ``01.03.2026 10:15:00``, in the tenant's timezone, converted to UTC; a value with its
  own offset (``…+03:00``, ``…Z``) keeps it; sales before 2000, sign-ups before 1990, births
  before 1900 and anything more than a day in the future are rejected as typos;
- yes/no: 1/0, true/false, yes/no, да/нет (any case); empty is no.

Sales lines get ``line_no`` = their position among the lines of the same order (and the same
``is_return``) in file order, 1-based: the same file, or another export that lists an order's lines
in the same order, produces the same keys, so importing it again replaces rather than adds.
"""

from __future__ import annotations

import re
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal, InvalidOperation
from typing import TypeVar

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from django.utils import translation
from django.utils.translation import gettext as _

from integrations.arrow_strings import has_nul, string_offsets
from integrations.files.columns import Dataset
from integrations.files.reader import RawBatch

ERROR_CAP = 1000  # errors kept for the report; all are counted
MONEY_SCALE = 2
QTY_SCALE = 3
EARLIEST_SALE = datetime(2000, 1, 1, tzinfo=UTC)
EARLIEST_SIGNUP = datetime(1990, 1, 1, tzinfo=UTC)
EARLIEST_BIRTH_DATE = date(1900, 1, 1)
# Yes/no words; "возврат"/"продажа" as 1C writes an operation's kind in a return flag column.
TRUE_WORDS = ("1", "true", "yes", "y", "t", "да", "д", "+", "return", "refund", "возврат")
FALSE_WORDS = ("0", "false", "no", "n", "f", "нет", "н", "-", "sale", "продажа")
GENDERS = {
    "f": "f", "female": "f", "w": "f", "woman": "f", "ж": "f", "жен": "f", "женский": "f",
    "m": "m", "male": "m", "man": "m", "м": "m", "муж": "m", "мужской": "m",
}  # fmt: skip
# Lengths of the Contact fields (Postgres); longer values are errors, not truncated.
CUSTOMER_MAX_LENGTHS = {"customer_id": 100, "first_name": 100, "last_name": 100, "phone": 32, "city": 100,
                        "store": 200, "email": 254}  # fmt: skip
_RU_DATETIME_FORMATS = ("%d.%m.%Y %H:%M:%S", "%d.%m.%Y %H:%M", "%d.%m.%Y")
_NUMBER = re.compile(r"[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?")
_EMAIL = r"^[^@\s]+@[^@\s]+\.[^@\s]+$"
_NULL_STRING = pa.scalar(None, pa.string())
# Sales columns imported as they are (trimmed); empty when the file lacks them.
SALES_TEXT_COLUMNS = ("customer_id", "store", "employee", "channel", "product_id", "product_name", "category", "brand",
                      "promo_code")  # fmt: skip
MONEY = pa.decimal128(18, MONEY_SCALE)
QUANTITY = pa.decimal128(18, QTY_SCALE)
T = TypeVar("T")
R = TypeVar("R")


@dataclass(frozen=True)
class RowError:
    """One bad value: the row as a spreadsheet numbers it (None: the whole file), column, value, why."""

    row: int | None
    column: str
    value: str
    reason: str

    def as_dict(self) -> dict:
        value = self.value.replace("\x00", "\\u0000")  # Postgres keeps no NUL, in jsonb either
        return {"row": self.row, "column": self.column, "value": value, "reason": self.reason}


@dataclass
class ErrorReport:
    """Every error counted, the first ``cap`` kept; ``rows_rejected`` counts rows with at least one error."""

    cap: int = ERROR_CAP
    errors: list[RowError] = field(default_factory=list)
    total: int = 0
    rows_rejected: int = 0

    def add(self, error: RowError) -> None:
        self.total += 1
        if len(self.errors) < self.cap:
            self.errors.append(error)

    def as_list(self) -> list[dict]:
        return [error.as_dict() for error in self.errors]


class _Batch:
    """One batch being parsed: its row numbers, which rows have errors so far, and those errors."""

    def __init__(self, raw: RawBatch, room: int, blank: np.ndarray):
        self.row_numbers = raw.row_numbers
        self.room = room  # errors the report may still keep: no check needs to keep more
        self.blank = blank  # blank rows are skipped, never reported
        self.bad = np.zeros(raw.num_rows, dtype=bool)
        self.errors: list[RowError] = []
        self.error_count = 0

    def flag(self, mask: pa.Array | np.ndarray, column: str, values: pa.Array, reason: str) -> None:
        """Record ``reason`` for every row where ``mask`` is true."""
        if not isinstance(mask, np.ndarray):
            if not pc.any(mask).as_py():  # the usual case: nothing to report
                return
            mask = pc.fill_null(mask, False).to_numpy(zero_copy_only=False)
        mask = mask & ~self.blank
        if mask.any():
            self.flag_rows(np.flatnonzero(mask), column, values, reason)

    def flag_rows(self, indexes: np.ndarray, column: str, values: pa.Array, reasons: str | list[str]) -> None:
        """Record an error for each row at ``indexes`` (ascending): one reason for all, or one each."""
        keep = ~self.blank[indexes]
        if not isinstance(reasons, str):
            reasons = [reason for reason, kept in zip(reasons, keep, strict=True) if kept]
        indexes = indexes[keep]
        self.bad[indexes] = True
        self.error_count += len(indexes)
        shown = indexes[: self.room]  # the report keeps the first errors by row: later ones of a check never make it
        texts = values.take(pa.array(shown, pa.int64())).to_pylist() if len(shown) else []
        for i, (index, text) in enumerate(zip(shown, texts, strict=True)):
            reason = reasons if isinstance(reasons, str) else reasons[i]
            self.errors.append(
                RowError(row=int(self.row_numbers[index]), column=column, value=text or "", reason=reason)
            )

    def report_errors(self, report: ErrorReport, malformed: list[RowError]) -> None:
        """Hand this batch's errors, and those of the ``malformed`` rows among its rows, to ``report`` in row order."""
        for error in sorted([*self.errors, *malformed], key=lambda error: error.row or 0):
            report.add(error)
        report.total += self.error_count - len(self.errors)


# --- Column parsers --------------------------------------------------------------------------------------------


def _text(values: pa.Array) -> pa.Array:
    """Trimmed strings, missing as ""."""
    trimmed = pc.utf8_trim_whitespace(values) if _may_have_edge_spaces(values) else values
    return pc.fill_null(trimmed, "") if trimmed.null_count else trimmed


# Bytes that may be (part of) whitespace at either end of a UTF-8 value: ASCII controls and space (up to 0x20),
# DEL and every byte of a multi-byte character (0x7F up; Unicode spaces such as U+00A0 are among those).
_LAST_SPACE_BYTE = 0x20
_FIRST_OTHER_BYTE = 0x7F


def _may_have_edge_spaces(values: pa.Array) -> bool:
    """Whether trimming could change a value: a check of each value's first and last byte, a fraction of a trim."""
    if values.type != pa.string():
        return True
    data_buffer = values.buffers()[2]
    if not len(values) or data_buffer is None or data_buffer.size == 0:
        return False
    offsets = string_offsets(values)
    data = np.frombuffer(data_buffer, np.uint8)
    # An empty value's "first" byte is the next value's and its "last" the previous one's (clipped at the ends):
    # at worst a needless trim, and no mask to build.
    first = data.take(offsets[:-1], mode="clip")
    last = data.take(offsets[1:] - 1, mode="clip")
    return bool(np.minimum(first, last).min() <= _LAST_SPACE_BYTE or np.maximum(first, last).max() >= _FIRST_OTHER_BYTE)


def _present(text: pa.Array) -> pa.Array:
    return pc.if_else(pc.not_equal(text, ""), text, _NULL_STRING)


def _decimals(text: pa.Array, scale: int, batch: _Batch, column: str) -> pa.Array:
    """Decimals with ``scale`` places; missing and bad values are null (bad ones are reported)."""
    decimal_type = pa.decimal128(18, scale)
    try:  # the usual column: every value present and plain
        return pc.cast(text, decimal_type)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        pass
    candidate = _present(text)
    try:
        return pc.cast(candidate, decimal_type)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        pass
    normalised = pc.replace_substring_regex(candidate, r"[\s\x{00a0}\x{202f}]+", "")
    normalised = pc.if_else(pc.match_substring(normalised, "."), normalised, pc.replace_substring(normalised, ",", "."))
    try:
        return pc.cast(normalised, decimal_type)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        pass
    parsed: list[Decimal | None] = []
    bad: list[int] = []
    reasons: list[str] = []
    for index, value in enumerate(normalised.to_pylist()):
        number, reason = _decimal_value(value, scale) if value is not None else (None, "")
        if reason:
            bad.append(index)
            reasons.append(reason)
        parsed.append(number)
    if bad:
        batch.flag_rows(np.asarray(bad, dtype=np.int64), column, text, reasons)
    return pa.array(parsed, decimal_type)


def _decimal_value(value: str, scale: int) -> tuple[Decimal | None, str]:
    """One normalised number, or why it is not one."""
    try:
        number = Decimal(value) if _NUMBER.fullmatch(value) else None
    except InvalidOperation:
        number = None
    if number is None:
        return None, _("not a number")
    # The size first: quantize refuses a result of more than 28 digits (1e30 with 2 places).
    if abs(number) >= Decimal(10) ** (18 - scale):
        return None, _("too large")
    if number != number.quantize(Decimal(1).scaleb(-scale), rounding="ROUND_DOWN"):
        return None, _("more than %(places)d decimal places") % {"places": scale}
    return number, ""


def _money(values: pa.Array, batch: _Batch, column: str, reason: str) -> pa.Array:
    """A computed amount rounded half up to kopecks; one too large for Decimal(18, 2) is reported with ``reason``."""
    rounded = pc.round(values, MONEY_SCALE, round_mode="half_up")
    too_large = pc.greater_equal(pc.abs(rounded), pa.scalar(Decimal(10) ** 16, rounded.type))
    batch.flag(too_large, column, pa.array([""] * len(values), pa.string()), reason)
    return pc.cast(pc.if_else(pc.fill_null(too_large, False), pa.scalar(None, rounded.type), rounded), MONEY)


def _parse_datetime(value: str) -> datetime | None:
    try:
        return datetime.fromisoformat(value)
    except ValueError:
        pass
    for fmt in _RU_DATETIME_FORMATS:
        try:
            return datetime.strptime(value, fmt)  # naive on purpose: the tenant's local time
        except ValueError:
            continue
    return None


def _timestamps(
    text: pa.Array, timezone: str, batch: _Batch, column: str, now: datetime, earliest: datetime
) -> pa.Array:
    """UTC timestamps (ms); values without an offset are in ``timezone``. Missing and bad values are null."""
    utc_type = pa.timestamp("ms", tz="UTC")
    aware = None  # values with an offset of their own, when any
    try:  # the usual column: every value present, ISO 8601 without offsets
        local = pc.cast(text, pa.timestamp("ms"))
    except pa.ArrowInvalid:
        candidate = _present(text)
        try:
            local = pc.cast(candidate, pa.timestamp("ms"))
        except pa.ArrowInvalid:
            local, aware = _timestamps_slow(candidate, batch, column, text)
    in_zone = pc.assume_timezone(local, timezone=timezone, ambiguous="earliest", nonexistent="earliest")
    result = pc.cast(in_zone, utc_type)
    if aware is not None:
        result = pc.coalesce(result, aware)
    out_of_range = pc.or_(
        pc.less(result, pa.scalar(earliest, utc_type)),
        pc.greater(result, pa.scalar(now + timedelta(days=1), utc_type)),
    )
    if not pc.any(out_of_range).as_py():
        return result
    batch.flag(
        out_of_range,
        column,
        text,
        _("out of range: before %(earliest)s or in the future") % {"earliest": earliest.date().isoformat()},
    )
    return pc.if_else(pc.fill_null(out_of_range, False), pa.scalar(None, utc_type), result)


def _timestamps_slow(candidate: pa.Array, batch: _Batch, column: str, text: pa.Array) -> tuple[pa.Array, pa.Array]:
    local = pa.nulls(len(candidate), pa.timestamp("ms"))
    remaining = candidate
    if pc.any(pc.match_substring_regex(candidate, r"^\d{1,2}\.\d{1,2}\.\d{4}")).as_py():
        for fmt in _RU_DATETIME_FORMATS:  # 1C's day.month.year, vectorised
            parsed = pc.strptime(remaining, format=fmt, unit="ms", error_is_null=True)
            local = pc.coalesce(local, parsed)
            remaining = pc.if_else(pc.is_null(parsed), remaining, _NULL_STRING)
    naive: list[datetime | None] = [None] * len(candidate)
    aware: list[datetime | None] = [None] * len(candidate)
    bad: list[int] = []
    for index in np.flatnonzero(pc.is_valid(remaining).to_numpy(zero_copy_only=False)):
        parsed_value = _parse_datetime(remaining[index].as_py())
        if parsed_value is None:
            bad.append(index)
        elif parsed_value.tzinfo is None:
            naive[index] = parsed_value
        else:
            try:
                aware[index] = parsed_value.astimezone(UTC)
            except OverflowError:  # within a day of year 1 or 9999: the callers' range checks refuse the bound
                aware[index] = (datetime.min if parsed_value.year == 1 else datetime.max).replace(tzinfo=UTC)
    if bad:
        batch.flag_rows(
            np.asarray(bad, dtype=np.int64),
            column,
            text,
            _("not a date: use YYYY-MM-DD, YYYY-MM-DD HH:MM[:SS] or DD.MM.YYYY [HH:MM[:SS]]"),
        )
    local = pc.coalesce(local, pa.array(naive, pa.timestamp("ms")))
    return local, pa.array(aware, pa.timestamp("ms", tz="UTC"))


def _booleans(text: pa.Array, batch: _Batch, column: str) -> pa.Array:
    lowered = pc.utf8_lower(text)
    true = pc.is_in(lowered, pa.array(TRUE_WORDS))
    known = pc.or_(true, pc.is_in(lowered, pa.array(("", *FALSE_WORDS))))
    batch.flag(pc.invert(known), column, text, _("not a yes/no value: use 1/0, true/false, yes/no or да/нет"))
    return true


def _too_long(text: pa.Array, batch: _Batch, column: str, limit: int) -> None:
    batch.flag(
        pc.greater(pc.utf8_length(text), limit), column, text, _("longer than %(limit)d characters") % {"limit": limit}
    )


# --- Line numbers ----------------------------------------------------------------------------------------------


class OrderLineNumbers:
    """``line_no`` of each sales line: its 1-based position among its order's lines so far, in file order.

    Orders are tracked by a 64-bit hash of (order_id, is_return), 16 bytes per order, in sorted numpy
    runs of roughly halving sizes (merged like a binomial heap), so a file of millions of orders stays
    small and each order is moved O(log n) times. The hash only groups lines within one import, so
    Python's per-process ``hash`` will do. A collision (odds ~1e-8 for a million orders) only makes one
    order's numbering start higher: keys stay unique.
    """

    _RETURN_SALT = np.uint64(0x9E3779B97F4A7C15)

    def __init__(self) -> None:
        self.runs: list[tuple[np.ndarray, np.ndarray]] = []  # (sorted hashes, lines seen), sizes decreasing

    def number(self, order_ids: pa.Array, is_return: pa.Array) -> np.ndarray:
        encoded = pc.dictionary_encode(order_ids)  # hash each distinct id once, not each line
        distinct = encoded.dictionary.to_pylist()
        # (order, is_return) as a small integer: the codes number the distinct ids in order of first appearance.
        keys = encoded.indices.to_numpy(zero_copy_only=False).astype(np.int64) * 2
        keys += is_return.to_numpy(zero_copy_only=False)
        lines_per_key = np.bincount(keys, minlength=2 * len(distinct))
        present = np.flatnonzero(lines_per_key)
        sizes = lines_per_key[present]
        hashes = self._hashes(distinct)[present // 2] ^ ((present % 2).astype(np.uint64) * self._RETURN_SALT)
        unique, group = np.unique(hashes, return_inverse=True)
        before = self._count(unique, np.bincount(group, weights=sizes).astype(np.int64))[group]
        if len(unique) < len(hashes):  # orders whose hashes collide share a count: they take turns in it
            order = np.argsort(group, kind="stable")
            earlier = np.cumsum(sizes[order]) - sizes[order]
            first = np.searchsorted(group[order], group[order])
            before[order] += earlier - earlier[first]
        before_by_key = np.zeros(len(lines_per_key), dtype=np.int64)
        before_by_key[present] = before
        return before_by_key[keys] + _position_within_key(keys, len(present)) + 1

    @staticmethod
    def _hashes(order_ids: list[str]) -> np.ndarray:
        return np.fromiter(map(hash, order_ids), dtype=np.int64, count=len(order_ids)).view(np.uint64)

    def _count(self, hashes: np.ndarray, lines: np.ndarray) -> np.ndarray:
        """The lines seen so far of each of ``hashes`` (sorted, distinct), then ``lines`` more of each."""
        before = np.zeros(len(hashes), dtype=np.int64)
        known = np.zeros(len(hashes), dtype=bool)
        for keys, counts in self.runs:
            position = np.minimum(np.searchsorted(keys, hashes), len(keys) - 1)
            hit = keys[position] == hashes
            before[hit] = counts[position[hit]]
            counts[position[hit]] += lines[hit]
            known |= hit
        if not known.all():
            self._add(hashes[~known], lines[~known])
        return before

    def _add(self, keys: np.ndarray, counts: np.ndarray) -> None:
        self.runs.append((keys, counts))
        while len(self.runs) > 1 and len(self.runs[-2][0]) <= 2 * len(self.runs[-1][0]):
            (keys_a, counts_a), (keys_b, counts_b) = self.runs.pop(), self.runs.pop()
            merged = np.concatenate([keys_a, keys_b])
            order = np.argsort(merged, kind="stable")
            self.runs.append((merged[order], np.concatenate([counts_a, counts_b])[order]))


def _position_within_key(keys: np.ndarray, key_count: int) -> np.ndarray:
    """Each element's 0-based position among the elements with the same key, in array order.

    Without a sort when each key's elements are adjacent, as an export lists a receipt's lines."""
    if not len(keys):
        return np.zeros(0, dtype=np.int64)
    run_starts = np.flatnonzero(np.r_[True, keys[1:] != keys[:-1]])
    if len(run_starts) == key_count:  # one run per key
        run_lengths = np.diff(np.r_[run_starts, len(keys)])
        return np.arange(len(keys)) - np.repeat(run_starts, run_lengths)
    order = np.argsort(keys, kind="stable")
    sorted_keys = keys[order]
    group_starts = np.flatnonzero(np.r_[True, sorted_keys[1:] != sorted_keys[:-1]])
    group_lengths = np.diff(np.r_[group_starts, len(keys)])
    within = np.empty(len(keys), dtype=np.int64)
    within[order] = np.arange(len(keys)) - np.repeat(group_starts, group_lengths)
    return within


# --- Datasets -------------------------------------------------------------------------------------------------


@dataclass
class ParsedBatch:
    """The parsed rows of one batch that are neither blank nor bad, as typed canonical columns."""

    columns: dict[str, pa.Array]
    row_numbers: np.ndarray  # of those rows

    @property
    def num_rows(self) -> int:
        return len(self.row_numbers)


@dataclass
class _CheckedBatch:
    columns: dict[str, pa.Array]  # sales lines: without line_no, which depends on the batches before
    batch: _Batch


def _map_ordered(function: Callable[[T], R], items: Iterable[T], *, workers: int) -> Iterator[R]:
    """``map(function, items)``, computed on ``workers`` threads when more than one.

    Results come in the order of ``items``; at most ``workers`` + 1 items are taken ahead, so memory
    stays bounded whatever their number.
    """
    if workers <= 1:
        yield from map(function, items)
        return
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="file-import-check") as pool:
        pending: deque[Future] = deque()
        for item in items:
            pending.append(pool.submit(function, item))
            if len(pending) > workers:
                yield pending.popleft().result()
        while pending:
            yield pending.popleft().result()


def _blank_rows(text: list[pa.Array]) -> np.ndarray:
    """Rows whose cells are all empty; the other columns are looked at only where the first one is empty."""
    blank = pc.equal(text[0], "")
    for column in text[1:]:
        if not pc.any(blank).as_py():
            break
        blank = pc.and_(blank, pc.equal(column, ""))
    return blank.to_numpy(zero_copy_only=False)


@dataclass
class FileParser:
    """Parses the raw batches of one file of ``dataset``; bad values go to ``report``."""

    dataset: Dataset
    positions: dict[str, int]  # canonical column -> file column
    timezone: str
    now: datetime
    report: ErrorReport = field(default_factory=ErrorReport)
    rows_read: int = 0
    _line_numbers: OrderLineNumbers = field(default_factory=OrderLineNumbers)

    def parse(self, raw_batches: Iterable[RawBatch], *, workers: int = 1) -> Iterator[ParsedBatch]:
        """Parse the batches in order. With ``workers`` > 1, that many threads check the values of
        batches ahead (pyarrow releases the GIL); line numbers and the report are still made here, in
        file order, so the outcome is the same."""
        language = translation.get_language()

        def check(work: tuple[RawBatch, int]) -> tuple[RawBatch, _CheckedBatch | None]:
            raw, room = work
            with translation.override(language):  # the reasons in the caller's language, on any thread
                return raw, self._check(raw, room) if raw.num_rows else None

        # The room is read as each batch is handed out: never less than what is left once earlier ones are in.
        work = ((raw, max(self.report.cap - len(self.report.errors), 0)) for raw in raw_batches)
        for raw, checked in _map_ordered(check, work, workers=workers):
            malformed = [RowError(row=row, column="", value=text, reason=reason) for row, text, reason in raw.malformed]
            self.report.rows_rejected += len(malformed)
            self.rows_read += len(malformed)
            if checked is None:
                for error in malformed:
                    self.report.add(error)
                continue
            columns, batch = checked.columns, checked.batch
            if self.dataset is Dataset.SALES:
                line_no = self._line_numbers.number(columns["order_id"], columns["is_return"])
                columns = {"order_id": columns["order_id"], "line_no": pa.array(line_no, pa.uint32()), **columns}
            batch.report_errors(self.report, malformed)
            self.report.rows_rejected += int(batch.bad.sum())
            self.rows_read += int((~batch.blank).sum())
            keep = ~(batch.blank | batch.bad)
            if not keep.all():
                mask = pa.array(keep)
                columns = {name: pc.filter(values, mask) for name, values in columns.items()}
            yield ParsedBatch(columns=columns, row_numbers=raw.row_numbers[keep])

    def _check(self, raw: RawBatch, room: int) -> _CheckedBatch:
        """The values of one batch, typed and checked (their errors kept in the batch): what needs no order."""
        text = {name: _text(raw.columns[position]) for name, position in self.positions.items()}
        batch = _Batch(raw, room, _blank_rows(list(text.values())))
        for name, values in text.items():  # Postgres text refuses NUL; ClickHouse would keep it silently
            if has_nul(values):
                batch.flag(pc.match_substring(values, "\x00"), name, values, _("contains a NUL character (\\u0000)"))
        columns = self._sales(text, batch) if self.dataset is Dataset.SALES else self._customers(text, batch)
        return _CheckedBatch(columns, batch)

    def _required(self, text: dict[str, pa.Array], batch: _Batch, column: str) -> None:
        batch.flag(pc.equal(text[column], ""), column, text[column], _("empty, but required"))

    def _sales(self, text: dict[str, pa.Array], batch: _Batch) -> dict[str, pa.Array]:
        get = _columns_or_empty(text, batch.bad.size)
        self._required(text, batch, "order_id")
        self._required(text, batch, "ts")
        ts = _timestamps(text["ts"], self.timezone, batch, "ts", self.now, EARLIEST_SALE)
        is_return = _booleans(get("is_return"), batch, "is_return")
        qty_given = _decimals(get("qty"), QTY_SCALE, batch, "qty")
        price_given = _decimals(get("price"), MONEY_SCALE, batch, "price")
        discount = pc.coalesce(_decimals(get("discount"), MONEY_SCALE, batch, "discount"), pa.scalar(Decimal(0), MONEY))
        amount_given = _decimals(get("amount"), MONEY_SCALE, batch, "amount")
        sale = pc.invert(is_return)
        for name, given in (("qty", qty_given), ("price", price_given), ("amount", amount_given)):
            negative = pc.and_(sale, pc.less(given, pa.scalar(0, given.type)))
            batch.flag(negative, name, get(name), _("negative on a sale line (mark returns with is_return)"))
        batch.flag(pc.less(discount, pa.scalar(0, MONEY)), "discount", get("discount"), _("negative discount"))
        no_amount = pc.and_(pc.equal(get("amount"), ""), pc.equal(get("price"), ""))
        batch.flag(no_amount, "amount", get("amount"), _("empty, and so is price: give the amount or qty and price"))
        # Defaults (DESIGN §8): qty 1, discount 0, amount = qty × price − discount, price = (amount + discount) / qty.
        qty = pc.coalesce(qty_given, pa.scalar(Decimal(1), QUANTITY))
        amount = amount_given
        if amount_given.null_count:
            computed = _money(
                pc.subtract(pc.multiply(qty, price_given), discount), batch, "amount", _("qty × price is too large")
            )
            amount = pc.coalesce(amount_given, computed)
            batch.flag(
                pc.and_(sale, pc.and_(pc.is_null(amount_given), pc.less(computed, pa.scalar(0, MONEY)))),
                "discount",
                get("discount"),
                _("larger than qty × price"),
            )
        price = price_given
        if price_given.null_count:
            nonzero_qty = pc.if_else(pc.equal(qty, pa.scalar(0, QUANTITY)), pa.scalar(None, QUANTITY), qty)
            unit_price = _money(
                pc.divide(pc.add(amount, discount), nonzero_qty), batch, "price", _("amount / qty is too large")
            )
            price = pc.coalesce(price_given, unit_price, pa.scalar(Decimal(0), MONEY))
        return {
            "order_id": text["order_id"],
            "ts": ts,
            **{name: get(name) for name in SALES_TEXT_COLUMNS},
            "qty": qty,
            "price": price,
            "discount": discount,
            "amount": amount,
            "is_return": is_return,
        }

    def _customers(self, text: dict[str, pa.Array], batch: _Batch) -> dict[str, pa.Array]:
        get = _columns_or_empty(text, batch.bad.size)
        self._required(text, batch, "customer_id")
        for name, limit in CUSTOMER_MAX_LENGTHS.items():
            if name in text:
                _too_long(text[name], batch, name, limit)
        email = pc.utf8_lower(get("email"))
        batch.flag(
            pc.and_(pc.not_equal(email, ""), pc.invert(pc.match_substring_regex(email, _EMAIL))),
            "email",
            get("email"),
            _("not an e-mail address"),
        )
        gender_words = pc.utf8_lower(get("gender"))
        known_gender = pc.or_(pc.equal(gender_words, ""), pc.is_in(gender_words, pa.array(list(GENDERS))))
        batch.flag(pc.invert(known_gender), "gender", get("gender"), _("unknown gender: use f/m (ж/м)"))
        gender = pc.take(pa.array([*GENDERS.values(), ""]), _gender_index(gender_words))
        birth = _timestamps_as_dates(get("birth_date"), self.timezone, batch, self.now)
        return {
            "customer_id": text["customer_id"],
            "created_at": _timestamps(get("created_at"), self.timezone, batch, "created_at", self.now, EARLIEST_SIGNUP),
            "first_name": get("first_name"),
            "last_name": get("last_name"),
            "gender": gender,
            "birth_date": birth,
            "email": email,
            "phone": get("phone"),
            "city": get("city"),
            "store": get("store"),
            "consent_email": _booleans(get("consent_email"), batch, "consent_email"),
            "consent_sms": _booleans(get("consent_sms"), batch, "consent_sms"),
        }


def _columns_or_empty(text: dict[str, pa.Array], length: int) -> Callable[[str], pa.Array]:
    """A column by name; one the file lacks reads as empty strings (made once, only if asked for)."""
    empty: list[pa.Array] = []

    def get(name: str) -> pa.Array:
        if name in text:
            return text[name]
        if not empty:  # offsets all 0 and no bytes: no values to build
            offsets = pa.py_buffer(np.zeros(length + 1, dtype=np.int32))
            empty.append(pa.Array.from_buffers(pa.string(), length, [None, offsets, pa.py_buffer(b"")]))
        return empty[0]

    return get


def _gender_index(words: pa.Array) -> pa.Array:
    index = pc.index_in(words, pa.array(list(GENDERS)))
    return pc.fill_null(index, len(GENDERS))


def _timestamps_as_dates(text: pa.Array, timezone: str, batch: _Batch, now: datetime) -> pa.Array:
    """Birth dates: any accepted date format, no time of day, 1900 … today."""
    candidate = _present(text)
    try:
        dates = pc.cast(pc.cast(candidate, pa.timestamp("ms")), pa.date32())
    except pa.ArrowInvalid:
        local, aware = _timestamps_slow(candidate, batch, "birth_date", text)
        dates = pc.coalesce(pc.cast(local, pa.date32()), pc.cast(aware, pa.date32()))
    out_of_range = pc.or_(
        pc.less(dates, pa.scalar(EARLIEST_BIRTH_DATE, pa.date32())),
        pc.greater(dates, pa.scalar(now.date(), pa.date32())),
    )
    batch.flag(out_of_range, "birth_date", text, _("out of range: before 1900 or in the future"))
    return pc.if_else(pc.fill_null(out_of_range, False), pa.scalar(None, pa.date32()), dates)
