"""MoySklad sync against the fake server, checked line by line against the fake account itself.

``expected_lines`` rebuilds what the warehouse should hold straight from the fake's tables
with pandas — Moscow → UTC, kopecks → roubles, discount percent → amounts, names joined
from the dictionaries — without going through the importer's code.
"""

from __future__ import annotations

import io
import socket
from datetime import timedelta
from decimal import ROUND_HALF_UP, Decimal

import pandas as pd
import pytest
from django.core.management import call_command
from django_tenants.utils import tenant_context

from analytics.clickhouse.query import tenant_query
from integrations.models import Contact, DataSource, ImportRun
from integrations.moysklad.client import MoySkladClient, RetryPolicy
from integrations.moysklad.fake_account import ANONYMOUS_CUSTOMER_NAME, FakeAccount
from integrations.moysklad.fake_server import FakeMoySklad
from integrations.moysklad.selectors import moysklad_source_get
from integrations.moysklad.services import moysklad_source_connect, moysklad_sync
from tenants.errors import ApplicationError

FAST = RetryPolicy(attempts=4, backoff=0.01, max_backoff=0.05, connect_timeout=1, read_timeout=5)
COMPARED = ["order_id", "ts", "customer_id", "store", "employee", "channel", "product_id", "product_name"]
COMPARED += ["category", "brand", "qty", "price", "discount", "amount", "is_return"]
NUMBERS = ("qty", "price", "discount", "amount")


# --- the account as the warehouse should see it -----------------------------------------------------


def _roubles(kopecks: Decimal) -> Decimal:
    return (kopecks.quantize(Decimal(1), rounding=ROUND_HALF_UP) / 100).quantize(Decimal("0.01"))


def counted_documents(account: FakeAccount, kind: str = "retaildemand") -> list[dict]:
    """Documents that are sales: not trashed, posted, and not the pickup of an order (counted as the order)."""
    return [d for d in account.live_documents(kind) if d["applicable"] and not d.get("customerOrder")]


def expected_lines(account: FakeAccount) -> pd.DataFrame:
    tables = account.tables
    names = {kind: {i: row["name"] for i, row in tables[kind].items()} for kind in ("employee", "retailstore", "store")}
    anonymous = {i for i, row in tables["counterparty"].items() if row["name"] == ANONYMOUS_CUSTOMER_NAME}

    def product_facts(kind: str, item_id: str) -> dict:
        item = tables[kind][item_id]
        parent = tables["product"][item["product"].id] if kind == "variant" else item
        brand = next(
            (a["value"]["name"] for a in parent.get("attributes", []) if a["id"] == account.brand_attribute_id), ""
        )
        return {"product_id": item_id, "product_name": item["name"], "category": parent["pathName"], "brand": brand}

    records = []
    for kind, channel, is_return in (
        ("retaildemand", "offline", False),
        ("retailsalesreturn", "offline", True),
        ("customerorder", "online", False),
    ):
        for document in counted_documents(account, kind):
            agent = document["agent"].id
            store = document.get("retailStore")
            for position in account.positions[document["id"]]:
                records.append(
                    {
                        "order_id": document["id"],
                        "moment": document["moment"],
                        "customer_id": "" if agent in anonymous else agent,
                        "store": names["retailstore"][store.id] if store else names["store"][document["store"].id],
                        "employee": names["employee"][document["owner"].id],
                        "channel": channel,
                        "is_return": int(is_return),
                        "price_k": Decimal(str(position["price"])),
                        "qty": Decimal(str(position["quantity"])),
                        "discount_pct": Decimal(str(position["discount"])),
                        **product_facts(position["assortment"].type, position["assortment"].id),
                    }
                )
    frame = pd.DataFrame(records)
    frame["ts"] = pd.to_datetime(frame["moment"]).dt.tz_localize("Europe/Moscow").dt.tz_convert("UTC")
    gross = frame["price_k"] * frame["qty"]
    sign = frame["is_return"].map({0: 1, 1: -1})
    frame["amount"] = (gross * (1 - frame["discount_pct"] / 100)).map(_roubles) * sign
    frame["discount"] = (gross * frame["discount_pct"] / 100).map(_roubles) * sign
    frame["price"] = frame["price_k"].map(_roubles)
    frame["qty"] = frame["qty"] * sign
    return frame[COMPARED]


def warehouse_lines(tenant_id: int) -> pd.DataFrame:
    result = tenant_query(
        f"SELECT {', '.join(COMPARED)} FROM sales_lines FINAL WHERE tenant_id = {{tenant_id:UInt32}}",
        tenant_id=tenant_id,
    )
    frame = pd.DataFrame(result.result_rows, columns=COMPARED)
    frame["ts"] = pd.to_datetime(frame["ts"], utc=True)
    return frame


def _canonical(frame: pd.DataFrame) -> list[tuple]:
    """Rows as sorted tuples of strings: timestamps in ISO, numbers without trailing zeros or a negative zero."""
    numbers = {column: frame[column].map(lambda v: format(Decimal(v).normalize() + 0, "f")) for column in NUMBERS}
    rows = frame.assign(ts=frame["ts"].map(lambda t: t.isoformat()), **numbers)
    return sorted(map(tuple, rows[COMPARED].astype(str).itertuples(index=False)))


def assert_warehouse_matches(tenant, account: FakeAccount) -> None:
    actual, expected = warehouse_lines(tenant.pk), expected_lines(account)
    assert len(actual) == len(expected)
    assert actual["amount"].sum() == expected["amount"].sum()
    assert actual["discount"].sum() == expected["discount"].sum()
    assert _canonical(actual) == _canonical(expected)


def raw_row_count(tenant_id: int) -> int:
    """Rows without FINAL that are not superseded: duplicates would show up here as extra rows per key."""
    return tenant_query(
        "SELECT count() FROM (SELECT DISTINCT toDate(ts), order_id, line_no, is_return FROM sales_lines"
        " WHERE tenant_id = {tenant_id:UInt32})",
        tenant_id=tenant_id,
    ).first_row[0]


# --- fixtures ---------------------------------------------------------------------------------------


@pytest.fixture
def fake():
    fake = FakeMoySklad(FakeAccount.generate(seed=11))
    with fake.serve() as base_url:
        fake.base_url = base_url
        yield fake


def connect(tenant, fake: FakeMoySklad, *, page_size: int = 100, token: str | None = None) -> None:
    with tenant_context(tenant):
        moysklad_source_connect(base_url=fake.base_url, token=token or fake.token, page_size=page_size)


def sync(tenant, *, full: bool = False) -> ImportRun:
    with tenant_context(tenant):
        source = moysklad_source_get()
        client = MoySkladClient(base_url=source.config["base_url"], token=_token(source), retry=FAST)
        return moysklad_sync(data_source=source, full=full, client=client)


def _token(source: DataSource) -> str:
    from integrations.crypto import secret_decrypt

    return secret_decrypt(source.secret_encrypted)


def document_requests(fake: FakeMoySklad, entity: str) -> list:
    return [r for r in fake.requests_to(f"/entity/{entity}") if r.status == 200]


# --- tests ------------------------------------------------------------------------------------------


def test_full_sync_matches_the_account(make_tenant, fake):
    tenant = make_tenant()
    connect(tenant, fake)
    run = sync(tenant)

    assert run.status == ImportRun.Status.SUCCEEDED, run.message
    assert_warehouse_matches(tenant, fake.account)
    expected = expected_lines(fake.account)
    assert run.rows_written == len(expected) + len(fake.account.tables["counterparty"]) - 1  # minus the anonymous
    # Per receipt, revenue equals the document sum MoySklad itself reports.
    actual = warehouse_lines(tenant.pk).groupby("order_id")["amount"].sum()
    for document in counted_documents(fake.account)[:50]:
        assert actual[document["id"]] == Decimal(document["sum"]) / 100
    # Never asked for expand on a page the API would silently not expand.
    assert all(int(r.params.get("limit", 1000)) <= 100 for r in fake.requests if "expand" in r.params)
    assert all("gzip" in r.accept_encoding for r in fake.requests)
    with tenant_context(tenant):
        source = moysklad_source_get()
        assert set(source.watermarks) == {"counterparty", "retaildemand", "retailsalesreturn", "customerorder"}
        assert all("full_pass" not in state for state in source.watermarks.values())


def test_customers_get_contacts_in_postgres_and_no_pii_in_clickhouse(make_tenant, fake):
    tenant = make_tenant()
    connect(tenant, fake)
    sync(tenant)
    people = [row for row in fake.account.tables["counterparty"].values() if row["name"] != ANONYMOUS_CUSTOMER_NAME]
    with tenant_context(tenant):
        contacts = {c.customer_id: c for c in Contact.objects.all()}
    assert set(contacts) == {row["id"] for row in people}
    with_structured_name = next(row for row in people if row.get("legalFirstName"))
    contact = contacts[with_structured_name["id"]]
    assert (contact.first_name, contact.last_name) == (
        with_structured_name["legalFirstName"],
        with_structured_name["legalLastName"],
    )
    for row in people:
        contact = contacts[row["id"]]
        assert contact.email == row.get("email", "").lower()
        if row.get("phone"):
            assert contact.phone.startswith("+7") and len(contact.phone) == 12, row["phone"]

    pii = (
        {row["name"] for row in people}
        | {row.get("email", "") for row in people}
        | {row.get("phone", "") for row in people}
    )
    pii |= (
        {c.phone for c in contacts.values()}
        | {c.email for c in contacts.values()}
        | {c.last_name for c in contacts.values()}
    )
    pii.discard("")
    for table in ("sales_lines", "customer_attributes"):
        result = tenant_query(f"SELECT * FROM {table} WHERE tenant_id = {{tenant_id:UInt32}}", tenant_id=tenant.pk)
        assert result.result_rows, table
        values = {str(value) for row in result.result_rows for value in row}
        assert not values & pii, table


def test_incremental_sync_takes_new_edited_and_trashed_documents(make_tenant, fake):
    tenant = make_tenant()
    connect(tenant, fake)
    sync(tenant)
    account = fake.account
    demands = counted_documents(account)
    product = next(p for p in account.tables["product"].values() if p["variantsCount"] == 0)
    customer = account.add_counterparty(name="Новикова Ольга", phone="8 (903) 111-22-33", email="olga@example.ru")
    added = account.add_retail_demand(positions=[(product["id"], 2, 150000, 10)], agent_id=customer["id"])
    moved = demands[0]  # back-dated by three days: its lines move to another day in the sort key
    account.update("retaildemand", moved["id"], moment=moved["moment"] - timedelta(days=3))
    shrunk = next(d for d in demands[1:] if len(account.positions[d["id"]]) > 1)  # positions removed
    account.set_positions(shrunk["id"], account.positions[shrunk["id"]][:1])
    account.trash("retaildemand", next(d for d in demands[1:] if d is not shrunk)["id"])
    bad = account.add_retail_demand(positions=[(product["id"], 1, 99000, 0)])
    account.positions[bad["id"]][0]["quantity"] = "много"
    fake.requests.clear()

    run = sync(tenant)

    assert run.status == ImportRun.Status.SUCCEEDED, run.message
    assert run.rows_rejected == 1
    assert run.errors == [
        {
            "row": f"retaildemand {bad['name']}",
            "column": "positions[1].quantity",
            "value": "много",
            "reason": "Position quantity is not a number.",
        }
    ]
    account.hard_delete("retaildemand", bad["id"])  # the model below has no notion of rejected documents
    assert_warehouse_matches(tenant, account)
    assert raw_row_count(tenant.pk) == len(expected_lines(account))
    lines = warehouse_lines(tenant.pk)
    assert set(lines.loc[lines["order_id"] == added["id"], "customer_id"]) == {customer["id"]}
    with tenant_context(tenant):
        assert Contact.objects.get(customer_id=customer["id"]).phone == "+79031112233"
    # Incremental: only the recent edits were listed, not the whole history again.
    first = document_requests(fake, "retaildemand")[0]
    assert "updated>=" in first.params["filter"]
    assert run.rows_read < 20


def test_identical_timestamps_across_pages_are_each_read_once(make_tenant):
    account = FakeAccount.generate(seed=5, counterparties=8, demands=40, orders=3)
    fake = FakeMoySklad(account)
    block = [d["id"] for d in account.live_documents("retaildemand")[:12]]
    stamp = account.now()
    for document_id in block:  # a bulk edit: twelve documents, one ``updated``
        account.update("retaildemand", document_id, updated=stamp)
    tenant = make_tenant()
    with fake.serve() as base_url:
        fake.base_url = base_url
        connect(tenant, fake, page_size=5)
        run = sync(tenant)
    assert run.status == ImportRun.Status.SUCCEEDED, run.message
    assert_warehouse_matches(tenant, account)
    assert run.rows_read == sum(
        len(account.tables[k]) for k in ("retaildemand", "retailsalesreturn", "customerorder", "counterparty")
    )


def test_throttling_and_server_errors_mid_sync_are_retried(make_tenant, fake):
    tenant = make_tenant()
    connect(tenant, fake, page_size=40)
    fake.throttle(every=6, retry_after_ms=120)
    fake.fail(next=2, after=9, status=503)
    run = sync(tenant)
    assert run.status == ImportRun.Status.SUCCEEDED, run.message
    statuses = [r.status for r in fake.requests]
    assert statuses.count(503) == 2 and statuses.count(429) >= 3
    assert_warehouse_matches(tenant, fake.account)
    assert raw_row_count(tenant.pk) == len(expected_lines(fake.account))


def test_crash_mid_page_then_restart_equals_a_clean_run(make_tenant, fake):
    tenant = make_tenant()
    connect(tenant, fake, page_size=20)
    fake.crash_after_pages(4, entity="retaildemand")

    with pytest.raises(ApplicationError) as error:
        sync(tenant)

    assert f"{fake.base_url}/entity/retaildemand" in error.value.message
    with tenant_context(tenant):
        failed = ImportRun.objects.get()
        watermark = moysklad_source_get().watermarks["retaildemand"]
    assert failed.status == ImportRun.Status.FAILED and failed.finished_at is not None
    assert "updated" in watermark and "full_pass" in watermark  # four pages are in; the pass is unfinished
    written_before_crash = set(warehouse_lines(tenant.pk)["order_id"])
    assert 0 < len(written_before_crash) < len(counted_documents(fake.account))

    # While it was down, one of the documents already written moved to another day.
    account = fake.account
    moved = next(d for d in counted_documents(account) if d["id"] in written_before_crash)
    account.update("retaildemand", moved["id"], moment=moved["moment"] + timedelta(days=40))
    fake.recover()
    fake.requests.clear()

    run = sync(tenant)

    assert run.status == ImportRun.Status.SUCCEEDED, run.message
    assert_warehouse_matches(tenant, account)
    assert raw_row_count(tenant.pk) == len(expected_lines(account))  # no duplicate, no stale line
    first = document_requests(fake, "retaildemand")[0]
    assert "updated>=" in first.params["filter"]  # resumed where it stopped, not from scratch


def test_pages_above_100_read_positions_separately(make_tenant):
    # One request per document for its positions: a small account keeps the 45-per-3-s bucket out of the way.
    account = FakeAccount.generate(seed=3, counterparties=8, demands=60, orders=4)
    fake = FakeMoySklad(account)
    tenant = make_tenant()
    with fake.serve() as base_url:
        fake.base_url = base_url
        connect(tenant, fake, page_size=250)
        run = sync(tenant)
    assert run.status == ImportRun.Status.SUCCEEDED, run.message
    assert not any("expand" in r.params and int(r.params["limit"]) > 100 for r in fake.requests)
    assert fake.requests_to("/positions")  # positions were not inline, so each document's were fetched
    assert_warehouse_matches(tenant, account)


def test_hard_deletes_vanish_on_a_full_sync(make_tenant, fake):
    tenant = make_tenant()
    connect(tenant, fake)
    sync(tenant)
    victim = next(iter(counted_documents(fake.account)))
    assert victim["id"] in set(warehouse_lines(tenant.pk)["order_id"])
    fake.account.hard_delete("retaildemand", victim["id"])
    run = sync(tenant, full=True)
    assert run.status == ImportRun.Status.SUCCEEDED, run.message
    assert victim["id"] not in set(warehouse_lines(tenant.pk)["order_id"])
    assert_warehouse_matches(tenant, fake.account)


def test_bad_token_says_so_and_writes_nothing(make_tenant, fake):
    tenant = make_tenant()
    connect(tenant, fake, token="revoked-token")
    with pytest.raises(ApplicationError) as error:
        sync(tenant)
    assert "refused the token" in error.value.message and fake.base_url in error.value.message
    with tenant_context(tenant):
        run = ImportRun.objects.get()
        assert (run.status, run.rows_written) == (ImportRun.Status.FAILED, 0)
        assert Contact.objects.count() == 0
        assert moysklad_source_get().watermarks == {}
    assert warehouse_lines(tenant.pk).empty


def test_unreachable_server_names_the_url(make_tenant):
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    tenant = make_tenant()
    base_url = f"http://127.0.0.1:{port}/api/remap/1.2"
    with tenant_context(tenant):
        moysklad_source_connect(base_url=base_url, token="t")
    with pytest.raises(ApplicationError) as error:
        sync(tenant)
    assert f"{base_url}/context/employee" in error.value.message
    with tenant_context(tenant):
        assert ImportRun.objects.get().status == ImportRun.Status.FAILED


def test_two_tenants_sync_their_own_accounts(make_tenant, fake):
    other_account = FakeAccount.generate(seed=12, counterparties=15, demands=50, orders=5)
    other = FakeMoySklad(other_account, token="other-token")
    first, second = make_tenant(), make_tenant()
    connect(first, fake)
    sync(first)
    output = io.StringIO()
    with other.serve() as other_url:
        call_command(
            "sync_moysklad", "--tenant", second.slug, "--base-url", other_url, "--token", "other-token", stdout=output
        )
    assert "retaildemand" in output.getvalue()
    assert_warehouse_matches(first, fake.account)
    assert_warehouse_matches(second, other_account)
    with tenant_context(second):
        assert set(Contact.objects.values_list("customer_id", flat=True)) <= set(other_account.tables["counterparty"])
    with tenant_context(first):
        assert set(Contact.objects.values_list("customer_id", flat=True)) <= set(fake.account.tables["counterparty"])
