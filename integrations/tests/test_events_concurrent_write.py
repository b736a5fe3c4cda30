"""A mixed events-API batch writes its ClickHouse tables side by side on a pool, its contacts on the request's
thread, and bumps the data version once for every table written: also when one write fails, and for each
tenant of batches posted at the same time."""

from __future__ import annotations

import random
import threading
from decimal import Decimal

import pandas as pd
import pytest
from clickhouse_connect.driver.exceptions import DatabaseError
from django.db import connections
from django.test import Client
from django_tenants.utils import tenant_context

import integrations.events.services as events_services
from analytics.clickhouse.client import get_client
from analytics.clickhouse.query import data_version
from analytics.tests.test_data_changes_grouped import bumps_since
from integrations.models import ImportRun
from integrations.tests.test_events_api import everything, post, token_for

EVERY_FACT = ["customer_attributes", "message_events", "sales_lines", "web_events"]


def mixed_batch(seed: int, *, items: int = 400, customers: bool = True) -> list[dict]:
    """Orders (some returns), message and web events, and customers if asked, as a shop streams them."""
    rng = random.Random(seed)
    kinds = ["order", "message_event", "web_event", *(["customer"] if customers else [])]
    batch = []
    for n in range(items):
        kind = kinds[n % len(kinds)]
        item = {"type": kind, "customer_id": f"C-{rng.randint(1, 50)}"}
        if kind != "customer":
            item["ts"] = f"2026-03-{rng.randint(1, 28):02d}T{rng.randint(0, 23):02d}:00:00Z"
        if kind == "order":
            item.update(order_id=f"R-{n}", is_return=rng.random() < 0.1, lines=[])
            for _line in range(rng.randint(1, 3)):
                amount = f"{rng.randint(1, 99_999)}.{rng.randint(0, 99):02d}"
                item["lines"].append({"product_id": f"SKU-{rng.randint(1, 9)}", "amount": amount})
        elif kind == "message_event":
            event_type = rng.choice(["sent", "delivered", "opened", "clicked"])
            item.update(event_id=f"m-{n}", event_type=event_type, mailing_id="spring", channel="email")
        elif kind == "web_event":
            event_type = rng.choice(["visit", "checkout"])
            item.update(event_id=f"w-{n}", event_type=event_type, session_id=f"s-{n // 4}")
        else:
            item.update(email=f"{item['customer_id'].lower()}@example.ru", consent_email=True)
            item["city"] = rng.choice(["Москва", "Казань"])
        batch.append(item)
    return batch


def expected(batch: list[dict]) -> dict:
    """What the tenant should hold after ``batch``, computed with pandas straight from the payload."""
    items = pd.DataFrame(batch)
    orders = items[items["type"] == "order"]
    lines = orders.explode("lines")
    amounts = lines["lines"].map(lambda line: Decimal(line["amount"]))
    signed = amounts.where(~lines["is_return"].astype(bool), -amounts)

    def event_types(kind: str) -> dict[str, int]:
        return items[items["type"] == kind]["event_type"].value_counts().to_dict()

    return {
        "sales": (len(lines), signed.sum()),
        "messages": event_types("message_event"),
        "web": event_types("web_event"),
        "customers": items.loc[items["type"] == "customer", "customer_id"].nunique(),
    }


def held(tenant) -> dict:
    """The tenant's data in the shape of ``expected``."""
    data = everything(tenant)
    assert len(data["attributes"]) == len(data["contacts"])  # each customer in ClickHouse and in Postgres
    return {
        "sales": (data["sales"]["rows"], data["sales"]["amount"]),
        "messages": data["messages"],
        "web": data["web"],
        "customers": len(data["contacts"]),
    }


def one_bump(tenant, since: int) -> list[str]:
    """The facts of the tenant's data-version bumps after ``since``, checked to be one bump: one version for all."""
    bumps = bumps_since(tenant.pk, since)
    assert len({version for _fact, version in bumps}) == 1, bumps
    return [fact for fact, _version in bumps]


def test_a_mixed_batch_writes_every_table_off_the_request_thread_with_one_bump(tenant, client, monkeypatch):
    writes = ("customer_attributes_write", "sales_line_columns_write", "event_columns_write")
    writers: dict[str, threading.Thread] = {}  # the thread each of our ClickHouse writes ran on, by name

    def noting_its_thread(name: str):
        write = getattr(events_services, name)

        def write_noted(*args, **kwargs):
            writers[name] = threading.current_thread()
            return write(*args, **kwargs)

        return write_noted

    for name in writes:
        monkeypatch.setattr(events_services, name, noting_its_thread(name))
    batch, before = mixed_batch(seed=1), data_version(tenant.pk)

    response = post(client, tenant, token_for(tenant), batch)

    assert response.status_code == 200, response.content
    assert held(tenant) == expected(batch)
    assert one_bump(tenant, before) == EVERY_FACT
    assert set(writers) == set(writes)
    assert threading.current_thread() not in writers.values()


def test_posting_the_same_mixed_batch_again_leaves_totals_unchanged(tenant, client):
    token, batch = token_for(tenant), mixed_batch(seed=2)
    assert post(client, tenant, token, batch).status_code == 200
    once = held(tenant)
    before = data_version(tenant.pk)
    assert post(client, tenant, token, batch).status_code == 200
    assert held(tenant) == once == expected(batch)
    assert one_bump(tenant, before) == EVERY_FACT


@pytest.fixture
def web_events_refused(tenant):
    """ClickHouse refuses this tenant's web events for real (a CHECK constraint on the table); the fixture gives
    the function that lifts the refusal, which the end of the test calls in any case."""
    name = f"test_refuse_tenant_{tenant.pk}"
    client = get_client()

    def refusal_lift() -> None:
        client.command(f"ALTER TABLE web_events DROP CONSTRAINT IF EXISTS {name}")

    client.command(f"ALTER TABLE web_events ADD CONSTRAINT {name} CHECK tenant_id != {int(tenant.pk)}")
    try:
        yield refusal_lift
    finally:
        refusal_lift()


def test_a_failed_insert_reaches_the_caller_and_the_tables_written_still_bump(tenant, client, web_events_refused):
    token, batch = token_for(tenant), mixed_batch(seed=3)
    before = data_version(tenant.pk)

    with pytest.raises(DatabaseError, match="test_refuse_tenant"):
        post(client, tenant, token, batch)

    with tenant_context(tenant):
        run = ImportRun.objects.latest("pk")
    assert run.status == ImportRun.Status.FAILED and "write failed" in run.message
    assert one_bump(tenant, before) == ["customer_attributes", "message_events", "sales_lines"]
    assert held(tenant) == {**expected(batch), "web": {}}

    web_events_refused()  # lifted: ClickHouse takes them again: the caller re-sends the batch
    before = data_version(tenant.pk)
    assert post(client, tenant, token, batch).status_code == 200
    assert held(tenant) == expected(batch)
    assert one_bump(tenant, before) == EVERY_FACT


def test_a_failed_contacts_upsert_reaches_the_caller_after_the_clickhouse_writes_bumped_once(
    tenant, client, monkeypatch
):
    def contacts_upsert_failing(customers):
        raise RuntimeError("Postgres went away")

    monkeypatch.setattr(events_services, "contacts_upsert", contacts_upsert_failing)
    batch, before = mixed_batch(seed=4), data_version(tenant.pk)

    with pytest.raises(RuntimeError, match="Postgres went away"):
        post(client, tenant, token_for(tenant), batch)

    assert one_bump(tenant, before) == EVERY_FACT  # every insert was waited for before the bump
    data = everything(tenant)
    assert (len(data["attributes"]), data["contacts"]) == (expected(batch)["customers"], [])


@pytest.mark.django_db(transaction=True)
def test_two_tenants_posting_at_once_each_get_their_own_batch_and_bump(make_tenant):
    """The same ids in both batches, different contents; B sends no customers, so its bump names three facts."""
    tenants = [make_tenant(), make_tenant()]
    batches = [mixed_batch(seed=5), mixed_batch(seed=6, customers=False)]
    tokens = [token_for(tenant) for tenant in tenants]
    before = [data_version(tenant.pk) for tenant in tenants]
    both_ready = threading.Barrier(2, timeout=30)
    statuses: dict[int, int] = {}
    errors: list[BaseException] = []

    def send(index: int) -> None:
        # Each thread has its own database connection, so the two requests really run side by side.
        try:
            client = Client(HTTP_HOST=tenants[index].get_primary_domain().domain)
            both_ready.wait()
            statuses[index] = post(client, tenants[index], tokens[index], batches[index]).status_code
        except BaseException as exc:  # surfaced by the assertion below, with the real error
            errors.append(exc)
        finally:
            connections.close_all()

    threads = [threading.Thread(target=send, args=(index,)) for index in range(2)]
    try:
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=120)

        assert errors == []
        assert statuses == {0: 200, 1: 200}
        for tenant, batch in zip(tenants, batches, strict=True):
            assert held(tenant) == expected(batch)
        assert one_bump(tenants[0], before[0]) == EVERY_FACT
        assert one_bump(tenants[1], before[1]) == ["message_events", "sales_lines", "web_events"]
    finally:
        for tenant in tenants:
            tenant.delete(force_drop=True)
