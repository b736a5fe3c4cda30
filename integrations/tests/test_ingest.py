"""The shared write path: signs, idempotency by key, PII kept out of ClickHouse."""

from datetime import UTC, date, datetime
from decimal import Decimal

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest
from django_tenants.utils import tenant_context

from analytics.clickhouse.query import tenant_query
from integrations.ingest import Customer, SalesLine, customers_write, sales_lines_write
from integrations.models import Contact

TS = datetime(2026, 3, 1, 9, 30, tzinfo=UTC)


def sample_lines() -> list[SalesLine]:
    return [
        SalesLine(
            order_id="R1",
            line_no=1,
            ts=TS,
            amount=Decimal("199.90"),
            qty=Decimal(2),
            price=Decimal("99.95"),
            customer_id="c1",
            store="Tverskaya",
            category="Shoes",
        ),
        SalesLine(order_id="R1", line_no=2, ts=TS, amount=Decimal("50.00"), discount=Decimal("5.00"), customer_id="c1"),
        SalesLine(
            order_id="RET1",
            line_no=1,
            ts=TS,
            amount=Decimal("99.95"),
            qty=Decimal(1),
            price=Decimal("99.95"),
            customer_id="c1",
            is_return=True,
        ),
    ]


def totals(tenant_id: int) -> tuple:
    return tenant_query(
        "SELECT count(), sum(amount), sum(qty), sum(discount) FROM sales_lines FINAL"
        " WHERE tenant_id = {tenant_id:UInt32}",
        tenant_id=tenant_id,
    ).result_rows[0]


def test_returns_are_negative_and_rewrites_do_not_double_count(make_tenant):
    a, b = make_tenant(), make_tenant()
    lines = sample_lines()
    sales_lines_write(lines, source="test", tenant_id=a.pk)
    sales_lines_write(lines, source="test", tenant_id=a.pk)  # the same data again

    frame = pd.DataFrame([{"amount": x.amount, "qty": x.qty, "sign": -1 if x.is_return else 1} for x in lines])
    expected_amount = (frame.amount * frame.sign).sum()
    expected_qty = (frame.qty * frame.sign).sum()
    assert totals(a.pk) == (3, expected_amount, expected_qty, Decimal("5.00"))
    assert totals(b.pk) == (0, 0, 0, 0)


def test_customers_keep_pii_in_postgres_only(make_tenant):
    tenant = make_tenant()
    customer = Customer(
        customer_id="c1",
        first_name="Анна",
        last_name="Иванова",
        email="anna@example.ru",
        phone="+79991234567",
        gender="f",
        birth_date=date(1990, 5, 1),
        city="Москва",
        consent_email=True,
    )
    with tenant_context(tenant):
        customers_write([customer], source="test")
        customers_write([customer], source="test")
        contact = Contact.objects.get(customer_id="c1")
        assert (contact.email, contact.phone, contact.last_name) == ("anna@example.ru", "+79991234567", "Иванова")
        assert Contact.objects.count() == 1
    rows = tenant_query(
        "SELECT * FROM customer_attributes FINAL WHERE tenant_id = {tenant_id:UInt32}", tenant_id=tenant.pk
    )
    assert len(rows.result_rows) == 1
    record = dict(zip(rows.column_names, rows.result_rows[0], strict=True))
    assert (record["gender"], record["birth_year"], record["city"], record["email_reachable"]) == (
        "f",
        1990,
        "Москва",
        1,
    )
    assert record["sms_reachable"] == 0  # a phone without SMS consent is not reachable
    flat = " ".join(map(str, record.values()))
    for pii in ("Анна", "Иванова", "anna@example.ru", "+79991234567"):
        assert pii not in flat


def test_a_returned_markup_gives_a_positive_discount_in_both_write_paths(make_tenant):
    """Sale with a markup (negative discount) returned: stored discounts cancel out, row and columnar alike."""
    import pyarrow as pa

    from integrations.ingest import SALES_LINE_COLUMNS, facts_bulk_write, ingest_version, sales_lines_batch

    a, b = make_tenant(), make_tenant()
    lines = [
        SalesLine(order_id="S", line_no=1, ts=TS, amount=Decimal("110"), discount=Decimal("-10"), price=Decimal(100)),
        SalesLine(
            order_id="R",
            line_no=1,
            ts=TS,
            amount=Decimal("110"),
            discount=Decimal("-10"),
            price=Decimal(100),
            is_return=True,
        ),
        SalesLine(
            order_id="R2",
            line_no=1,
            ts=TS,
            amount=Decimal("-50"),
            discount=Decimal("-5"),
            price=Decimal(55),
            is_return=True,
        ),  # already negated by its source: kept as given
    ]
    sales_lines_write(lines, source="test", tenant_id=a.pk)
    decimal = pa.decimal128(18, 2)
    columns = {
        name: pa.array([getattr(line, name) for line in lines], type=decimal)
        for name in ("amount", "discount", "price")
    }
    columns["qty"] = pa.array([line.qty for line in lines], type=pa.decimal128(18, 3))
    columns["is_return"] = pa.array([line.is_return for line in lines])
    columns["ts"] = pa.array([line.ts for line in lines], type=pa.timestamp("ms", tz="UTC"))
    columns["line_no"] = pa.array([line.line_no for line in lines], type=pa.uint32())
    for name in SALES_LINE_COLUMNS:
        if name not in columns and name not in ("source", "version"):
            columns[name] = pa.array([getattr(line, name) for line in lines], type=pa.string())
    facts_bulk_write(
        "sales_lines", [sales_lines_batch(columns, source="test", version=ingest_version())], tenant_id=b.pk
    )
    for tenant in (a, b):
        rows = tenant_query(
            "SELECT order_id, discount, amount FROM sales_lines FINAL WHERE tenant_id = {tenant_id:UInt32}"
            " ORDER BY order_id",
            tenant_id=tenant.pk,
        ).result_rows
        assert rows == [
            ("R", Decimal(10), Decimal(-110)),
            ("R2", Decimal(-5), Decimal(-50)),
            ("S", Decimal(-10), Decimal(110)),
        ]


def test_a_customer_twice_in_one_batch_keeps_the_last_record(make_tenant):
    tenant = make_tenant()
    with tenant_context(tenant):
        customers_write(
            [Customer(customer_id="c1", city="Тула"), Customer(customer_id="c1", city="Омск")], source="test"
        )
        assert list(Contact.objects.values_list("customer_id", "city")) == [("c1", "Омск")]


# --- Bulk writes go through a staging table -------------------------------------------------------------------


def sales_frame(rows: int, prefix: str, seed: int) -> pd.DataFrame:
    """Sales lines over three months (four partitions), a tenth of them returns; amounts in kopecks."""
    rng = np.random.default_rng(seed)
    return pd.DataFrame(
        {
            "order_id": [f"{prefix}{i // 3}" for i in range(rows)],
            "line_no": [i % 3 + 1 for i in range(rows)],
            "ts": pd.Timestamp("2026-01-15", tz="UTC") + pd.to_timedelta(np.arange(rows) * (90 * 86_400 // rows), "s"),
            "kopecks": rng.integers(100, 100_000, rows),
            "is_return": rng.random(rows) < 0.1,
            "store": rng.choice(["Tverskaya", "Arbat", "Online"], rows),
        }
    )


def frame_batches(frame: pd.DataFrame, batch_rows: int) -> list[pa.RecordBatch]:
    from integrations.ingest import SALES_LINE_COLUMNS, ingest_version, sales_lines_batch

    version = ingest_version()
    batches = []
    for start in range(0, len(frame), batch_rows):
        part = frame.iloc[start : start + batch_rows]
        amount = pa.array([Decimal(int(k)).scaleb(-2) for k in part["kopecks"]], pa.decimal128(18, 2))
        columns = {name: pa.array([""] * len(part)) for name in SALES_LINE_COLUMNS if name not in ("source", "version")}
        columns |= {
            "order_id": pa.array(part["order_id"]),
            "store": pa.array(part["store"]),
            "line_no": pa.array(part["line_no"], pa.uint32()),
            "ts": pa.array(part["ts"], pa.timestamp("ms", tz="UTC")),
            "qty": pa.array([Decimal(1)] * len(part), pa.decimal128(18, 3)),
            "price": amount,
            "discount": pa.array([Decimal(0)] * len(part), pa.decimal128(18, 2)),
            "amount": amount,
            "is_return": pa.array(part["is_return"]),
        }
        batches.append(sales_lines_batch(columns, source="test", version=version))
    return batches


def monthly_totals(tenant_id: int) -> dict[tuple[str, str], tuple[int, Decimal]]:
    rows = tenant_query(
        "SELECT toString(toYYYYMM(ts)), store, count(), sum(amount) FROM sales_lines FINAL"
        " WHERE tenant_id = {tenant_id:UInt32} GROUP BY 1, 2",
        tenant_id=tenant_id,
    ).result_rows
    return {(month, store): (count, amount) for month, store, count, amount in rows}


def expected_monthly_totals(frame: pd.DataFrame) -> dict[tuple[str, str], tuple[int, Decimal]]:
    signed = frame["kopecks"].where(~frame["is_return"], -frame["kopecks"])
    grouped = signed.groupby([frame["ts"].dt.strftime("%Y%m"), frame["store"]]).agg(["count", "sum"])
    return {key: (int(row["count"]), Decimal(int(row["sum"])).scaleb(-2)) for key, row in grouped.iterrows()}


def staging_tables() -> list:
    from analytics.clickhouse.client import get_client
    from analytics.clickhouse.query import STAGING_PREFIX

    sql = "SELECT name FROM system.tables WHERE database = currentDatabase() AND startsWith(name, {prefix:String})"
    return get_client().query(sql, parameters={"prefix": STAGING_PREFIX}).result_rows


def test_a_bulk_write_is_staged_in_pieces_and_lands_whole_once(make_tenant, monkeypatch):
    import analytics.clickhouse.query
    from integrations.ingest import facts_bulk_write

    monkeypatch.setattr(analytics.clickhouse.query, "STAGE_ROWS", 50)  # eight INSERTs into the staging table
    a, b = make_tenant(), make_tenant()
    frame_a, frame_b = sales_frame(400, "A", seed=1), sales_frame(120, "B", seed=2)
    assert facts_bulk_write("sales_lines", frame_batches(frame_b, 30), tenant_id=b.pk) == 120
    for _attempt in range(2):  # the same rows again (a newer version) replace, never add
        assert facts_bulk_write("sales_lines", frame_batches(frame_a, 30), tenant_id=a.pk) == 400
        assert monthly_totals(a.pk) == expected_monthly_totals(frame_a)
    assert {month for month, _store in expected_monthly_totals(frame_a)} == {"202601", "202602", "202603", "202604"}
    assert monthly_totals(b.pk) == expected_monthly_totals(frame_b)
    assert staging_tables() == []


def test_a_bulk_write_failing_after_some_pieces_were_staged_leaves_the_table_untouched(make_tenant, monkeypatch):
    import analytics.clickhouse.query
    from integrations.ingest import facts_bulk_write

    monkeypatch.setattr(analytics.clickhouse.query, "STAGE_ROWS", 50)
    a, b = make_tenant(), make_tenant()
    frame_b = sales_frame(120, "B", seed=2)
    facts_bulk_write("sales_lines", frame_batches(frame_b, 30), tenant_id=b.pk)

    def failing_late():
        yield from frame_batches(sales_frame(400, "A", seed=1), 30)  # all of it staged by now
        raise RuntimeError("injected: a bad row at the end of the file")

    with pytest.raises(RuntimeError, match="injected"):
        facts_bulk_write("sales_lines", failing_late(), tenant_id=a.pk)
    assert monthly_totals(a.pk) == {}
    assert monthly_totals(b.pk) == expected_monthly_totals(frame_b)
    assert staging_tables() == []
