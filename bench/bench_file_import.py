"""File import throughput: rows/s of a canonical sales CSV, end to end, into embedded ClickHouse.

End to end is what ``manage.py import_file`` does: open and sniff the file, parse and check every
row (vectorised, on PARSE_WORKERS threads), number the lines of each order, stream the typed batches
into a staging table while the rest is parsed, and attach its partitions to ``sales_lines`` once the
whole file passed. The file is generated before the clock starts, and ClickHouse's background merges
of the previous import are let finish; afterwards the rows are counted in ClickHouse (FINAL) to
prove they all arrived. A second, parse-only pass over the same
file shows how the time splits between reading/checking and writing, and two more time, each alone, the
steps no import can skip: reading the CSV into string columns, and ClickHouse taking the typed rows
already in memory (their CPU together, over the cores, bounds any import on this machine). Runs against its own
embedded Postgres and chdb under var/bench-files (CX_VAR_DIR to change).

    .venv/bin/python bench/bench_file_import.py --rows 1000000
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("CX_VAR_DIR", str(ROOT / "var" / "bench-files"))
os.environ["DJANGO_SETTINGS_MODULE"] = "cxplatform.settings"
os.environ.setdefault("DEBUG", "false")
os.environ.setdefault("SECRET_KEY", "bench-only-secret-key")

import django  # noqa: E402

django.setup()

import numpy as np  # noqa: E402
import pyarrow as pa  # noqa: E402
import pyarrow.csv as pa_csv  # noqa: E402
from django.conf import settings  # noqa: E402
from django.core.management import call_command  # noqa: E402
from django.utils import timezone  # noqa: E402
from django_tenants.utils import tenant_context  # noqa: E402

from analytics.clickhouse.client import get_client  # noqa: E402
from analytics.clickhouse.query import tenant_query  # noqa: E402
from integrations.files.columns import Dataset, columns_resolve  # noqa: E402
from integrations.files.parsing import FileParser  # noqa: E402
from integrations.files.reader import tabular_file_open  # noqa: E402
from integrations.files.services import (  # noqa: E402
    PARSE_WORKERS,
    file_import,
    file_source_get_or_create,
    import_run_create,
)
from integrations.ingest import facts_bulk_write, ingest_version, sales_lines_batch  # noqa: E402
from tenants.models import Tenant  # noqa: E402
from tenants.services import tenant_onboard  # noqa: E402

SLUG = "bench-files"


def money(kopecks: np.ndarray) -> pa.Array:
    return pa.array(
        np.char.add(np.char.add((kopecks // 100).astype(str), "."), np.char.zfill((kopecks % 100).astype(str), 2))
    )


def generate(path: Path, rows: int, run: str, seed: int) -> None:
    """A realistic canonical file: ~3 lines per receipt, 25% anonymous, 5% returns, discounts, 20 stores."""
    rng = np.random.default_rng(seed)
    order = np.sort(rng.integers(0, max(rows // 3, 1), rows))
    seconds = order * (90 * 24 * 3600 // max(rows // 3, 1))
    ts = np.datetime64("2026-01-01T09:00:00") + seconds.astype("timedelta64[s]")
    qty = rng.integers(1, 4, rows)
    price = rng.integers(5_000, 1_500_000, rows)
    discount = price * qty * rng.choice([0, 0, 0, 5, 10, 20], rows) // 100
    customer = rng.integers(0, max(rows // 8, 1), rows)
    table = pa.table(
        {
            "order_id": pa.array(np.char.add(f"{run}-", order.astype(str))),
            "ts": pa.array(np.datetime_as_string(ts, unit="s")),
            "customer_id": pa.array(np.where(customer % 4 == 0, "", np.char.add("C", customer.astype(str)))),
            "store": pa.array(np.char.add("Store ", rng.integers(1, 21, rows).astype(str))),
            "employee": pa.array(np.char.add("E", rng.integers(1, 120, rows).astype(str))),
            "channel": pa.array(np.where(rng.random(rows) < 0.8, "offline", "online")),
            "product_id": pa.array(np.char.add("SKU-", rng.integers(1, 20_000, rows).astype(str))),
            "product_name": pa.array(np.char.add("Product ", rng.integers(1, 20_000, rows).astype(str))),
            "category": pa.array(np.char.add("Category ", rng.integers(1, 40, rows).astype(str))),
            "brand": pa.array(np.char.add("Brand ", rng.integers(1, 80, rows).astype(str))),
            "qty": pa.array(qty.astype(str)),
            "price": money(price),
            "discount": money(discount),
            "amount": money(price * qty - discount),
            "is_return": pa.array(np.where(rng.random(rows) < 0.05, "1", "0")),
            "promo_code": pa.array(np.where(rng.random(rows) < 0.1, "SPRING10", "")),
        }
    )
    pa_csv.write_csv(table, path, pa_csv.WriteOptions(quoting_style="needed"))


def bench_tenant() -> Tenant:
    tenant = Tenant.objects.filter(slug=SLUG).first()
    if tenant is None:
        tenant = tenant_onboard(slug=SLUG, name="Bench files", owner_email="owner@bench-files.test").tenant
    return tenant


def merges_settle(timeout: float = 60.0) -> None:
    """Wait until ClickHouse merges no parts (those of the previous import): each import is timed alone."""
    deadline = time.monotonic() + timeout
    sql = "SELECT count() FROM system.merges WHERE database = currentDatabase()"
    while get_client().query(sql).result_rows[0][0] and time.monotonic() < deadline:
        time.sleep(0.2)


def parse_only(path: Path) -> float:
    """Seconds to read and check the whole file, writing nothing."""
    started = time.perf_counter()
    opened = tabular_file_open(path)
    resolved = columns_resolve(opened.headers, Dataset.SALES, {})
    parser = FileParser(Dataset.SALES, resolved.positions, "Europe/Moscow", timezone.now())
    for _batch in parser.parse(opened.batches(list(resolved.positions.values())), workers=PARSE_WORKERS):
        pass
    assert parser.report.total == 0, parser.report.errors[:3]
    return time.perf_counter() - started


def floors(path: Path, tenant: Tenant) -> tuple[float, float]:
    """CPU seconds of the two steps no import can skip, each alone: reading the CSV into string columns
    (no checks), and ClickHouse taking the typed rows when they are all in memory already."""
    opened = tabular_file_open(path)
    resolved = columns_resolve(opened.headers, Dataset.SALES, {})
    positions = list(resolved.positions.values())
    cpu_started = time.process_time()
    for _raw in opened.batches(positions):
        pass
    reading = time.process_time() - cpu_started
    parser = FileParser(Dataset.SALES, resolved.positions, "Europe/Moscow", timezone.now())
    typed = [
        sales_lines_batch(parsed.columns, source="bench", version=ingest_version())
        for parsed in parser.parse(opened.batches(positions), workers=PARSE_WORKERS)
    ]
    merges_settle()
    with tenant_context(tenant):  # the same keys as the import: its rows are replaced, not added
        cpu_started = time.process_time()
        facts_bulk_write("sales_lines", typed)
        writing = time.process_time() - cpu_started
    return reading, writing


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--repeat", type=int, default=3, help="Imports to time (each a fresh set of order ids).")
    args = parser.parse_args()

    call_command("setup", stdout=open(os.devnull, "w"))  # noqa: SIM115
    tenant = bench_tenant()
    directory = Path(settings.VAR_DIR) / "bench-files-data"
    directory.mkdir(parents=True, exist_ok=True)
    timings = []
    for attempt in range(args.repeat):
        run = f"r{time.time_ns()}"
        path = directory / "sales.csv"
        generate(path, args.rows, run, args.seed + attempt)
        size = path.stat().st_size
        merges_settle()
        load_before = os.getloadavg()[0]
        with tenant_context(tenant):
            source = file_source_get_or_create(name="bench")
            import_run = import_run_create(data_source=source, dataset=Dataset.SALES, file_name=path.name)
            started, cpu_started = time.perf_counter(), time.process_time()
            file_import(import_run=import_run, path=path)
            elapsed, cpu = time.perf_counter() - started, time.process_time() - cpu_started
        assert import_run.status == "succeeded", (import_run.message, import_run.errors[:3])
        [(written,)] = tenant_query(
            "SELECT count() FROM sales_lines FINAL"
            " WHERE tenant_id = {tenant_id:UInt32} AND startsWith(order_id, {run:String})",
            {"run": f"{run}-"},
            tenant_id=tenant.pk,
        ).result_rows
        assert written == args.rows, (written, args.rows)
        parsing = parse_only(path)
        reading, writing = floors(path, tenant)
        timings.append(elapsed)
        print(
            f"import {attempt + 1}: {args.rows:,} rows ({size / 2**20:.0f} MiB) in {elapsed:.2f} s = "
            f"{args.rows / elapsed:,.0f} rows/s end to end ({cpu:.2f} CPU-s); "
            f"reading and checking alone {parsing:.2f} s "
            f"({args.rows / parsing:,.0f} rows/s); load average {load_before:.1f} before, "
            f"{os.getloadavg()[0]:.1f} after"
        )
        print(
            f"  each alone: reading into string columns {reading:.2f} CPU-s, ClickHouse taking the typed rows "
            f"{writing:.2f} CPU-s; together {reading + writing:.2f} CPU-s, "
            f"{(reading + writing) / os.cpu_count():.2f} s on {os.cpu_count()} busy cores"
        )
        path.unlink()
    best, median = min(timings), statistics.median(timings)
    print(
        f"best of {args.repeat}: {args.rows / best:,.0f} rows/s ({best:.2f} s for {args.rows:,} rows); "
        f"median {args.rows / median:,.0f} rows/s ({median:.2f} s)"
    )


if __name__ == "__main__":
    main()
