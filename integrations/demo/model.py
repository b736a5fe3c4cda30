"""How the demo retailer's customers behave, generated with numpy one chunk of customers at a time.

Purchases follow the BG/NBD story: each customer buys at their own rate (gamma-distributed
across customers) and may leave after any purchase with their own probability (beta-
distributed), so the base has regulars, one-off buyers and customers who lapsed. Rates run in
the timeline's demand time, which brings seasonality and the weekday load. On top: baskets,
loyalty discounts, returns, anonymous receipts, mailings with opens, clicks and unsubscribes,
offers that bring orders back (10 % works about as well as 20 %, 15 % worse: seed 004) to all but
the control group each offer holds out, and a web funnel.

Every chunk draws from its own generator seeded by (seed, chunk), so the output depends only
on the seed and the size, never on threads or timing, and memory is bounded by the chunk size.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from integrations.demo.catalog import (
    CATEGORY_WEIGHTS,
    EMAIL,
    OFFLINE,
    ONLINE,
    SEND_SECOND,
    WINBACK,
    Catalog,
    MailingPlan,
)
from integrations.demo.timeline import SECONDS_PER_DAY, Timeline

CHUNK_CUSTOMERS = 50_000
# The control groups are drawn from a stream of their own (seeded by seed, chunk and this): holding customers out
# leaves every other draw as it was.
HOLDOUT_STREAM = 0xC0
# Ids are numbered per chunk in strides: a chunk never has more orders or web sessions than this.
ID_STRIDE = 10**8


@dataclass(frozen=True)
class Behaviour:
    """A behavioural type (seed 004 found four); hidden from the data, visible in what customers do."""

    share: float
    orders_per_year: float  # mean purchase rate while active
    dropout: float  # mean probability of leaving after a purchase
    basket: float  # mean lines per receipt
    online: float  # mean share of orders placed online
    offer_response: float  # multiplier on the response to offers
    category_weights: tuple[float, ...]  # same order as catalog.ASSORTMENT


BEHAVIOURS = (
    # Salon professionals: frequent, loyal, big baskets of hair care and colour.
    Behaviour(0.12, 14.4, 0.035, 5.0, 0.35, 0.8, (0.40, 0.30, 0.10, 0.08, 0.03, 0.01, 0.01, 0.04, 0.01, 0.02)),
    # Regulars: buy care and make-up for themselves every couple of months.
    Behaviour(0.30, 8.0, 0.08, 3.0, 0.25, 1.0, (0.28, 0.10, 0.08, 0.10, 0.16, 0.13, 0.07, 0.05, 0.02, 0.01)),
    # Bargain hunters: come for offers.
    Behaviour(0.20, 4.6, 0.15, 2.5, 0.30, 2.0, (0.25, 0.10, 0.08, 0.12, 0.14, 0.12, 0.09, 0.07, 0.02, 0.01)),
    # Occasional and gift buyers: perfume and sets, once or twice.
    Behaviour(0.38, 2.1, 0.32, 2.0, 0.15, 0.6, (0.16, 0.05, 0.06, 0.10, 0.14, 0.14, 0.10, 0.07, 0.15, 0.03)),
)
# Category mix per behaviour, and of shoppers without a card last, as shifted cumulative sums for _draw.
CATEGORY_CUMULATIVE = np.concatenate(
    [
        group + np.cumsum(weights) / np.sum(weights)
        for group, weights in enumerate([*(b.category_weights for b in BEHAVIOURS), CATEGORY_WEIGHTS])
    ]
)
RATE_SHAPE = 2.0  # gamma shape of purchase rates around a behaviour's mean
DROPOUT_CONCENTRATION = 6.0  # beta a + b of dropout probabilities
ONLINE_CONCENTRATION = 6.0  # beta a + b of customers' online shares
NON_BUYER_SHARE = 0.06  # signed up (online, a promo) but never bought
FEMALE_SHARE, MALE_SHARE = 0.74, 0.23  # the rest did not say
BIRTH_YEAR_KNOWN = 0.9
AGE_MEAN, AGE_SD, AGE_MIN, AGE_MAX = 36.0, 11.0, 16, 80
HOME_CITY_SHARE = 0.92  # customers who live in their home store's city
HOME_STORE_SHARE = 0.85  # offline receipts in the home store
LOYALTY_PROGRAMS = ("", "bonus", "discount")
LOYALTY_WEIGHTS = (0.2, 0.5, 0.3)
LOYALTY_DISCOUNT = 5  # % off every receipt of "discount" cardholders
BONUS_REDEMPTION, BONUS_DEPTH = 0.2, 10  # bonus cardholders pay 10 % in points on a fifth of receipts
HAS_EMAIL, HAS_PHONE = 0.85, 0.96
CONSENT_EMAIL, CONSENT_SMS = 0.7, 0.55
BAD_EMAIL = 0.03  # addresses that bounce
ANONYMOUS_PER_IDENTIFIED = 0.25  # → a fifth of all receipts carry no card
QUANTITIES, QUANTITY_WEIGHTS = np.array([1, 2, 3]), np.array([0.86, 0.11, 0.03])
MAX_BASKET = 30
RETURN_SHARE = 0.03
RETURN_DAYS_MEAN, RETURN_DAYS_MAX = 6.0, 30
# Hour of day by channel: stores open 10–22 with an evening peak; online peaks at lunch and late evening.
OFFLINE_HOURS = np.array([0] * 10 + [0.5, 0.7, 0.9, 1.0, 1.0, 1.0, 1.1, 1.3, 1.5, 1.5, 1.2, 0.7, 0, 0])
ONLINE_HOURS = np.array(
    [
        0.3,
        0.2,
        0.1,
        0.1,
        0.1,
        0.1,
        0.2,
        0.4,
        0.6,
        0.8,
        0.9,
        1.0,
        1.2,
        1.1,
        1.0,
        1.0,
        1.0,
        1.1,
        1.2,
        1.4,
        1.6,
        1.7,
        1.4,
        0.8,
    ]
)
# Mailings.
EMAIL_DELIVERY, SMS_DELIVERY = 0.99, 0.97
OPEN_A, OPEN_B = 1.5, 4.5  # beta of a customer's chance to open an e-mail (mean 25 %)
CLICK_AFTER_OPEN, SMS_CLICK = 0.16, 0.03
UNSUBSCRIBE_AFTER_OPEN = 0.016
OPEN_DELAY_MEAN_S, OPEN_DELAY_MAX_S = 5 * 3600, 3 * SECONDS_PER_DAY
# Chance that a delivered offer of this depth (%) brings an order within the attribution window:
# 10 % works about as well as 20 %, 15 % worse than 10 % (seed 004).
OFFER_RESPONSE = {0: 0.01, 5: 0.02, 10: 0.06, 15: 0.03, 20: 0.062}
CLICK_RESPONSE_LIFT, NO_CLICK_RESPONSE = 3.0, 0.9
CLICKED_ORDERS_ONLINE = 0.7  # who clicked mostly orders on the site
ATTRIBUTION_DAYS = 5
WINBACK_LAPSED_DAYS = (180, 365)  # win-back targets regulars quiet this long (seed 004 dropped > 1 year)
WINBACK_MIN_ORDERS = 2
# Web: tracked for the last two months of the history (the shop added analytics to its site then).
WEB_TRACKING_DAYS = 61
BROWSE_SESSIONS_PER_ONLINE_ORDER = 6.0  # about one visit in seven of a known customer ends in an order
ANONYMOUS_SESSION_SHARE = 0.45
BROWSING_AFTER_LAST_ORDER_DAYS = 60  # lapsed customers still look around for a while
FUNNEL = (0.72, 0.78, 0.25, 0.35)  # visit → category view → product view → add to cart → checkout
APP_SHARE = 0.4
# Sort order of event types in ClickHouse (alphabetical, as the ORDER BY compares their names).
MESSAGE_EVENT_TYPES = ("bounced", "clicked", "control", "delivered", "opened", "sent", "unsubscribed")
WEB_EVENT_TYPES = ("add_to_cart", "category_view", "checkout", "product_view", "visit")


@dataclass(frozen=True)
class GenerationPlan:
    seed: int
    customers: int
    timeline: Timeline
    catalog: Catalog
    mailings: MailingPlan
    acquisition: np.ndarray  # cumulative share of sign-ups at each day boundary
    chunk_customers: int = CHUNK_CUSTOMERS  # customers per chunk: bounds memory; part of what the seed makes

    @property
    def chunks(self) -> int:
        return -(-self.customers // self.chunk_customers)


def acquisition_curve(timeline: Timeline) -> np.ndarray:
    """Sign-ups follow demand and grow over the history (a growing base: 0.6× at the start, 1.4× at the end)."""
    growth = np.linspace(0.6, 1.4, timeline.days)
    cumulative = np.concatenate([[0.0], np.cumsum(timeline.weights * growth)])
    return cumulative / cumulative[-1]


@dataclass
class CustomersChunk:
    index: np.ndarray  # global customer number
    created_ms: np.ndarray
    gender: np.ndarray  # 0 unknown, 1 female, 2 male
    birth_year: np.ndarray  # 0 unknown
    birth_day_of_year: np.ndarray
    city: np.ndarray  # index into catalog.cities
    home_store: np.ndarray
    loyalty: np.ndarray  # index into LOYALTY_PROGRAMS
    has_email: np.ndarray
    has_phone: np.ndarray
    consent_email: np.ndarray
    consent_sms: np.ndarray


@dataclass
class SalesChunk:
    """Receipt lines sorted as ClickHouse stores them; amounts in minor units, positive (returns are flagged)."""

    order_number: np.ndarray
    line_no: np.ndarray
    ts_ms: np.ndarray
    customer: np.ndarray  # local customer index, -1 anonymous
    store: np.ndarray
    employee: np.ndarray
    channel: np.ndarray
    product: np.ndarray
    qty_milli: np.ndarray
    price: np.ndarray
    discount: np.ndarray
    amount: np.ndarray
    is_return: np.ndarray
    promo: np.ndarray  # mailing index of the promo code, -1 none


@dataclass
class MessagesChunk:
    send_number: np.ndarray  # mailing × customer, unique per send (or hold-out)
    event_type: np.ndarray  # index into MESSAGE_EVENT_TYPES
    ts_ms: np.ndarray
    customer: np.ndarray
    mailing: np.ndarray


@dataclass
class WebChunk:
    session_number: np.ndarray
    step: np.ndarray  # position within the session
    event_type: np.ndarray  # index into WEB_EVENT_TYPES
    ts_ms: np.ndarray
    customer: np.ndarray  # -1 anonymous
    platform: np.ndarray  # 0 web, 1 app
    category: np.ndarray  # -1 none
    product: np.ndarray  # -1 none


@dataclass
class Chunk:
    number: int
    customers: CustomersChunk
    sales: SalesChunk
    messages: MessagesChunk
    web: WebChunk


def grouped_arange(counts: np.ndarray) -> np.ndarray:
    """0, 1, … within each group of ``counts`` consecutive items."""
    starts = np.cumsum(counts) - counts
    return np.arange(counts.sum()) - np.repeat(starts, counts)


def grouped_cumsum(values: np.ndarray, counts: np.ndarray) -> np.ndarray:
    totals = np.cumsum(values)
    before = np.concatenate([[0.0], totals])[np.cumsum(counts) - counts]
    return totals - np.repeat(before, counts)


def _hours(rng: np.random.Generator, channel: np.ndarray) -> np.ndarray:
    """Second of the day, by channel."""
    hour = np.empty(len(channel), dtype=np.int64)
    for code, weights in ((OFFLINE, OFFLINE_HOURS), (ONLINE, ONLINE_HOURS)):
        mask = channel == code
        hour[mask] = rng.choice(24, size=int(mask.sum()), p=weights / weights.sum())
    return hour * 3600 + rng.integers(0, 3600, len(channel))


def _draw(rng: np.random.Generator, group: np.ndarray, cumulative: np.ndarray, first: np.ndarray) -> np.ndarray:
    """One pick per item from its group's distribution, all groups in one search.

    ``cumulative`` holds each group's cumulative probabilities shifted by the group number (group g
    spans (g, g + 1]), concatenated; ``first[g]`` is where group g starts in it.
    """
    picks = np.searchsorted(cumulative, group + rng.random(len(group)), side="right")
    last = np.append(first[1:], len(cumulative)) - 1
    return np.clip(picks, first[group], last[group])


def _categories(rng: np.random.Generator, behaviour: np.ndarray) -> np.ndarray:
    """Category per item by the shopper's behaviour; -1 (anonymous) uses the shop's overall mix."""
    group = np.where(behaviour < 0, len(BEHAVIOURS), behaviour)
    categories = len(CATEGORY_WEIGHTS)
    return _draw(rng, group, CATEGORY_CUMULATIVE, np.arange(len(BEHAVIOURS) + 1) * categories) - group * categories


def _products(rng: np.random.Generator, catalog: Catalog, category: np.ndarray) -> np.ndarray:
    """A product of each item's category, bestsellers more often (products are numbered by category)."""
    return _draw(rng, category, catalog.product_cumulative, catalog.category_first_product)


def chunk_generate(plan: GenerationPlan, number: int) -> Chunk:
    rng = np.random.default_rng([plan.seed, number])
    timeline, catalog = plan.timeline, plan.catalog
    first = number * plan.chunk_customers
    index = np.arange(first, min(plan.customers, first + plan.chunk_customers))
    n = len(index)
    days = timeline.days

    # --- Who the customers are. Ids follow sign-up order: stratified draws along the acquisition curve.
    created_day = np.interp((index + rng.random(n)) / plan.customers, plan.acquisition, np.arange(days + 1.0))
    created_day = np.minimum(created_day, days - 1e-6)
    behaviour = rng.choice(len(BEHAVIOURS), size=n, p=[b.share for b in BEHAVIOURS])
    mean_rate = np.array([b.orders_per_year for b in BEHAVIOURS])[behaviour]
    rate = rng.gamma(RATE_SHAPE, mean_rate / RATE_SHAPE) / 365.25  # purchases per demand-day
    mean_dropout = np.array([b.dropout for b in BEHAVIOURS])[behaviour]
    dropout = rng.beta(DROPOUT_CONCENTRATION * mean_dropout, DROPOUT_CONCENTRATION * (1 - mean_dropout))
    mean_online = np.array([b.online for b in BEHAVIOURS])[behaviour]
    online_share = rng.beta(ONLINE_CONCENTRATION * mean_online, ONLINE_CONCENTRATION * (1 - mean_online))
    basket = np.array([b.basket for b in BEHAVIOURS])[behaviour]
    offer_response = np.array([b.offer_response for b in BEHAVIOURS])[behaviour]
    buyer = rng.random(n) >= NON_BUYER_SHARE
    gender = rng.choice(3, size=n, p=[1 - FEMALE_SHARE - MALE_SHARE, FEMALE_SHARE, MALE_SHARE])
    age = np.clip(rng.normal(AGE_MEAN, AGE_SD, n), AGE_MIN, AGE_MAX).astype(np.int64)
    birth_year = np.where(rng.random(n) < BIRTH_YEAR_KNOWN, timeline.end_day.year - age, 0)
    home_store = rng.choice(catalog.offline_store_count, size=n, p=catalog.store_weights)
    cities = catalog.cities
    store_city = np.array([cities.index(city) for city in catalog.store_cities])
    city = np.where(rng.random(n) < HOME_CITY_SHARE, store_city[home_store], rng.integers(0, len(cities), n))
    loyalty = rng.choice(len(LOYALTY_PROGRAMS), size=n, p=LOYALTY_WEIGHTS)
    has_email, has_phone = rng.random(n) < HAS_EMAIL, rng.random(n) < HAS_PHONE
    consent_email = has_email & (rng.random(n) < CONSENT_EMAIL)
    consent_sms = has_phone & (rng.random(n) < CONSENT_SMS)
    bad_email = rng.random(n) < BAD_EMAIL
    open_chance = rng.beta(OPEN_A, OPEN_B, n)

    # --- BG/NBD purchases. The first order is the sign-up; then a Poisson process in demand time
    # that stops after the customer's last purchase before dropping out.
    start = timeline.demand_at(created_day)
    horizon = timeline.demand[-1] - start
    expected = rate * horizon
    repeat_limit = rng.geometric(dropout) - 1
    slots = np.where(buyer, np.minimum(repeat_limit, np.ceil(expected + 6 * np.sqrt(expected) + 6)), 0)
    slots = slots.astype(np.int64)
    owner = np.repeat(np.arange(n), slots)
    demand_time = grouped_cumsum(rng.standard_exponential(len(owner)) / rate[owner], slots) + start[owner]
    kept = demand_time < timeline.demand[-1]
    owner, demand_time = owner[kept], demand_time[kept]
    repeats = np.bincount(owner, minlength=n)
    # Made every purchase they had in them: gone after the last (lapsed), unless the history ended first.
    lapsed = buyer & (repeats == repeat_limit)
    # A repeat purchase on the sign-up day moves to the next day: the sign-up stays the first receipt.
    repeat_day = np.maximum(timeline.day_at(demand_time).astype(np.int64), created_day[owner].astype(np.int64) + 1)
    owner, repeat_day = owner[repeat_day < days], repeat_day[repeat_day < days]
    order_owner = np.concatenate([np.flatnonzero(buyer), owner])
    order_day = np.concatenate([created_day[buyer].astype(np.int64), repeat_day])
    last_order_day = np.full(n, -1, dtype=np.int64)
    np.maximum.at(last_order_day, order_owner, order_day)
    alive_until = np.where(lapsed, last_order_day, days)

    # --- Mailings: who got what (a customer × mailing matrix, small per chunk).
    mailings = plan.mailings
    reach = np.where(mailings.channel[None, :] == EMAIL, consent_email[:, None], consent_sms[:, None])
    audience = (created_day[:, None] < mailings.day[None, :]) & reach
    audience &= rng.random((n, len(mailings))) < mailings.audience_share[None, :]
    winback = np.flatnonzero(mailings.kind == WINBACK)
    if len(winback):
        # Orders before each win-back send, from the customer's sorted order days.
        order_key = np.sort(order_owner * (days + 1) + order_day)
        customer_start = np.searchsorted(order_key, np.arange(n) * (days + 1))
        query = np.arange(n)[:, None] * (days + 1) + mailings.day[None, winback]
        position = np.searchsorted(order_key, query)  # orders strictly before the send day
        orders_before = position - customer_start[:, None]
        previous = order_key[np.maximum(position - 1, 0)] % (days + 1)
        quiet = mailings.day[None, winback] - previous
        lapsed_regular = (orders_before >= WINBACK_MIN_ORDERS) & (quiet >= WINBACK_LAPSED_DAYS[0])
        audience[:, winback] &= lapsed_regular & (quiet <= WINBACK_LAPSED_DAYS[1])
    send_customer, send_mailing = np.nonzero(audience)  # by customer, then mailing (send) order
    # Offers hold out part of their audience: a control event when the mailing goes out, and nothing after it (no
    # message, so no offer: their orders are the ones they would have placed anyway).
    holdout_rng = np.random.default_rng([plan.seed, number, HOLDOUT_STREAM])
    control = holdout_rng.random(len(send_mailing)) < mailings.holdout_share[send_mailing]
    channel = mailings.channel[send_mailing]
    is_email = channel == EMAIL
    sent_ms = timeline.utc_ms(mailings.day[send_mailing], SEND_SECOND + rng.integers(0, 1800, len(send_mailing)))
    chance = rng.random(len(channel))
    delivered = np.where(is_email, ~bad_email[send_customer] & (chance < EMAIL_DELIVERY), chance < SMS_DELIVERY)
    delivered &= ~control
    opened = is_email & delivered & (rng.random(len(channel)) < open_chance[send_customer])
    unsubscribed = opened & (rng.random(len(channel)) < UNSUBSCRIBE_AFTER_OPEN)
    # No more e-mails after an unsubscribe: drop later e-mail sends of the same customer.
    counts = np.bincount(send_customer, minlength=n)
    earlier_unsubscribes = grouped_cumsum(unsubscribed.astype(np.float64), counts) - unsubscribed
    stay = ~(is_email & (earlier_unsubscribes > 0))
    send_customer, send_mailing, channel, is_email, control = (
        a[stay] for a in (send_customer, send_mailing, channel, is_email, control)
    )
    sent_ms, delivered, opened, unsubscribed = (a[stay] for a in (sent_ms, delivered, opened, unsubscribed))
    sends = len(send_customer)
    delivered_ms = sent_ms + rng.integers(2_000, 180_000, sends)
    opened_ms = (
        delivered_ms
        + np.minimum(rng.exponential(OPEN_DELAY_MEAN_S, sends), OPEN_DELAY_MAX_S).astype(np.int64) * 1000
        + rng.integers(0, 1000, sends)
    )
    clicked = np.where(
        is_email, opened & (rng.random(sends) < CLICK_AFTER_OPEN), delivered & (rng.random(sends) < SMS_CLICK)
    )
    clicked_ms = np.where(is_email, opened_ms, delivered_ms) + (5_000 + rng.exponential(90_000, sends)).astype(np.int64)
    unsubscribed_ms = opened_ms + rng.integers(10_000, 120_000, sends)
    consent_email[send_customer[unsubscribed]] = False

    # --- Offers that worked: an order within the attribution window after delivery.
    depth = mailings.depth[send_mailing]
    response_by_depth = np.zeros(max(OFFER_RESPONSE) + 1)
    response_by_depth[list(OFFER_RESPONSE)] = list(OFFER_RESPONSE.values())
    response = response_by_depth[depth] * offer_response[send_customer]
    response *= np.where(clicked, CLICK_RESPONSE_LIFT, NO_CLICK_RESPONSE)
    converted = delivered & (rng.random(sends) < response)
    delay_ms = (np.minimum(rng.exponential(1.5, sends), ATTRIBUTION_DAYS - 0.05) * SECONDS_PER_DAY * 1000).astype(
        np.int64
    )
    promo_day = timeline.local_day_of(delivered_ms + delay_ms)
    converted &= promo_day < days
    promo_customer, promo_mailing, promo_day = send_customer[converted], send_mailing[converted], promo_day[converted]
    promo_online = np.where(clicked[converted], rng.random(len(promo_customer)) < CLICKED_ORDERS_ONLINE, False)
    promo_online |= rng.random(len(promo_customer)) < online_share[promo_customer]

    # --- Receipts: identified (regular + offers), then anonymous ones shaped like them.
    regular_online = rng.random(len(order_owner)) < online_share[order_owner]
    loyalty_depth = np.select(
        [loyalty[order_owner] == 2, (loyalty[order_owner] == 1) & (rng.random(len(order_owner)) < BONUS_REDEMPTION)],
        [LOYALTY_DISCOUNT, BONUS_DEPTH],
        0,
    )
    # The sign-up is the first purchase; customers who never bought signed up online.
    created_ms = timeline.utc_ms(created_day.astype(np.int64), _hours(rng, np.full(n, ONLINE)))
    first_order_ms = timeline.utc_ms(order_day[: int(buyer.sum())], _hours(rng, regular_online[: int(buyer.sum())]))
    created_ms[buyer] = first_order_ms  # orders start with the buyers' first ones
    # Purchases before the history (the warm-up year) shaped the base but are not part of the data.
    in_history = order_day >= timeline.history_start
    order_owner, order_day, regular_online, loyalty_depth = (
        a[in_history] for a in (order_owner, order_day, regular_online, loyalty_depth)
    )
    order_ms = np.concatenate([first_order_ms, np.zeros(len(in_history) - len(first_order_ms), dtype=np.int64)])
    order_ms = order_ms[in_history]  # 0: time of day not drawn yet
    identified = len(order_owner) + len(promo_customer)
    anonymous = round(identified * ANONYMOUS_PER_IDENTIFIED)
    # Anonymous receipts copy the day of an identified one, moved by whole weeks: same season and weekday.
    copied_day = np.concatenate([order_day, promo_day])[rng.integers(0, max(identified, 1), anonymous)]
    moved_day = copied_day + 7 * rng.integers(-2, 3, anonymous)
    anonymous_day = np.where((moved_day >= timeline.history_start) & (moved_day < days), moved_day, copied_day)
    receipt_customer = np.concatenate([order_owner, promo_customer, np.full(anonymous, -1)])
    receipt_day = np.concatenate([order_day, promo_day, anonymous_day])
    receipt_channel = np.concatenate([regular_online, promo_online, np.zeros(anonymous, dtype=bool)]).astype(np.int64)
    receipt_depth = np.concatenate([loyalty_depth, depth[converted], np.zeros(anonymous, dtype=np.int64)])
    receipt_promo = np.concatenate(
        [
            np.full(len(order_owner), -1),
            np.where(depth[converted] > 0, promo_mailing, -1),
            np.full(anonymous, -1),
        ]
    )
    receipts = len(receipt_customer)
    known = receipt_customer >= 0
    receipt_store = np.where(
        known & (rng.random(receipts) < HOME_STORE_SHARE),
        home_store[np.maximum(receipt_customer, 0)],
        rng.choice(catalog.offline_store_count, size=receipts, p=catalog.store_weights),
    )
    receipt_employee = catalog.store_first_employee[receipt_store] + (
        rng.random(receipts) * catalog.store_employee_count[receipt_store]
    ).astype(np.int64)
    receipt_store = np.where(receipt_channel == ONLINE, catalog.offline_store_count, receipt_store)
    receipt_employee = np.where(receipt_channel == ONLINE, 0, receipt_employee)
    receipt_ms = timeline.utc_ms(receipt_day, _hours(rng, receipt_channel))
    drawn = np.flatnonzero(order_ms > 0)
    receipt_ms[drawn] = order_ms[drawn]  # sign-up purchases keep the time given to created_at
    # Receipts in time order from here on; their numbers follow time, as a till's numbering does.
    by_time = np.argsort(receipt_ms, kind="stable")
    receipt_customer, receipt_day, receipt_channel, receipt_depth, receipt_promo = (
        a[by_time] for a in (receipt_customer, receipt_day, receipt_channel, receipt_depth, receipt_promo)
    )
    receipt_store, receipt_employee, receipt_ms, known = (
        a[by_time] for a in (receipt_store, receipt_employee, receipt_ms, known)
    )
    receipt_number = number * ID_STRIDE + np.arange(receipts)
    assert receipts < ID_STRIDE, "too many receipts in one chunk"

    # --- Lines.
    mean_basket = np.where(known, basket[np.maximum(receipt_customer, 0)], 1.5)
    lines_per_receipt = np.minimum(1 + rng.poisson(mean_basket - 1), MAX_BASKET)
    line_receipt = np.repeat(np.arange(receipts), lines_per_receipt)
    line_no = grouped_arange(lines_per_receipt) + 1
    line_customer = receipt_customer[line_receipt]
    line_behaviour = np.where(line_customer >= 0, behaviour[np.maximum(line_customer, 0)], -1)
    product = _products(rng, catalog, _categories(rng, line_behaviour))
    qty = rng.choice(QUANTITIES, size=len(product), p=QUANTITY_WEIGHTS)
    price = catalog.product_price[product]
    gross = price * qty
    discount = (gross * receipt_depth[line_receipt] + 50) // 100
    line_ms = receipt_ms[line_receipt]
    # Returns: a few lines come back within a month, at the store that sold them.
    returned = np.flatnonzero(rng.random(len(product)) < RETURN_SHARE)
    return_days = 1 + np.minimum(rng.exponential(RETURN_DAYS_MEAN, len(returned)), RETURN_DAYS_MAX).astype(np.int64)
    return_day = timeline.local_day_of(line_ms[returned]) + return_days
    returned, return_day = returned[return_day < days], return_day[return_day < days]
    return_ms = timeline.utc_ms(return_day, _hours(rng, receipt_channel[line_receipt[returned]]))
    rows = np.concatenate([np.arange(len(product)), returned])
    is_return = np.concatenate([np.zeros(len(product), dtype=bool), np.ones(len(returned), dtype=bool)])
    ts_ms = np.concatenate([line_ms, return_ms])
    # ClickHouse's order (day, order id, line, return). Sales lines are in it already (receipts are in
    # time order), returns are not: a stable sort merges the two runs in about linear time.
    day_ms = SECONDS_PER_DAY * 1000
    key = (ts_ms // day_ms) << 46 | line_receipt[rows] << 8 | line_no[rows] << 1 | is_return
    order = np.argsort(key, kind="stable")
    rows, is_return, ts_ms = rows[order], is_return[order], ts_ms[order]
    order_number = receipt_number[line_receipt[rows]]
    receipt_of_row = line_receipt[rows]
    sales = SalesChunk(
        order_number=order_number,
        line_no=line_no[rows],
        ts_ms=ts_ms,
        customer=receipt_customer[receipt_of_row],
        store=receipt_store[receipt_of_row],
        employee=receipt_employee[receipt_of_row],
        channel=receipt_channel[receipt_of_row],
        product=product[rows],
        qty_milli=qty[rows] * 1000,
        price=price[rows],
        discount=discount[rows],
        amount=(gross - discount)[rows],
        is_return=is_return,
        promo=receipt_promo[receipt_of_row],
    )

    # --- Message events, one row per step that happened before the history ends.
    steps = (
        ("sent", ~control, sent_ms),
        ("control", control, sent_ms),
        ("delivered", delivered, delivered_ms),
        ("bounced", ~delivered & ~control, delivered_ms),
        ("opened", opened, opened_ms),
        ("clicked", clicked, clicked_ms),
        ("unsubscribed", unsubscribed, unsubscribed_ms),
    )
    which = [
        (np.full(int(mask.sum()), MESSAGE_EVENT_TYPES.index(name)), np.flatnonzero(mask), ms[mask])
        for name, mask, ms in steps
    ]
    event_type = np.concatenate([w[0] for w in which])
    send = np.concatenate([w[1] for w in which])
    event_ms = np.concatenate([w[2] for w in which])
    within = event_ms < timeline.end_ms
    event_type, send, event_ms = event_type[within], send[within], event_ms[within]
    send_number = send_mailing[send].astype(np.int64) * plan.customers + index[send_customer[send]]
    order = np.lexsort((send_number, event_type, event_ms // (SECONDS_PER_DAY * 1000)))
    messages = MessagesChunk(
        send_number=send_number[order],
        event_type=event_type[order],
        ts_ms=event_ms[order],
        customer=send_customer[send][order],
        mailing=send_mailing[send][order],
    )

    web = _web_generate(
        rng,
        plan,
        number=number,
        receipt_ms=receipt_ms,
        receipt_customer=receipt_customer,
        receipt_channel=receipt_channel,
        first_line_product=product[np.cumsum(lines_per_receipt) - lines_per_receipt],
        behaviour=behaviour,
        online_orders_per_day=rate * online_share,
        created_day=created_day,
        alive_until=alive_until,
    )
    customers = CustomersChunk(
        index=index,
        created_ms=created_ms,
        gender=gender,
        birth_year=birth_year,
        birth_day_of_year=rng.integers(0, 365, n),
        city=city,
        home_store=home_store,
        loyalty=loyalty,
        has_email=has_email,
        has_phone=has_phone,
        consent_email=consent_email,
        consent_sms=consent_sms,
    )
    return Chunk(number=number, customers=customers, sales=sales, messages=messages, web=web)


def _web_generate(
    rng: np.random.Generator,
    plan: GenerationPlan,
    *,
    number: int,
    receipt_ms: np.ndarray,
    receipt_customer: np.ndarray,
    receipt_channel: np.ndarray,
    first_line_product: np.ndarray,
    behaviour: np.ndarray,
    online_orders_per_day: np.ndarray,
    created_day: np.ndarray,
    alive_until: np.ndarray,
) -> WebChunk:
    """Sessions of the tracked months: one ending in checkout before each online order, browsing that drops off."""
    timeline, catalog = plan.timeline, plan.catalog
    days = timeline.days
    first_day = max(timeline.history_start, days - WEB_TRACKING_DAYS)
    tracked_from_ms = timeline.utc_ms(np.array([first_day]), np.array([0]))[0]
    # Sessions that bought: the online receipts of the tracked months.
    bought = np.flatnonzero((receipt_channel == ONLINE) & (receipt_ms >= tracked_from_ms) & (receipt_customer >= 0))
    # Browsing of known customers while they are around, and of anonymous visitors.
    window_start = np.maximum(created_day, first_day)
    window_end = np.minimum(alive_until + BROWSING_AFTER_LAST_ORDER_DAYS, days).astype(np.float64)
    active_days = np.maximum(window_end - window_start, 0)
    browse_counts = rng.poisson(BROWSE_SESSIONS_PER_ONLINE_ORDER * online_orders_per_day * active_days)
    browse_customer = np.repeat(np.arange(len(browse_counts)), browse_counts)
    browse_day = (
        window_start[browse_customer] + rng.random(len(browse_customer)) * (window_end - window_start)[browse_customer]
    ).astype(np.int64)
    known_sessions = len(bought) + len(browse_customer)
    anonymous = round(known_sessions * ANONYMOUS_SESSION_SHARE / (1 - ANONYMOUS_SESSION_SHARE))
    anonymous_day = rng.integers(first_day, days, anonymous)

    session_customer = np.concatenate([receipt_customer[bought], browse_customer, np.full(anonymous, -1)])
    sessions = len(session_customer)
    browsing = np.arange(sessions) >= len(bought)
    # How far each session gets; sessions that bought go all the way.
    reached = np.ones((sessions, 4), dtype=bool)
    reached[browsing] = np.cumprod(rng.random((int(browsing.sum()), 4)) < np.array(FUNNEL), axis=1).astype(bool)
    views = np.where(reached[:, 1], rng.integers(1, 3, sessions), 0)
    events = 1 + reached[:, 0] + views + reached[:, 2] + reached[:, 3]
    session_behaviour = np.where(session_customer >= 0, behaviour[np.maximum(session_customer, 0)], -1)
    bought_category = catalog.product_category[first_line_product[bought]]
    session_category = _categories(rng, session_behaviour)
    session_category[: len(bought)] = bought_category

    event_session = np.repeat(np.arange(sessions), events)
    step = grouped_arange(events)
    view_count = views[event_session]
    visit, category_view, product_view, add_to_cart, checkout = (
        WEB_EVENT_TYPES.index(name) for name in ("visit", "category_view", "product_view", "add_to_cart", "checkout")
    )
    event_type = np.select(
        [step == 0, step == 1, step < 2 + view_count, step == 2 + view_count],
        [visit, category_view, product_view, add_to_cart],
        checkout,
    )
    category = np.where(step > 0, session_category[event_session], -1)
    product = np.where(event_type == product_view, _products(rng, catalog, np.maximum(category, 0)), -1)
    # The cart and the checkout hold the last product viewed; in a session that bought, the receipt's.
    session_first_event = np.cumsum(events) - events
    last_view_event = np.minimum(session_first_event + 1 + views, len(step) - 1)
    product[last_view_event[: len(bought)]] = first_line_product[bought]
    last_view = np.where(views > 0, product[last_view_event], -1)
    in_cart = (event_type == add_to_cart) | (event_type == checkout)
    product = np.where(in_cart, last_view[event_session], product)
    offset_ms = grouped_cumsum(
        np.where(step == 0, 0, rng.integers(15_000, 240_000, len(step))).astype(np.float64), events
    ).astype(np.int64)
    duration = offset_ms[session_first_event + events - 1]
    bought_start = receipt_ms[bought] - duration[: len(bought)] - rng.integers(10_000, 120_000, len(bought))
    browse_days = np.concatenate([browse_day, anonymous_day])
    browse_start = timeline.utc_ms(browse_days, _hours(rng, np.full(len(browse_days), ONLINE)))
    ts_ms = np.concatenate([bought_start, browse_start])[event_session] + offset_ms
    platform = (rng.random(sessions) < APP_SHARE).astype(np.int64)
    session_number = number * ID_STRIDE + event_session
    assert sessions < ID_STRIDE, "too many web sessions in one chunk"
    # Late-evening sessions of the last day would run past the history: cut them there.
    within = np.flatnonzero(ts_ms < timeline.end_ms)
    order = within[
        np.lexsort(
            (step[within], session_number[within], event_type[within], ts_ms[within] // (SECONDS_PER_DAY * 1000))
        )
    ]
    return WebChunk(
        session_number=session_number[order],
        step=step[order],
        event_type=event_type[order],
        ts_ms=ts_ms[order],
        customer=session_customer[event_session][order],
        platform=platform[event_session][order],
        category=category[order],
        product=product[order],
    )
