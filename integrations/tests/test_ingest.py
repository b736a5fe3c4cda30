"""The shared write path: signs, idempotency by key, PII kept out of ClickHouse."""

from datetime import UTC, date, datetime
from decimal import Decimal

import pandas as pd
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
