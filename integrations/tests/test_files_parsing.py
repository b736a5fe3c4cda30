"""Reading and parsing files without any database: formats, encodings, mapping, values, row numbers, line numbers."""

from __future__ import annotations

import os
import random
import subprocess
import sys
from collections import Counter
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import openpyxl
import pyarrow as pa
import pyarrow.compute as pc
import pytest

from integrations.files import reader
from integrations.files.columns import Dataset, columns_resolve, mapping_suggest
from integrations.files.parsing import FileParser, OrderLineNumbers, _text
from integrations.files.reader import FileUnreadableError, tabular_file_open

FIXTURES = Path(__file__).parent / "fixtures"
NOW = datetime(2026, 6, 1, tzinfo=UTC)


def parse(path: Path, dataset: Dataset = Dataset.SALES, mapping: dict | None = None, tz: str = "Europe/Moscow"):
    """Rows that would be written (as dicts, with their row numbers) and the error report."""
    opened = tabular_file_open(path)
    resolved = columns_resolve(opened.headers, dataset, mapping or {})
    assert not resolved.problems, resolved.problems
    parser = FileParser(dataset, resolved.positions, tz, NOW)
    rows = []
    for parsed in parser.parse(opened.batches(list(resolved.positions.values()))):
        for number, row in zip(parsed.row_numbers, pa.table(parsed.columns).to_pylist(), strict=True):
            rows.append({"row": int(number), **row})
    return rows, parser


def write(tmp_path: Path, text: str, name: str = "file.csv", encoding: str = "utf-8") -> Path:
    path = tmp_path / name
    path.write_bytes(text.encode(encoding))
    return path


def errors_of(parser: FileParser) -> list[tuple]:
    return [(e.row, e.column, e.value, e.reason) for e in parser.report.errors]


def test_canonical_csv_with_defaults_returns_and_timezone(tmp_path):
    path = write(
        tmp_path,
        "order_id,ts,customer_id,qty,price,discount,amount,is_return\n"
        "R1,2026-03-01 10:15:00,c1,2,99.95,,,0\n"  # amount = qty × price − discount
        "R1,2026-03-01 10:15:00,c1,,,5,50.00,\n"  # qty 1; price = (amount + discount) / qty
        "R2,2026-03-02,,1.5,10.01,0.01,,false\n"  # date only = local midnight; 1.5 × 10.01 = 15.015 → 15.02 − 0.01
        "R1,2026-03-03T09:00:00+00:00,c1,1,99.95,,99.95,да\n",  # a return with its own offset
    )
    rows, parser = parse(path)
    assert errors_of(parser) == []
    assert [(r["order_id"], r["line_no"], r["is_return"]) for r in rows] == [
        ("R1", 1, False),
        ("R1", 2, False),
        ("R2", 1, False),
        ("R1", 1, True),  # returns are numbered apart from the sale's lines
    ]
    assert [r["amount"] for r in rows] == [Decimal("199.90"), Decimal("50.00"), Decimal("15.01"), Decimal("99.95")]
    assert [r["qty"] for r in rows] == [Decimal(2), Decimal(1), Decimal("1.5"), Decimal(1)]
    assert rows[1]["price"] == Decimal("55.00")
    assert rows[0]["ts"] == datetime(2026, 3, 1, 7, 15, tzinfo=UTC)  # Moscow is UTC+3
    assert rows[2]["ts"] == datetime(2026, 3, 1, 21, 0, tzinfo=UTC)
    assert rows[3]["ts"] == datetime(2026, 3, 3, 9, 0, tzinfo=UTC)
    assert rows[2]["customer_id"] == ""  # anonymous receipt
    assert parser.rows_read == 4


def test_1c_export_in_windows_1251_with_semicolons_russian_headers_and_decimal_commas():
    path = FIXTURES / "sales_1c_cp1251.csv"
    opened = tabular_file_open(path)
    assert (opened.encoding, opened.delimiter) == ("cp1251", ";")
    suggested = mapping_suggest(opened.headers, Dataset.SALES)
    assert suggested == {
        "Номер чека": "order_id",
        "Дата": "ts",
        "Карта клиента": "customer_id",
        "Магазин": "store",
        "Товар": "product_name",
        "Количество": "qty",
        "Цена": "price",
        "Сумма": "amount",
    }
    rows, parser = parse(path, mapping=suggested)
    assert errors_of(parser) == []
    assert rows[0]["order_id"] == "000123"  # ids stay text: leading zeros kept
    assert rows[0]["store"] == "Тверская"
    assert rows[0]["amount"] == Decimal("1234.50")
    assert rows[0]["ts"] == datetime(2026, 3, 1, 7, 5, tzinfo=UTC)  # 01.03.2026 10:05:00 Moscow time
    assert rows[1]["customer_id"] == ""


def test_xlsx_uses_the_first_sheet_with_data_and_skips_empty_rows(tmp_path):
    workbook = openpyxl.Workbook()
    empty = workbook.active
    empty.title = "Обложка"  # an empty cover sheet comes first
    sheet = workbook.create_sheet("Продажи")
    sheet.append([])  # the header may start lower down
    sheet.append(["order_id", "ts", "amount", "qty"])
    sheet.append(["R1", datetime(2026, 3, 1, 10, 0), 100.5, 2])
    sheet.append([])  # an empty row in the middle: skipped, still counted
    sheet.append([1001, "2026-03-02", "abc", 1])
    workbook.create_sheet("Итоги").append(["total", 100.5])
    path = tmp_path / "sales.xlsx"
    workbook.save(path)

    opened = tabular_file_open(path)
    assert (opened.format, opened.sheet, opened.ignored_sheets) == ("xlsx", "Продажи", ["Обложка", "Итоги"])
    rows, parser = parse(path)
    assert [(r["row"], r["order_id"], r["amount"]) for r in rows] == [(3, "R1", Decimal("100.50"))]
    assert rows[0]["ts"] == datetime(2026, 3, 1, 7, 0, tzinfo=UTC)
    assert errors_of(parser) == [(5, "amount", "abc", "not a number")]


def test_row_numbers_count_the_header_blank_lines_quoted_line_breaks_and_malformed_rows(tmp_path):
    path = write(
        tmp_path,
        "order_id,ts,amount,product_name\n"
        'R1,2026-03-01,10,"two\nlines"\n'  # row 2
        "\n"  # row 3: blank, skipped
        "R2,2026-03-01,10\n"  # row 4: a field short
        "R3,2026-03-01,-5,x\n"  # row 5: negative amount on a sale
        "R4,2026-02-30,5,x\n",  # row 6: no such date
    )
    rows, parser = parse(path)
    assert [r["row"] for r in rows] == [2]
    assert rows[0]["product_name"] == "two\nlines"
    assert errors_of(parser) == [
        (4, "", "R2,2026-03-01,10", "expected 4 fields, found 3"),
        (5, "amount", "-5", "negative on a sale line (mark returns with is_return)"),
        (6, "ts", "2026-02-30", "not a date: use YYYY-MM-DD, YYYY-MM-DD HH:MM[:SS] or DD.MM.YYYY [HH:MM[:SS]]"),
    ]
    assert parser.report.rows_rejected == 3


def test_row_numbers_hold_when_many_small_read_blocks_make_one_batch(tmp_path, monkeypatch):
    # Arrow reads 256-byte blocks and every batch is 8 of them: malformed rows, quoted line breaks and bad values in
    # every block keep the numbers a plain count of the records gives.
    monkeypatch.setattr(reader, "CSV_READ_BLOCK_BYTES", 256)
    records, expected_rows, expected_errors = ["order_id,ts,amount,product_name\n"], [], []
    for i in range(600):
        number = len(records) + 1  # the spreadsheet row of the record added now
        kind = i % 5
        if kind == 1:
            records.append(f"S{i},2026-03-01,10\n")
            expected_errors.append((number, ""))
        elif kind == 2:
            records.append(f'Q{i},2026-03-01,10,"two\nlines"\n')
            expected_rows.append(number)
        elif kind == 3:
            records.append(f"N{i},2026-03-01,-5,x\n")
            expected_errors.append((number, "amount"))
        else:
            records.append(f"G{i},2026-03-01,10,x\n")
            expected_rows.append(number)
    path = write(tmp_path, "".join(records))
    opened = tabular_file_open(path)
    resolved = columns_resolve(opened.headers, Dataset.SALES, {})
    parser = FileParser(Dataset.SALES, resolved.positions, "UTC", NOW)
    batches = list(parser.parse(opened.batches(list(resolved.positions.values()), batch_bytes=2048)))
    assert 3 < len(batches) < 40  # several batches, each of several blocks
    assert [int(n) for batch in batches for n in batch.row_numbers] == expected_rows
    # In row order: a batch's malformed rows among its bad values.
    assert [(e.row, e.column) for e in parser.report.errors] == expected_errors


@pytest.mark.parametrize(
    ("line", "column", "reason"),
    [
        ("R1,2026-03-01,1.234,1,0", "amount", "more than 2 decimal places"),
        ("R1,2026-03-01,12abc,1,0", "amount", "not a number"),
        ("R1,not a date,10,1,0", "ts", "not a date"),
        ("R1,1999-12-31,10,1,0", "ts", "out of range"),
        ("R1,2027-01-01,10,1,0", "ts", "in the future"),
        (",2026-03-01,10,1,0", "order_id", "empty, but required"),
        ("R1,2026-03-01,10,-1,0", "qty", "negative on a sale line"),
        ("R1,2026-03-01,10,1,maybe", "is_return", "not a yes/no value"),
        ("R1,2026-03-01,,1,0", "amount", "empty, and so is price"),
    ],
)
def test_each_bad_value_is_reported_with_its_row_column_and_reason(tmp_path, line, column, reason):
    path = write(tmp_path, f"order_id,ts,amount,qty,is_return\nR0,2026-03-01,1,1,0\n{line}\n")
    rows, parser = parse(path)
    assert [r["order_id"] for r in rows] == ["R0"]
    [(row, bad_column, _value, bad_reason)] = errors_of(parser)
    assert (row, bad_column) == (3, column)
    assert reason in bad_reason


def test_a_negative_quantity_is_fine_on_a_return_line(tmp_path):
    path = write(tmp_path, "order_id,ts,amount,qty,is_return\nR1,2026-03-01,-10,-1,1\n")
    rows, parser = parse(path)
    assert errors_of(parser) == []
    assert (rows[0]["qty"], rows[0]["amount"], rows[0]["is_return"]) == (Decimal(-1), Decimal(-10), True)


def test_header_problems_missing_and_duplicated_columns_and_unknown_targets():
    headers = ["order_id", "Дата", "Amount ", "Сумма", "comment", "comment"]
    problems = columns_resolve(headers, Dataset.SALES, {"comment": "notes", "сумма": "amount"}).problems
    reasons = [p.reason for p in problems]
    assert any("“notes” is not a column of the sales file" in r for r in reasons)
    assert any("2 columns would fill “amount” (columns 3, 4)" in r for r in reasons)
    assert any("required column missing: ts" in r for r in reasons)
    # The mapping fixes it: a Russian header onto ts, and the other amount ignored.
    resolved = columns_resolve(headers, Dataset.SALES, {"Дата": "ts", "Сумма": "amount", "amount": ""})
    assert resolved.problems == []
    assert resolved.positions == {"order_id": 0, "ts": 1, "amount": 3}
    # Identical headers cannot be told apart by a mapping: the file itself must change.
    [duplicate] = columns_resolve(["order_id", "ts", "amount", "amount"], Dataset.SALES, {}).problems
    assert duplicate.column == "amount" and "keep one" in duplicate.reason


def test_qty_and_price_can_stand_in_for_amount_but_one_of_them_is_not_enough():
    assert columns_resolve(["order_id", "ts", "qty", "price"], Dataset.SALES, {}).problems == []
    [problem] = columns_resolve(["order_id", "ts", "price"], Dataset.SALES, {}).problems
    assert "amount (or qty and price)" in problem.reason


@pytest.mark.parametrize(
    ("content", "reason"),
    [
        (b"", "empty (0 bytes)"),
        (b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" * 20, "not a text file"),
        ("order_id,ts\n".encode("utf-16"), "UTF-16"),
        (b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + b"\x00" * 100, ".xls"),
        (b"PK\x03\x04 not really a workbook", "not a readable XLSX"),
        (bytes(range(128, 256)) * 50, "neither UTF-8 nor Windows-1251"),
    ],
)
def test_unreadable_files_are_refused_with_a_clear_reason(tmp_path, content, reason):
    path = tmp_path / "upload.csv"
    path.write_bytes(content)
    with pytest.raises(FileUnreadableError, match=reason.replace("(", r"\(").replace(")", r"\)")):
        tabular_file_open(path)


def test_a_file_that_turns_into_another_encoding_halfway_is_refused_where_it_breaks(tmp_path):
    good = "order_id,ts,amount\n" + "".join(f"R{i},2026-03-01,10\n" for i in range(60_000))
    path = tmp_path / "mixed.csv"
    path.write_bytes(good.encode() + "Чек-последний,2026-03-01,10\n".encode("cp1251"))
    opened = tabular_file_open(path)
    assert opened.encoding == "utf8"  # the first megabyte is clean UTF-8
    resolved = columns_resolve(opened.headers, Dataset.SALES, {})
    parser = FileParser(Dataset.SALES, resolved.positions, "UTC", NOW)
    with pytest.raises(FileUnreadableError, match="not valid UTF8 text"):
        for _batch in parser.parse(opened.batches(list(resolved.positions.values()), batch_bytes=1 << 16)):
            pass


def test_customers_file_values(tmp_path):
    path = write(
        tmp_path,
        "customer_id;first_name;gender;birth_date;email;phone;consent_email;created_at\n"
        "c1;Анна;Ж;01.05.1990;Anna@Example.RU;+79991234567;да;2024-01-10 12:00\n"
        "c2;;male;;;;0;\n"
        "c3;;x;1800-01-01;not-an-email;;1;\n",
    )
    rows, parser = parse(path, Dataset.CUSTOMERS)
    assert [(r["customer_id"], r["gender"], r["email"], r["consent_email"]) for r in rows] == [
        ("c1", "f", "anna@example.ru", True),
        ("c2", "m", "", False),
    ]
    assert rows[0]["birth_date"].isoformat() == "1990-05-01"
    assert rows[0]["created_at"] == datetime(2024, 1, 10, 9, 0, tzinfo=UTC)
    assert [(e[0], e[1]) for e in errors_of(parser)] == [(4, "email"), (4, "gender"), (4, "birth_date")]


def test_line_numbers_follow_file_order_per_order_across_batches():
    numbers = OrderLineNumbers()
    first = numbers.number(pa.array(["A", "B", "A", "A"]), pa.array([False, False, False, True]))
    second = numbers.number(pa.array(["B", "A", "C"]), pa.array([False, True, False]))
    assert first.tolist() == [1, 1, 2, 1]
    assert second.tolist() == [2, 2, 1]


def test_line_numbers_match_a_plain_count_over_many_unsorted_batches():
    rng = random.Random(7)
    ids = [f"O{rng.randint(0, 3000)}" for _ in range(20_000)]
    returns = [rng.random() < 0.1 for _ in ids]
    numbers = OrderLineNumbers()
    got = [
        n
        for start in range(0, len(ids), 700)
        for n in numbers.number(pa.array(ids[start : start + 700]), pa.array(returns[start : start + 700])).tolist()
    ]
    seen: Counter = Counter()
    expected = []
    for key in zip(ids, returns, strict=True):
        seen[key] += 1
        expected.append(seen[key])
    assert got == expected


def test_line_numbers_of_adjacent_lines_match_a_plain_count_across_batch_boundaries():
    # Receipts listed line after line (the usual export): the path that needs no sort. Batches cut receipts in two.
    rng = random.Random(11)
    ids, returns = [], []
    for order in range(4000):
        lines = rng.randint(1, 6)
        ids += [f"R{order}"] * lines
        returns += [rng.random() < 0.05] * lines
    numbers = OrderLineNumbers()
    got = [
        n
        for start in range(0, len(ids), 997)
        for n in numbers.number(pa.array(ids[start : start + 997]), pa.array(returns[start : start + 997])).tolist()
    ]
    seen: Counter = Counter()
    assert got == [seen.update([key]) or seen[key] for key in zip(ids, returns, strict=True)]


class _CollidingLineNumbers(OrderLineNumbers):
    @staticmethod
    def _hashes(order_ids: list[str]):  # every order has the same hash
        return OrderLineNumbers._hashes(["same"] * len(order_ids))


def test_orders_whose_hashes_collide_still_get_distinct_increasing_line_numbers():
    rng = random.Random(5)
    ids = [f"O{rng.randint(0, 40)}" for _ in range(3000)]
    numbers = _CollidingLineNumbers()
    got = [
        n
        for start in range(0, len(ids), 250)
        for n in numbers.number(pa.array(ids[start : start + 250]), pa.array([False] * len(ids[start : start + 250])))
    ]
    per_order: dict[str, list[int]] = {}
    for order_id, number in zip(ids, got, strict=True):
        per_order.setdefault(order_id, []).append(int(number))
    assert all(numbers_ == sorted(set(numbers_)) for numbers_ in per_order.values())  # unique and in file order
    assert all(number >= 1 for number in got)


def test_trimming_matches_a_trim_of_every_value():
    # The edge-byte test that lets most columns skip the trim must never skip a value that needs one.
    rng = random.Random(3)
    alphabet = [" ", "\t", "\u00a0", "\u2003", "a", "я", "1", "€"]
    values = [None if rng.random() < 0.1 else "".join(rng.choices(alphabet, k=rng.randint(0, 4))) for _ in range(3000)]
    for start in range(0, len(values), 7):  # small slices: most have no edge space; some are sliced mid-buffer
        column = pa.array(values)[start : start + 7]
        assert _text(column).to_pylist() == pc.fill_null(pc.utf8_trim_whitespace(column), "").to_pylist()


def test_the_error_report_keeps_the_first_thousand_errors_and_counts_them_all(tmp_path):
    path = write(tmp_path, "order_id,ts,amount\n" + "R,2026-03-01,x\n" * 1500)
    _rows, parser = parse(path)
    assert (parser.report.total, len(parser.report.errors), parser.report.rows_rejected) == (1500, 1000, 1500)
    assert parser.report.errors[-1].row == 1001


MEMORY_PROBE = """
import resource, sys
from datetime import UTC, datetime
from django.conf import settings
settings.configure(USE_I18N=False)
from integrations.files.columns import Dataset, columns_resolve
from integrations.files.parsing import FileParser
from integrations.files.reader import tabular_file_open

def parse(path):
    opened = tabular_file_open(path)
    resolved = columns_resolve(opened.headers, Dataset.SALES, {})
    parser = FileParser(Dataset.SALES, resolved.positions, "Europe/Moscow", datetime.now(UTC))
    rows = sum(batch.num_rows for batch in parser.parse(opened.batches(list(resolved.positions.values()))))
    return rows, parser.report.total

parse(sys.argv[1])  # warm up: imports, pools, the first allocations
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
rows, errors = parse(sys.argv[2])
print(rows, errors, (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) * 1024)
"""


def test_a_200_mb_file_is_streamed_in_bounded_memory(tmp_path):
    """Parsing a 200 MB file raises the process's peak memory by far less than the file's size."""
    header = "order_id,ts,customer_id,store,product_id,qty,price,amount\n"
    block = "".join(f"O{i},2026-03-01 10:00:00,c{i % 97},Store 1,P{i % 50},1,99.90,99.90\n" for i in range(10_000))
    small, big = tmp_path / "small.csv", tmp_path / "big.csv"
    small.write_text(header + block)
    blocks = 0
    with big.open("w") as out:
        out.write(header)
        while out.tell() < 200 * 1024 * 1024:
            out.write(block)
            blocks += 1
    probe = subprocess.run(
        [sys.executable, "-c", MEMORY_PROBE, str(small), str(big)],
        capture_output=True,
        text=True,
        check=True,
        cwd=Path(__file__).resolve().parents[2],
        env={**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])},
    )
    rows, errors, peak_growth = map(int, probe.stdout.split())
    assert (rows, errors) == (blocks * 10_000, 0)
    assert peak_growth < big.stat().st_size / 2, f"peak memory grew by {peak_growth / 2**20:.0f} MiB"
