"""Events API throughput: events/s on one process through the whole Django stack.

Each batch is a real POST /api/v1/events through Django's test client: middleware (tenant by
token), token authentication, scope check, throttle, body parsing, validation, writes to
Postgres (contacts, import run) and ClickHouse. Bodies are serialised before the clock starts
(that is the sender's work). Runs against its own embedded Postgres and chdb under
var/bench-events (CX_VAR_DIR to change), so a running demo is not disturbed.

    .venv/bin/python bench/bench_events_api.py --events 200000 --batch 5000 --mix mixed
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("CX_VAR_DIR", str(ROOT / "var" / "bench-events"))
os.environ["DJANGO_SETTINGS_MODULE"] = "cxplatform.settings"
os.environ.setdefault("DEBUG", "false")  # as in production: no query log
os.environ.setdefault("SECRET_KEY", "bench-only-secret-key")
# The throttle still runs on every request; its limit is raised so it measures the endpoint.
os.environ["EVENTS_API_THROTTLE_RATE"] = "1000000/min"

import django  # noqa: E402

django.setup()

from django.core.management import call_command  # noqa: E402
from django.test import Client  # noqa: E402
from django_tenants.utils import tenant_context  # noqa: E402

from analytics.clickhouse.client import get_client  # noqa: E402
from analytics.clickhouse.query import tenant_query  # noqa: E402
from tenants.accounts.models import ApiToken  # noqa: E402
from tenants.accounts.services import api_token_create  # noqa: E402
from tenants.models import Tenant  # noqa: E402
from tenants.services import tenant_onboard  # noqa: E402

SLUG = "bench-events"
MIXES = {
    "web": {"web_event": 1.0},
    "message": {"message_event": 1.0},
    "order": {"order": 1.0},
    # A shop streaming everything: mostly site events and mailing statuses, some receipts and customers.
    "mixed": {"web_event": 0.6, "message_event": 0.3, "order": 0.08, "customer": 0.02},
}
WEB_STEPS = ("visit", "category_view", "product_view", "add_to_cart", "checkout")
MESSAGE_STEPS = ("sent", "delivered", "opened", "clicked")
# A stream carries recent events: the last three days.
NOW = datetime.now(UTC).replace(microsecond=0)
CATEGORIES = ("Shoes", "Bags", "Outerwear", "Accessories", "Kids")


def make_item(kind: str, n: int, run: str, rng: random.Random) -> dict:
    ts = (NOW - timedelta(seconds=rng.randint(0, 3 * 86_400))).isoformat()
    customer = f"C{rng.randint(1, 200_000)}"
    if kind == "web_event":
        step = WEB_STEPS[n % len(WEB_STEPS)]
        item = {
            "type": kind,
            "event_id": f"{run}-w{n}",
            "event_type": step,
            "ts": ts,
            "session_id": f"{run}-s{n // 5}",
            "customer_id": customer if rng.random() < 0.6 else None,
            "platform": "app" if rng.random() < 0.3 else "web",
        }
        if step == "category_view":
            item["category"] = rng.choice(CATEGORIES)
        elif step in ("product_view", "add_to_cart"):
            item["product_id"] = f"SKU-{rng.randint(1, 5000)}"
        return item
    if kind == "message_event":
        return {
            "type": kind,
            "event_id": f"{run}-m{n}",
            "event_type": MESSAGE_STEPS[n % len(MESSAGE_STEPS)],
            "ts": ts,
            "customer_id": customer,
            "mailing_id": f"mailing-{rng.randint(1, 40)}",
            "campaign_id": f"winback-{rng.randint(1, 5)}",
            "channel": "email" if rng.random() < 0.8 else "sms",
        }
    if kind == "order":
        lines = []
        for _ in range(rng.randint(1, 4)):
            price = rng.randint(100, 20_000)
            lines.append(
                {
                    "product_id": f"SKU-{rng.randint(1, 5000)}",
                    "category": rng.choice(CATEGORIES),
                    "qty": rng.randint(1, 3),
                    "price": f"{price}.{rng.randint(0, 99):02d}",
                    "discount": f"{price // 10}.00" if rng.random() < 0.3 else "0.00",
                }
            )
        return {
            "type": kind,
            "order_id": f"{run}-R{n}",
            "ts": ts,
            "customer_id": customer,
            "store": "Tverskaya",
            "lines": lines,
        }
    return {
        "type": kind,
        "customer_id": customer,
        "first_name": "Анна",
        "last_name": "Иванова",
        "email": f"{customer.lower()}@example.ru",
        "phone": f"+7999{rng.randint(1_000_000, 9_999_999)}",
        "gender": rng.choice("fm"),
        "city": "Москва",
        "consent_email": True,
    }


def make_bodies(*, events: int, batch: int, mix: str, run: str, seed: int) -> tuple[list[bytes], dict[str, int]]:
    rng = random.Random(seed)
    kinds, weights = zip(*MIXES[mix].items(), strict=True)
    counts: dict[str, int] = dict.fromkeys(kinds, 0)
    bodies = []
    for start in range(0, events, batch):
        items = []
        for n in range(start, min(start + batch, events)):
            kind = rng.choices(kinds, weights)[0]
            counts[kind] += 1
            items.append(make_item(kind, n, run, rng))
        bodies.append(json.dumps(items).encode())
    return bodies, counts


def stream_months() -> list[str]:
    """The months (the fact tables' partitions) of the stream's last three days: a batch writes a part per
    table and month, so near a month's turn each insert makes two."""
    return sorted({(NOW - timedelta(days=3)).strftime("%Y%m"), NOW.strftime("%Y%m")})


def rows_in_months(months: list[str]) -> dict[str, int]:
    """Rows already in those partitions, every tenant's: what the run's background merges rewrite."""
    rows = (
        get_client()
        .query(
            "SELECT table, sum(rows) FROM system.parts WHERE database = currentDatabase() AND active"
            " AND table IN ('web_events', 'message_events', 'sales_lines') AND partition IN {months:Array(String)}"
            " GROUP BY table ORDER BY table",
            parameters={"months": months},
        )
        .result_rows
    )
    return dict(rows)


def bench_tenant() -> Tenant:
    tenant = Tenant.objects.filter(slug=SLUG).first()
    if tenant is None:
        tenant = tenant_onboard(slug=SLUG, name="Bench events", owner_email="owner@bench-events.test").tenant
    return tenant


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=200_000)
    parser.add_argument("--batch", type=int, default=5_000)
    parser.add_argument("--mix", choices=sorted(MIXES), default="mixed")
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()

    call_command("setup", stdout=open(os.devnull, "w"))  # noqa: SIM115
    tenant = bench_tenant()
    with tenant_context(tenant):
        _token, raw_token = api_token_create(name="bench", scopes=[ApiToken.Scope.EVENTS_WRITE])
    run = f"r{time.time_ns()}"  # fresh ids, so every run writes new rows
    bodies, counts = make_bodies(events=args.events, batch=args.batch, mix=args.mix, run=run, seed=args.seed)
    warmup, _ = make_bodies(events=args.batch, batch=args.batch, mix=args.mix, run=f"warmup-{run}", seed=0)

    client = Client(HTTP_HOST=tenant.get_primary_domain().domain, HTTP_AUTHORIZATION=f"Bearer {raw_token}")

    def send(body: bytes) -> None:
        response = client.generic("POST", "/api/v1/events", body, content_type="application/json")
        if response.status_code != 200:
            raise SystemExit(f"POST failed with {response.status_code}: {response.content[:500]!r}")

    send(warmup[0])  # first-request costs (URL resolver, ClickHouse insert contexts) are not throughput
    months = stream_months()
    rows_before = rows_in_months(months)
    load_before = os.getloadavg()[0]
    durations = []
    started, cpu_started = time.perf_counter(), time.process_time()
    for body in bodies:
        t0 = time.perf_counter()
        send(body)
        durations.append(time.perf_counter() - t0)
    elapsed = time.perf_counter() - started
    # CPU seconds of this process (all its threads, chdb's included): less sensitive than wall
    # time to other work on the machine, which this benchmark cannot control.
    cpu = time.process_time() - cpu_started

    # The rows are really there: every posted event id, counted once.
    written = {
        table: tenant_query(
            f"SELECT count() FROM {table} FINAL"
            f" WHERE tenant_id = {{tenant_id:UInt32}} AND {column} LIKE {{run:String}}",
            {"run": f"{run}-%"},
            tenant_id=tenant.pk,
        ).result_rows[0][0]
        for table, column in (("web_events", "event_id"), ("message_events", "event_id"), ("sales_lines", "order_id"))
    }
    assert written["web_events"] == counts.get("web_event", 0), written
    assert written["message_events"] == counts.get("message_event", 0), written

    print(f"mix={args.mix} events={args.events:,} batch={args.batch:,} items by type={counts}")
    print(f"sales lines written: {written['sales_lines']:,}")
    already = ", ".join(f"{table} {rows:,}" for table, rows in rows_before.items())
    print(f"months the stream writes to: {', '.join(months)}; rows already there (every tenant's): {already}")
    print(f"wall {elapsed:.2f} s: {args.events / elapsed:,.0f} events/s")
    print(f"load average {load_before:.1f} before, {os.getloadavg()[0]:.1f} after")
    print(f"cpu {cpu:.2f} s (this process, all threads): {args.events / cpu:,.0f} events per CPU-second")
    print(
        f"per batch: median {statistics.median(durations) * 1000:.0f} ms, "
        f"max {max(durations) * 1000:.0f} ms ({len(durations)} batches)"
    )


if __name__ == "__main__":
    main()
