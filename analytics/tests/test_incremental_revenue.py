"""Incremental revenue of mailings against their control groups (analytics/semantic/audiences.py).

Generated shops reconcile with the pandas reference (reference_metrics.py) by mailing, campaign and channel and in
total; a small hand-written shop pins the definition to numbers worked out by hand.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest

from analytics.preaggregations import preaggregations_rebuild
from analytics.tests.reference_metrics import ReferenceFilter, facts_load
from analytics.tests.test_semantic_reconciliation import reconcile, run_query
from integrations.ingest import MessageEvent, SalesLine, message_events_write, sales_lines_write
from integrations.tests.test_events_api import event_counts, post, token_for

AUDIENCE_METRICS = ("control_group_size", "control_revenue", "incremental_revenue")
MONTH = (date(2025, 3, 1), date(2025, 3, 31))
QUARTER = (date(2025, 4, 1), date(2025, 6, 30))
SHOP_SIZE = 2000


def by(answer: dict, metric: str) -> dict[tuple, Any]:
    """Each row's value of ``metric``, by its dimension values."""
    return {tuple(row["dimensions"].values()): row["values"][metric] for row in answer["rows"]}


@pytest.mark.parametrize("timezone", ["Europe/Moscow", "America/New_York"])
def test_generated_mailings_reconcile_by_mailing_and_in_total(generated_tenant, timezone):
    # Big enough for control groups of a dozen, some of whom buy: fractions of a kopeck to round.
    tenant = generated_tenant(customers=SHOP_SIZE, timezone=timezone)
    facts = facts_load(tenant)
    metrics = ("sends", "recipients", *AUDIENCE_METRICS)
    for period in (MONTH, QUARTER):
        total = reconcile(tenant, facts, metrics, period)["totals"]["values"]
        answer = reconcile(tenant, facts, metrics, period, dimensions=("mailing",))
        incremental = by(answer, "incremental_revenue")
        # Offers hold out a control group, newsletters do not: theirs is unknown, not zero.
        assert any(value is not None for value in incremental.values()), period
        assert all(value is None for (mailing,), value in incremental.items() if mailing.startswith("newsletter"))
        # The total is the sum of the mailings' own.
        assert total["incremental_revenue"] == sum(value for value in incremental.values() if value is not None)
        assert total["control_group_size"] == sum(by(answer, "control_group_size").values()) > 0
        reconcile(tenant, facts, metrics, period, dimensions=("campaign", "message_channel"), granularity="month")
    offers = ReferenceFilter("campaign", ("winback",))
    reconcile(tenant, facts, AUDIENCE_METRICS, QUARTER, dimensions=("mailing",), filters=(offers,))


def test_pre_aggregated_sends_orders_and_message_days_give_the_same_answers(generated_tenant, sent):
    tenant = generated_tenant(customers=SHOP_SIZE)
    preaggregations_rebuild(tenant_id=tenant.pk, timezone=tenant.timezone)
    facts = facts_load(tenant)
    # By mailing: sends from the message_days rollup, the audience from audience_sends; joined per mailing.
    for period in (MONTH, QUARTER):
        reconcile(tenant, facts, ("sends", *AUDIENCE_METRICS), period, dimensions=("mailing",))
        sliced = ("campaign", "message_channel")
        reconcile(tenant, facts, AUDIENCE_METRICS, period, dimensions=sliced, granularity="week")
    assert sent and all("FROM audience_sends" in sql and "FROM orders" not in sql for sql in sent)
    # The send's weekday is not a column of audience_sends: by weekday, the members come from the events and their
    # orders from the orders build (the totals still read audience_sends).
    sent.clear()
    reconcile(tenant, facts, AUDIENCE_METRICS, MONTH, dimensions=("weekday",))
    by_weekday = [sql for sql in sent if "AS d0" in sql]
    assert by_weekday and all("FROM orders" in sql and "FROM audience_sends" not in sql for sql in by_weekday)


# --- A shop written by hand ---------------------------------------------------------------------------------------

SEND = datetime(2025, 3, 10, 8, 0, tzinfo=UTC)  # offer-1 goes out; the attribution window is 5 days


def event(event_type: str, customer: str, mailing: str, ts: datetime, channel: str = "email") -> MessageEvent:
    campaign = "newsletter" if mailing.startswith("news") else "spring"
    event_id = f"{mailing}-{customer}-{event_type}"
    return MessageEvent(event_id, event_type, ts, customer, mailing, campaign, channel)


def order(order_id: str, customer: str, ts: datetime, amount: str, *, is_return: bool = False) -> SalesLine:
    return SalesLine(order_id, 1, ts, Decimal(amount), customer_id=customer, is_return=is_return)


def hand_written_shop(tenant: Any) -> None:
    """offer-1: recipients C1–C3 (only C1 delivered), control K1, K2. news-1: no control group. offer-2 (sms):
    recipient C4, control K3."""
    news, second = SEND + timedelta(days=2), SEND + timedelta(days=10)
    events = [event("sent", customer, "offer-1", SEND) for customer in ("C1", "C2", "C3")]
    events += [event("delivered", "C1", "offer-1", SEND + timedelta(minutes=1))]
    events += [event("control", customer, "offer-1", SEND) for customer in ("K1", "K2")]
    events += [event("sent", customer, "news-1", news) for customer in ("C1", "C4")]
    events += [event("sent", "C4", "offer-2", second, "sms"), event("control", "K3", "offer-2", second, "sms")]
    message_events_write(events, source="test", tenant_id=tenant.pk)
    lines = [
        order("o1", "C1", SEND + timedelta(days=1), "1000.00"),
        order("o2", "C1", SEND + timedelta(days=5), "500.00"),  # the window's end: not offer-1's (news-1's)
        order("o3", "C2", SEND - timedelta(days=1), "200.00"),  # before the send
        order("o4", "C3", SEND + timedelta(days=2), "300.00"),  # not delivered: counts all the same
        order("o5", "K1", SEND, "100.01"),  # at the send: in the window
        order("o6", "K2", SEND + timedelta(days=3), "70.00", is_return=True),  # a return is no order
        order("o7", "C4", second + timedelta(days=2), "80.00"),
        order("o8", "K3", second + timedelta(days=1), "50.00"),
    ]
    sales_lines_write(lines, source="test", tenant_id=tenant.pk)


# offer-1: T = 1000 + 300, K = 100.01 over C = 2, R = 3: 1300 − 150.015 = 1149.985 → 1149.99 (half up).
# offer-2: 80 − 50 × 1 / 1 = 30. The total leaves news-1 out (no control group): 1179.99.
EXPECTED = {
    ("offer-1",): {"control_group_size": 2, "control_revenue": Decimal("100.01"), "incremental": Decimal("1149.99")},
    ("offer-2",): {"control_group_size": 1, "control_revenue": Decimal("50.00"), "incremental": Decimal("30.00")},
    ("news-1",): {"control_group_size": 0, "control_revenue": Decimal("0.00"), "incremental": None},
}


def values(answer_values: dict) -> dict:
    return {
        "control_group_size": answer_values["control_group_size"],
        "control_revenue": answer_values["control_revenue"],
        "incremental": answer_values["incremental_revenue"],
    }


@pytest.mark.parametrize("built", [False, True], ids=["from events", "from audience sends"])
def test_the_definition_worked_out_by_hand(make_tenant, sent, built):
    tenant = make_tenant()
    hand_written_shop(tenant)
    if built:  # each send's window revenue is then precomputed: the window's edges must hold there too
        preaggregations_rebuild(tenant_id=tenant.pk, timezone=tenant.timezone)
    answer = run_query(tenant, ("sends", *AUDIENCE_METRICS), MONTH, dimensions=("mailing",))
    assert {
        key: values(row) for key, row in ((tuple(r["dimensions"].values()), r["values"]) for r in answer["rows"])
    } == (EXPECTED)
    assert by(answer, "sends") == {("offer-1",): 3, ("news-1",): 2, ("offer-2",): 1}  # control events are no sends
    assert values(answer["totals"]["values"]) == {
        "control_group_size": 3,
        "control_revenue": Decimal("150.01"),
        "incremental": Decimal("1179.99"),
    }
    by_channel = run_query(tenant, ("incremental_revenue",), MONTH, dimensions=("message_channel",))
    assert by(by_channel, "incremental_revenue") == {("email",): Decimal("1149.99"), ("sms",): Decimal("30.00")}
    by_campaign = run_query(tenant, ("incremental_revenue",), MONTH, dimensions=("campaign",))
    assert by(by_campaign, "incremental_revenue") == {("spring",): Decimal("1179.99"), ("newsletter",): None}
    audience_statements = [sql for sql in sent if "recipient_revenue" in sql]
    assert audience_statements
    assert all(("FROM audience_sends" in sql) == built for sql in audience_statements)


@pytest.mark.parametrize("built", [False, True], ids=["from events", "from audience sends"])
def test_a_customer_sent_a_mailing_twice_is_one_member_from_the_first_send_in_the_bucket(make_tenant, sent, built):
    tenant = make_tenant()
    second_send = SEND + timedelta(days=10)  # Thursday 20 March; the first send is on Monday 10 March
    message_events_write(
        [
            event("sent", "C9", "offer-9", SEND),
            MessageEvent("offer-9-C9-again", "sent", second_send, "C9", "offer-9", "spring", "email"),
            event("control", "K9", "offer-9", SEND),
        ],
        source="test",
        tenant_id=tenant.pk,
    )
    sales_lines_write(
        [
            order("O1", "C9", SEND + timedelta(days=2), "100.00"),
            order("O2", "C9", second_send + timedelta(days=2), "50"),
        ],
        source="test",
        tenant_id=tenant.pk,
    )
    if built:
        preaggregations_rebuild(tenant_id=tenant.pk, timezone=tenant.timezone)
    month = run_query(tenant, AUDIENCE_METRICS, MONTH, dimensions=("mailing",))
    # One recipient, from the first send: its window holds O1 only; the control member bought nothing.
    assert by(month, "incremental_revenue") == {("offer-9",): Decimal("100.00")}
    weeks = run_query(tenant, ("recipients", *AUDIENCE_METRICS), MONTH, granularity="week")
    per_week = {
        row["bucket"]: (row["values"]["recipients"], row["values"]["incremental_revenue"]) for row in weeks["rows"]
    }
    # In the week of the second send, C9 is a member from that send (O2 in its window), with no control group there.
    assert per_week == {date(2025, 3, 10): (1, Decimal("100.00")), date(2025, 3, 17): (1, None)}
    assert any("FROM audience_sends" in sql for sql in sent) == built


def test_no_control_group_means_no_incremental_revenue(make_tenant):
    tenant = make_tenant()
    hand_written_shop(tenant)
    newsletter = ReferenceFilter("mailing", ("news-1",))
    only_newsletter = run_query(tenant, AUDIENCE_METRICS, MONTH, filters=(newsletter,))["totals"]["values"]
    assert only_newsletter == {"control_group_size": 0, "control_revenue": Decimal("0.00"), "incremental_revenue": None}
    no_mailings = run_query(tenant, AUDIENCE_METRICS, (date(2025, 4, 1), date(2025, 4, 30)), compare="previous_period")
    assert no_mailings["totals"]["values"]["incremental_revenue"] is None
    assert no_mailings["totals"]["previous"]["incremental_revenue"] == Decimal("1179.99")
    assert no_mailings["totals"]["change"]["incremental_revenue"] == {"absolute": None, "percent": None}


def test_each_tenant_sees_only_its_own_audiences(make_tenant):
    shop, other = make_tenant(), make_tenant()
    hand_written_shop(shop)
    # The other tenant: the same mailing and customer ids, its own numbers.
    message_events_write(
        [event("sent", "C1", "offer-1", SEND), event("control", "K1", "offer-1", SEND)],
        source="test",
        tenant_id=other.pk,
    )
    sales_lines_write([order("x1", "K1", SEND + timedelta(days=1), "40.00")], source="test", tenant_id=other.pk)
    for tenant, expected in (
        (shop, {"control_group_size": 3, "control_revenue": Decimal("150.01"), "incremental": Decimal("1179.99")}),
        (other, {"control_group_size": 1, "control_revenue": Decimal("40.00"), "incremental": Decimal("-40.00")}),
    ):
        assert values(run_query(tenant, AUDIENCE_METRICS, MONTH)["totals"]["values"]) == expected


def test_the_events_api_takes_control_events(make_tenant, client):
    tenant = make_tenant(locale="en")
    control = {
        "type": "message_event",
        "event_id": "spring-K1",
        "event_type": "control",
        "ts": "2025-03-10T11:00:00+03:00",
        "customer_id": "K1",
        "mailing_id": "spring-sale",
        "channel": "email",
    }
    token = token_for(tenant)
    response = post(client, tenant, token, [control, {**control, "event_id": "spring-K2", "customer_id": "K2"}])
    assert response.status_code == 200, response.content
    assert event_counts(tenant, "message_events") == {"control": 2}
    refused = post(client, tenant, token, [{**control, "event_type": "holdout"}])
    assert refused.status_code == 400 and "event_type" in refused.content.decode()
    answer = run_query(tenant, AUDIENCE_METRICS, MONTH)["totals"]["values"]
    assert answer["control_group_size"] == 2 and answer["incremental_revenue"] == Decimal("0.00")


@pytest.mark.parametrize("built", [False, True], ids=["orders from lines", "orders from the orders build"])
def test_a_window_past_the_period_end_keeps_its_last_hour_across_a_dst_change(make_tenant, sent, built):
    # Berlin moves its clocks forward on 30 March 2025. The period ends at local midnight of 26 March (23:00 UTC on
    # the 25th); a send at 22:30 UTC on the 25th has its 5-day window end at 22:30 UTC on the 30th, 00:30 on
    # 31 March local: five UTC days after the period's end fall on one more local day than five local days do.
    tenant = make_tenant(timezone="Europe/Berlin")
    last_hour = datetime(2025, 3, 25, 22, 30, tzinfo=UTC)
    message_events_write(
        [event("sent", "C1", "offer-1", last_hour), event("control", "K1", "offer-1", last_hour)],
        source="test",
        tenant_id=tenant.pk,
    )
    window_end = last_hour + timedelta(days=5)
    lines = [
        order("o1", "C1", window_end - timedelta(minutes=15), "80.00"),  # 00:15 local on 31 March: in the window
        order("o2", "C1", window_end, "40.00"),  # the window's end: out
        order("o3", "K1", window_end + timedelta(minutes=5), "10.00"),  # after the control member's window
    ]
    sales_lines_write(lines, source="test", tenant_id=tenant.pk)
    if built:
        preaggregations_rebuild(tenant_id=tenant.pk, timezone=tenant.timezone)
    # By the send's weekday the members come from the events, joined to the orders (the totals: audience_sends
    # when built).
    answer = run_query(tenant, AUDIENCE_METRICS, (date(2025, 3, 1), date(2025, 3, 25)), dimensions=("weekday",))
    assert list(by(answer, "incremental_revenue").values()) == [Decimal("80.00")]
    assert answer["totals"]["values"]["incremental_revenue"] == Decimal("80.00")
    member_statements = [sql for sql in sent if "AS member LEFT JOIN" in sql]
    assert member_statements and all(("FROM orders" in sql) == built for sql in member_statements)
