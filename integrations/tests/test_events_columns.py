"""The events API's whole-column checks (``events_columns``) against its per-item checks (``events_validate``).

The column path must accept exactly the batches the per-item path accepts, write the same rows,
and leave every bad batch to the per-item path, whose 400 report names each problem.
"""

from __future__ import annotations

import copy
import random
from datetime import UTC, datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal
from typing import Any
from zoneinfo import ZoneInfo

import pyarrow as pa
import pytest

from analytics.clickhouse.query import tenant_query
from integrations.events import services
from integrations.events.schema import BatchColumns, ParseContext, events_columns, events_parse, events_validate
from integrations.tests.test_events_api import NOTHING, a_batch, everything, expected_sales, post, to_json, token_for

MOSCOW = ZoneInfo("Europe/Moscow")
BERLIN = ZoneInfo("Europe/Berlin")  # has daylight saving time: naive times in its gaps and overlaps


def context(timezone=MOSCOW) -> ParseContext:
    return ParseContext.at(timezone=timezone, now=datetime.now(UTC))


def as_rows(batch: BatchColumns) -> dict[str, Any]:
    """What a batch writes, table by table, in row order."""
    tables = {
        name: pa.table(columns).select(sorted(columns)).to_pylist() if columns else []
        for name, columns in (
            ("sales_lines", batch.sales_lines),
            ("message_events", batch.message_events),
            ("web_events", batch.web_events),
        )
    }
    return {**tables, "customers": batch.customers, "items_by_type": dict(batch.items_by_type)}


def from_json(items: list) -> list:
    """Items as the API reads them: numbers with a fraction as Decimal."""
    return events_parse(to_json(items).encode(), ndjson=False)[0]


def shop_batch(seed: int, size: int = 400) -> list[dict]:
    """A stream like bench/bench_events_api.py's mixed one, plus order_line items and returns."""
    rng = random.Random(seed)
    now = datetime.now(UTC).replace(microsecond=0)
    items: list[dict] = []
    for n in range(size):
        ts = (now - timedelta(seconds=rng.randint(0, 3 * 86_400))).isoformat()
        kind = rng.choices(["web_event", "message_event", "order", "order_line", "customer"], [50, 25, 15, 5, 5])[0]
        if kind == "web_event":
            step = rng.choice(["visit", "category_view", "product_view", "add_to_cart", "checkout"])
            item = {"type": kind, "event_id": f"w{n}", "event_type": step, "ts": ts, "session_id": f"s{n // 4}"}
            item["customer_id"] = f"C{rng.randint(1, 50)}" if rng.random() < 0.6 else None
            if rng.random() < 0.5:
                item["platform"] = rng.choice(["web", "app"])
            if step == "category_view":
                item["category"] = rng.choice(["Shoes", "Обувь", "Sacs à main"])
            elif step in ("product_view", "add_to_cart"):
                item["product_id"] = f"SKU-{rng.randint(1, 99)}"
        elif kind == "message_event":
            item = {
                "type": kind,
                "event_id": f"m{n}",
                "event_type": rng.choice(["sent", "delivered", "opened", "clicked"]),
                "ts": ts,
                "customer_id": f"C{rng.randint(1, 50)}",
                "mailing_id": f"mailing-{rng.randint(1, 5)}",
                "channel": rng.choice(["email", "sms"]),
            }
            if rng.random() < 0.5:
                item["campaign_id"] = f"winback-{rng.randint(1, 3)}"
        elif kind in ("order", "order_line"):
            lines = []
            for _ in range(rng.randint(1, 4)):
                price = rng.randint(1, 20_000)
                line = {"product_id": f"SKU-{rng.randint(1, 99)}", "category": rng.choice(["Shoes", "Обувь"])}
                line["qty"] = rng.choice([1, 2, 3, "0.375", Decimal("1.5")])
                line["price"] = rng.choice([f"{price}.{rng.randint(0, 99):02d}", Decimal(f"{price}.5"), price])
                if rng.random() < 0.3:
                    line["discount"] = f"{price // 10}.00"
                if rng.random() < 0.1:
                    line["amount"] = f"{price}.00"
                lines.append(line)
            header = {"order_id": f"R{n}", "ts": ts, "customer_id": f"C{rng.randint(1, 50)}", "store": "Тверская"}
            if rng.random() < 0.2:
                header["is_return"] = True
            if kind == "order":
                item = {"type": kind, **header, "lines": lines}
            else:
                item = {"type": kind, **header, **lines[0], "line_no": rng.randint(1, 3)}
        else:
            item = {"type": kind, "customer_id": f"C{rng.randint(1, 50)}", "city": "Москва", "gender": "f"}
        items.append(item)
    return items


def good_items() -> dict[str, dict]:
    """One good item of each type, for the mutations below."""
    return {
        "order": {
            "type": "order",
            "order_id": "R-1",
            "ts": "2026-03-01T10:15:00+03:00",
            "customer_id": "C-1",
            "store": "Tverskaya",
            "lines": [
                {"product_id": "SKU-1", "qty": 2, "price": "4990.50"},
                {"product_id": "SKU-2", "qty": "0.375", "price": "800.00", "discount": "10.00"},
            ],
        },
        "order_line": {
            "type": "order_line",
            "order_id": "R-2",
            "line_no": 1,
            "ts": "2026-03-03T08:00:00Z",
            "amount": 5,
        },
        "message_event": {
            "type": "message_event",
            "event_id": "m-1",
            "event_type": "opened",
            "ts": "2026-03-01T09:00:00Z",
            "customer_id": "C-1",
            "mailing_id": "spring",
            "channel": "email",
        },
        "web_event": {
            "type": "web_event",
            "event_id": "w-1",
            "event_type": "product_view",
            "ts": "2026-03-01T09:05:00+00:00",
            "session_id": "s-1",
            "product_id": "SKU-1",
        },
        "customer": {"type": "customer", "customer_id": "C-1", "email": "anna@example.ru", "birth_date": "1990-05-01"},
    }


TIMESTAMPS = [
    "2026-03-01T10:15:00Z",
    "2026-03-01T10:15:00.5+05:30",
    "2026-03-01T10:15:00.123456-01:00",
    "2026-03-01T10:15:00.1234567Z",
    "2026-03-01T23:59:59+23:59",
    "2026-03-01T10:15:00",  # no zone: the workspace's
    "2026-03-29T02:30:00",  # in Berlin's spring gap
    "2026-10-25T02:30:00",  # in Berlin's autumn overlap
    "2026-03-01 10:15:00+03:00",
    "2026-03-01T10:15:00+0300",
    "2026-03-01T10:15:00z",
    "2026-03-01",
    "20260301T101500Z",
    "2026-02-29T10:00:00Z",
    "2024-02-29T10:00:00Z",
    "2026-03-01T24:00:00Z",
    "2026-03-01T10:15:00+24:00",
    "1969-12-31T23:59:59Z",
    "1970-01-01T00:00:00Z",
    "2999-01-01T00:00:00Z",
    "yesterday",
    "",
    None,
    1_700_000_000,
]
AMOUNTS = [
    "0.10",
    Decimal("0.1"),
    "1.000",
    "1.005",
    Decimal("1.005"),
    "1e2",
    Decimal("1E+2"),
    "1e-3",
    "+5",
    "-0",
    "-0.00",
    Decimal("-0.0"),
    "-1",
    -1,
    0,
    "0",
    ".5",
    "5.",
    " 5",
    "1_000",
    "١٢٣",
    "1,5",
    "NaN",
    "Infinity",
    "9999999999999999.99",
    "10000000000000000",
    10**16,
    10**30,
    True,
    "",
    None,
    [1],
]
TEXTS = [42, "x" * 200, "x" * 201, "Ботинки 👟", "", None, True, ["a"], "a@b.ru", "\ud800"]
MUTATIONS: list[tuple[str, str, Any]] = [
    *(("order", "ts", value) for value in TIMESTAMPS),
    *(("web_event", "ts", value) for value in TIMESTAMPS),
    *(("order", "lines[0].qty", value) for value in AMOUNTS),
    *(("order", "lines[1].price", value) for value in AMOUNTS),
    *(("order", "lines[1].discount", value) for value in AMOUNTS),
    *(("order_line", "amount", value) for value in AMOUNTS),
    *(("order", "lines[0].product_id", value) for value in TEXTS),
    *(("order", "store", value) for value in TEXTS),
    *(("order", "customer_id", value) for value in TEXTS),
    *(("web_event", "session_id", value) for value in TEXTS),
    *(("message_event", "campaign_id", value) for value in TEXTS),
    *(("message_event", "customer_id", value) for value in TEXTS),
    *(("order", "lines[0].line_no", value) for value in (1, 2, 3, 0, "1", True, 2**32 - 1, 2**32, 10**30, None)),
    *(("order_line", "line_no", value) for value in (7, 0, None, "")),
    *(("order", "is_return", value) for value in (True, False, None, "", "true", 1)),
    *(("order", "event_id", value) for value in ("e-1", 5, [1])),
    *(("order", "lines", value) for value in ([], "x", [1], [{}], [{"price": "1"}, {"price": "2", "line_no": 1}])),
    *(("order", "lines[0].amount", value) for value in ("3", None)),
    *(("order", "lines[1].discount", value) for value in ("301.00", "300.00")),  # 0.375 × 800 = 300
    *(("message_event", "event_type", value) for value in ("clicked", "Opened", "", None, "pigeon", 1)),
    *(("message_event", "channel", value) for value in ("sms", "pigeon", None)),
    *(("message_event", "mailing_id", value) for value in ("", None, 7)),
    *(("web_event", "event_type", value) for value in ("visit", "category_view", "add_to_cart")),
    *(("web_event", "platform", value) for value in ("app", "", None, "tv")),
    *(("web_event", "product_id", value) for value in ("", None, 9)),
    *(("customer", "email", value) for value in ("x", "", "b@c.de")),
    *(("customer", "birth_date", value) for value in ("1990-13-01", None)),
    *((kind, "customerId", "C-1") for kind in ("order", "order_line", "message_event", "web_event", "customer")),
    ("order", "lines[0].qty_", 1),
    ("order", "type", "refund"),
    ("web_event", "type", 5),
]


def mutated(kind: str, path: str, value: Any) -> list:
    """The good items with one field of one of them set to ``value`` (``None`` as JSON null)."""
    items = copy.deepcopy(good_items())
    target = items[kind]
    if path.startswith("lines["):
        position, path = path[len("lines[") :].split("].")
        target = target["lines"][int(position)]
    target[path] = value
    return list(items.values())


@pytest.mark.parametrize("timezone", [MOSCOW, BERLIN], ids=["moscow", "berlin"])
@pytest.mark.parametrize(("kind", "path", "value"), MUTATIONS, ids=repr)
def test_the_columns_accept_exactly_what_the_per_item_checks_accept_with_the_same_rows(kind, path, value, timezone):
    items = mutated(kind, path, value)
    ctx = context(timezone)
    columns = events_columns(items, context=ctx)
    records, errors = events_validate(items, context=ctx)
    if errors:
        assert columns is None
    else:
        assert columns is not None  # the fast path took it
        assert as_rows(columns) == as_rows(records.columns())


@pytest.mark.parametrize(
    ("qty", "price", "discount", "amount"),
    [
        ("0.333", "0.15", "0", Decimal("0.05")),  # 0.04995
        ("0.5", "0.01", "0", Decimal("0.01")),  # 0.005: halves round up
        ("1.5", "0.01", "0", Decimal("0.02")),  # 0.015
        ("0.001", "0.01", "0", Decimal("0.00")),
        ("0.6", "0.01", "0.01", Decimal("0.00")),  # −0.004 rounds to 0: accepted
        ("0.5", "0.01", "0.01", None),  # −0.005 rounds away from zero to −0.01: the discount is too large
        ("3", "3333.33", "0.01", Decimal("9999.98")),
    ],
)
def test_computed_amounts_round_half_up_to_kopecks_like_the_per_item_checks(qty, price, discount, amount):
    items = [
        {
            "type": "order",
            "order_id": "R",
            "ts": "2026-03-01T10:00:00Z",
            "lines": [{"qty": qty, "price": price, "discount": discount}],
        }
    ]
    columns = events_columns(items, context=context())
    records, errors = events_validate(items, context=context())
    if amount is None:
        assert columns is None
    else:
        assert not errors
        assert records.sales_lines[0].amount == amount
        assert columns.sales_lines["amount"].to_pylist() == [amount]
        assert as_rows(columns) == as_rows(records.columns())


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_a_shop_stream_gives_the_same_rows_on_both_paths(seed):
    items = from_json(shop_batch(seed))
    columns = events_columns(items, context=context())
    records, errors = events_validate(items, context=context())
    assert not errors
    assert columns is not None
    assert as_rows(columns) == as_rows(records.columns())
    assert columns.sales_line_count == len(records.sales_lines) > 0


def test_of_two_copies_of_a_line_the_later_item_is_written_last_on_both_paths():
    """An order and an order_line with one key: the rows stay in item order, so the later copy wins."""
    order = {"type": "order", "order_id": "R", "ts": "2026-03-01T10:00:00Z", "lines": [{"amount": "1.00"}]}
    flat = {"type": "order_line", "order_id": "R", "line_no": 1, "ts": "2026-03-01T10:00:00Z", "amount": "2.00"}
    third = {**order, "lines": [{"amount": "3.00"}]}
    for items, amounts in (
        ([order, flat], ["1.00", "2.00"]),
        ([flat, order], ["2.00", "1.00"]),
        ([order, flat, third], ["1.00", "2.00", "3.00"]),
    ):
        columns = events_columns(items, context=context())
        records, _errors = events_validate(items, context=context())
        assert columns.sales_lines["amount"].to_pylist() == [Decimal(amount) for amount in amounts]
        assert as_rows(columns) == as_rows(records.columns())


def fact_rows(tenant) -> dict[str, list]:
    """Every column of the tenant's fact rows but the tenant and the ingest version, sorted."""
    return {
        table: sorted(
            tenant_query(
                f"SELECT * EXCEPT (tenant_id, version) FROM {table} FINAL WHERE tenant_id = {{tenant_id:UInt32}}",
                tenant_id=tenant.pk,
            ).result_rows
        )
        for table in ("sales_lines", "message_events", "web_events", "customer_attributes")
    }


def test_the_api_writes_the_same_rows_whichever_path_a_batch_takes(make_tenant, client, monkeypatch):
    fast, slow = make_tenant(), make_tenant()
    batches = [a_batch(), shop_batch(7, size=600)]
    validated = []  # batches that reached the per-item checks
    real_validate = services.events_validate

    def validate(items, **kwargs):
        validated.append(items)
        return real_validate(items, **kwargs)

    monkeypatch.setattr(services, "events_validate", validate)
    for batch in batches:
        response = post(client, fast, token_for(fast), batch)
        assert response.status_code == 200, response.content
    assert validated == []  # both took the column path

    # The whole-column checks switched off: every batch takes the per-item path.
    monkeypatch.setattr(services, "events_columns", lambda items, *, context: None)
    for batch in batches:
        assert post(client, slow, token_for(slow), batch).status_code == 200
    assert len(validated) == len(batches)

    assert fact_rows(fast) == fact_rows(slow)
    assert fact_rows(fast)["sales_lines"]
    assert everything(fast) == everything(slow) != NOTHING
    # And both equal totals computed straight from the payloads (each batch's orders have their own ids).
    expected = {"rows": 0, "amount": Decimal(0), "qty": Decimal(0), "discount": Decimal(0)}
    for batch in batches:
        for key, value in expected_sales(batch).items():
            expected[key] += value
    assert everything(fast)["sales"] == expected


def test_a_stream_posted_twice_and_as_ndjson_leaves_the_totals_unchanged(tenant_en, client):
    token, batch = token_for(tenant_en), shop_batch(11, size=800)
    assert post(client, tenant_en, token, batch).status_code == 200
    once = everything(tenant_en)
    rows = fact_rows(tenant_en)
    assert once["sales"] == expected_sales(batch)
    assert post(client, tenant_en, token, batch).status_code == 200
    assert post(client, tenant_en, token, batch, ndjson=True).status_code == 200
    assert everything(tenant_en) == once
    assert fact_rows(tenant_en) == rows


@pytest.fixture
def tenant_en(make_tenant):
    return make_tenant(locale="en")


def bad_batch() -> list:
    """Problems of several kinds, in items of every type, among good items."""
    good = good_items()
    return [
        good["order"],
        {**good["message_event"], "ts": "2026-03-01T10:15:00+24:00", "channel": "pigeon"},
        good["web_event"],
        {**good["order"], "lines": [{"qty": 1, "price": "1.005"}, {"qty": 0, "price": "1", "line_no": 1}]},
        {**good["web_event"], "event_type": "category_view"},
        {**good["customer"], "email": "not-an-address"},
        {**good["order_line"], "amount": "-5", "customerId": "C-1"},
        good["message_event"],
        {**good["order"], "customer_id": "anna@example.ru", "ts": "2026-02-30T10:00:00Z"},
        {"type": "refund"},
        "an order",
    ]


@pytest.mark.parametrize("ndjson", [False, True], ids=["json", "ndjson"])
def test_a_bad_batch_is_reported_item_by_item_and_nothing_is_written(tenant_en, client, ndjson):
    batch = bad_batch()
    response = post(client, tenant_en, token_for(tenant_en), batch, ndjson=ndjson)

    assert response.status_code == 400
    reported = response.json()["extra"]["errors"]
    assert [(error["index"], error["field"]) for error in reported] == [
        (1, "ts"),
        (1, "channel"),
        (3, "lines[0].price"),
        (3, "lines[1].qty"),
        (3, "lines[1].line_no"),
        (4, "category"),
        (5, "email"),
        (6, "amount"),
        (6, "customerId"),
        (8, "ts"),
        (8, "customer_id"),
        (9, "type"),
        (10, None),
    ]
    # Exactly the per-item checks' report: reasons, values and (NDJSON) line numbers included.
    items, line_numbers = events_parse(
        ("\n".join(to_json(item) for item in batch) if ndjson else to_json(batch)).encode(), ndjson=ndjson
    )
    _records, errors = events_validate(items, context=context(), line_numbers=line_numbers)
    assert reported == [error.as_dict() for error in errors]
    assert all(error["reason"] for error in reported)
    assert ("line" in reported[0]) is ndjson
    assert response.json()["extra"]["invalid_items"] == 8
    assert response.json()["message"].startswith("8 of 11 items are invalid")
    assert everything(tenant_en) == NOTHING


def test_json_numbers_stay_exact_through_the_columns():
    body = b'[{"type": "order_line", "order_id": "R", "line_no": 1, "ts": "2026-03-01T10:00:00Z",'
    body += b' "qty": 0.375, "price": 99999999999999.99, "discount": 1e1}]'
    items, _lines = events_parse(body, ndjson=False)
    columns = events_columns(items, context=context())
    assert columns.sales_lines["price"].to_pylist() == [Decimal("99999999999999.99")]
    computed = (Decimal("0.375") * Decimal("99999999999999.99") - 10).quantize(Decimal("0.01"), ROUND_HALF_UP)
    assert columns.sales_lines["amount"].to_pylist() == [computed]
    assert as_rows(columns) == as_rows(events_validate(items, context=context())[0].columns())
