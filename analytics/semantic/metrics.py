"""Every metric of the semantic layer (DESIGN §5; the groups of seed 002).

Base metrics are aggregates over one source's rows (aliases in dimensions.py). The customers
and contacts sources are evaluated once per bucket, on local days (tenant's timezone):
``[b_start, b_end)`` is the bucket, ``[p_start, b_start)`` the window before it, ``h.orders`` a
customer's sorted sale-order days and ``h.money`` their (day, net amount) per order, returns
included; ``c.created_day`` the day a contact joined.
"""

from __future__ import annotations

from django.utils.translation import gettext_lazy as _

from analytics.semantic.registry import Group, Metric, Source, Unit

S, CU, CO, M, A, W = Source.SALES, Source.CUSTOMERS, Source.CONTACTS, Source.MESSAGES, Source.ATTRIBUTION, Source.WEB
SALE = "f.is_return = 0"
IDENTIFIED_SALE = "f.is_return = 0 AND f.customer_id != ''"
IN_BASE = "h.orders[1] < b_end"
BOUGHT_IN_BUCKET = "arrayExists(x -> x >= b_start AND x < b_end, h.orders)"
BOUGHT_BEFORE_BUCKET = "arrayExists(x -> x >= p_start AND x < b_start, h.orders)"
# A customer churns on the day W days after an order day not followed by another order within those W days.
CHURNED_IN_BUCKET = (
    "arrayExists((x, following) -> x + {churn_days:UInt16} >= b_start"
    " AND x + {churn_days:UInt16} < b_end AND following > x + {churn_days:UInt16},"
    " h.orders, arrayPushBack(arrayPopFront(h.orders), toDate('2149-01-01')))"
)
CONTACT_EXISTS = "c.created_day < b_end"
LIFETIME_DAYS = "dateDiff('day', h.orders[1], arrayMax(arrayFilter(x -> x < b_end, h.orders)))"


def _base(id, label, group, unit, source, sql, formula, decimals=0, **options) -> Metric:
    return Metric(id, label, group, unit, formula, source=source, sql=sql, decimals=decimals, **options)


def _ratio(id, label, group, unit, numerator, denominator, formula="", decimals=2) -> Metric:
    scale = " × 100" if unit is Unit.PERCENT else ""
    return Metric(
        id,
        label,
        group,
        unit,
        formula or f"{numerator} / {denominator}{scale}",
        ratio=(numerator, denominator),
        decimals=decimals,
    )


MONEY = Unit.MONEY
METRICS: tuple[Metric, ...] = (
    # --- Sales ---------------------------------------------------------------------------------
    _base("revenue", _("Revenue"), Group.SALES, MONEY, S, "sum(f.amount)", "Σ line amount, returns negative", 2),
    _base(
        "sales_revenue",
        _("Sales (before returns)"),
        Group.SALES,
        MONEY,
        S,
        f"sumIf(f.amount, {SALE})",
        "Σ amount of sale lines",
        2,
    ),
    _base(
        "gross_sales",
        _("Gross sales"),
        Group.SALES,
        MONEY,
        S,
        f"sumIf(f.amount + f.discount, {SALE})",
        "Σ (amount + discount) of sale lines: the price before discounts",
        2,
    ),
    _base(
        "orders",
        _("Receipts"),
        Group.SALES,
        Unit.COUNT,
        S,
        f"uniqExactIf(f.order_id, {SALE})",
        "distinct order ids of sale lines",
    ),
    _base("items", _("Items sold"), Group.SALES, Unit.NUMBER, S, f"sumIf(f.qty, {SALE})", "Σ qty of sale lines", 3),
    _base(
        "discounts", _("Discounts"), Group.SALES, MONEY, S, "sum(f.discount)", "Σ line discount (returns negative)", 2
    ),
    _base(
        "returns",
        _("Returns"),
        Group.SALES,
        MONEY,
        S,
        "-sumIf(f.amount, f.is_return = 1)",
        "−Σ amount of return lines (a positive sum)",
        2,
    ),
    _base(
        "return_receipts",
        _("Return receipts"),
        Group.SALES,
        Unit.COUNT,
        S,
        "uniqExactIf(f.order_id, f.is_return = 1)",
        "distinct order ids of return lines",
    ),
    _base(
        "promo_orders",
        _("Receipts with a promo code"),
        Group.SALES,
        Unit.COUNT,
        S,
        f"uniqExactIf(f.order_id, {SALE} AND f.promo_code != '')",
        "distinct orders with a promo code",
    ),
    _base(
        "promo_revenue",
        _("Revenue with promo codes"),
        Group.SALES,
        MONEY,
        S,
        f"sumIf(f.amount, {SALE} AND f.promo_code != '')",
        "Σ amount of sale lines with a promo code",
        2,
    ),
    _ratio("average_check", _("Average check"), Group.SALES, MONEY, "revenue", "orders"),
    _ratio("items_per_order", _("Items per receipt"), Group.SALES, Unit.NUMBER, "items", "orders"),
    _ratio("average_item_price", _("Average item price"), Group.SALES, MONEY, "sales_revenue", "items"),
    _ratio("discount_rate", _("Discount share"), Group.SALES, Unit.PERCENT, "discounts", "gross_sales"),
    _ratio("return_rate", _("Return share"), Group.SALES, Unit.PERCENT, "returns", "sales_revenue"),
    _ratio(
        "promo_share", _("Share of receipts with a promo code"), Group.SALES, Unit.PERCENT, "promo_orders", "orders"
    ),
    # --- CRM -----------------------------------------------------------------------------------
    _base(
        "buyers",
        _("Buyers"),
        Group.CRM,
        Unit.COUNT,
        S,
        f"uniqExactIf(f.customer_id, {IDENTIFIED_SALE})",
        "distinct identified customers with a sale in the period",
    ),
    _base(
        "identified_orders",
        _("Identified receipts"),
        Group.CRM,
        Unit.COUNT,
        S,
        f"uniqExactIf(f.order_id, {IDENTIFIED_SALE})",
        "distinct orders of identified customers",
    ),
    _base(
        "identified_revenue",
        _("Total turnover of buyers"),
        Group.CRM,
        MONEY,
        S,
        "sumIf(f.amount, f.customer_id != '')",
        "Σ amount of identified customers' lines, returns negative",
        2,
    ),
    _ratio(
        "identified_share", _("Share of identified receipts"), Group.CRM, Unit.PERCENT, "identified_orders", "orders"
    ),
    _ratio("purchase_frequency", _("Purchase frequency"), Group.CRM, Unit.NUMBER, "identified_orders", "buyers"),
    _ratio("revenue_per_buyer", _("Average turnover per buyer"), Group.CRM, MONEY, "identified_revenue", "buyers"),
    _base(
        "new_customers",
        _("New customers"),
        Group.CRM,
        Unit.COUNT,
        CU,
        "countIf(h.orders[1] >= b_start AND h.orders[1] < b_end)",
        "customers whose first order ever is in the period",
    ),
    _base(
        "repeat_customers",
        _("Repeat customers"),
        Group.CRM,
        Unit.COUNT,
        CU,
        f"countIf({BOUGHT_IN_BUCKET} AND arrayCount(x -> x < b_end, h.orders) >= 2)",
        "buyers of the period with 2+ orders up to its end",
    ),
    _base(
        "one_time_customers",
        _("One-time customers"),
        Group.CRM,
        Unit.COUNT,
        CU,
        f"countIf({BOUGHT_IN_BUCKET} AND arrayCount(x -> x < b_end, h.orders) = 1)",
        "buyers of the period with exactly one order up to its end",
    ),
    _ratio("repeat_share", _("Repeat share"), Group.CRM, Unit.PERCENT, "repeat_customers", "buyers"),
    _base(
        "customer_base",
        _("Customer base"),
        Group.CRM,
        Unit.COUNT,
        CU,
        f"countIf({IN_BASE})",
        "customers with an order up to the period end",
    ),
    _base(
        "customer_base_start",
        _("Customer base at start"),
        Group.CRM,
        Unit.COUNT,
        CU,
        "countIf(h.orders[1] < b_start)",
        "customers with an order before the period start",
    ),
    _base(
        "customer_base_growth",
        _("Customer base growth"),
        Group.CRM,
        Unit.COUNT,
        CU,
        f"countIf({IN_BASE}) - countIf(h.orders[1] < b_start)",
        "base at end − base at start",
    ),
    _ratio(
        "customer_base_growth_rate",
        _("Customer base growth, %"),
        Group.CRM,
        Unit.PERCENT,
        "customer_base_growth",
        "customer_base_start",
    ),
    _base(
        "churned_customers",
        _("Churned customers"),
        Group.CRM,
        Unit.COUNT,
        CU,
        f"countIf({CHURNED_IN_BUCKET})",
        "customers with an order day D where D + churn window (tenant setting, days) is in the period"
        " and no order in (D, D + window]",
    ),
    _ratio("churn_rate", _("Churn rate"), Group.CRM, Unit.PERCENT, "churned_customers", "customer_base_start"),
    _base(
        "previous_buyers",
        _("Buyers of the previous period"),
        Group.CRM,
        Unit.COUNT,
        CU,
        f"countIf({BOUGHT_BEFORE_BUCKET})",
        "buyers of the previous period (whole months: as many months before; else as many days) or bucket",
    ),
    _base(
        "retained_customers",
        _("Retained customers"),
        Group.CRM,
        Unit.COUNT,
        CU,
        f"countIf({BOUGHT_BEFORE_BUCKET} AND {BOUGHT_IN_BUCKET})",
        "buyers of the previous period who bought again in this one",
    ),
    _ratio("retention_rate", _("Retention"), Group.CRM, Unit.PERCENT, "retained_customers", "previous_buyers"),
    _base(
        "lifetime_days",
        _("Average customer lifetime, days"),
        Group.CRM,
        Unit.DAYS,
        CU,
        # A Decimal mean: ClickHouse truncates it past 2 digits, which keeps the answer's half-up rounding to 1 exact.
        f"toDecimal128(sumIf({LIFETIME_DAYS}, {IN_BASE}), 2) / nullIf(countIf({IN_BASE}), 0)",
        "mean days from first to last order up to the period end, over the customer base",
        1,
    ),
    _base(
        "customer_base_revenue",
        _("Net revenue of the customer base"),
        Group.CRM,
        MONEY,
        CU,
        f"sumIf(arraySum(arrayMap(t -> t.2, arrayFilter(t -> t.1 < b_end, h.money))), {IN_BASE})",
        "Σ net amount (returns negative) of the customer base's orders up to the period end",
        2,
    ),
    _ratio(
        "ltv",
        _("LTV (historical)"),
        Group.CRM,
        MONEY,
        "customer_base_revenue",
        "customer_base",
        "net revenue of the base up to the period end / customer base",
    ),
    _ratio("conversion_to_buyers", _("Conversion to buyers"), Group.CRM, Unit.PERCENT, "buyers", "contacts"),
    # --- Customer base -------------------------------------------------------------------------
    _base(
        "contacts",
        _("Contacts"),
        Group.CUSTOMER_BASE,
        Unit.COUNT,
        CO,
        f"countIf({CONTACT_EXISTS})",
        "customers created up to the period end",
    ),
    _base(
        "new_contacts",
        _("New contacts"),
        Group.CUSTOMER_BASE,
        Unit.COUNT,
        CO,
        "countIf(c.created_day >= b_start AND c.created_day < b_end)",
        "customers created in the period",
    ),
    _base(
        "reachable_contacts",
        _("Reachable contacts"),
        Group.CUSTOMER_BASE,
        Unit.COUNT,
        CO,
        f"countIf({CONTACT_EXISTS} AND (c.email_reachable OR c.sms_reachable))",
        "contacts reachable by e-mail or SMS (valid address and consent, as of now)",
    ),
    _base(
        "email_reachable_contacts",
        _("Reachable by e-mail"),
        Group.CUSTOMER_BASE,
        Unit.COUNT,
        CO,
        f"countIf({CONTACT_EXISTS} AND c.email_reachable)",
        "contacts reachable by e-mail",
    ),
    _base(
        "sms_reachable_contacts",
        _("Reachable by SMS"),
        Group.CUSTOMER_BASE,
        Unit.COUNT,
        CO,
        f"countIf({CONTACT_EXISTS} AND c.sms_reachable)",
        "contacts reachable by SMS",
    ),
    _base(
        "unreachable_contacts",
        _("Unreachable contacts"),
        Group.CUSTOMER_BASE,
        Unit.COUNT,
        CO,
        f"countIf({CONTACT_EXISTS} AND NOT c.email_reachable AND NOT c.sms_reachable)",
        "contacts without a valid, consented channel",
    ),
    _ratio("reachability_rate", _("Reachability"), Group.CUSTOMER_BASE, Unit.PERCENT, "reachable_contacts", "contacts"),
    _base(
        "online_buyers",
        _("Online buyers"),
        Group.CUSTOMER_BASE,
        Unit.COUNT,
        S,
        f"uniqExactIf(f.customer_id, {IDENTIFIED_SALE} AND f.channel = 'online')",
        "buyers with an online order",
    ),
    _base(
        "offline_buyers",
        _("Offline buyers"),
        Group.CUSTOMER_BASE,
        Unit.COUNT,
        S,
        f"uniqExactIf(f.customer_id, {IDENTIFIED_SALE} AND f.channel = 'offline')",
        "buyers with a store receipt",
    ),
    _base(
        "omnichannel_buyers",
        _("Omnichannel buyers"),
        Group.CUSTOMER_BASE,
        Unit.COUNT,
        S,
        f"uniqExactIf(f.customer_id, {IDENTIFIED_SALE} AND f.channel = 'online')"
        f" + uniqExactIf(f.customer_id, {IDENTIFIED_SALE} AND f.channel = 'offline')"
        f" - uniqExactIf(f.customer_id, {IDENTIFIED_SALE} AND f.channel IN ('online', 'offline'))",
        "buyers with both online and store orders",
    ),
    _ratio("online_share", _("Online buyers share"), Group.CUSTOMER_BASE, Unit.PERCENT, "online_buyers", "buyers"),
    _ratio("offline_share", _("Offline buyers share"), Group.CUSTOMER_BASE, Unit.PERCENT, "offline_buyers", "buyers"),
    # --- Mailings ------------------------------------------------------------------------------
    _base("sends", _("Sends"), Group.MAILINGS, Unit.COUNT, M, "countIf(m.event_type = 'sent')", "sent events"),
    _base(
        "deliveries",
        _("Deliveries"),
        Group.MAILINGS,
        Unit.COUNT,
        M,
        "countIf(m.event_type = 'delivered')",
        "delivered events",
    ),
    _base("opens", _("Opens"), Group.MAILINGS, Unit.COUNT, M, "countIf(m.event_type = 'opened')", "opened events"),
    _base("clicks", _("Clicks"), Group.MAILINGS, Unit.COUNT, M, "countIf(m.event_type = 'clicked')", "clicked events"),
    _base(
        "unsubscribes",
        _("Unsubscribes"),
        Group.MAILINGS,
        Unit.COUNT,
        M,
        "countIf(m.event_type = 'unsubscribed')",
        "unsubscribed events",
    ),
    _base(
        "bounces", _("Bounces"), Group.MAILINGS, Unit.COUNT, M, "countIf(m.event_type = 'bounced')", "bounced events"
    ),
    _base(
        "recipients",
        _("Recipients"),
        Group.MAILINGS,
        Unit.COUNT,
        M,
        "uniqExactIf(m.customer_id, m.event_type = 'sent')",
        "distinct customers sent a message",
    ),
    _ratio("delivery_rate", _("Delivery rate"), Group.MAILINGS, Unit.PERCENT, "deliveries", "sends"),
    _ratio("bounce_rate", _("Bounce rate"), Group.MAILINGS, Unit.PERCENT, "bounces", "sends"),
    _ratio("open_rate", _("Open rate"), Group.MAILINGS, Unit.PERCENT, "opens", "deliveries"),
    _ratio("click_rate", _("Click rate"), Group.MAILINGS, Unit.PERCENT, "clicks", "deliveries"),
    _ratio("click_to_open_rate", _("Click-to-open rate"), Group.MAILINGS, Unit.PERCENT, "clicks", "opens"),
    _ratio("unsubscribe_rate", _("Unsubscribe rate"), Group.MAILINGS, Unit.PERCENT, "unsubscribes", "deliveries"),
    _base(
        "mailing_orders",
        _("Orders from mailings"),
        Group.MAILINGS,
        Unit.COUNT,
        A,
        "count()",
        "identified orders in the period within the attribution window after a delivery or click of the mailing",
    ),
    _base(
        "mailing_revenue",
        _("Revenue from mailings"),
        Group.MAILINGS,
        MONEY,
        A,
        "sum(a.amount)",
        "Σ net amount of attributed orders",
        2,
    ),
    _base(
        "mailing_buyers",
        _("Buyers from mailings"),
        Group.MAILINGS,
        Unit.COUNT,
        A,
        "uniqExact(a.customer_id)",
        "distinct customers with an attributed order",
    ),
    _ratio(
        "mailing_average_check",
        _("Average check from mailings"),
        Group.MAILINGS,
        MONEY,
        "mailing_revenue",
        "mailing_orders",
    ),
    _ratio("revenue_per_email", _("Revenue per e-mail"), Group.MAILINGS, MONEY, "mailing_revenue", "sends"),
    _ratio("order_conversion", _("Order conversion"), Group.MAILINGS, Unit.PERCENT, "mailing_orders", "deliveries"),
    # Recipients against the control group, per mailing (rows ``aud``: analytics/semantic/audiences.py).
    _base(
        "control_group_size",
        _("Control group"),
        Group.MAILINGS,
        Unit.COUNT,
        M,
        "sum(aud.control_members)",
        "customers with a control event of the mailing (selected for it, deliberately not sent), distinct per"
        " mailing, summed over mailings",
    ),
    _base(
        "control_revenue",
        _("Control group revenue"),
        Group.MAILINGS,
        MONEY,
        M,
        "sum(aud.control_revenue)",
        "Σ net amount of the identified orders each control member placed within the attribution window after their"
        " control event (the send time)",
        2,
    ),
    _base(
        "incremental_revenue",
        _("Incremental revenue"),
        Group.MAILINGS,
        MONEY,
        M,
        "if(countIf(aud.control_members > 0) = 0, NULL, sumIf(aud.incremental_revenue, aud.control_members > 0))",
        "per mailing with a control group: T − K / C × R, rounded to the kopeck, then summed over the mailings;"
        " R = recipients (customers sent the mailing, delivered or not: intent to treat), T = Σ net amount of their"
        " identified orders within the attribution window after the send, C = control group, K = control group"
        " revenue. Empty (not 0) when no mailing has a control group",
        2,
        unknown_when_empty=True,
    ),
    # --- Funnel --------------------------------------------------------------------------------
    _base("visits", _("Visits"), Group.FUNNEL, Unit.COUNT, W, "countIf(w.event_type = 'visit')", "visit events"),
    _base(
        "category_views",
        _("Category views"),
        Group.FUNNEL,
        Unit.COUNT,
        W,
        "countIf(w.event_type = 'category_view')",
        "category_view events",
    ),
    _base(
        "product_views",
        _("Product views"),
        Group.FUNNEL,
        Unit.COUNT,
        W,
        "countIf(w.event_type = 'product_view')",
        "product_view events",
    ),
    _base(
        "add_to_carts",
        _("Add to cart"),
        Group.FUNNEL,
        Unit.COUNT,
        W,
        "countIf(w.event_type = 'add_to_cart')",
        "add_to_cart events",
    ),
    _base(
        "checkouts",
        _("Checkouts"),
        Group.FUNNEL,
        Unit.COUNT,
        W,
        "countIf(w.event_type = 'checkout')",
        "checkout events",
    ),
    _base(
        "online_orders",
        _("Online orders"),
        Group.FUNNEL,
        Unit.COUNT,
        S,
        f"uniqExactIf(f.order_id, {SALE} AND f.channel = 'online')",
        "distinct online sale orders",
    ),
    _ratio("cart_rate", _("Visit to cart"), Group.FUNNEL, Unit.PERCENT, "add_to_carts", "visits"),
    _ratio("checkout_rate", _("Cart to checkout"), Group.FUNNEL, Unit.PERCENT, "checkouts", "add_to_carts"),
    _ratio("visit_conversion", _("Visit to order"), Group.FUNNEL, Unit.PERCENT, "online_orders", "visits"),
)

# The same sales metrics over the ``orders`` pre-aggregation (one row per order, alias ``f``): receipts
# are counted instead of uniqExact-ed; the other sales metrics read the same columns there.
ORDER_GRAIN_SQL: dict[str, str] = {
    "orders": f"countIf({SALE})",
    "return_receipts": "uniqExactIf(f.order_id, f.is_return = 1)",  # an order's returns may span days
    "promo_orders": f"countIf({SALE} AND f.promo_lines > 0)",
    "promo_revenue": f"sumIf(f.promo_amount, {SALE})",
    "identified_orders": f"countIf({IDENTIFIED_SALE})",
    "online_orders": f"countIf({SALE} AND f.channel = 'online')",
}

# Customer metrics over the customer-day builds (analytics/semantic/customer_days.py): expressions of the measures
# that module counts per bucket and slice value.
CUSTOMER_DAYS_SQL = {
    # Sales metrics, counted there per order otherwise.
    "buyers": "sum(buyers)",
    "online_buyers": "sum(online_buyers)",
    "offline_buyers": "sum(offline_buyers)",
    "omnichannel_buyers": "sum(online_buyers) + sum(offline_buyers) - sum(channel_buyers)",
    "new_customers": "sum(new_customers)",
    "repeat_customers": "sum(repeat_customers)",
    "one_time_customers": "sum(one_time_customers)",
    "retained_customers": "sum(retained_customers)",
    "previous_buyers": "sum(previous_buyers)",
    "churned_customers": "sum(churned_customers)",
    "customer_base": "sum(base_end)",
    "customer_base_start": "sum(base_start)",
    "customer_base_growth": "sum(base_end) - sum(base_start)",
    "lifetime_days": "toDecimal128(sum(lifetime_end), 2) / nullIf(sum(base_end), 0)",
    "customer_base_revenue": "sum(amount_end)",
}
