"""Dashboards and analyses at scale: each built-in dashboard (all its widgets) and cohorts, RFM, CLV.

Runs against a tenant filled by ``bench_generator.py`` (5M customers / 120M sales lines for the
issue's targets) in the same data directory, with the query cache off, as the issue asks. The
pre-aggregations are (re)built first when stale, and their build time is printed too. Each
dashboard is rendered ``--repeat`` times for the last month of the data vs the previous period.

    CX_VAR_DIR=/tmp/cx-bench-generator .venv/bin/python bench/bench_analytics.py --tenant bench-gen-HHMMSS
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import time
from datetime import date, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("CX_VAR_DIR", "/tmp/cx-bench-generator")
os.environ["DJANGO_SETTINGS_MODULE"] = "cxplatform.settings"
os.environ["ANALYTICS_QUERY_CACHE_SECONDS"] = "0"  # the issue measures with the cache off
os.environ.setdefault("DEBUG", "false")
os.environ.setdefault("SECRET_KEY", "bench-only-secret-key")

import django  # noqa: E402

django.setup()

import chdb  # noqa: E402
from dateutil.relativedelta import relativedelta  # noqa: E402
from django.core.management import call_command  # noqa: E402
from django_tenants.utils import tenant_context  # noqa: E402

from analytics.analyses.base import analysis_run  # noqa: E402
from analytics.clickhouse.query import tenant_query  # noqa: E402
from analytics.dashboards import DASHBOARDS, DashboardState, dashboard_render  # noqa: E402
from analytics.periods import Comparison, Period  # noqa: E402
from analytics.preaggregations import preaggregations_rebuild_current  # noqa: E402
from tenants.models import Tenant  # noqa: E402

TARGETS = {"dashboard": 1.0, "cohorts": 2.0, "rfm": 2.0, "clv": 30.0}


def timed(function, repeat: int) -> list[float]:
    seconds = []
    for _ in range(repeat):
        started = time.perf_counter()
        function()
        seconds.append(time.perf_counter() - started)
    return seconds


def p95(values: list[float]) -> float:
    return sorted(values)[max(0, round(0.95 * len(values)) - 1)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tenant", required=True, help="Slug of a tenant bench_generator.py filled.")
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--month", type=date.fromisoformat, default=date(2025, 12, 1), help="First day of the month.")
    parser.add_argument("--only", default="", help="Comma-separated dashboard ids or analyses to run.")
    args = parser.parse_args()
    only = {name for name in args.only.split(",") if name}

    call_command("migrate_clickhouse", verbosity=0)
    tenant = Tenant.objects.get(slug=args.tenant)
    period = Period(args.month, args.month + relativedelta(months=1) - timedelta(days=1))
    with tenant_context(tenant):
        lines = tenant_query("SELECT count() FROM sales_lines WHERE tenant_id = {tenant_id:UInt32}").result_rows[0][0]
        print(
            f"machine: {os.cpu_count()} cores, Python {platform.python_version()}, chdb {chdb.__version__};"
            f" tenant {tenant.slug}: {lines:,} sales lines; period {period.start} … {period.end} vs previous;"
            f" load average {os.getloadavg()[0]:.2f}",
            flush=True,
        )
        started = time.perf_counter()
        built = preaggregations_rebuild_current()
        print(f"pre-aggregations: {built or 'fresh already'} ({time.perf_counter() - started:.1f} s)", flush=True)

        print("| what | widgets | p50 | p95 | max | target |\n|---|---|---|---|---|---|")
        state = DashboardState(period, Comparison.PREVIOUS_PERIOD)
        for dashboard in DASHBOARDS:
            if only and dashboard.id not in only:
                continue
            seconds = timed(lambda d=dashboard: dashboard_render(d, state), args.repeat)
            print(
                f"| dashboard `{dashboard.id}` | {len(dashboard.widgets)} | {statistics.median(seconds):.2f} s"
                f" | {p95(seconds):.2f} s | {max(seconds):.2f} s | ≤ {TARGETS['dashboard']:.0f} s |",
                flush=True,
            )
        analyses = {
            "cohorts": {"from": "2025-01-01", "to": str(period.end)},
            "rfm": {"as_of": str(period.end)},
            "clv": {"calibration_end": str(period.end)},
        }
        for name, params in analyses.items():
            if only and name not in only:
                continue
            seconds = timed(lambda n=name, p=params: analysis_run(n, p), 1 if name == "clv" else args.repeat)
            print(
                f"| analysis `{name}` | — | {statistics.median(seconds):.2f} s | {p95(seconds):.2f} s"
                f" | {max(seconds):.2f} s | ≤ {TARGETS[name]:.0f} s |",
                flush=True,
            )
    print(f"load average now {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
