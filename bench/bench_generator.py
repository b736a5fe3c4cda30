"""Demo data generator throughput: rows/s and total time, end to end, into embedded ClickHouse and Postgres.

End to end is what ``manage.py generate_demo_data`` does: numpy generates each chunk of customers
while ClickHouse takes the previous chunk's facts (sales lines, message and web events, customer
attributes) and Postgres its contacts (COPY). The clock stops when every row is written; the rows
are then counted in ClickHouse to prove they arrived. Each run writes into a new tenant of its own
embedded services under /tmp/cx-bench-generator (CX_VAR_DIR to change): delete that directory
between big runs, 5M customers take about 10 GB.

    .venv/bin/python bench/bench_generator.py --customers 500000
"""

from __future__ import annotations

import argparse
import os
import platform
import resource
import sys
import time
from datetime import date
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("CX_VAR_DIR", "/tmp/cx-bench-generator")
os.environ["DJANGO_SETTINGS_MODULE"] = "cxplatform.settings"
os.environ.setdefault("DEBUG", "false")  # as in production: no query log
os.environ.setdefault("SECRET_KEY", "bench-only-secret-key")
os.environ.setdefault("EMAIL_BACKEND", "django.core.mail.backends.locmem.EmailBackend")  # no invitation on stdout

import django  # noqa: E402

django.setup()

import chdb  # noqa: E402
from django.core.management import call_command  # noqa: E402

from analytics.clickhouse.query import tenant_query  # noqa: E402
from integrations.demo.services import demo_data_generate  # noqa: E402
from tenants.models import Tenant  # noqa: E402
from tenants.services import tenant_onboard  # noqa: E402

TARGET_SALES_LINES = 120_000_000
TARGET_SECONDS = 300


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--customers", type=int, default=500_000)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--months", type=int, default=36)
    parser.add_argument("--end-date", type=date.fromisoformat, default=date(2026, 1, 1))
    args = parser.parse_args()

    call_command("setup", verbosity=0)
    slug = f"bench-gen-{time.strftime('%H%M%S')}"
    tenant: Tenant = tenant_onboard(slug=slug, name=slug, owner_email=f"owner@{slug}.test").tenant
    print(
        f"machine: {os.cpu_count()} cores, {os.sysconf('SC_PAGE_SIZE') * os.sysconf('SC_PHYS_PAGES') / 2**30:.0f} GiB,"
        f" Python {platform.python_version()}, chdb {chdb.__version__}; load average {os.getloadavg()[0]:.2f}"
    )
    print(f"generating {args.customers:,} customers, {args.months} months, seed {args.seed} into {slug}…")

    def progress(done: int, total: int, rows: int) -> None:
        if done % max(1, total // 10) == 0 or done == total:
            print(f"  {done}/{total} chunks, {rows:,} rows, {time.perf_counter() - started:.0f} s", flush=True)

    cpu_before = resource.getrusage(resource.RUSAGE_SELF)
    started = time.perf_counter()
    result = demo_data_generate(
        tenant=tenant,
        customers=args.customers,
        seed=args.seed,
        months=args.months,
        end_day=args.end_date,
        progress=progress,
    )
    seconds = time.perf_counter() - started
    cpu_after = resource.getrusage(resource.RUSAGE_SELF)
    cpu = (cpu_after.ru_utime - cpu_before.ru_utime) + (cpu_after.ru_stime - cpu_before.ru_stime)

    for table, written in result.rows.items():
        if table == "contacts":
            continue
        stored = tenant_query(
            f"SELECT count() FROM {table} WHERE tenant_id = {{tenant_id:UInt32}}", tenant_id=tenant.pk
        ).result_rows[0][0]
        assert stored >= written, f"{table}: wrote {written:,} rows, ClickHouse has {stored:,}"
    facts = sum(count for table, count in result.rows.items() if table != "contacts")
    sales = result.rows["sales_lines"]
    print(f"rows: {', '.join(f'{table} {count:,}' for table, count in result.rows.items())}")
    print(
        f"time: {seconds:.1f} s; {facts / seconds:,.0f} ClickHouse rows/s ({sales / seconds:,.0f} sales lines/s),"
        f" {result.rows['contacts'] / seconds:,.0f} contacts/s; this process used {cpu:.0f} CPU-s"
        f" ({cpu / seconds:.1f} cores), peak memory {cpu_after.ru_maxrss / 2**20:.1f} GiB;"
        f" load average now {os.getloadavg()[0]:.2f}"
    )
    if sales < TARGET_SALES_LINES:
        scale = TARGET_SALES_LINES / sales
        print(
            f"extrapolated to {TARGET_SALES_LINES:,} sales lines ({args.customers * scale:,.0f} customers):"
            f" ~{seconds * scale:.0f} s at this rate (target {TARGET_SECONDS} s)"
        )


if __name__ == "__main__":
    main()
