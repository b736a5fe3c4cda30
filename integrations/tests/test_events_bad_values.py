"""Values no store can take — NUL, lone UTF-16 surrogates, numbers and timestamps beyond the columns' range —
are refused with a 400 (events API) or a row-level report entry (file import), and nothing is written.

ClickHouse holds money as Decimal(18, 2), quantities as Decimal(18, 3), times as DateTime64; Postgres text
holds no NUL; UTF-8 has no lone surrogates. Each such value used to pass the checks and fail at the write
(a 500) or, for a computed amount, to raise while it was rounded.
"""

from __future__ import annotations

import json
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from django.core.management import CommandError
from django_tenants.utils import tenant_context

from analytics.clickhouse.query import tenant_query
from integrations.events.schema import events_columns, events_parse, events_validate
from integrations.models import ImportRun
from integrations.tests.test_events_api import a_batch, everything, post, to_json, token_for
from integrations.tests.test_events_columns import as_rows, context, good_items, mutated
from integrations.tests.test_files_import import contact_count, import_file, last_run, sales_csv, totals

MONEY_MAX = "9999999999999999.99"  # the largest Decimal(18, 2)
QTY_MAX = "999999999999999.999"  # the largest Decimal(18, 3)
SURROGATE, NUL = "\ud800", "\x00"
AMOUNT_TOO_LARGE = "qty × price − discount does not fit"
NOT_A_FINITE_NUMBER = "is not a finite number below"
OUT_OF_RANGE_TS = "is before 1970 or more than a day in the future"

# (item type, field path, value, the reported field, a part of the reason)
BAD_VALUES: list[tuple[str, str, Any, str, str]] = [
    ("order", "store", f"Tver{SURROGATE}skaya", "store", "lone UTF-16 surrogate (\\ud800) at character 5"),
    ("order", "order_id", "R\udfff", "order_id", "lone UTF-16 surrogate (\\udfff) at character 2"),
    ("order", "customer_id", f"C{NUL}1", "customer_id", "NUL character (\\u0000) at character 2"),
    ("order", "lines[1].product_name", f"{NUL}", "lines[1].product_name", "NUL character"),
    ("order_line", "category", f"Shoes{SURROGATE}", "category", "lone UTF-16 surrogate"),
    ("message_event", "mailing_id", f"spring{NUL}", "mailing_id", "NUL character"),
    ("web_event", "session_id", SURROGATE, "session_id", "lone UTF-16 surrogate"),
    ("customer", "first_name", f"An{NUL}na", "first_name", "NUL character (\\u0000) at character 3"),
    ("customer", "email", f"an{SURROGATE}na@example.ru", "email", "lone UTF-16 surrogate"),
    ("customer", "phone", f"+7999{NUL}", "phone", "NUL character"),
    # qty × price beyond Decimal(18, 2): used to raise decimal.InvalidOperation while rounded, or to wrap.
    ("order", "lines[0]", {"qty": QTY_MAX, "price": MONEY_MAX}, "lines[0].amount", AMOUNT_TOO_LARGE),
    ("order_line", "*", {"qty": 1000, "price": MONEY_MAX, "amount": None}, "amount", AMOUNT_TOO_LARGE),
    ("order", "lines[0]", {"qty": "1.005", "price": "9950248756218905.47"}, "lines[0].amount", AMOUNT_TOO_LARGE),
    # Each money and quantity field one unit past its column.
    ("order", "lines[0].qty", "1000000000000000", "lines[0].qty", NOT_A_FINITE_NUMBER),
    ("order", "lines[0].qty", Decimal("1E+15"), "lines[0].qty", NOT_A_FINITE_NUMBER),
    ("order", "lines[1].price", "10000000000000000.00", "lines[1].price", NOT_A_FINITE_NUMBER),
    ("order", "lines[1].discount", 10**16, "lines[1].discount", NOT_A_FINITE_NUMBER),
    ("order_line", "amount", Decimal("1E+400"), "amount", NOT_A_FINITE_NUMBER),
    # Timestamps whose conversion to UTC leaves datetime's range (used to raise OverflowError).
    ("order", "ts", "0001-01-01T00:00:00+01:00", "ts", OUT_OF_RANGE_TS),
    ("message_event", "ts", "0001-01-01T02:00:00", "ts", OUT_OF_RANGE_TS),  # naive: Moscow time
    ("web_event", "ts", "9999-12-31T23:59:59-01:00", "ts", OUT_OF_RANGE_TS),
    ("customer", "created_at", "0001-01-01T00:00:00+05:00", "created_at", OUT_OF_RANGE_TS),
]


def bad_items(kind: str, path: str, value: Any) -> list:
    """The good items of every type, the one of ``kind`` with ``value`` at ``path``: a field, ``lines[0]`` (the
    first line replaced) or ``*`` (fields merged into the item)."""
    if path not in ("lines[0]", "*"):
        return mutated(kind, path, value)
    items = good_items()
    if path == "lines[0]":
        items[kind]["lines"][0] = value
    else:
        items[kind].update(value)
    return list(items.values())


def body_of(items: list, *, ndjson: bool) -> bytes:
    return ("\n".join(to_json(item) for item in items) + "\n" if ndjson else to_json(items)).encode()


@pytest.fixture
def tenant_with_data(make_tenant, client):
    """An English-speaking workspace that already holds one batch."""
    tenant = make_tenant(locale="en")
    baseline = [{**item, "order_id": f"B-{item['order_id']}"} if "order_id" in item else item for item in a_batch()]
    assert post(client, tenant, token_for(tenant), baseline).status_code == 200
    return tenant


@pytest.mark.parametrize("ndjson", [False, True], ids=["json", "ndjson"])
def test_each_bad_value_is_a_400_naming_its_item_and_field_and_nothing_is_written(tenant_with_data, client, ndjson):
    tenant, token = tenant_with_data, token_for(tenant_with_data)
    before = everything(tenant)
    kinds = list(good_items())
    for kind, path, value, field, reason in BAD_VALUES:
        case = f"{kind}.{path}={value!r}"
        items = bad_items(kind, path, value)
        response = post(client, tenant, token, body_of(items, ndjson=ndjson), ndjson=ndjson)

        assert response.status_code == 400, case
        [error] = response.json()["extra"]["errors"]
        assert (error["index"], error["field"]) == (kinds.index(kind), field), case
        assert reason in error["reason"], case
        assert error.get("line") == (kinds.index(kind) + 1 if ndjson else None), case
        assert "nothing was written" in response.json()["message"], case
        # The other items are good and new (other ids than the data already there): none was written.
        assert everything(tenant) == before, case
        with tenant_context(tenant):
            run = ImportRun.objects.latest("started_at")
        assert (run.status, run.rows_written, run.rows_rejected) == ("failed", 0, 1), case
        assert [(e["row"], e["column"]) for e in run.errors] == [(kinds.index(kind), field)], case

        # The column path refuses the batch too, so the report is the per-item checks' own.
        parsed, line_numbers = events_parse(body_of(items, ndjson=ndjson), ndjson=ndjson)
        assert events_columns(parsed, context=context()) is None, case
        _records, errors = events_validate(parsed, context=context(), line_numbers=line_numbers)
        assert [e.as_dict() for e in errors] == response.json()["extra"]["errors"], case


@pytest.mark.parametrize("ndjson", [False, True], ids=["json", "ndjson"])
def test_a_key_or_value_no_store_takes_is_shown_escaped_in_the_report(tenant_with_data, client, ndjson):
    """The report itself must be writable: a surrogate cannot be encoded, a NUL cannot go into jsonb."""
    tenant = tenant_with_data
    before = everything(tenant)
    items = list(good_items().values())
    items[2] = {**items[2], f"x{SURROGATE}": 1, f"y{NUL}": 2, "event_type": f"visit{NUL}"}
    response = post(client, tenant, token_for(tenant), body_of(items, ndjson=ndjson), ndjson=ndjson)

    assert response.status_code == 400
    reported = {(e["index"], e["field"], e["value"]) for e in response.json()["extra"]["errors"]}
    assert reported == {(2, "x\\ud800", None), (2, "y\\u0000", None), (2, "event_type", "visit\\u0000")}
    with tenant_context(tenant):
        run = ImportRun.objects.latest("started_at")
    assert {(e["row"], e["column"], e["value"]) for e in run.errors} == reported
    assert everything(tenant) == before


@pytest.mark.parametrize("ndjson", [False, True], ids=["json", "ndjson"])
@pytest.mark.parametrize(
    ("item_text", "reason"),
    [
        ('{"type": "order_line", "line_no": ' + "1" * 5000 + "}", "a number has more than 4300 digits"),
        ("[" * 100_000 + "]" * 100_000, "arrays or objects are nested too deeply"),
    ],
    ids=["long_integer", "deep_nesting"],
)
def test_json_beyond_the_decoders_limits_is_a_400(tenant_with_data, client, ndjson, item_text, reason):
    tenant = tenant_with_data
    before = everything(tenant)
    good = to_json(good_items()["order"])
    body = f"{good}\n{item_text}\n" if ndjson else f"[{good}, {item_text}]"
    response = post(client, tenant, token_for(tenant), body.encode(), ndjson=ndjson)

    assert response.status_code == 400
    assert reason in response.json()["message"]
    assert response.json()["message"].startswith("Line 2 is not valid JSON" if ndjson else "The body is not valid JSON")
    assert everything(tenant) == before


def test_the_largest_values_the_columns_hold_are_written_exactly_on_both_paths(make_tenant, client):
    items = [
        {
            "type": "order",
            "order_id": "MAX",
            "ts": "2026-03-01T10:00:00Z",
            "lines": [
                {"qty": QTY_MAX, "price": "0.01", "discount": "0.00", "amount": MONEY_MAX},
                {"qty": "1", "price": MONEY_MAX, "discount": MONEY_MAX},  # computed: 0.00
                {"qty": "1", "price": MONEY_MAX},  # computed: the largest amount, exactly
                # 1.005 × 9950248756218905.46 = 9999999999999999.9872…: rounds to the largest amount, not over it
                {"qty": "1.005", "price": "9950248756218905.46"},
            ],
        }
    ]
    parsed = events_parse(body_of(items, ndjson=False), ndjson=False)[0]
    columns = events_columns(parsed, context=context())
    records, errors = events_validate(parsed, context=context())
    assert not errors
    assert columns is not None
    assert as_rows(columns) == as_rows(records.columns())

    tenant = make_tenant(locale="en")
    assert post(client, tenant, token_for(tenant), items).status_code == 200
    rows = tenant_query(
        "SELECT line_no, qty, price, discount, amount FROM sales_lines FINAL WHERE tenant_id = {tenant_id:UInt32}"
        " ORDER BY line_no",
        tenant_id=tenant.pk,
    ).result_rows
    money_max, qty_max = Decimal(MONEY_MAX), Decimal(QTY_MAX)
    assert rows == [
        (1, qty_max, Decimal("0.01"), Decimal(0), money_max),
        (2, Decimal(1), money_max, money_max, Decimal(0)),
        (3, Decimal(1), money_max, Decimal(0), money_max),
        (4, Decimal("1.005"), Decimal("9950248756218905.46"), Decimal(0), money_max),
    ]


# --- File import ---------------------------------------------------------------------------------------------

GOOD_ROW = "F1,2026-03-01,10,1,0,Store 1\n"
# Bigger than the sample the reader sniffs for binary data (1 MiB), so that a NUL further on reaches the parser.
FILLER_ROWS = 60_000


def _file_cases(tmp_path: Path) -> list[tuple[str, Path, str, int, str, str]]:
    """(case, file, kind, row, column, a part of the reason)."""
    cases = []

    def add(case: str, kind: str, text: str, row: int, column: str, reason: str) -> None:
        path = tmp_path / f"{case}.csv"
        path.write_bytes(text.encode())
        cases.append((case, path, kind, row, column, reason))

    sales = "order_id,ts,amount,qty,is_return,store\n" + GOOD_ROW
    add("amount_1e30", "sales", sales + "F2,2026-03-01,1e30,1,0,S\n", 3, "amount", "too large")
    add("return_amount_1e400", "sales", sales + "F2,2026-03-01,-1e400,1,1,S\n", 3, "amount", "too large")
    add("qty_1e20", "sales", sales + "F2,2026-03-01,1,1e20,0,S\n", 3, "qty", "too large")
    add("ts_year_1", "sales", sales + "F2,0001-01-01T00:00:00+01:00,1,1,0,S\n", 3, "ts", "out of range")
    add("ts_year_9999", "sales", sales + "F2,9999-12-31T23:59:59-01:00,1,1,0,S\n", 3, "ts", "out of range")
    filler = "".join(f"F{row},2026-03-01,1,1,0,Store\n" for row in range(3, FILLER_ROWS + 1))
    add("nul_in_store", "sales", sales + filler + "FX,2026-03-01,1,1,0,St\x00re\n", FILLER_ROWS + 1, "store", "NUL")
    customers = "customer_id,first_name,email,created_at\nc1,Anna,anna@example.ru,2020-01-01\n"
    add(
        "created_at_year_1",
        "customers",
        customers + "c2,Petr,petr@example.ru,0001-01-01T00:00:00+05:00\n",
        3,
        "created_at",
        "out of range",
    )
    people = "".join(f"c{row},Name,c{row}@example.ru,2020-01-01\n" for row in range(3, FILLER_ROWS + 1))
    add("nul_in_name", "customers", customers + people + "cx,Ol\x00ga,,\n", FILLER_ROWS + 1, "first_name", "NUL")
    return cases


def test_each_bad_value_in_a_file_gets_a_row_level_entry_and_nothing_is_committed(make_tenant, tmp_path):
    tenant = make_tenant(locale="en")
    import_file(tenant, sales_csv(tmp_path / "baseline.csv", 30, seed=5))
    people = tmp_path / "people.csv"
    people.write_text("customer_id,first_name,email\nbase1,Vera,vera@example.ru\n")
    import_file(tenant, people, "customers")
    before, contacts_before = totals(tenant), contact_count(tenant)
    assert contacts_before == 1
    for case, path, kind, row, column, reason in _file_cases(tmp_path):
        with pytest.raises(CommandError):
            import_file(tenant, path, kind)
        run = last_run(tenant)
        assert run.status == "failed", case
        assert [(e["row"], e["column"]) for e in run.errors] == [(row, column)], f"{case}: {run.errors}"
        assert reason in run.errors[0]["reason"], case
        assert "\x00" not in json.dumps(run.errors), case  # jsonb takes no NUL: the report shows it escaped
        assert totals(tenant) == before, case
        assert contact_count(tenant) == contacts_before, case
