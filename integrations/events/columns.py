"""Whole-column checks of the events API: one field of every item of a kind at once, in Arrow.

The fast path for a batch without problems: a field's values are taken as an Arrow column and
checked with vectorised kernels, where the per-item checks cost several microseconds a value in
Python. Each column parser accepts exactly what the field's per-item parser accepts and yields
the same values. Values of an unusual shape (integer ids, JSON numbers with an exponent,
timestamps without a zone) go through the per-item parser one by one, within the column; a value
that parser refuses raises it (``FieldInvalidError``), and the caller then runs the per-item
checks on the whole batch, which report every problem as before.

``None`` and ``""`` mean "not given", as in the per-item checks.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime
from decimal import Decimal
from typing import TYPE_CHECKING, Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from integrations.arrow_strings import has_nul, string_offsets

if TYPE_CHECKING:
    from integrations.events.schema import ParseContext, Parser

TIMESTAMP_MS = pa.timestamp("ms", tz="UTC")
_TIMESTAMP_US = pa.timestamp("us", tz="UTC")
# The ISO 8601 form Arrow parses the way datetime.fromisoformat does (the offset's arithmetic,
# no time-zone database): date, T, time with at most microseconds, Z or ±hh:mm. Others, such as
# timestamps without a zone (in the workspace's time zone), go through the per-item parser.
_ZONED_ISO = (
    r"^[0-9]{4}-[0-9]{2}-[0-9]{2}T(?:[01][0-9]|2[0-3]):[0-5][0-9]:[0-5][0-9](?:\.[0-9]{1,6})?"
    r"(?:Z|[+-](?:[01][0-9]|2[0-3]):[0-5][0-9])$"
)
_NONE = type(None)

ColumnParser = Callable[[Sequence[Any], "ParseContext"], pa.Array]


class ColumnUnfitError(Exception):
    """A required value is missing or a check involving several fields fails: the batch needs the per-item checks."""


def _per_value(values: Sequence[Any], parse: Parser, ctx: ParseContext, arrow_type: pa.DataType) -> pa.Array:
    """The per-item parser on each given value: exact for any shape it accepts, and raises for any it refuses."""
    return pa.array([None if value is None or value == "" else parse(value, ctx) for value in values], arrow_type)


def _strings(values: Sequence[Any]) -> pa.StringArray | None:
    """The values as a string column, or None when one is not a string (nor None)."""
    try:
        return pa.array(values, pa.string())
    except (pa.ArrowTypeError, pa.ArrowInvalid, UnicodeEncodeError):  # a number, a list…, a lone surrogate
        return None


def _byte_lengths(column: pa.StringArray) -> np.ndarray:
    """Each value's length in UTF-8 bytes (0 for a null), read off the offsets: no kernel, no copy."""
    return np.diff(string_offsets(column))


def _longer_than(column: pa.StringArray, max_length: int) -> bool:
    """Whether a value has more than ``max_length`` characters, as ``len`` counts them (code points)."""
    if int(_byte_lengths(column).max(initial=0)) <= max_length:  # a character takes a byte or more
        return False
    return pc.max(pc.utf8_length(column)).as_py() > max_length


def _has_blank(column: pa.StringArray) -> bool:
    """Whether a value is null or ``""``."""
    return column.null_count > 0 or (len(column) > 0 and int(_byte_lengths(column).min()) == 0)


def blank_as_null(column: pa.StringArray) -> pa.StringArray:
    """``""`` turned to null: both mean "not given"."""
    if int(np.count_nonzero(_byte_lengths(column) == 0)) == column.null_count:
        return column
    return pc.if_else(pc.equal(column, ""), pa.scalar(None, column.type), column)


def text_column(parse: Parser, max_length: int, *, required: bool, email_refused: bool = False) -> ColumnParser:
    """Strings up to ``max_length`` characters (code points, as ``len``), "" when not given."""

    def parse_column(values: Sequence[Any], ctx: ParseContext) -> pa.Array:
        column = _strings(values)
        if (
            column is None
            or _longer_than(column, max_length)
            or has_nul(column)
            or (email_refused and pc.any(pc.match_substring(column, "@")).as_py())
        ):
            column = _per_value(values, parse, ctx, pa.string())
        if required and _has_blank(column):
            raise ColumnUnfitError
        return column.fill_null("") if column.null_count else column

    return parse_column


def choice_column(parse: Parser, allowed: Sequence[str], *, required: bool, default: str) -> ColumnParser:
    value_set = pa.array(allowed, pa.string())

    def parse_column(values: Sequence[Any], ctx: ParseContext) -> pa.Array:
        column = _strings(values)
        if column is not None:
            column = blank_as_null(column)
            if (
                pc.sum(pc.is_in(column, value_set=value_set, skip_nulls=True)).as_py()
                != len(column) - column.null_count
            ):
                column = None
        if column is None:
            column = _per_value(values, parse, ctx, pa.string())
        if column.null_count:
            if required:
                raise ColumnUnfitError
            column = column.fill_null(default)
        return column

    return parse_column


def timestamp_column(parse: Parser, *, required: bool) -> ColumnParser:
    """Timestamps in UTC as ``TIMESTAMP_MS`` (cut to the millisecond, as the ClickHouse driver does)."""

    def parse_column(values: Sequence[Any], ctx: ParseContext) -> pa.Array:
        column = _strings(values)
        micros = None
        if column is not None and pc.all(pc.match_substring_regex(column, _ZONED_ISO)).as_py() is not False:
            try:
                micros = pc.cast(column, _TIMESTAMP_US)
            except pa.ArrowInvalid:  # a day the month does not have: the per-item parser says so
                pass
            else:
                first, last = pc.min_max(micros.cast(pa.int64())).values()
                if first.is_valid and not (first.as_py() >= 0 and last.as_py() <= _micros(ctx.latest)):
                    micros = None
        if micros is None:
            micros = _per_value(values, parse, ctx, _TIMESTAMP_US)
        if required and micros.null_count:
            raise ColumnUnfitError
        # Not before 1970: cutting toward zero is cutting down.
        return pc.cast(micros, TIMESTAMP_MS, safe=False)

    return parse_column


def _micros(moment: datetime) -> int:
    return pa.scalar(moment, _TIMESTAMP_US).cast(pa.int64()).as_py()


def amount_column(parse: Parser, places: int, *, positive: bool, default: Decimal | None) -> ColumnParser:
    """Exact decimals as decimal128(18, ``places``); null when not given and without a default.

    The column's type holds exactly the range the per-item check allows (below 10^(18 − places))
    and refuses more places than it has; the sign is checked on the values.
    """
    decimal_type = pa.decimal128(18, places)
    wide_type = pa.decimal128(38, places)

    def fast(values: Sequence[Any]) -> pa.Array | None:
        kinds = set(map(type, values))
        try:
            if kinds <= {str, _NONE}:  # numeric strings; Arrow reads a subset of what Decimal() does, alike
                column = pc.cast(blank_as_null(pa.array(values, pa.string())), decimal_type)
            elif kinds <= {int, _NONE}:
                column = pa.array(values, pa.int64()).cast(wide_type).cast(decimal_type)
            elif kinds <= {Decimal, int, _NONE}:  # JSON numbers, read from their text
                column = pa.array(values, decimal_type)
            else:
                return None
        except (pa.ArrowInvalid, OverflowError, UnicodeEncodeError):  # too many places or digits, not a number
            return None
        smallest = pc.min(column).as_py()
        if smallest is not None and (smallest < 0 or (positive and smallest == 0)):
            return None
        return column

    def parse_column(values: Sequence[Any], ctx: ParseContext) -> pa.Array:
        column = fast(values)
        if column is None:
            column = _per_value(values, parse, ctx, decimal_type)
        if default is not None and column.null_count:
            column = column.fill_null(pa.scalar(default, decimal_type))
        return column

    return parse_column


def boolean_column(parse: Parser) -> ColumnParser:
    def parse_column(values: Sequence[Any], ctx: ParseContext) -> pa.Array:
        if set(map(type, values)) <= {bool, _NONE}:
            column = pa.array(values, pa.bool_())
        else:
            column = _per_value(values, parse, ctx, pa.bool_())
        return column.fill_null(False) if column.null_count else column

    return parse_column


LINE_NO_MAX = 4_294_967_295


def line_number_column(parse: Parser, *, required: bool) -> ColumnParser:
    """Line numbers as uint32; null when not given."""

    def parse_column(values: Sequence[Any], ctx: ParseContext) -> pa.Array:
        column = None
        if set(map(type, values)) <= {int, _NONE}:
            try:
                numbers = pa.array(values, pa.int64())
            except OverflowError:
                pass
            else:
                first, last = pc.min_max(numbers).values()
                if not first.is_valid or (first.as_py() >= 1 and last.as_py() <= LINE_NO_MAX):
                    column = numbers.cast(pa.uint32())
        if column is None:
            column = _per_value(values, parse, ctx, pa.uint32())
        if required and column.null_count:
            raise ColumnUnfitError
        return column

    return parse_column
