"""The demo data generator: deterministic, idempotent, and shaped like a real retailer (DESIGN §11).

Shape checks recompute every property with pandas from the rows read back from ClickHouse and
Postgres, not from the generator's own numbers.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime
from decimal import Decimal

import pandas as pd
import pyarrow as pa
import pytest
from django.core.management import CommandError, call_command
from django.db import connection
from django_tenants.utils import tenant_context

from analytics.clickhouse.query import tenant_query
from integrations.demo.people import EMAIL_DOMAINS
from integrations.demo.services import DATA_SOURCE_NAME, demo_data_generate, demo_plan_build
from integrations.demo.timeline import months_before
from integrations.ingest import (
    CUSTOMER_ATTRIBUTE_COLUMNS,
    MESSAGE_EVENT_COLUMNS,
    SALES_LINE_COLUMNS,
    WEB_EVENT_COLUMNS,
    contacts_copy,
)
from integrations.models import Contact, DataSource, ImportRun
from tenants.errors import ApplicationError

END_DAY = date(2026, 1, 1)  # the history is 2023-01-01 … 2025-12-31
# Each fact table's columns as integrations.ingest writes them (tenant_id aside).
FACT_COLUMNS = {
    "sales_lines": SALES_LINE_COLUMNS,
    "message_events": MESSAGE_EVENT_COLUMNS,
    "web_events": WEB_EVENT_COLUMNS,
    "customer_attributes": CUSTOMER_ATTRIBUTE_COLUMNS,
}


def frame(sql: str, tenant_id: int) -> pd.DataFrame:
    result = tenant_query(sql, tenant_id=tenant_id)
    return pd.DataFrame(result.result_rows, columns=result.column_names)


def fingerprint(tenant_id: int) -> dict[str, tuple]:
    """Per table: row count and an order-independent hash of every row, its ingest version aside."""
    prints = {}
    for table, columns in FACT_COLUMNS.items():
        row_hash = f"cityHash64({', '.join(column for column in columns if column != 'version')})"
        prints[table] = tenant_query(
            f"SELECT count(), sum({row_hash}) FROM {table} FINAL WHERE tenant_id = {{tenant_id:UInt32}}",
            tenant_id=tenant_id,
        ).result_rows[0]
    return prints


def contacts_of(tenant) -> list[tuple]:
    with tenant_context(tenant):
        return list(Contact.objects.order_by("customer_id").values_list(*CONTACT_FIELDS))


CONTACT_FIELDS = ("customer_id", "first_name", "last_name", "email", "phone", "gender", "birth_date", "city")


def test_same_seed_and_size_give_identical_data(make_tenant):
    first, second, other = make_tenant(), make_tenant(), make_tenant()
    arguments = {"customers": 500, "months": 12, "end_day": END_DAY, "chunk_customers": 200}
    demo_data_generate(tenant=first, seed=11, **arguments)
    demo_data_generate(tenant=second, seed=11, **arguments)
    demo_data_generate(tenant=other, seed=12, **arguments)

    assert fingerprint(first.pk) == fingerprint(second.pk)
    assert contacts_of(first) == contacts_of(second)
    assert all(count > 0 for count, _hash in fingerprint(first.pk).values())
    # The fingerprint does tell data apart: another seed changes every table.
    changed = {table for table, value in fingerprint(other.pk).items() if value != fingerprint(first.pk)[table]}
    assert changed == set(FACT_COLUMNS)
    assert contacts_of(other) != contacts_of(first)


def test_generating_again_replaces_instead_of_adding(make_tenant):
    tenant = make_tenant()
    arguments = {"tenant": tenant, "customers": 300, "seed": 5, "months": 6, "end_day": END_DAY}
    demo_data_generate(**arguments)
    once = fingerprint(tenant.pk)
    demo_data_generate(**arguments)

    assert fingerprint(tenant.pk) == once
    raw = tenant_query(
        "SELECT count() FROM sales_lines WHERE tenant_id = {tenant_id:UInt32}", tenant_id=tenant.pk
    ).result_rows[0][0]
    assert once["sales_lines"][0] <= raw <= 2 * once["sales_lines"][0]  # stored twice until merged, counted once
    with tenant_context(tenant):
        assert Contact.objects.count() == 300
        runs = ImportRun.objects.filter(data_source__name=DATA_SOURCE_NAME)
        assert [run.status for run in runs] == [ImportRun.Status.SUCCEEDED] * 2
        written = sum(count for count, _hash in once.values()) + 300  # facts and contacts
        assert all(run.rows_written == written and run.progress == 1.0 for run in runs)
        assert DataSource.objects.get(kind=DataSource.Kind.DEMO).config["seed"] == 5


def contact_index_names() -> set[str]:
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT indexname FROM pg_indexes WHERE schemaname = current_schema() AND tablename = %s",
            [Contact._meta.db_table],
        )
        return {name for (name,) in cursor.fetchall()}


def test_contact_indexes_are_built_after_the_load_and_rebuilt_if_missing(make_tenant):
    """Into an empty table the e-mail and phone indexes are dropped for the load and built at its end."""
    tenant = make_tenant()
    arguments = {"tenant": tenant, "customers": 50, "seed": 3, "months": 3, "end_day": END_DAY}
    declared = {index.name for index in Contact._meta.indexes}
    demo_data_generate(**arguments)
    with tenant_context(tenant):
        assert declared <= contact_index_names()
        email_index = next(index for index in Contact._meta.indexes if index.fields == ["email"])
        with connection.schema_editor() as editor:  # as if a run had died with its indexes dropped
            editor.remove_index(Contact, email_index)
        assert email_index.name not in contact_index_names()
    demo_data_generate(**arguments)
    with tenant_context(tenant):
        assert declared <= contact_index_names()
        assert Contact.objects.filter(email=Contact.objects.exclude(email="").first().email).exists()


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        ({"customers": 0}, "Customers must be between 1 and"),
        ({"customers": 10, "months": 0}, "Months of history must be between 1 and"),
        ({"customers": 10, "seed": -1}, "Seed must be between 0 and"),
        ({"customers": 10, "end_day": date(2999, 1, 1)}, "The end date 2999-01-01 is in the future"),
    ],
)
def test_bad_arguments_are_refused_before_anything_is_written(make_tenant, arguments, message):
    tenant = make_tenant()
    with pytest.raises(ApplicationError, match=message):
        demo_data_generate(tenant=tenant, **{"seed": 1, **arguments})
    assert all(count == 0 for count, _hash in fingerprint(tenant.pk).values())
    with tenant_context(tenant):
        assert not ImportRun.objects.exists() and not Contact.objects.exists()


def test_command_generates_and_explains_bad_input(make_tenant):
    tenant = make_tenant()
    with pytest.raises(CommandError, match="No tenant with the slug “nope”"):
        call_command("generate_demo_data", "--tenant", "nope", "--customers", "10")
    with pytest.raises(CommandError, match=r"--end-date must be a date like 2026-01-31, got “31\.01\.2026”"):
        call_command("generate_demo_data", "--tenant", tenant.slug, "--customers", "10", "--end-date", "31.01.2026")
    with pytest.raises(CommandError, match="Customers must be between"):
        call_command("generate_demo_data", "--tenant", tenant.slug, "--customers", "-3")

    call_command(
        "generate_demo_data", "--tenant", tenant.slug, "--customers", "200", "--months", "3", "--end-date", "2025-06-01"
    )
    sales = frame(
        "SELECT min(ts) AS first, max(ts) AS last, count() AS lines FROM sales_lines"
        " WHERE tenant_id = {tenant_id:UInt32}",
        tenant.pk,
    ).iloc[0]
    local = pd.to_datetime(pd.Series([sales["first"], sales["last"]]), utc=True).dt.tz_convert("Europe/Moscow")
    assert local[0].date() >= date(2025, 3, 1) and local[1].date() <= date(2025, 5, 31)
    assert sales["lines"] > 0


def test_months_before_clamps_to_the_shorter_month():
    assert months_before(date(2026, 3, 31), 1) == date(2026, 2, 28)
    assert months_before(date(2026, 1, 15), 36) == date(2023, 1, 15)


# --- One shop, read back once: its shape ---------------------------------------------------------------------


@dataclass
class Shop:
    customers: int
    sales: pd.DataFrame
    messages: pd.DataFrame
    web: pd.DataFrame
    attributes: pd.DataFrame
    contacts: pd.DataFrame
    mailing_depth: dict[str, int]  # mailing id → discount % of its offer
    mailing_code: dict[str, str]  # mailing id → promo code


SHOP_SIZE = 6000
_shop: list[Shop] = []


def _local(frame_: pd.DataFrame, column: str) -> pd.Series:
    return pd.to_datetime(frame_[column], utc=True).dt.tz_convert("Europe/Moscow")


@pytest.fixture
def shop(request) -> Shop:
    """A 6,000-customer shop over three years, generated in chunks of 2,500 and read back once per module.

    ClickHouse rows outlive the test that wrote them (only Postgres rolls back), so later tests
    reuse the frames instead of generating again.
    """
    if not _shop:
        tenant = request.getfixturevalue("make_tenant")()
        demo_data_generate(tenant=tenant, customers=SHOP_SIZE, seed=2026, end_day=END_DAY, chunk_customers=2500)
        read = lambda table: frame(f"SELECT * FROM {table} FINAL WHERE tenant_id = {{tenant_id:UInt32}}", tenant.pk)  # noqa: E731
        with tenant_context(tenant):
            contacts = pd.DataFrame(list(Contact.objects.values()))
        plan = demo_plan_build(
            seed=2026, customers=SHOP_SIZE, months=36, end_day=END_DAY, timezone_name="Europe/Moscow"
        )
        mailings = plan.mailings
        _shop.append(
            Shop(
                customers=SHOP_SIZE,
                sales=read("sales_lines"),
                messages=read("message_events"),
                web=read("web_events"),
                attributes=read("customer_attributes"),
                contacts=contacts,
                mailing_depth=dict(zip(mailings.mailing_ids, mailings.depth.tolist(), strict=True)),
                mailing_code=dict(zip(mailings.mailing_ids, mailings.promo_codes, strict=True)),
            )
        )
    return _shop[0]


def test_a_fifth_of_receipts_are_anonymous(shop):
    receipts = shop.sales[shop.sales.is_return == 0].groupby("order_id").customer_id.first()
    assert receipts.eq("").mean() == pytest.approx(0.2, abs=0.02)


def test_returns_are_negative_lines_of_earlier_sales(shop):
    returns = shop.sales[shop.sales.is_return == 1]
    sales = shop.sales[shop.sales.is_return == 0]
    assert len(returns) / len(sales) == pytest.approx(0.03, abs=0.01)
    assert (returns.amount < 0).all() and (returns.qty < 0).all() and (returns.discount <= 0).all()
    matched = returns.merge(sales, on=["order_id", "line_no"], suffixes=("", "_sale"), validate="one_to_one")
    assert len(matched) == len(returns)
    assert (matched.amount == -matched.amount_sale).all() and (matched.product_id == matched.product_id_sale).all()
    assert (matched.ts > matched.ts_sale).all()


def test_money_is_exact(shop):
    lines = shop.sales
    cent = Decimal("0.01")
    for column in ("price", "discount", "amount"):
        assert all(isinstance(value, Decimal) and value == value.quantize(cent) for value in lines[column])
    gross = [price * abs(qty) for price, qty in zip(lines.price, lines.qty, strict=True)]
    expected = [(g - abs(d)) * (-1 if r else 1) for g, d, r in zip(gross, lines.discount, lines.is_return, strict=True)]
    assert list(lines.amount) == expected
    assert (lines.price > 0).all()


def test_december_outsells_july_and_monday_is_quieter_than_saturday(shop):
    sales = shop.sales[shop.sales.is_return == 0].assign(local=lambda f: _local(f, "ts"))
    revenue = sales.groupby([sales.local.dt.year, sales.local.dt.month]).amount.sum()
    for year in (2023, 2024, 2025):
        assert revenue[(year, 12)] > revenue[(year, 7)], year
        assert revenue[(year, 3)] > revenue[(year, 7)], year  # 8 March gifts against the summer dip
    receipts = sales.drop_duplicates("order_id")
    by_weekday = receipts.groupby(receipts.local.dt.day_of_week).size()
    assert by_weekday[0] == by_weekday.min() and by_weekday[0] < 0.8 * by_weekday[5]
    hours = receipts[receipts.channel == "offline"].local.dt.hour
    assert hours.between(10, 21).all()  # stores open 10:00–22:00
    assert hours.value_counts().idxmax() in (17, 18, 19, 20)  # the evening peak


def test_some_regular_customers_lapsed(shop):
    receipts = shop.sales[(shop.sales.is_return == 0) & (shop.sales.customer_id != "")]
    per_customer = receipts.groupby("customer_id").agg(orders=("order_id", "nunique"), last=("ts", "max"))
    regulars = per_customer[per_customer.orders >= 2]
    quiet_days = (pd.Timestamp(END_DAY, tz="Europe/Moscow") - pd.to_datetime(regulars["last"], utc=True)).dt.days
    assert 0.15 < (quiet_days > 180).mean() < 0.7
    assert (per_customer.orders == 1).mean() > 0.15  # and one-off buyers
    assert per_customer.orders.max() >= 20  # and a few very frequent ones


def test_discount_depths_and_their_effect(shop):
    sales = shop.sales[shop.sales.is_return == 0]
    gross = sales.price * sales.qty
    depth = (sales.discount * 100 / gross).astype(float).round()
    shares = depth.value_counts(normalize=True)
    assert set(shares.index) == {0, 5, 10, 15, 20}
    assert shares[0] > 0.5
    # Seed 004: offers of 10 % bring about as many orders per delivered message as 20 %, and 15 % fewer.
    offer_mailings = {m for m, d in shop.mailing_depth.items() if d > 0}
    delivered = shop.messages[(shop.messages.event_type == "delivered") & shop.messages.mailing_id.isin(offer_mailings)]
    deliveries = delivered.mailing_id.map(shop.mailing_depth).value_counts()
    depth_of_code = {shop.mailing_code[m]: shop.mailing_depth[m] for m in offer_mailings}
    redeemed = sales[sales.promo_code != ""].drop_duplicates(["customer_id", "promo_code"])
    responders = redeemed.promo_code.map(depth_of_code).value_counts()
    rate = responders / deliveries
    assert rate[10] > 1.4 * rate[15] and rate[20] > 1.4 * rate[15]
    assert 0.7 < rate[10] / rate[20] < 1.4
    assert (depth[sales.promo_code != ""] > 0).all()


def test_web_funnel_narrows_at_every_step(shop):
    sessions = shop.web.groupby("event_type").session_id.nunique()
    steps = [sessions[step] for step in ("visit", "category_view", "product_view", "add_to_cart", "checkout")]
    assert steps == sorted(steps, reverse=True) and 0.03 < steps[-1] / steps[0] < 0.2  # conversion
    assert shop.web.groupby("session_id").event_type.apply(lambda types: "visit" in set(types)).all()
    assert 0.2 < shop.web.customer_id.eq("").mean() < 0.6  # anonymous visitors


def test_mailing_events_follow_each_other(shop):
    events = shop.messages
    per_mailing = events.groupby(["mailing_id", "event_type"]).size().unstack(fill_value=0)
    assert (per_mailing.delivered <= per_mailing.sent).all()
    assert (per_mailing.opened <= per_mailing.delivered).all()
    assert (per_mailing.clicked <= per_mailing.delivered).all()
    assert (per_mailing.unsubscribed <= per_mailing.opened).all()
    totals = per_mailing.sum()
    assert totals.delivered / totals.sent > 0.9
    assert 0.1 < totals.opened / totals.delivered < 0.5
    assert totals.unsubscribed > 0 and totals.bounced > 0
    # No e-mail after an unsubscribe, and the contact's consent is gone.
    unsubscribed = events[events.event_type == "unsubscribed"].groupby("customer_id").ts.min()
    sent = events[(events.event_type == "sent") & (events.channel == "email")]
    later = sent.merge(unsubscribed.rename("ts_unsubscribed"), left_on="customer_id", right_index=True)
    assert len(later) >= len(unsubscribed) and not (later.ts > later.ts_unsubscribed).any()
    contacts = shop.contacts.set_index("customer_id")
    assert not contacts.loc[unsubscribed.index, "consent_email"].any()
    attributes = shop.attributes.set_index("customer_id")
    assert (attributes.loc[unsubscribed.index, "email_reachable"] == 0).all()


def test_offers_hold_out_a_control_group_that_buys_less(shop):
    events = shop.messages
    offers = {mailing for mailing, depth in shop.mailing_depth.items() if depth > 0}
    members = events[events.event_type.isin(["sent", "control"])]
    assert set(members[members.event_type == "control"].mailing_id) <= offers  # newsletters hold out nobody
    offer_members = members[members.mailing_id.isin(offers)]
    assert offer_members.event_type.eq("control").mean() == pytest.approx(0.1, abs=0.02)
    # A control member gets nothing of the mailing: no send, delivery, open …
    control = offer_members[offer_members.event_type == "control"][["mailing_id", "customer_id"]]
    reached = control.merge(events[events.event_type != "control"], on=["mailing_id", "customer_id"])
    assert reached.empty
    # Revenue per member within the attribution window (5 days) after the send: the offer's lift.
    sales = shop.sales[(shop.sales.is_return == 0) & (shop.sales.customer_id != "")]
    orders = sales.groupby(["customer_id", "order_id"], as_index=False).agg(
        order_ts=("ts", "min"), amount=("amount", "sum")
    )
    bought = offer_members.merge(orders, on="customer_id")
    in_window = (bought.order_ts >= bought.ts) & (bought.order_ts < bought.ts + pd.Timedelta(days=5))
    revenue = bought[in_window].groupby(["mailing_id", "customer_id", "event_type"]).amount.sum()
    per_member = revenue.reindex(
        pd.MultiIndex.from_frame(offer_members[["mailing_id", "customer_id", "event_type"]]), fill_value=Decimal(0)
    )
    mean = per_member.groupby(level="event_type").apply(lambda amounts: sum(amounts) / len(amounts))
    assert mean["sent"] > mean["control"] * Decimal("1.5") > 0  # about twice as much: the offers work


def test_contacts_live_in_postgres_and_agree_with_the_facts(shop):
    contacts = shop.contacts.set_index("customer_id")
    attributes = shop.attributes.set_index("customer_id")
    assert len(contacts) == len(attributes) == shop.customers
    assert (contacts.gender == attributes.gender.reindex(contacts.index)).all()
    birth_year = contacts.birth_date.map(lambda day: day.year if day else 0)
    assert (birth_year == attributes.birth_year.reindex(contacts.index)).all()
    assert 0.05 < (birth_year == 0).mean() < 0.15 and birth_year[birth_year > 0].min() < 1970
    emails = contacts.email[contacts.email != ""]
    assert emails.str.split("@").str[1].isin(EMAIL_DOMAINS).all() and 0.75 < len(emails) / len(contacts) < 0.95
    assert contacts.phone[contacts.phone != ""].str.fullmatch(r"\+79\d{9}").all()
    assert (contacts.first_name != "").all() and (contacts.last_name != "").all()
    # Customers sign up with their first purchase; a year's worth of them did before the history began.
    signed_up = pd.to_datetime(attributes.created_at, utc=True)
    history_start = pd.Timestamp(months_before(END_DAY, 36), tz="Europe/Moscow")
    assert 0.1 < (signed_up < history_start).mean() < 0.4
    assert (signed_up >= pd.Timestamp(months_before(END_DAY, 48), tz="Europe/Moscow")).all()
    sales = shop.sales[(shop.sales.is_return == 0) & (shop.sales.customer_id != "")]
    first_purchase = pd.to_datetime(sales.groupby("customer_id").ts.min(), utc=True)
    joined_in_history = signed_up.reindex(first_purchase.index) >= history_start
    assert joined_in_history.mean() > 0.6
    at_first_purchase = signed_up.reindex(first_purchase.index) == first_purchase
    assert at_first_purchase[joined_in_history].mean() > 0.97  # the rest signed up online, bought after an offer
    assert (signed_up.reindex(first_purchase.index) <= first_purchase).all()


def test_seed_demo_generates_the_demo_shop_once(db):
    from tenants.management.commands.seed_demo import DEMO_CUSTOMERS
    from tenants.models import Tenant

    call_command("seed_demo")
    call_command("seed_demo")
    demo = Tenant.objects.get(slug="demo")
    with tenant_context(demo):
        assert ImportRun.objects.filter(data_source__kind=DataSource.Kind.DEMO).count() == 1
        assert Contact.objects.count() == DEMO_CUSTOMERS
    assert frame("SELECT count() AS n FROM sales_lines WHERE tenant_id = {tenant_id:UInt32}", demo.pk).n[0] > 0


def test_contacts_copy_upserts_and_keeps_the_later_row_of_a_customer_given_twice(make_tenant):
    tenant = make_tenant()
    rows = [
        ("c1", "Анна", "Иванова", "anna@example.ru", "+79990000001", "f", date(1990, 5, 1), True),
        ("c2", "Олег", "Петров", "", "+79990000002", "m", None, False),
        ("c1", "Анна", "Иванова", "anna.new@example.ru", "+79990000001", "f", date(1990, 5, 1), False),
    ]
    columns = list(zip(*rows, strict=True))
    contacts = pa.table(
        {
            "customer_id": columns[0],
            "first_name": columns[1],
            "last_name": columns[2],
            "email": columns[3],
            "phone": columns[4],
            "gender": columns[5],
            "birth_date": pa.array(columns[6], pa.date32()),
            "city": ["Москва"] * 3,
            "home_store": [""] * 3,
            "consent_email": columns[7],
            "consent_sms": [False] * 3,
            "created_at": pa.array([datetime(2024, 1, 2, 10, tzinfo=UTC)] * 3, pa.timestamp("ms", tz="UTC")),
        }
    )
    with tenant_context(tenant):
        assert contacts_copy(contacts) == 3
        assert Contact.objects.get(customer_id="c1").email == "anna.new@example.ru"  # the later row
        contacts_copy(contacts.slice(0, 2))  # again: an upsert, with the first c1 row only this time
        assert Contact.objects.count() == 2
        anna, oleg = Contact.objects.order_by("customer_id")
    assert (anna.email, anna.consent_email, anna.birth_date) == ("anna@example.ru", True, date(1990, 5, 1))
    assert (oleg.email, oleg.birth_date, oleg.created_at) == ("", None, datetime(2024, 1, 2, 10, tzinfo=UTC))
