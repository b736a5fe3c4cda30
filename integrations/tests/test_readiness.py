"""The readiness report against an independent pandas computation over the same rows."""

import json
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pandas as pd
import pytest
from django.core.management import CommandError, call_command
from django_tenants.utils import tenant_context

from integrations.ingest import Customer, SalesLine, customers_write, sales_lines_write
from integrations.readiness import readiness_report


def make_lines() -> list[SalesLine]:
    start = datetime(2025, 1, 6, 9, 0, tzinfo=UTC)  # 12:00 in Moscow
    lines = []
    for day in range(0, 400, 3):
        ts = start + timedelta(days=day)
        customer = f"c{day % 7}" if day % 5 else ""  # every fifth receipt anonymous
        lines.append(
            SalesLine(
                order_id=f"o{day}",
                line_no=1,
                ts=ts,
                amount=Decimal("120.50"),
                customer_id=customer,
                store=f"s{day % 3}",
                employee=f"e{day % 4}",
                qty=Decimal(1),
                price=Decimal("120.50"),
            )
        )
    lines.append(
        SalesLine(order_id="r1", line_no=1, ts=start, amount=Decimal("120.50"), customer_id="c1", is_return=True)
    )
    lines.append(SalesLine(order_id="bad", line_no=1, ts=start, amount=Decimal("0"), customer_id="c1"))
    lines.append(
        SalesLine(
            order_id="future",
            line_no=1,
            ts=datetime.now(UTC) + timedelta(days=30),
            amount=Decimal("10"),
            customer_id="c2",
        )
    )
    return lines


def test_report_matches_pandas_and_names_problem_rows(make_tenant):
    tenant = make_tenant()
    lines = make_lines()
    sales_lines_write(lines, source="test", tenant_id=tenant.pk)
    with tenant_context(tenant):
        customers_write([Customer(customer_id="c1", email="c1@example.ru")], source="test")
        report = readiness_report(tenant=tenant)

    frame = pd.DataFrame(
        [vars(x) if hasattr(x, "__dict__") else {f: getattr(x, f) for f in x.__slots__} for x in lines]
    )
    sales = frame[~frame.is_return]
    local = sales.ts.map(lambda t: t.astimezone(__import__("zoneinfo").ZoneInfo("Europe/Moscow")).date())
    assert report.orders == sales.order_id.nunique()
    assert report.lines == len(frame)
    assert report.first_sale == local.min() and report.last_sale == local.max()
    assert report.customers == frame.customer_id[frame.customer_id != ""].nunique()
    identified = sales[sales.customer_id != ""].order_id.nunique()
    assert report.identified_order_share == identified / sales.order_id.nunique()
    assert report.returns == 1 and report.contacts == 1
    assert report.stores == sales.store[sales.store != ""].nunique()
    assert report.enough_for_cohorts
    problems = {p.code: p for p in report.problems}
    assert set(problems) == {"future_dates", "non_positive_sale"}
    assert [s["order_id"] for s in problems["non_positive_sale"].samples] == ["bad"]
    assert problems["future_dates"].rows == 1


def test_command_prints_json_and_refuses_unknown_tenant(make_tenant, capsys):
    tenant = make_tenant()
    capsys.readouterr()  # drop the schema migration output
    call_command("readiness_report", "--tenant", tenant.slug, "--format", "json")
    data = json.loads(capsys.readouterr().out)
    assert data["orders"] == 0 and data["problems"][0]["code"] == "no_sales"
    with pytest.raises(CommandError, match="No tenant with the slug"):
        call_command("readiness_report", "--tenant", "nope")


def test_night_timestamps_are_flagged(make_tenant):
    tenant = make_tenant()
    night = datetime(2025, 3, 1, 0, 30, tzinfo=UTC)  # 03:30 in Moscow
    sales_lines_write(
        [SalesLine(order_id=f"n{i}", line_no=1, ts=night + timedelta(days=i), amount=Decimal(5)) for i in range(5)],
        source="test",
        tenant_id=tenant.pk,
    )
    with tenant_context(tenant):
        codes = {p.code for p in readiness_report(tenant=tenant).problems}
    assert {"night_sales", "no_identified_receipts"} <= codes


def test_console_tenant_page_shows_the_report(make_tenant, console_client):
    from tenants.accounts.models import User

    tenant = make_tenant()
    sales_lines_write(
        [SalesLine(order_id="zero", line_no=1, ts=datetime(2025, 5, 5, 10, tzinfo=UTC), amount=Decimal(0))],
        source="test",
        tenant_id=tenant.pk,
    )
    staff = User.objects.create_user(email="s@agency.test", username="s@agency.test", password="x", is_staff=True)
    console_client.force_login(staff)
    page = console_client.get(f"/tenants/{tenant.slug}/").content.decode()
    assert "Data readiness" in page and "Sale lines with a zero or negative amount" in page
    assert "<td>zero</td>" in page
