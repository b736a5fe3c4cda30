"""The one place every importer (files, MoySklad, events API, demo generator) writes through.

Importers turn their input into canonical rows (DESIGN §8) and hand them here; this
module normalises signs, stamps the ingest version and writes ClickHouse through the
tenant-scoped query module, and contacts (PII) to the tenant's Postgres schema only.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime
from decimal import Decimal

from django.db import connection

from analytics.clickhouse.query import tenant_insert
from integrations.models import Contact


@dataclass(frozen=True, slots=True)
class SalesLine:
    """One receipt line in canonical form. Returns: ``is_return`` with positive or negative numbers."""

    order_id: str
    line_no: int
    ts: datetime  # timezone-aware
    amount: Decimal
    customer_id: str = ""
    store: str = ""
    employee: str = ""
    channel: str = ""
    product_id: str = ""
    product_name: str = ""
    category: str = ""
    brand: str = ""
    qty: Decimal = Decimal(1)
    price: Decimal = Decimal(0)
    discount: Decimal = Decimal(0)
    is_return: bool = False
    promo_code: str = ""


# Column order of the rows this module writes to ``sales_lines``.
SALES_LINE_COLUMNS = (
    "order_id",
    "line_no",
    "ts",
    "customer_id",
    "store",
    "employee",
    "channel",
    "product_id",
    "product_name",
    "category",
    "brand",
    "qty",
    "price",
    "discount",
    "amount",
    "is_return",
    "promo_code",
    "source",
    "version",
)


@dataclass(frozen=True, slots=True)
class Customer:
    """A customer record: the PII part goes to Postgres, the rest to ClickHouse."""

    customer_id: str
    created_at: datetime | None = None
    first_name: str = ""
    last_name: str = ""
    gender: str = ""  # "", "f", "m"
    birth_date: date | None = None
    email: str = ""
    phone: str = ""
    city: str = ""
    store: str = ""
    consent_email: bool = False
    consent_sms: bool = False
    loyalty_program: str = ""  # "", "bonus", "discount"


def ingest_version() -> int:
    """Monotonic ingest version: the latest write of a key wins in ReplacingMergeTree."""
    return time.time_ns()


def _signed(value: Decimal, is_return: bool) -> Decimal:
    return -abs(value) if is_return else value


def sales_lines_write(lines: Iterable[SalesLine], *, source: str, tenant_id: int | None = None) -> int:
    """Write sales lines; returns store qty, discount and amount negative. Returns the row count."""
    version = ingest_version()
    rows = [
        (
            line.order_id,
            line.line_no,
            line.ts,
            line.customer_id,
            line.store,
            line.employee,
            line.channel,
            line.product_id,
            line.product_name,
            line.category,
            line.brand,
            _signed(line.qty, line.is_return),
            abs(line.price),
            _signed(line.discount, line.is_return),
            _signed(line.amount, line.is_return),
            int(line.is_return),
            line.promo_code,
            source,
            version,
        )
        for line in lines
    ]
    return tenant_insert("sales_lines", rows, SALES_LINE_COLUMNS, tenant_id=tenant_id)


def customers_write(customers: Sequence[Customer], *, source: str, tenant_id: int | None = None) -> int:
    """Upsert contacts into the current tenant's schema and their non-PII attributes into ClickHouse."""
    if not customers:
        return 0
    assert connection.schema_name != "public", "contacts live in a tenant schema"
    Contact.objects.bulk_create(
        [
            Contact(
                customer_id=c.customer_id,
                first_name=c.first_name,
                last_name=c.last_name,
                email=c.email,
                phone=c.phone,
                gender=c.gender,
                birth_date=c.birth_date,
                city=c.city,
                home_store=c.store,
                consent_email=c.consent_email,
                consent_sms=c.consent_sms,
                created_at=c.created_at,
            )
            for c in customers
        ],
        update_conflicts=True,
        unique_fields=["customer_id"],
        update_fields=[
            "first_name",
            "last_name",
            "email",
            "phone",
            "gender",
            "birth_date",
            "city",
            "home_store",
            "consent_email",
            "consent_sms",
            "created_at",
            "imported_at",
        ],
        batch_size=5000,
    )
    version = ingest_version()
    unknown = datetime(1970, 1, 1, tzinfo=UTC)  # created_at not given by the source
    tenant_insert(
        "customer_attributes",
        [
            (
                c.customer_id,
                c.created_at or unknown,
                c.gender,
                c.birth_date.year if c.birth_date else 0,
                c.city,
                c.store,
                c.loyalty_program,
                int(bool(c.email) and c.consent_email),
                int(bool(c.phone) and c.consent_sms),
                source,
                version,
            )
            for c in customers
        ],
        [
            "customer_id",
            "created_at",
            "gender",
            "birth_year",
            "city",
            "home_store",
            "loyalty_program",
            "email_reachable",
            "sms_reachable",
            "source",
            "version",
        ],
        tenant_id=tenant_id,
    )
    return len(customers)
