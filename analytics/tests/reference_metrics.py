"""Every metric of the semantic layer computed again with pandas, for the reconciliation tests.

Written from DESIGN §5 and the metrics' formula texts, not from the compiler's SQL, and on
purpose in a different shape: a row belongs to a period by its *local date* in the tenant's
timezone (the SQL compares UTC instants of local midnights); a slice is a filter on every
source's rows, so "a customer's history at a store" is simply their lines at that store; a
customer-level attribute (city, acquisition cohort) is looked up per row. Exact values are
ints, Decimals and Fractions; rounding happens once, at the end, to the metric's unit.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import date, timedelta
from decimal import ROUND_HALF_UP, Decimal, localcontext
from fractions import Fraction
from functools import cached_property
from typing import Any

import pandas as pd
from dateutil.relativedelta import relativedelta

from analytics.semantic.catalog import METRICS_BY_ID
from analytics.semantic.registry import Unit
from analytics.tests.conftest import facts_frame
from integrations.ingest import (
    CUSTOMER_ATTRIBUTE_COLUMNS,
    MESSAGE_EVENT_COLUMNS,
    SALES_LINE_COLUMNS,
    WEB_EVENT_COLUMNS,
)

Key = tuple[date | None, tuple[str, ...]]  # (bucket's first day or None without granularity, dimension values)

LINE_COLUMNS = {
    "store": "store",
    "employee": "employee",
    "channel": "channel",
    "category": "category",
    "brand": "brand",
    "product": "product_name",
    "promo_code": "promo_code",
}
MESSAGE_COLUMNS = {"mailing": "mailing_id", "campaign": "campaign_id", "message_channel": "channel"}
WEB_COLUMNS = {"category": "category", "platform": "platform"}
ATTRIBUTE_COLUMNS = ("city", "gender", "home_store", "loyalty_program")
AGE_BANDS = ((25, "<25"), (35, "25-34"), (45, "35-44"), (55, "45-54"))


@dataclass(frozen=True)
class Facts:
    """One tenant's facts as read back from ClickHouse, with UTC ``ts``, ``local`` time and local ``day``."""

    timezone: str
    churn_days: int
    attribution_days: int
    lines: pd.DataFrame
    messages: pd.DataFrame
    web: pd.DataFrame
    contacts: pd.DataFrame

    @cached_property
    def first_sale(self) -> pd.Series:
        """Each identified customer's first purchase (UTC), over all their history."""
        sales = self.lines[(self.lines.customer_id != "") & (self.lines.is_return == 0)]
        return sales.groupby("customer_id").ts.min()

    @cached_property
    def sale_orders(self) -> pd.DataFrame:
        """Identified orders of the whole history, their sale lines only: (customer, order, earliest ts, amount)."""
        sales = self.lines[(self.lines.customer_id != "") & (self.lines.is_return == 0)]
        return sales.groupby(["customer_id", "order_id"], as_index=False).agg(
            ts=("ts", "min"), amount=("amount", _money)
        )

    @cached_property
    def attributed(self) -> pd.DataFrame:
        """(order, touching message) pairs: an identified order placed within the attribution window after the
        customer got (delivered) or clicked a message of that mailing. Orders are their sale lines only."""
        orders = self.sale_orders
        touches = self.messages[self.messages.event_type.isin(["delivered", "clicked"])]
        pairs = orders.merge(
            touches[["customer_id", "ts", "mailing_id", "campaign_id", "channel"]].rename(columns={"ts": "touch_ts"}),
            on="customer_id",
        )
        window = pd.Timedelta(days=self.attribution_days)
        pairs = pairs[(pairs.touch_ts <= pairs.ts) & (pairs.ts < pairs.touch_ts + window)]
        return _localised(pairs.reset_index(drop=True), "ts", self.timezone)

    def customer_attribute(self, dimension: str, ref_year: int) -> dict[str, str]:
        """customer id → the value of a customer-level dimension (absent: empty string)."""
        if dimension == "acquisition_cohort":
            local = self.first_sale.dt.tz_convert(self.timezone)
            return {customer: f"{ts.year:04d}-{ts.month:02d}-01" for customer, ts in local.items()}
        attributes = self.contacts.set_index("customer_id")
        if dimension == "age_band":
            return {customer: _age_band(ref_year, born) for customer, born in attributes.birth_year.items()}
        return attributes[dimension].to_dict()


def _age_band(ref_year: int, born: int) -> str:
    if not born:
        return ""
    age = ref_year - born
    return next((band for limit, band in AGE_BANDS if age < limit), "55+")


def _localised(frame: pd.DataFrame, column: str, timezone: str) -> pd.DataFrame:
    """``column`` as UTC, ``local`` time in ``timezone`` and ``day``, the local date (as a naive midnight)."""
    utc = pd.to_datetime(frame[column], utc=True)
    local = utc.dt.tz_convert(timezone)
    return frame.assign(**{column: utc, "local": local, "day": _local_day(local)})


def _local_day(local: pd.Series) -> pd.Series:
    return local.dt.tz_localize(None).dt.normalize()


# Bookkeeping columns no metric reads; dropped so that slicing the frames copies less.
UNREAD_COLUMNS = ("source", "version")


def facts_load(tenant: Any) -> Facts:
    """A tenant's facts and settings, every row as ClickHouse holds it now (FINAL)."""

    def read(table: str, columns: tuple[str, ...], time_column: str = "ts") -> pd.DataFrame:
        frame = facts_frame(table, tenant.pk)
        # An empty answer comes without columns; a table without rows still has them.
        frame = frame.reindex(columns=[c for c in columns if c not in UNREAD_COLUMNS])
        if frame.empty:  # and ids of the same type as in other frames, for joins
            frame = frame.astype(str)
        return _localised(frame, time_column, tenant.timezone)

    return Facts(
        timezone=tenant.timezone,
        churn_days=tenant.churn_window_days,
        attribution_days=tenant.attribution_window_days,
        lines=read("sales_lines", SALES_LINE_COLUMNS),
        messages=read("message_events", MESSAGE_EVENT_COLUMNS),
        web=read("web_events", WEB_EVENT_COLUMNS),
        contacts=read("customer_attributes", CUSTOMER_ATTRIBUTE_COLUMNS, "created_at"),
    )


# --- A slice of the facts at one bucket --------------------------------------------------------------------------


def _money(values: Iterable[Any]) -> Decimal:
    return sum((Decimal(value) for value in values), Decimal(0))


def _ratio(numerator: Any, denominator: Any, percent: bool = False) -> Fraction | None:
    if numerator is None or not denominator:
        return None
    return Fraction(numerator) / Fraction(denominator) * (100 if percent else 1)


def _by_day(frame: pd.DataFrame) -> pd.DataFrame:
    return frame.sort_values("day", kind="stable")


def _days(frame: pd.DataFrame, first: pd.Timestamp | None, last: pd.Timestamp) -> pd.DataFrame:
    """The rows of a frame sorted by ``day`` from ``first`` (or the start) to ``last``, both included."""
    days = frame.day.to_numpy()
    start = 0 if first is None else days.searchsorted(first.to_datetime64(), "left")
    return frame.iloc[start : days.searchsorted(last.to_datetime64(), "right")]


@dataclass
class Rows:
    """The rows of one slice of every source (its dimension values and the filters applied), and what the
    customer metrics derive from them once for every bucket. None: the query's dimensions do not apply."""

    facts: Facts
    frames: dict[str, pd.DataFrame | None]

    def frame(self, source: str) -> pd.DataFrame:
        frame = self.frames[source]
        assert frame is not None, f"the query's dimensions do not apply to {source}"
        return frame

    @cached_property
    def orders(self) -> pd.DataFrame:
        """Identified purchases of the slice, one row per order; its time is that of its earliest line."""
        lines = self.frame("lines")
        sales = lines[(lines.customer_id != "") & (lines.is_return == 0)]
        orders = sales.groupby(["customer_id", "order_id"], as_index=False).ts.min()
        return _by_day(_localised(orders, "ts", self.facts.timezone))

    @cached_property
    def churn_days(self) -> pd.DataFrame:
        """(customer, day) when a customer churns: ``churn_days`` days after an order day with no order in the
        days after it up to then. Later orders do not matter: only days up to a bucket's end are looked at."""
        window = timedelta(days=self.facts.churn_days)
        churns = []
        for customer, days in self.orders.groupby("customer_id").day:
            days = sorted(set(days))
            churns += [
                (customer, day + window)
                for day, following in zip(days, [*days[1:], None], strict=True)
                if following is None or following > day + window
            ]
        return pd.DataFrame(churns, columns=["customer_id", "day"])

    @cached_property
    def money(self) -> pd.DataFrame:
        """(customer, day, amount) of identified lines: a sale on the day of its order's earliest line, a returned
        line on its own day."""
        lines = self.frame("lines")
        lines = lines[lines.customer_id != ""]
        first_line = lines.groupby(["order_id", "is_return"]).ts.transform("min").dt.tz_convert(self.facts.timezone)
        day = _local_day(first_line).where(lines.is_return == 0, lines.day)
        return pd.DataFrame({"customer_id": lines.customer_id, "day": day, "amount": lines.amount})


@dataclass
class Slice:
    """One slice's rows seen from the bucket ``first`` … ``last`` (local days); ``before`` is the first day of
    the window before it."""

    rows: Rows
    first: pd.Timestamp
    last: pd.Timestamp
    before: pd.Timestamp
    values: dict[str, Any] = field(default_factory=dict)

    def value(self, metric: str) -> Any:
        """A metric's exact value here (each computed once: ratios share their parts)."""
        if metric not in self.values:
            self.values[metric] = REFERENCE[metric](self)
        return self.values[metric]

    def _in_bucket(self, source: str) -> pd.DataFrame:
        return _days(self.rows.frame(source), self.first, self.last)

    # Sales lines in the bucket.
    @cached_property
    def lines(self) -> pd.DataFrame:
        return self._in_bucket("lines")

    @cached_property
    def sold(self) -> pd.DataFrame:
        return self.lines[self.lines.is_return == 0]

    @cached_property
    def returned(self) -> pd.DataFrame:
        return self.lines[self.lines.is_return == 1]

    @cached_property
    def identified_sold(self) -> pd.DataFrame:
        return self.sold[self.sold.customer_id != ""]

    def buyers_on(self, channel: str) -> set[str]:
        return set(self.identified_sold[self.identified_sold.channel == channel].customer_id)

    # Each identified customer's purchases of the slice up to the bucket's end.
    @cached_property
    def purchases(self) -> pd.DataFrame:
        return _days(self.rows.orders, None, self.last)

    @cached_property
    def days(self) -> pd.DataFrame:
        """Per customer of the base (a purchase up to the bucket's end): the first and last purchase day, orders."""
        return self.purchases.groupby("customer_id").agg(
            first=("day", "min"), last=("day", "max"), orders=("order_id", "size")
        )

    @cached_property
    def first_day(self) -> pd.Series:
        return self.days["first"]

    @cached_property
    def base(self) -> pd.Index:
        return self.days.index

    def customers_buying(self, first: pd.Timestamp, last: pd.Timestamp) -> set[str]:
        days = self.purchases.day
        return set(self.purchases[(days >= first) & (days <= last)].customer_id)

    @cached_property
    def bucket_buyers(self) -> set[str]:
        return self.customers_buying(self.first, self.last)

    @cached_property
    def previous_buyers(self) -> set[str]:
        return self.customers_buying(self.before, self.first - timedelta(days=1))

    @cached_property
    def repeat_customers(self) -> int:
        return sum(1 for customer in self.bucket_buyers if self.days.orders[customer] >= 2)

    @cached_property
    def one_time_customers(self) -> int:
        return sum(1 for customer in self.bucket_buyers if self.days.orders[customer] == 1)

    @cached_property
    def churned_customers(self) -> int:
        churns = self.rows.churn_days
        return churns[(churns.day >= self.first) & (churns.day <= self.last)].customer_id.nunique()

    @cached_property
    def lifetime_days(self) -> Fraction | None:
        """Mean over the base of the days (tenant's calendar) from a customer's first to last purchase."""
        spans = (self.days["last"] - self.days["first"]).dt.days
        return Fraction(int(spans.sum()), len(spans)) if len(spans) else None

    @cached_property
    def base_revenue(self) -> Decimal:
        """Net revenue of the base up to the bucket's end."""
        money = self.rows.money
        return _money(money[money.customer_id.isin(self.base) & (money.day <= self.last)].amount)

    # Contacts.
    @cached_property
    def contacts(self) -> pd.DataFrame:
        return _days(self.rows.frame("contacts"), None, self.last)

    def reachable(self, email: bool, sms: bool) -> int:
        reach = (self.contacts.email_reachable == 1) & email | (self.contacts.sms_reachable == 1) & sms
        return int(reach.sum())

    # Messages, attributed orders, web events in the bucket.
    @cached_property
    def messages(self) -> pd.DataFrame:
        return self._in_bucket("messages")

    @cached_property
    def message_counts(self) -> dict[str, int]:
        return self.messages.event_type.value_counts().to_dict()

    @cached_property
    def audiences(self) -> dict[str, dict[str, tuple[int, Decimal]]]:
        """mailing → role (sent, control) → (members, their revenue). A member is a (mailing, identified customer)
        with such events in the bucket, from the first of them; their revenue, that of their orders placed within
        the attribution window after it, also after the bucket."""
        events = self.messages[self.messages.event_type.isin(["sent", "control"]) & (self.messages.customer_id != "")]
        members = events.groupby(["mailing_id", "event_type", "customer_id"], as_index=False).ts.min()
        orders = self.rows.facts.sale_orders.rename(columns={"ts": "order_ts"})
        bought = members.merge(orders, on="customer_id")
        window = pd.Timedelta(days=self.rows.facts.attribution_days)
        bought = bought[(bought.order_ts >= bought.ts) & (bought.order_ts < bought.ts + window)]
        revenue = bought.groupby(["mailing_id", "event_type"]).amount.apply(_money)
        result: dict[str, dict[str, tuple[int, Decimal]]] = {}
        for (mailing, role), count in members.groupby(["mailing_id", "event_type"]).size().items():
            result.setdefault(mailing, {})[role] = (int(count), revenue.get((mailing, role), Decimal(0)))
        return result

    def control(self, mailing: str) -> tuple[int, Decimal]:
        return self.audiences[mailing].get("control", (0, Decimal(0)))

    @cached_property
    def incremental_revenue(self) -> Decimal | None:
        """Σ over mailings with a control group of T − K / C × R, each rounded half up to the kopeck."""
        increments = []
        for mailing, roles in self.audiences.items():
            members, revenue = self.control(mailing)
            if members:
                recipients, recipient_revenue = roles.get("sent", (0, Decimal(0)))
                increments.append(half_up(Fraction(recipient_revenue) - Fraction(revenue) * recipients / members, 2))
        return sum(increments, Decimal(0)) if increments else None

    @cached_property
    def attributed_orders(self) -> pd.DataFrame:
        return self._in_bucket("attributed").drop_duplicates("order_id")

    @cached_property
    def web(self) -> pd.DataFrame:
        return self._in_bucket("web")

    @cached_property
    def web_counts(self) -> dict[str, int]:
        return self.web.event_type.value_counts().to_dict()


def _ratio_of(numerator: str, denominator: str, percent: bool = False) -> Callable[[Slice], Fraction | None]:
    return lambda s: _ratio(s.value(numerator), s.value(denominator), percent)


def _share(numerator: str, denominator: str) -> Callable[[Slice], Fraction | None]:
    return _ratio_of(numerator, denominator, percent=True)


# Metric id → its exact value over a slice at a bucket. Ratios are spelled out here, not read from the registry.
REFERENCE: dict[str, Callable[[Slice], Any]] = {
    # Sales
    "revenue": lambda s: _money(s.lines.amount),
    "sales_revenue": lambda s: _money(s.sold.amount),
    "gross_sales": lambda s: _money(s.sold.amount) + _money(s.sold.discount),
    "orders": lambda s: s.sold.order_id.nunique(),
    "items": lambda s: _money(s.sold.qty),
    "discounts": lambda s: _money(s.lines.discount),
    "returns": lambda s: -_money(s.returned.amount),
    "return_receipts": lambda s: s.returned.order_id.nunique(),
    "promo_orders": lambda s: s.sold[s.sold.promo_code != ""].order_id.nunique(),
    "promo_revenue": lambda s: _money(s.sold[s.sold.promo_code != ""].amount),
    "average_check": _ratio_of("revenue", "orders"),
    "items_per_order": _ratio_of("items", "orders"),
    "average_item_price": _ratio_of("sales_revenue", "items"),
    "discount_rate": _share("discounts", "gross_sales"),
    "return_rate": _share("returns", "sales_revenue"),
    "promo_share": _share("promo_orders", "orders"),
    # CRM
    "buyers": lambda s: s.identified_sold.customer_id.nunique(),
    "identified_orders": lambda s: s.identified_sold.order_id.nunique(),
    "identified_revenue": lambda s: _money(s.lines[s.lines.customer_id != ""].amount),
    "identified_share": _share("identified_orders", "orders"),
    "purchase_frequency": _ratio_of("identified_orders", "buyers"),
    "revenue_per_buyer": _ratio_of("identified_revenue", "buyers"),
    "new_customers": lambda s: int(((s.first_day >= s.first) & (s.first_day <= s.last)).sum()),
    "repeat_customers": lambda s: s.repeat_customers,
    "one_time_customers": lambda s: s.one_time_customers,
    "repeat_share": _share("repeat_customers", "buyers"),
    "customer_base": lambda s: len(s.base),
    "customer_base_start": lambda s: int((s.first_day < s.first).sum()),
    "customer_base_growth": lambda s: s.value("customer_base") - s.value("customer_base_start"),
    "customer_base_growth_rate": _share("customer_base_growth", "customer_base_start"),
    "churned_customers": lambda s: s.churned_customers,
    "churn_rate": _share("churned_customers", "customer_base_start"),
    "previous_buyers": lambda s: len(s.previous_buyers),
    "retained_customers": lambda s: len(s.previous_buyers & s.bucket_buyers),
    "retention_rate": _share("retained_customers", "previous_buyers"),
    "lifetime_days": lambda s: s.lifetime_days,
    "customer_base_revenue": lambda s: s.base_revenue,
    "ltv": _ratio_of("customer_base_revenue", "customer_base"),
    "conversion_to_buyers": _share("buyers", "contacts"),
    # Customer base
    "contacts": lambda s: len(s.contacts),
    "new_contacts": lambda s: int((s.contacts.day >= s.first).sum()),
    "reachable_contacts": lambda s: s.reachable(email=True, sms=True),
    "email_reachable_contacts": lambda s: s.reachable(email=True, sms=False),
    "sms_reachable_contacts": lambda s: s.reachable(email=False, sms=True),
    "unreachable_contacts": lambda s: s.value("contacts") - s.value("reachable_contacts"),
    "reachability_rate": _share("reachable_contacts", "contacts"),
    "online_buyers": lambda s: len(s.buyers_on("online")),
    "offline_buyers": lambda s: len(s.buyers_on("offline")),
    "omnichannel_buyers": lambda s: len(s.buyers_on("online") & s.buyers_on("offline")),
    "online_share": _share("online_buyers", "buyers"),
    "offline_share": _share("offline_buyers", "buyers"),
    # Mailings
    "sends": lambda s: s.message_counts.get("sent", 0),
    "deliveries": lambda s: s.message_counts.get("delivered", 0),
    "opens": lambda s: s.message_counts.get("opened", 0),
    "clicks": lambda s: s.message_counts.get("clicked", 0),
    "unsubscribes": lambda s: s.message_counts.get("unsubscribed", 0),
    "bounces": lambda s: s.message_counts.get("bounced", 0),
    "recipients": lambda s: s.messages[s.messages.event_type == "sent"].customer_id.nunique(),
    "delivery_rate": _share("deliveries", "sends"),
    "bounce_rate": _share("bounces", "sends"),
    "open_rate": _share("opens", "deliveries"),
    "click_rate": _share("clicks", "deliveries"),
    "click_to_open_rate": _share("clicks", "opens"),
    "unsubscribe_rate": _share("unsubscribes", "deliveries"),
    "mailing_orders": lambda s: len(s.attributed_orders),
    "mailing_revenue": lambda s: _money(s.attributed_orders.amount),
    "mailing_buyers": lambda s: s.attributed_orders.customer_id.nunique(),
    "mailing_average_check": _ratio_of("mailing_revenue", "mailing_orders"),
    "revenue_per_email": _ratio_of("mailing_revenue", "sends"),
    "order_conversion": _share("mailing_orders", "deliveries"),
    "control_group_size": lambda s: sum(s.control(mailing)[0] for mailing in s.audiences),
    "control_revenue": lambda s: sum((s.control(mailing)[1] for mailing in s.audiences), Decimal(0)),
    "incremental_revenue": lambda s: s.incremental_revenue,
    # Funnel
    "visits": lambda s: s.web_counts.get("visit", 0),
    "category_views": lambda s: s.web_counts.get("category_view", 0),
    "product_views": lambda s: s.web_counts.get("product_view", 0),
    "add_to_carts": lambda s: s.web_counts.get("add_to_cart", 0),
    "checkouts": lambda s: s.web_counts.get("checkout", 0),
    "online_orders": lambda s: s.sold[s.sold.channel == "online"].order_id.nunique(),
    "cart_rate": _share("add_to_carts", "visits"),
    "checkout_rate": _share("checkouts", "add_to_carts"),
    "visit_conversion": _share("online_orders", "visits"),
}


def half_up(value: Any, places: int) -> Decimal:
    """``value`` (exact) to ``places`` decimals, halves away from zero."""
    value = Fraction(value)
    with localcontext() as context:
        context.prec = 60
        exact = Decimal(value.numerator) / Decimal(value.denominator)
        return exact.quantize(Decimal(1).scaleb(-places), rounding=ROUND_HALF_UP)


def rounded(metric_id: str, value: Any) -> Any:
    """The value as the answer shows it: counts as int, money to the cent, others to the metric's decimals."""
    metric = METRICS_BY_ID[metric_id]
    if value is None:
        return None
    if metric.unit is Unit.COUNT:
        assert Fraction(value).denominator == 1, (metric_id, value)
        return int(value)
    if metric.unit is Unit.MONEY:
        return half_up(value, 2)
    return float(half_up(value, metric.decimals))


def change(metric_id: str, now: Any, then: Any) -> dict[str, Any]:
    """The change between two shown values: absolute in the metric's unit, relative in % (2 decimals)."""
    if now is None or then is None:
        return {"absolute": None, "percent": None}
    now, then = Fraction(Decimal(str(now))), Fraction(Decimal(str(then)))
    percent = float(half_up((now - then) / abs(then) * 100, 2)) if then else None
    return {"absolute": rounded(metric_id, now - then), "percent": percent}


# --- Queries -------------------------------------------------------------------------------------------------------
# Calendar arithmetic is written again here, not imported from analytics.periods: the reference checks it too.


def calendar_start(day: date, granularity: str) -> date:
    if granularity == "day":
        return day
    if granularity == "week":
        return day - timedelta(days=day.weekday())
    if granularity == "month":
        return day.replace(day=1)
    if granularity == "quarter":
        return day.replace(month=(day.month - 1) // 3 * 3 + 1, day=1)
    return day.replace(month=1, day=1)


def calendar_next(start: date, granularity: str) -> date:
    step = {
        "day": relativedelta(days=1),
        "week": relativedelta(weeks=1),
        "month": relativedelta(months=1),
        "quarter": relativedelta(months=3),
        "year": relativedelta(years=1),
    }
    return start + step[granularity]


@dataclass(frozen=True)
class Bucket:
    first: date
    last: date
    before: date  # the first day of the window before the bucket (retention)


def query_buckets(first: date, last: date, granularity: str | None) -> list[Bucket]:
    """The period as one bucket (window before: the previous period, as many calendar months before when the
    period is whole months, else the same number of days), or its calendar buckets clipped to it (window before:
    the whole previous calendar bucket)."""
    if granularity is None:
        following = last + timedelta(days=1)
        if first.day == 1 and following.day == 1:
            months = (following.year - first.year) * 12 + following.month - first.month
            year, month = divmod(first.year * 12 + first.month - 1 - months, 12)
            return [Bucket(first, last, date(year, month + 1, 1))]
        return [Bucket(first, last, first - (last - first) - timedelta(days=1))]
    result = []
    start = calendar_start(first, granularity)
    while start <= last:
        following = calendar_next(start, granularity)
        previous = calendar_start(start - timedelta(days=1), granularity)
        result.append(Bucket(max(start, first), min(following - timedelta(days=1), last), previous))
        start = following
    return result


@dataclass(frozen=True)
class ReferenceFilter:
    dimension: str
    values: tuple[str, ...]
    exclude: bool = False


def _dimension_column(facts: Facts, source: str, frame: pd.DataFrame, dimension: str, ref_year: int) -> pd.Series:
    """A dimension's value on each row of a source, or KeyError when it does not apply to the source."""
    if dimension in ("weekday", "hour") and source != "contacts":
        local = frame.local
        return (local.dt.day_of_week + 1 if dimension == "weekday" else local.dt.hour).astype(str)
    columns = {"lines": LINE_COLUMNS, "messages": MESSAGE_COLUMNS, "attributed": MESSAGE_COLUMNS, "web": WEB_COLUMNS}
    if dimension in columns.get(source, {}):
        return frame[columns[source][dimension]].astype(str)
    if dimension == "customer_type" and source == "lines":
        first = frame.customer_id.map(facts.first_sale)
        new = (frame.is_return == 0) & (frame.ts == first)
        return new.map({True: "new", False: "repeat"}).where(frame.customer_id != "", "anonymous")
    if dimension in (*ATTRIBUTE_COLUMNS, "age_band", "acquisition_cohort"):
        values = facts.customer_attribute(dimension, ref_year)
        return frame.customer_id.map(lambda customer: values.get(customer, ""))
    raise KeyError(f"{dimension} does not apply to {source}")


def _source_frames(
    facts: Facts, dimensions: tuple[str, ...], filters: tuple[ReferenceFilter, ...], ref_year: int
) -> dict[str, pd.DataFrame | None]:
    """Each source's rows with a column per dimension, the filters applied; None where a dimension does not apply."""
    sources = {
        "lines": facts.lines,
        "messages": facts.messages,
        "attributed": facts.attributed,
        "web": facts.web,
        "contacts": facts.contacts,
    }
    frames: dict[str, pd.DataFrame | None] = {}
    for source, frame in sources.items():
        try:
            named = {f"d:{d}": _dimension_column(facts, source, frame, d, ref_year) for d in dimensions}
            kept = pd.Series(True, index=frame.index)
            for condition in filters:
                values = _dimension_column(facts, source, frame, condition.dimension, ref_year)
                kept &= ~values.isin(condition.values) if condition.exclude else values.isin(condition.values)
        except KeyError:
            frames[source] = None
            continue
        frames[source] = _by_day(frame.assign(**named)[kept])
    return frames


@dataclass(frozen=True)
class ReferenceAnswer:
    rows: dict[Key, dict[str, Any]]  # every combination of dimension values seen in the rows, at every bucket
    totals: dict[str, Any]
    evaluate: Callable[[Key], dict[str, Any]]  # the values at any key, also one without rows (then blank)


def reference_query(
    facts: Facts,
    metrics: Iterable[str],
    first: date,
    last: date,
    granularity: str | None = None,
    dimensions: tuple[str, ...] = (),
    filters: tuple[ReferenceFilter, ...] = (),
) -> ReferenceAnswer:
    """What a metric query over these facts should answer: its rows (bucket, dimension values) and totals."""
    metrics = tuple(metrics)
    frames = _source_frames(facts, dimensions, filters, last.year)
    buckets = query_buckets(first, last, granularity)
    by_first = {bucket.first: bucket for bucket in buckets}
    columns = [f"d:{d}" for d in dimensions]

    by_key: dict[tuple[str, ...], Rows] = {}

    def rows_of(values: tuple[str, ...]) -> Rows:
        if values not in by_key:
            sliced = {}
            for source, frame in frames.items():
                if frame is not None:
                    for column, value in zip(columns, values, strict=True):
                        frame = frame[frame[column] == value]
                sliced[source] = frame
            by_key[values] = Rows(facts, sliced)
        return by_key[values]

    def values_at(bucket: Bucket, rows: Rows) -> dict[str, Any]:
        view = Slice(rows, *(pd.Timestamp(day) for day in (bucket.first, bucket.last, bucket.before)))
        return {metric: rounded(metric, view.value(metric)) for metric in metrics}

    def evaluate(key: Key) -> dict[str, Any]:
        return values_at(by_first[key[0]] if granularity else buckets[0], rows_of(key[1]))

    combinations = set()
    for frame in frames.values():
        if frame is not None and columns:
            combinations |= set(frame[columns].itertuples(index=False, name=None))
    if not columns:
        combinations = {()}
    rows = {}
    for bucket in buckets:
        for values in combinations:
            key = (bucket.first if granularity else None, values)
            rows[key] = evaluate(key)
    whole = query_buckets(first, last, None)[0]
    totals = values_at(whole, Rows(facts, _source_frames(facts, (), filters, last.year)))
    return ReferenceAnswer(rows, totals, evaluate)


def is_blank(values: dict[str, Any]) -> bool:
    """Nothing in this row: counts and sums zero, ratios and means undefined."""
    return all(value is None or value == 0 for value in values.values())
