"""152-FZ: no e-mail, phone or customer name in any ClickHouse table (DESIGN §2).

A realistic shop is generated (its contacts go to Postgres), then every String column of every
table in the ClickHouse database is scanned: the shop's rows in tables keyed by tenant (other
tests' hand-made rows are not the shop's), every row elsewhere. Tables are listed from
system.tables, so a table added later is scanned too.
"""

from __future__ import annotations

from datetime import date

from django_tenants.utils import tenant_context

from analytics.clickhouse.client import get_client
from analytics.preaggregations import preaggregations_rebuild
from integrations.demo.services import demo_data_generate
from integrations.models import Contact

# A phone number as people write it: +7 or 8, then ten digits with optional spaces, dashes or brackets,
# not glued to letters or digits (so ids such as C80012345678 are not phones).
PHONE = r"(^|[^0-9A-Za-z])(\+7|8)[ ()\-]*[0-9]{3}[ ()\-]*[0-9]{3}[ \-]*[0-9]{2}[ \-]*[0-9]{2}([^0-9]|$)"
TEXT_TYPE = r"^(LowCardinality\()?(Nullable\()?String\)?\)?$"


def _findings(
    columns: dict[str, list[str]], names: list[str], tenant_id: int = 0, tenant_tables: frozenset[str] = frozenset()
) -> dict[tuple[str, str, str], int]:
    """(table, column, kind) → rows that look like PII, for every table and text column given
    (only ``tenant_id``'s rows of the ``tenant_tables``)."""
    # The audit spans every tenant, so it reads through the raw client: the tenant-scoped query
    # module would, by design, only ever show one tenant's rows. Identifiers come from system tables.
    client = get_client()
    found = {}
    for table, names_of_columns in columns.items():
        checks = []
        for column in names_of_columns:
            value = f"toString(`{column}`)"
            checks += [
                (column, "email", f"countIf(position({value}, '@') > 0)"),
                (column, "phone", f"countIf(match({value}, {{phone:String}}))"),
                (
                    column,
                    "name",
                    f"countIf(hasAny(extractAll(lowerUTF8({value}), '\\\\pL+'), {{names:Array(String)}}))",
                ),
            ]
        scope = " WHERE tenant_id = {tenant:UInt32}" if table in tenant_tables else ""
        counts = client.query(
            f"SELECT {', '.join(sql for _c, _k, sql in checks)} FROM `{table}`{scope}",
            parameters={"phone": PHONE, "names": names, "tenant": tenant_id},
        ).result_rows[0]
        found.update({(table, column, kind): count for (column, kind, _sql), count in zip(checks, counts, strict=True)})
    return found


def _text_columns() -> dict[str, list[str]]:
    rows = (
        get_client()
        .query(
            "SELECT c.table, c.name FROM system.columns AS c"
            " INNER JOIN system.tables AS t ON t.database = c.database AND t.name = c.table"
            " WHERE c.database = currentDatabase() AND match(c.type, {text:String})"
            " AND t.engine NOT IN ('View', 'MaterializedView')",  # their rows are in the tables they read or fill
            parameters={"text": TEXT_TYPE},
        )
        .result_rows
    )
    columns: dict[str, list[str]] = {}
    for table, column in rows:
        columns.setdefault(table, []).append(column)
    return columns


def test_no_email_phone_or_name_in_any_clickhouse_table(make_tenant):
    tenant = make_tenant()
    demo_data_generate(tenant=tenant, customers=1500, seed=3, months=12, end_day=date(2026, 1, 1))
    preaggregations_rebuild(tenant_id=tenant.pk, timezone=tenant.timezone)  # derived tables hold rows too
    with tenant_context(tenant):
        contacts = list(Contact.objects.values_list("first_name", "last_name", "email", "phone"))
    names = sorted({name.lower() for first, last, _e, _p in contacts for name in (first, last)})
    assert len(contacts) == 1500 and len(names) > 100
    assert any(email for _f, _l, email, _p in contacts) and any(phone for *_rest, phone in contacts)

    columns = _text_columns()
    tables = set(get_client().query("SELECT name FROM system.tables WHERE database = currentDatabase()").result_rows)
    assert {("sales_lines",), ("message_events",), ("web_events",), ("customer_attributes",)} <= tables
    assert {"customer_id", "store", "employee", "product_name"} <= set(columns["sales_lines"])

    tenant_tables = frozenset(
        table
        for (table,) in get_client()
        .query("SELECT table FROM system.columns WHERE database = currentDatabase() AND name = 'tenant_id'")
        .result_rows
    )
    assert {"sales_lines", "orders", "customer_histories"} <= tenant_tables
    findings = {where: count for where, count in _findings(columns, names, tenant.pk, tenant_tables).items() if count}
    assert findings == {}


def test_the_scan_finds_pii_when_there_is_some():
    """The detectors themselves: a table holding contacts is reported on every column that has them."""
    client = get_client()
    client.command("CREATE TEMPORARY TABLE pii_canary (note String, who LowCardinality(String), id String)")
    client.insert(
        "pii_canary",
        [
            ("write to anna.ivanova@example.ru", "", "C00000001"),
            ("call +7 (916) 123-45-67", "", "C80012345678"),
            ("", "Иванова Анна", "R00000000042"),
            ("8 916 123 45 67", "", ""),
        ],
        column_names=["note", "who", "id"],
    )
    found = {
        where: count for where, count in _findings({"pii_canary": ["note", "who", "id"]}, ["анна"]).items() if count
    }
    assert found == {
        ("pii_canary", "note", "email"): 1,
        ("pii_canary", "note", "phone"): 2,
        ("pii_canary", "who", "name"): 1,
    }
