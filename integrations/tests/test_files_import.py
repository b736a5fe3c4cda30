"""File imports end to end, on the real Postgres and ClickHouse: totals, re-imports, bad files, injected faults."""

from __future__ import annotations

import csv
import random
from decimal import ROUND_HALF_UP, Decimal
from pathlib import Path

import openpyxl
import pandas as pd
import pytest
from django.core.management import CommandError, call_command
from django_tenants.utils import tenant_context

from analytics.clickhouse.query import tenant_insert_arrow as real_tenant_insert_arrow
from analytics.clickhouse.query import tenant_query
from integrations.files import reader, services
from integrations.files.columns import Dataset
from integrations.models import Contact, DataSource, ImportRun

HEADER = ["order_id", "ts", "customer_id", "store", "employee", "product_id", "category", "qty", "price", "discount",
          "amount", "is_return", "comment"]  # fmt: skip


def sales_csv(path: Path, orders: int, *, seed: int, prefix: str = "R") -> Path:
    """A canonical sales file with returns, anonymous receipts, derived amounts, dates with and without times."""
    rng = random.Random(seed)
    with path.open("w", newline="", encoding="utf-8") as out:
        writer = csv.writer(out)
        writer.writerow(HEADER)
        for number in range(orders):
            day, minute = rng.randint(1, 28), rng.randint(0, 24 * 60 - 1)
            ts = (
                f"2026-03-{day:02d}"
                if rng.random() < 0.2
                else f"2026-03-{day:02d} {minute // 60:02d}:{minute % 60:02d}:00"
            )
            customer = "" if rng.random() < 0.3 else f"c{rng.randint(1, orders // 2 + 1)}"
            is_return = rng.random() < 0.1
            for _line in range(rng.randint(1, 3)):
                qty = rng.randint(1, 3)
                price = Decimal(rng.randint(100, 99_999)) / 100
                discount = Decimal(rng.choice([0, 0, 5, 10])) * price * qty / 100
                discount = discount.quantize(Decimal("0.01"))
                amount = "" if rng.random() < 0.3 else str(qty * price - discount)
                writer.writerow(
                    [f"{prefix}{number}", ts, customer, f"Store {rng.randint(1, 4)}", f"E{rng.randint(1, 9)}",
                     f"P{rng.randint(1, 50)}", rng.choice(["Shoes", "Bags"]), qty, price, discount or "", amount,
                     int(is_return), "free text, ignored"]
                )  # fmt: skip
    return path


def expected_totals(path: Path) -> tuple:
    """What the file should add up to, computed with pandas straight from the CSV text (DESIGN §8 rules)."""
    frame = pd.read_csv(path, dtype=str, keep_default_na=False)
    money = lambda text: Decimal(text) if text else Decimal(0)  # noqa: E731
    qty = frame.qty.map(money)
    discount = frame.discount.map(money)
    amount = [
        Decimal(a) if a else (q * Decimal(p)).quantize(Decimal("0.01"), rounding=ROUND_HALF_UP) - d
        for a, q, p, d in zip(frame.amount, qty, frame.price, discount, strict=True)
    ]
    sign = frame.is_return.map(lambda r: -1 if r == "1" else 1)
    return (
        len(frame),
        sum(a * s for a, s in zip(amount, sign, strict=True)),
        sum(q * s for q, s in zip(qty, sign, strict=True)),
        sum(d * s for d, s in zip(discount, sign, strict=True)),
        frame.order_id.nunique(),
    )


def totals(tenant) -> tuple:
    return tenant_query(
        "SELECT count(), sum(amount), sum(qty), sum(discount), uniqExact(order_id) FROM sales_lines FINAL"
        " WHERE tenant_id = {tenant_id:UInt32}",
        tenant_id=tenant.pk,
    ).result_rows[0]


def contact_count(tenant) -> int:
    with tenant_context(tenant):
        return Contact.objects.count()


def import_file(tenant, path: Path, kind: str = "sales", *maps: str) -> None:
    call_command("import_file", "--tenant", tenant.slug, "--kind", kind, str(path), *[f"--map={m}" for m in maps])


def last_run(tenant) -> ImportRun:
    with tenant_context(tenant):
        return ImportRun.objects.select_related("data_source").latest("started_at")


def test_importing_the_same_file_twice_leaves_totals_unchanged(tenant, tmp_path, capsys):
    path = sales_csv(tmp_path / "sales.csv", 400, seed=1)
    import_file(tenant, path)
    first = totals(tenant)
    assert first == expected_totals(path)
    run = last_run(tenant)
    assert (run.status, run.rows_read, run.rows_written, run.progress) == ("succeeded", first[0], first[0], 1.0)
    assert f"Import run {run.pk}: {first[0]} rows read, {first[0]} written" in capsys.readouterr().out

    import_file(tenant, path)
    assert totals(tenant) == first


def test_progress_is_saved_while_the_file_is_read(tenant, tmp_path, monkeypatch):
    monkeypatch.setattr(reader, "CSV_BLOCK_BYTES", 1 << 14)
    monkeypatch.setattr(services, "PROGRESS_INTERVAL_SECONDS", 0)
    seen = []
    real_update = services._Progress.update

    def update_and_read_back(self, progress, rows_read):
        real_update(self, progress, rows_read)
        seen.append(ImportRun.objects.values_list("progress", "rows_read").get(pk=self.run.pk))

    monkeypatch.setattr(services._Progress, "update", update_and_read_back)
    path = sales_csv(tmp_path / "sales.csv", 4000, seed=8)  # ~40 blocks: more than parsing runs ahead
    import_file(tenant, path)
    assert len(seen) > 3
    assert any(0 < progress < 1 for progress, _rows in seen)
    assert seen == sorted(seen)  # progress and rows read only grow
    assert last_run(tenant).progress == 1.0


def test_an_overlapping_export_replaces_the_orders_it_shares(tenant, tmp_path):
    """Two exports that share orders (lines in the same order) count each order once: line_no follows the order."""
    whole = sales_csv(tmp_path / "whole.csv", 200, seed=2)
    lines = whole.read_text().splitlines(keepends=True)
    half = tmp_path / "half.csv"
    half.write_text(lines[0] + "".join(lines[len(lines) // 2 :]))
    import_file(tenant, half)
    import_file(tenant, whole)
    assert totals(tenant) == expected_totals(whole)


def test_timestamps_are_read_in_the_tenant_timezone_and_stored_in_utc(make_tenant, tmp_path):
    tenant = make_tenant(timezone="Asia/Vladivostok")  # UTC+10
    path = tmp_path / "one.csv"
    path.write_text("order_id,ts,amount\nR1,2026-03-01 09:30:00,10\n")
    import_file(tenant, path)
    [(ts,)] = tenant_query(
        "SELECT toString(ts) FROM sales_lines FINAL WHERE tenant_id = {tenant_id:UInt32}", tenant_id=tenant.pk
    ).result_rows
    assert ts == "2026-02-28 23:30:00.000"


def test_a_1c_export_with_a_mapping_given_once_is_reused_next_time(tenant):
    path = Path(__file__).parent / "fixtures" / "sales_1c_cp1251.csv"
    maps = ["Номер чека=order_id", "Дата=ts", "Карта клиента=customer_id", "Сумма=amount", "Количество=qty"]
    import_file(tenant, path, "sales", *maps)
    assert totals(tenant) == (3, Decimal("1584.40"), Decimal(4), Decimal(0), 2)
    with tenant_context(tenant):
        source = DataSource.objects.get(kind="file")
        assert source.config["mapping"]["sales"]["Номер чека"] == "order_id"
    import_file(tenant, path)  # no --map this time: the saved mapping applies
    assert last_run(tenant).status == "succeeded"
    assert totals(tenant)[0] == 3


def test_without_a_mapping_the_command_says_which_columns_are_missing(tenant, capsys):
    path = Path(__file__).parent / "fixtures" / "sales_1c_cp1251.csv"
    with pytest.raises(CommandError) as raised:
        import_file(tenant, path)
    assert raised.value.returncode == 2
    err = capsys.readouterr().err
    assert "required column missing: order_id, ts, amount (or qty and price)" in err
    assert "--map" in err and "Номер чека=order_id" in err  # suggested


def test_unknown_kind_is_refused_by_the_command(tenant, tmp_path):
    path = sales_csv(tmp_path / "s.csv", 3, seed=3)
    with pytest.raises(CommandError, match="invalid choice: 'orders'"):
        import_file(tenant, path, "orders")


def _bad_files(tmp_path: Path) -> list[tuple[str, Path, int | None, str, str]]:
    """(case, file, row, column, reason) — every case of the issue's bad-file corpus but the 200 MB one."""
    cases = []

    def add(case: str, content: bytes, row: int | None, column: str, reason: str, suffix: str = ".csv") -> None:
        path = tmp_path / f"{case}{suffix}"
        path.write_bytes(content)
        cases.append((case, path, row, column, reason))

    good = "order_id,ts,amount,qty\nB1,2026-03-01,10,1\n"
    add("zero_bytes", b"", None, "", "The file is empty (0 bytes)")
    add("binary_garbage", bytes(range(256)) * 64, None, "", "not a text file")
    add("cp1251_garbage", bytes(range(128, 256)) * 64, None, "", "neither UTF-8 nor Windows-1251")
    add("missing_columns", b"order_id,amount\nB1,10\n", 1, "ts", "required column missing: ts")
    add("duplicated_headers", b"order_id,ts,amount,amount\nB1,2026-03-01,10,10\n", 1, "amount", "keep one")
    add("bad_date", (good + "B2,2026-13-45,10,1\n").encode(), 3, "ts", "not a date")
    add("negative_qty", (good + "B2,2026-03-01,10,-2\n").encode(), 3, "qty", "negative on a sale line")
    add("non_numeric_amount", (good + "B2,2026-03-01,12 руб.,1\n").encode(), 3, "amount", "not a number")
    add("short_row", (good + "B2,2026-03-01\n").encode(), 3, "", "expected 4 fields, found 2")
    add("wrong_encoding_halfway", good.encode() * 1 + ("B3,2026-03-01,10,1\n" * 70_000).encode()
        + "Б4,2026-03-01,10,1\n".encode("cp1251"), 70_003, "", "not valid UTF8 text")  # fmt: skip
    workbook = openpyxl.Workbook()
    workbook.active.append(["order_id", "ts", "amount"])
    workbook.active.append([])
    workbook.active.append(["B1", "2026-03-01", "ten"])
    workbook.create_sheet("notes").append(["anything"])
    xlsx = tmp_path / "xlsx_bad_amount.xlsx"
    workbook.save(xlsx)
    cases.append(("xlsx_bad_amount", xlsx, 3, "amount", "not a number"))
    return cases


def test_every_bad_file_gets_a_precise_report_and_commits_nothing(tenant, tmp_path, capsys):
    baseline = sales_csv(tmp_path / "baseline.csv", 50, seed=4)
    import_file(tenant, baseline)
    before, contacts_before = totals(tenant), contact_count(tenant)
    for case, path, row, column, reason in _bad_files(tmp_path):
        with pytest.raises(CommandError) as raised:
            import_file(tenant, path)
        assert raised.value.returncode == 2, case
        run = last_run(tenant)
        assert run.status == "failed", case
        assert any(e["row"] == row and e["column"] == column and reason in e["reason"] for e in run.errors), (
            f"{case}: {run.errors[:3]}"
        )
        err = capsys.readouterr().err
        assert reason in err, case
        assert totals(tenant) == before, case
        assert contact_count(tenant) == contacts_before, case


def test_a_200_mb_file_with_a_bad_last_row_commits_nothing(tenant, tmp_path):
    block = "".join(f"O{i},2026-03-01 10:00:00,c{i % 97},Store 1,E1,P{i % 50},Shoes,1,99.90,,99.90,0,x\n"
                    for i in range(10_000))  # fmt: skip
    path = tmp_path / "big.csv"
    blocks = 0
    with path.open("w") as out:
        out.write(",".join(HEADER) + "\n")
        while out.tell() < 200 * 1024 * 1024:
            out.write(block)
            blocks += 1
        out.write("LAST,2026-03-01 10:00:00,c1,Store 1,E1,P1,Shoes,-1,99.90,,99.90,0,x\n")
    with pytest.raises(CommandError):
        import_file(tenant, path)
    run = last_run(tenant)
    assert run.rows_read == blocks * 10_000 + 1
    assert run.errors == [{"row": blocks * 10_000 + 2, "column": "qty", "value": "-1",
                           "reason": "negative on a sale line (mark returns with is_return)"}]  # fmt: skip
    assert totals(tenant)[0] == 0


def test_customers_file_writes_contacts_to_postgres_and_only_attributes_to_clickhouse(tenant, tmp_path):
    path = tmp_path / "customers.csv"
    path.write_text(
        "customer_id,first_name,last_name,gender,birth_date,email,phone,city,consent_email,consent_sms\n"
        "c1,Анна,Иванова,f,1990-05-01,anna@example.ru,+79991234567,Москва,1,0\n"
        "c2,Пётр,Петров,m,,petr@example.ru,,Казань,0,1\n"
        "c1,Анна,Сидорова,f,1990-05-01,anna@example.ru,+79991234567,Тула,1,1\n"  # the same customer again: wins
    )
    import_file(tenant, path, "customers")
    import_file(tenant, path, "customers")
    with tenant_context(tenant):
        assert Contact.objects.count() == 2
        anna = Contact.objects.get(customer_id="c1")
        assert (anna.last_name, anna.city, anna.email) == ("Сидорова", "Тула", "anna@example.ru")
    rows = tenant_query(
        "SELECT customer_id, city, birth_year, email_reachable, sms_reachable FROM customer_attributes FINAL"
        " WHERE tenant_id = {tenant_id:UInt32} ORDER BY customer_id",
        tenant_id=tenant.pk,
    ).result_rows
    assert rows == [("c1", "Тула", 1990, 1, 1), ("c2", "Казань", 0, 0, 0)]
    everything = str(
        tenant_query(
            "SELECT * FROM customer_attributes WHERE tenant_id = {tenant_id:UInt32}", tenant_id=tenant.pk
        ).result_rows
    )
    for pii in ("Анна", "Сидорова", "anna@example.ru", "+79991234567"):
        assert pii not in everything


def test_a_bad_customers_file_writes_no_contact(tenant, tmp_path):
    path = tmp_path / "customers.csv"
    path.write_text("customer_id,email\nc1,anna@example.ru\nc2,not an email\n")
    with pytest.raises(CommandError):
        import_file(tenant, path, "customers")
    assert last_run(tenant).errors == [{"row": 3, "column": "email", "value": "not an email",
                                         "reason": "not an e-mail address"}]  # fmt: skip
    assert contact_count(tenant) == 0


# --- Faults injected on our own code path ----------------------------------------------------------------------


def run_import(tenant, path: Path, kind: str = "sales") -> ImportRun:
    with tenant_context(tenant):
        source = services.file_source_get_or_create(name="faults")
        run = services.import_run_create(data_source=source, dataset=Dataset(kind), file_name=path.name)
        with pytest.raises(RuntimeError, match="injected"):
            services.file_import(import_run=run, path=path)
        run.refresh_from_db()
    return run


def test_a_failure_while_reading_the_file_sends_nothing(tenant, tmp_path, monkeypatch):
    monkeypatch.setattr(reader, "CSV_BLOCK_BYTES", 1 << 14)  # many batches
    path = sales_csv(tmp_path / "s.csv", 500, seed=5)
    real = services.sales_lines_batch
    calls = []

    def failing_on_the_third(*args, **kwargs):
        calls.append(1)
        if len(calls) == 3:
            raise RuntimeError("injected")
        return real(*args, **kwargs)

    monkeypatch.setattr(services, "sales_lines_batch", failing_on_the_third)
    run = run_import(tenant, path)
    assert run.status == "failed" and "injected" in run.message
    assert totals(tenant)[0] == 0


def test_clickhouse_failing_halfway_through_the_insert_leaves_nothing_behind(tenant, tmp_path, monkeypatch):
    import integrations.ingest

    monkeypatch.setattr(reader, "CSV_BLOCK_BYTES", 1 << 14)
    before_path = sales_csv(tmp_path / "before.csv", 100, seed=6, prefix="A")
    import_file(tenant, before_path)
    before = totals(tenant)

    def half_then_fail(table, batches, *, tenant_id=None, settings=None):
        batches = list(batches)
        assert len(batches) > 2
        real_tenant_insert_arrow(table, batches[: len(batches) // 2], tenant_id=tenant_id)  # committed for real
        raise RuntimeError("injected: ClickHouse went away")

    monkeypatch.setattr(integrations.ingest, "tenant_insert_arrow", half_then_fail)
    run_import(tenant, sales_csv(tmp_path / "after.csv", 500, seed=7, prefix="B"))
    assert totals(tenant) == before


def test_contacts_that_do_not_commit_take_their_clickhouse_attributes_with_them(tenant, tmp_path, monkeypatch):
    path = tmp_path / "customers.csv"
    path.write_text("customer_id,city\nc1,Москва\nc2,Казань\n")
    real = services.facts_bulk_write

    def write_then_fail(table, batches, **kwargs):
        real(table, batches, **kwargs)
        raise RuntimeError("injected: the transaction fails after the ClickHouse write")

    monkeypatch.setattr(services, "facts_bulk_write", write_then_fail)
    run_import(tenant, path, "customers")
    assert contact_count(tenant) == 0
    assert tenant_query(
        "SELECT count() FROM customer_attributes FINAL WHERE tenant_id = {tenant_id:UInt32}", tenant_id=tenant.pk
    ).result_rows == [(0,)]
