"""The readiness report the agency reads after a tenant's first import (issue #4).

It says what arrived (date range, orders, customers, identified share, returns, stores,
employees), whether there is enough history for cohorts and CLV, and each problem
found with sample rows, so the agency can go back to the client before anyone trusts
a dashboard. All numbers come from ClickHouse through the tenant-scoped query module;
contacts are only counted, never read.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from datetime import date, datetime
from decimal import Decimal

from django.utils.translation import gettext as _

from analytics.clickhouse.query import tenant_query
from integrations.models import Contact

# Cohorts need a few acquisition months; BG/NBD + Gamma-Gamma want a year and enough repeat buyers.
MIN_MONTHS_FOR_COHORTS = 3
MIN_DAYS_FOR_CLV = 365
MIN_REPEAT_CUSTOMERS_FOR_CLV = 200
# Share of receipts between 00:00 and 06:00 local time above which timestamps look shifted (UTC?).
NIGHT_SHARE_SUSPICIOUS = 0.2
SAMPLE_ROWS = 10


@dataclass(frozen=True)
class Problem:
    code: str
    message: str
    rows: int
    samples: list[dict] = field(default_factory=list)


@dataclass(frozen=True)
class ReadinessReport:
    first_sale: date | None
    last_sale: date | None
    orders: int
    lines: int
    revenue: Decimal
    customers: int
    identified_order_share: float
    returns: int
    stores: int
    employees: int
    contacts: int
    repeat_customers: int
    enough_for_cohorts: bool
    enough_for_clv: bool
    problems: list[Problem]

    def as_dict(self) -> dict:
        return asdict(self)


def _summary(tenant_id: int, timezone: str) -> dict:
    result = tenant_query(
        """
        SELECT
            min(toDate(ts, {tz:String})), max(toDate(ts, {tz:String})),
            uniqExactIf(order_id, is_return = 0), count(), sum(amount),
            uniqExactIf(customer_id, customer_id != ''),
            uniqExactIf(order_id, is_return = 0 AND customer_id != ''),
            uniqExactIf(order_id, is_return = 1),
            uniqExactIf(store, store != ''), uniqExactIf(employee, employee != ''),
            countIf(is_return = 0 AND toHour(ts, {tz:String}) < 6)
        FROM sales_lines FINAL
        WHERE tenant_id = {tenant_id:UInt32}
        """,
        {"tz": timezone},
        tenant_id=tenant_id,
    )
    keys = (
        "first",
        "last",
        "orders",
        "lines",
        "revenue",
        "customers",
        "identified_orders",
        "returns",
        "stores",
        "employees",
        "night_lines",
    )
    return dict(zip(keys, result.first_row, strict=True))


def _repeat_customers(tenant_id: int) -> int:
    return int(
        tenant_query(
            """
            SELECT count() FROM (
                SELECT customer_id FROM sales_lines FINAL
                WHERE tenant_id = {tenant_id:UInt32} AND customer_id != '' AND is_return = 0
                GROUP BY customer_id HAVING uniqExact(toDate(ts)) >= 2
            )
            """,
            tenant_id=tenant_id,
        ).first_row[0]
    )


def _problem_rows(tenant_id: int, condition: str, params: dict | None = None) -> tuple[int, list[dict]]:
    """Count the sales lines matching a fixed condition of ours and return a few of them."""
    where = f"tenant_id = {{tenant_id:UInt32}} AND ({condition})"
    count = int(
        tenant_query(f"SELECT count() FROM sales_lines FINAL WHERE {where}", params, tenant_id=tenant_id).first_row[0]
    )
    if not count:
        return 0, []
    sample = tenant_query(
        f"SELECT order_id, line_no, ts, amount, qty, source FROM sales_lines FINAL WHERE {where}"
        f" ORDER BY ts LIMIT {SAMPLE_ROWS}",
        params,
        tenant_id=tenant_id,
    )
    return count, [dict(zip(sample.column_names, row, strict=True)) for row in sample.result_rows]


def readiness_report(*, tenant) -> ReadinessReport:
    """Compute the report for ``tenant`` (a Tenant; call inside its context to count its contacts)."""
    s = _summary(tenant.pk, tenant.timezone)
    orders = int(s["orders"])
    has_sales = int(s["lines"]) > 0
    repeat = _repeat_customers(tenant.pk) if has_sales else 0
    first, last = (s["first"], s["last"]) if has_sales else (None, None)
    span_days = (last - first).days if has_sales else 0
    problems: list[Problem] = []

    if not has_sales:
        problems.append(Problem("no_sales", _("No sales have been imported yet."), 0))
    else:
        checks = [
            ("future_dates", "ts > now() + INTERVAL 1 DAY", _("Sales dated in the future: check the file's dates.")),
            (
                "non_positive_sale",
                "is_return = 0 AND amount <= 0",
                _("Sale lines with a zero or negative amount (returns should be marked is_return)."),
            ),
            (
                "discount_above_price",
                "is_return = 0 AND discount > qty * price AND price > 0",
                _("Discount larger than the line's price × quantity."),
            ),
        ]
        for code, condition, message in checks:
            rows, samples = _problem_rows(tenant.pk, condition)
            if rows:
                problems.append(Problem(code, message, rows, samples))
        sale_lines = int(s["lines"]) - int(s["returns"])
        if sale_lines and int(s["night_lines"]) / sale_lines > NIGHT_SHARE_SUSPICIOUS:
            problems.append(
                Problem(
                    "night_sales",
                    _(
                        "%(share).0f%% of sale lines fall between 00:00 and 06:00 in %(tz)s: are the timestamps "
                        "in UTC or another timezone?"
                    )
                    % {"share": 100 * int(s["night_lines"]) / sale_lines, "tz": tenant.timezone},
                    int(s["night_lines"]),
                )
            )
        average_check = Decimal(s["revenue"]) / orders if orders else Decimal(0)
        if tenant.currency == "RUB" and average_check > 500_000:
            problems.append(
                Problem(
                    "amounts_in_kopecks",
                    _("The average check is %(check)s RUB: are amounts in kopecks?") % {"check": round(average_check)},
                    orders,
                )
            )
        if orders and int(s["identified_orders"]) == 0:
            problems.append(Problem("no_identified_receipts", _("No receipt is linked to a customer."), orders))

    return ReadinessReport(
        first_sale=first,
        last_sale=last,
        orders=orders,
        lines=int(s["lines"]),
        revenue=Decimal(s["revenue"] or 0),
        customers=int(s["customers"]),
        identified_order_share=int(s["identified_orders"]) / orders if orders else 0.0,
        returns=int(s["returns"]),
        stores=int(s["stores"]),
        employees=int(s["employees"]),
        contacts=Contact.objects.count(),
        repeat_customers=repeat,
        enough_for_cohorts=span_days >= MIN_MONTHS_FOR_COHORTS * 30,
        enough_for_clv=span_days >= MIN_DAYS_FOR_CLV and repeat >= MIN_REPEAT_CUSTOMERS_FOR_CLV,
        problems=problems,
    )


def readiness_json_default(value: object) -> str:
    """json.dumps default for the report's dates and decimals."""
    if isinstance(value, date | datetime):
        return value.isoformat()
    if isinstance(value, Decimal):
        return str(value)
    raise TypeError(f"{type(value).__name__} is not JSON serialisable")
