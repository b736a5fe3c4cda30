"""POST /api/v1/events: every item type lands where it belongs, whole batches or nothing, idempotent,
token-scoped, tenant-isolated, no PII in ClickHouse, clear errors and limits."""

from __future__ import annotations

import gc
import json
import re
from datetime import UTC, datetime
from decimal import ROUND_HALF_UP, Decimal

import pytest
from django.core.cache import cache
from django.test import override_settings
from django_tenants.utils import tenant_context

from analytics.clickhouse.query import data_version, tenant_query
from analytics.clickhouse.sql import FACT_TABLES
from integrations.events.schema import MAX_BODY_BYTES, MAX_ITEMS, BatchTooLargeError, events_parse
from integrations.models import Contact, DataSource, ImportRun
from tenants.accounts.models import ApiToken
from tenants.accounts.roles import Role
from tenants.accounts.services import api_token_create, api_token_revoke

URL = "/api/v1/events"


@pytest.fixture
def tenant(make_tenant):
    """An English-speaking workspace: the messages asserted below are the English originals."""
    return make_tenant(locale="en")


def to_json(value) -> str:
    """JSON in which Decimals are numbers written digit for digit (json.dumps would go through float)."""
    return re.sub(r'"__decimal__([^"]+)"', r"\1", json.dumps(value, default=lambda d: f"__decimal__{d}"))


def token_for(tenant, scopes=(ApiToken.Scope.EVENTS_WRITE,)) -> str:
    with tenant_context(tenant):
        _token, raw = api_token_create(name="shop backend", scopes=list(scopes))
    return raw


def post(client, tenant, token: str | None, payload, *, ndjson: bool = False, host: str | None = None):
    if isinstance(payload, bytes | str):
        body = payload
    elif ndjson:
        body = "\n".join(to_json(item) for item in payload) + "\n"
    else:
        body = to_json(payload)
    headers = {"HTTP_HOST": host or tenant.get_primary_domain().domain}
    if token:
        headers["HTTP_AUTHORIZATION"] = f"Bearer {token}"
    content_type = "application/x-ndjson" if ndjson else "application/json"
    return client.generic("POST", URL, body, content_type=content_type, **headers)


def a_batch() -> list[dict]:
    """One of each item type, with the edge cases that matter: a return, a naive timestamp, a computed amount."""
    return [
        {
            "type": "order",
            "order_id": "R-1",
            "ts": "2026-03-01T10:15:00+03:00",
            "customer_id": "C-1",
            "store": "Tverskaya",
            "employee": "Olga",
            "promo_code": "SPRING",
            "lines": [
                {"product_id": "SKU-1", "category": "Shoes", "brand": "Ecco", "qty": 2, "price": 4990.5},
                {"product_id": "SKU-2", "qty": "1", "price": "1000.00", "discount": "150.00"},
                {"product_id": "SKU-3", "amount": Decimal("99999999999999.99")},  # more digits than a float holds
            ],
        },
        {
            "type": "order",
            "order_id": "RET-1",
            "ts": "2026-03-02T12:00:00",  # no zone: the workspace's (Europe/Moscow)
            "customer_id": 42,
            "is_return": True,
            "lines": [{"line_no": 7, "product_id": "SKU-1", "qty": 1, "price": "4990.50", "amount": "4990.50"}],
        },
        {
            "type": "order_line",
            "order_id": "R-2",
            "line_no": 1,
            "ts": "2026-03-03T08:00:00Z",
            "qty": "0.375",
            "price": "800.00",
            "category": "Coffee",
        },
        {
            "type": "customer",
            "customer_id": "C-1",
            "first_name": "Анна",
            "last_name": "Иванова",
            "email": "anna@example.ru",
            "phone": "+79991234567",
            "gender": "f",
            "birth_date": "1990-05-01",
            "city": "Москва",
            "consent_email": True,
            "loyalty_program": "bonus",
        },
        *(
            {
                "type": "message_event",
                "event_id": f"m-{n}-{kind}",
                "event_type": kind,
                "ts": "2026-03-01T09:00:00Z",
                "customer_id": f"C-{n}",
                "mailing_id": "spring-sale",
                "campaign_id": "winback-1" if n % 2 else None,
                "channel": "email",
            }
            for n in range(1, 4)
            for kind in ("sent", "delivered", "opened")
        ),
        {
            "type": "message_event",
            "event_id": "m-1-clicked",
            "event_type": "clicked",
            "ts": "2026-03-01T09:10:00Z",
            "customer_id": "C-1",
            "mailing_id": "spring-sale",
            "channel": "email",
        },
        *(
            {
                "type": "web_event",
                "event_id": f"w-{n}",
                "event_type": kind,
                "ts": "2026-03-01T09:05:00+00:00",
                "session_id": "s-1" if n < 3 else "s-2",
                "customer_id": "C-1" if n < 3 else None,
                "platform": "app" if n == 4 else "web",
                **extra,
            }
            for n, (kind, extra) in enumerate(
                [
                    ("visit", {}),
                    ("category_view", {"category": "Shoes"}),
                    ("product_view", {"product_id": "SKU-1"}),
                    ("add_to_cart", {"product_id": "SKU-1"}),
                    ("checkout", {}),
                ]
            )
        ),
    ]


def expected_sales(batch: list[dict]) -> dict:
    """Totals of the sales lines in ``batch``, computed straight from the payload."""
    lines = []
    for item in batch:
        if item["type"] == "order":
            lines += [{**item, **line} for line in item["lines"]]
        elif item["type"] == "order_line":
            lines.append(item)
    total = {"rows": len(lines), "amount": Decimal(0), "qty": Decimal(0), "discount": Decimal(0)}
    for line in lines:
        qty = Decimal(str(line.get("qty", 1)))
        discount = Decimal(str(line.get("discount", 0)))
        if "amount" in line:
            amount = Decimal(str(line["amount"]))
        else:
            amount = (qty * Decimal(str(line["price"])) - discount).quantize(Decimal("0.01"), ROUND_HALF_UP)
        sign = -1 if line.get("is_return") else 1
        total["amount"] += sign * amount
        total["qty"] += sign * qty
        total["discount"] += sign * discount
    return total


def sales_totals(tenant) -> dict:
    row = tenant_query(
        "SELECT count(), sum(amount), sum(qty), sum(discount) FROM sales_lines FINAL"
        " WHERE tenant_id = {tenant_id:UInt32}",
        tenant_id=tenant.pk,
    ).result_rows[0]
    return dict(zip(("rows", "amount", "qty", "discount"), row, strict=True))


def event_counts(tenant, table: str) -> dict[str, int]:
    rows = tenant_query(
        f"SELECT event_type, count() FROM {table} FINAL WHERE tenant_id = {{tenant_id:UInt32}} GROUP BY event_type",
        tenant_id=tenant.pk,
    ).result_rows
    return dict(rows)


def everything(tenant) -> dict:
    """All the tenant's data the events API can write: ClickHouse facts and Postgres contacts."""
    with tenant_context(tenant):
        contacts = sorted(Contact.objects.values_list("customer_id", "email", "last_name"))
    return {
        "sales": sales_totals(tenant),
        "messages": event_counts(tenant, "message_events"),
        "web": event_counts(tenant, "web_events"),
        "attributes": tenant_query(
            "SELECT customer_id, gender, birth_year, city, loyalty_program, email_reachable"
            " FROM customer_attributes FINAL WHERE tenant_id = {tenant_id:UInt32} ORDER BY customer_id",
            tenant_id=tenant.pk,
        ).result_rows,
        "contacts": contacts,
    }


NOTHING = {
    "sales": {"rows": 0, "amount": 0, "qty": 0, "discount": 0},
    "messages": {},
    "web": {},
    "attributes": [],
    "contacts": [],
}


def test_each_item_type_lands_in_its_table_with_exact_money_and_utc_times(tenant, client):
    batch = a_batch()
    response = post(client, tenant, token_for(tenant), batch)

    assert response.status_code == 200, response.content
    by_type = {kind: sum(item["type"] == kind for item in batch) for kind in {item["type"] for item in batch}}
    assert response.json()["items"] == len(batch)
    assert response.json()["items_by_type"] == by_type
    assert response.json()["sales_lines"] == 5

    data = everything(tenant)
    assert data["sales"] == expected_sales(batch)
    assert data["messages"] == {"sent": 3, "delivered": 3, "opened": 3, "clicked": 1}
    web_expected = {}
    for item in batch:
        if item["type"] == "web_event":
            web_expected[item["event_type"]] = web_expected.get(item["event_type"], 0) + 1
    assert data["web"] == web_expected
    assert data["attributes"] == [("C-1", "f", 1990, "Москва", "bonus", 1)]
    assert data["contacts"] == [("C-1", "anna@example.ru", "Иванова")]

    lines = tenant_query(
        "SELECT order_id, line_no, ts, customer_id, amount, price, is_return FROM sales_lines FINAL"
        " WHERE tenant_id = {tenant_id:UInt32} ORDER BY order_id, line_no",
        tenant_id=tenant.pk,
    ).result_rows
    by_key = {(row[0], row[1]): row for row in lines}
    assert by_key[("R-1", 3)][4] == Decimal("99999999999999.99")
    assert by_key[("R-1", 1)][4] == Decimal("9981.00")  # 2 × 4990.5, computed
    # ClickHouse hands DateTime64(3, 'UTC') back as naive UTC.
    assert by_key[("R-1", 1)][2] == datetime(2026, 3, 1, 7, 15)
    # The naive 12:00 is Moscow time; integer ids are kept as their text; returns are negative.
    assert by_key[("RET-1", 7)][2:] == (
        datetime(2026, 3, 2, 9, 0),
        "42",
        Decimal("-4990.50"),
        Decimal("4990.50"),
        1,
    )
    assert by_key[("R-2", 1)][4] == Decimal("300.00")

    web = tenant_query(
        "SELECT event_id, session_id, customer_id, platform, category, product_id FROM web_events FINAL"
        " WHERE tenant_id = {tenant_id:UInt32} AND event_type = 'add_to_cart'",
        tenant_id=tenant.pk,
    ).result_rows
    assert web == [("w-3", "s-2", "", "web", "", "SKU-1")]

    with tenant_context(tenant):
        run = ImportRun.objects.get()
        assert run.data_source.kind == DataSource.Kind.EVENTS_API
        assert (run.status, run.rows_read, run.rows_written, run.rows_rejected) == (
            "succeeded",
            len(batch),
            len(batch),
            0,
        )
        assert run.pk == response.json()["import_run_id"]


def test_ndjson_writes_the_same_as_a_json_array(make_tenant, client):
    as_array, as_ndjson = make_tenant(locale="en"), make_tenant(locale="en")
    batch = a_batch()
    assert post(client, as_array, token_for(as_array), batch).status_code == 200
    response = post(client, as_ndjson, token_for(as_ndjson), batch, ndjson=True)
    assert response.status_code == 200, response.content
    assert response.json()["items"] == len(batch)
    assert everything(as_ndjson) == everything(as_array) != NOTHING


def test_posting_the_same_batch_twice_leaves_totals_unchanged_and_a_resent_id_replaces(tenant, client):
    token, batch = token_for(tenant), a_batch()
    assert post(client, tenant, token, batch).status_code == 200
    once = everything(tenant)
    assert post(client, tenant, token, batch).status_code == 200
    assert everything(tenant) == once

    # A corrected copy of an item replaces the earlier one instead of adding to it.
    corrected = [
        {**batch[2], "price": "900.00"},  # order_line R-2/1: 0.375 × 900
        {**batch[3], "city": "Казань"},
    ]
    assert post(client, tenant, token, corrected).status_code == 200
    after = everything(tenant)
    assert after["sales"]["rows"] == once["sales"]["rows"]
    assert after["sales"]["amount"] == once["sales"]["amount"] - Decimal("300.00") + Decimal("337.50")
    assert after["attributes"] == [("C-1", "f", 1990, "Казань", "bonus", 1)]
    assert after["messages"] == once["messages"]

    # Within one batch too, the later copy of a customer wins.
    twice = [{**batch[3], "city": "Тверь"}, {**batch[3], "city": "Пермь", "last_name": "Петрова"}]
    assert post(client, tenant, token, twice).status_code == 200
    assert everything(tenant)["attributes"] == [("C-1", "f", 1990, "Пермь", "bonus", 1)]
    assert everything(tenant)["contacts"] == [("C-1", "anna@example.ru", "Петрова")]


def test_bad_items_are_all_listed_by_index_and_field_and_nothing_is_written(tenant, client):
    good = a_batch()
    bad = [
        good[0],
        {**good[4], "ts": "yesterday"},
        {**good[4], "event_id": None, "channel": "pigeon"},
        {"type": "order", "order_id": "R-9", "ts": "2026-03-01T10:00:00Z", "lines": [{"qty": 1, "price": "1.005"}]},
        {"type": "order_line", "order_id": "R-8", "line_no": 1, "ts": "2026-03-01T10:00:00Z", "amount": -5},
        {**good[3], "email": "not-an-address", "customerId": "C-1"},
        {"type": "web_event", "event_id": "w-9", "event_type": "product_view", "ts": "2026-03-01", "session_id": "s"},
        {"type": "refund"},
        "an order",
        {**good[4], "customer_id": "anna@example.ru"},
    ]
    response = post(client, tenant, token_for(tenant), bad)

    assert response.status_code == 400
    body = response.json()
    reported = sorted((error["index"], error["field"]) for error in body["extra"]["errors"])
    assert reported == [
        (1, "ts"),
        (2, "channel"),
        (2, "event_id"),
        (3, "lines[0].price"),
        (4, "amount"),
        (5, "customerId"),
        (5, "email"),
        (6, "product_id"),
        (7, "type"),
        (8, None),
        (9, "customer_id"),
    ]
    assert all(error["reason"] for error in body["extra"]["errors"])
    assert body["extra"]["error_count"] == len(reported)
    assert body["extra"]["invalid_items"] == 9
    assert "9 of 10 items are invalid" in body["message"]
    assert "nothing was written" in body["message"]
    assert everything(tenant) == NOTHING  # the good first item was not written either
    assert gc.isenabled()  # paused while the batch was processed, and back on after the failure

    with tenant_context(tenant):
        run = ImportRun.objects.get()
        assert (run.status, run.rows_read, run.rows_written, run.rows_rejected) == ("failed", 10, 0, 9)
        assert {(e["row"], e["column"]) for e in run.errors} == {(i, f or "") for i, f in reported}


def test_malformed_bodies_name_the_line_or_position(tenant, client):
    token = token_for(tenant)

    response = post(client, tenant, token, '[{"type": "customer", "customer_id": "C-1"},\n {"type": }]')
    assert response.status_code == 400
    assert response.json()["extra"] == {"line": 2, "column": 11, "position": 55}
    assert "line 2, column 11" in response.json()["message"]

    ndjson = '{"type": "customer", "customer_id": "C-1"}\n\n{"type": "customer", "customer_id": "C-2"\n'
    response = post(client, tenant, token, ndjson, ndjson=True)
    assert response.status_code == 400
    assert response.json()["extra"]["line"] == 3
    assert "Line 3" in response.json()["message"]

    for body in ('{"type": "customer", "customer_id": "C-1"}', "[]", b'["\xff"]'):
        response = post(client, tenant, token, body)
        assert response.status_code == 400, body
        assert response.json()["message"]
    # A line of an NDJSON body is reported with its line number too.
    response = post(client, tenant, token, '\n{"type": "customer"}\n', ndjson=True)
    assert response.json()["extra"]["errors"] == [
        {"index": 0, "line": 2, "field": "customer_id", "reason": "is required", "value": None}
    ]
    assert everything(tenant) == NOTHING


def test_limits_answer_413_and_other_media_types_415(tenant, client):
    token = token_for(tenant)
    too_big = b"[" + b" " * MAX_BODY_BYTES + b"]"
    response = post(client, tenant, token, too_big)
    assert response.status_code == 413
    assert "MiB" in response.json()["message"]

    too_many = [{"type": "customer", "customer_id": str(n)} for n in range(MAX_ITEMS + 1)]
    response = post(client, tenant, token, too_many)
    assert response.status_code == 413
    assert str(MAX_ITEMS) in response.json()["message"].replace(",", "")

    # A body that did not announce its length is read up to the limit and refused by the parser.
    with pytest.raises(BatchTooLargeError):
        events_parse(too_big, ndjson=False)

    response = client.post(
        URL,
        "customer_id=1",
        content_type="text/csv",
        HTTP_HOST=tenant.get_primary_domain().domain,
        HTTP_AUTHORIZATION=f"Bearer {token}",
    )
    assert response.status_code == 415
    assert everything(tenant) == NOTHING


def test_a_token_needs_events_write_and_revoked_tokens_are_refused(tenant, client):
    read_only = token_for(tenant, scopes=(ApiToken.Scope.METRICS_READ,))
    response = post(client, tenant, read_only, a_batch())
    assert response.status_code == 403

    writer = token_for(tenant)
    with tenant_context(tenant):
        api_token_revoke(token=ApiToken.objects.get(scopes=[ApiToken.Scope.EVENTS_WRITE]))
    assert post(client, tenant, writer, a_batch()).status_code == 401
    assert post(client, tenant, None, a_batch()).status_code == 401
    assert everything(tenant) == NOTHING


def test_signed_in_users_need_the_permission_to_manage_data_sources(tenant, make_user, logged_in_client):
    viewer = logged_in_client(tenant, make_user(tenant, Role.VIEWER))
    assert post(viewer, tenant, None, a_batch()).status_code == 403
    assert everything(tenant) == NOTHING
    owner = logged_in_client(tenant, make_user(tenant, Role.OWNER))
    response = post(owner, tenant, None, a_batch())
    assert response.status_code == 200, response.content
    with tenant_context(tenant):
        assert ImportRun.objects.get().message == f"Posted by owner@{tenant.slug}.test"


def test_tenants_never_see_each_others_events(make_tenant, client):
    a, b = make_tenant(locale="en"), make_tenant(locale="en")
    a_token = token_for(a)

    # A's token on B's host is refused before anything is written anywhere.
    response = post(client, b, a_token, a_batch())
    assert response.status_code == 403
    assert everything(a) == everything(b) == NOTHING

    assert post(client, a, a_token, a_batch()).status_code == 200
    assert everything(b) == NOTHING
    b_batch = [{"type": "order_line", "order_id": "R-1", "line_no": 1, "ts": "2026-03-01T10:00:00Z", "amount": 5}]
    assert post(client, b, token_for(b), b_batch).status_code == 200
    assert everything(b)["sales"] == expected_sales(b_batch)
    assert everything(a)["sales"] == expected_sales(a_batch())  # B's R-1 did not replace A's


def test_a_batch_moves_its_workspace_data_version_on_and_no_other(make_tenant, client):
    """Cached answers are keyed by the data version: a mixed batch (four tables) must move it, for its tenant only."""
    a, b = make_tenant(locale="en"), make_tenant(locale="en")
    a_before, b_before = data_version(a.pk), data_version(b.pk)
    assert post(client, a, token_for(a), a_batch()).status_code == 200
    assert data_version(a.pk) > a_before
    assert data_version(b.pk) == b_before


def test_no_personal_data_reaches_clickhouse(tenant, client):
    assert post(client, tenant, token_for(tenant), a_batch()).status_code == 200
    pii = ("Анна", "Иванова", "anna@example.ru", "+79991234567", "79991234567")
    for table in FACT_TABLES:
        rows = tenant_query(f"SELECT * FROM {table} WHERE tenant_id = {{tenant_id:UInt32}}", tenant_id=tenant.pk)
        text = " ".join(str(value) for row in rows.result_rows for value in row)
        assert not [value for value in pii if value in text], table


def test_requests_are_throttled_per_token(tenant, client, settings):
    cache.clear()
    first, second = token_for(tenant), token_for(tenant)
    rates = {**settings.REST_FRAMEWORK["DEFAULT_THROTTLE_RATES"], "events_api": "2/min"}
    with override_settings(REST_FRAMEWORK={**settings.REST_FRAMEWORK, "DEFAULT_THROTTLE_RATES": rates}):
        batch = a_batch()[3:4]
        assert [post(client, tenant, first, batch).status_code for _ in range(3)] == [200, 200, 429]
        assert post(client, tenant, second, batch).status_code == 200


def test_the_openapi_schema_describes_the_endpoint(tenant, client):
    response = client.get("/api/v1/schema/?format=json", HTTP_HOST=tenant.get_primary_domain().domain)
    assert response.status_code == 200
    operation = json.loads(response.content)["paths"]["/api/v1/events"]["post"]
    content = operation["requestBody"]["content"]
    assert set(content) == {"application/json", "application/x-ndjson"}
    variants = content["application/json"]["schema"]["items"]["oneOf"]
    assert {variant["title"] for variant in variants} == {
        "order",
        "order_line",
        "customer",
        "message_event",
        "web_event",
    }
    web = next(variant for variant in variants if variant["title"] == "web_event")
    assert set(web["required"]) == {"type", "event_id", "event_type", "ts", "session_id"}
    assert web["properties"]["event_type"]["enum"] == [
        "visit",
        "category_view",
        "product_view",
        "add_to_cart",
        "checkout",
    ]
    assert {"200", "400", "401", "403", "413", "415", "429"} <= set(operation["responses"])

    # The documented example is a batch the endpoint accepts.
    example = content["application/json"]["examples"]["MixedBatch"]["value"]
    response = post(client, tenant, token_for(tenant), example)
    assert response.status_code == 200, response.content
    assert response.json()["items"] == len(example)


@pytest.mark.parametrize(
    ("amount", "accepted"),
    [("0.10", True), (0.1, True), ("1.005", False), (1.005, False), ("1.000", True), ("1e2", True), ("1,5", False)],
)
def test_money_is_exact_and_never_silently_rounded(amount, accepted):
    from zoneinfo import ZoneInfo

    from integrations.events.schema import ParseContext, events_validate

    item = {"type": "order_line", "order_id": "R", "line_no": 1, "ts": "2026-03-01T10:00:00Z", "amount": amount}
    items = json.loads(json.dumps([item]), parse_float=Decimal)
    context = ParseContext.at(timezone=ZoneInfo("Europe/Moscow"), now=datetime.now(UTC))
    batch, errors = events_validate(items, context=context)
    if accepted:
        assert not errors
        assert batch.sales_lines[0].amount == Decimal(str(amount))
    else:
        assert [(error.index, error.field) for error in errors] == [(0, "amount")]
