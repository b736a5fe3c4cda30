"""Every dimension ("slice") of the semantic layer.

Row aliases, per source (compiler.py): ``f`` a sales line (sales, and the customers source's
order history), ``c`` a customer_attributes row, ``m`` a message event, ``a`` an attributed
order, ``w`` a web event. Customer-level joins, added when an expression names them:
``attrs`` (customer attributes), ``acq`` (first order), ``rfm`` (RFM scores of
analytics/analyses/rfm.py) and ``seg`` (segment membership). ``{tz:String}`` is the tenant's timezone
and ``{ref_year:UInt16}`` the year the period ends in (for age bands). Every expression returns a
String, but a multi-valued dimension's, which returns an Array(String) of the row's values.
"""

from __future__ import annotations

from django.utils.translation import gettext
from django.utils.translation import gettext_lazy as _

from analytics.semantic.registry import Dimension, Source

S, CU, CO, M, A, W = Source.SALES, Source.CUSTOMERS, Source.CONTACTS, Source.MESSAGES, Source.ATTRIBUTION, Source.WEB
# Facts a customer-level attribute can slice: every source that knows the customer.
CUSTOMER_SOURCES = (S, CU, M, A, W)


def _line(column: str) -> dict[Source, str]:
    """A column of the sales line: for sales and for the order histories of the customers source."""
    return {S: f"f.{column}", CU: f"f.{column}"}


def _attribute(expression: str) -> dict[Source, str]:
    """A customer attribute: read directly from the contacts rows, joined as ``attrs`` elsewhere."""
    return {**{source: expression.format(row="attrs") for source in CUSTOMER_SOURCES}, CO: expression.format(row="c")}


def _timed(expression: str) -> dict[Source, str]:
    """An expression of the event time ``{ts}`` for every source whose rows happen at a moment."""
    times = {S: "f.ts", M: "m.ts", A: "a.order_ts", W: "w.ts"}
    return {source: expression.format(ts=ts) for source, ts in times.items()}


def _segment_label(segment_id: str) -> str:
    return gettext("Segment %(id)s") % {"id": segment_id}


AGE_BAND = (
    "multiIf({row}.birth_year = 0, '', {{ref_year:UInt16}} - {row}.birth_year < 25, '<25',"
    " {{ref_year:UInt16}} - {row}.birth_year < 35, '25-34', {{ref_year:UInt16}} - {row}.birth_year < 45, '35-44',"
    " {{ref_year:UInt16}} - {row}.birth_year < 55, '45-54', '55+')"
)

DIMENSIONS: tuple[Dimension, ...] = (
    Dimension("store", _("Store"), "The store of the receipt.", _line("store")),
    Dimension("employee", _("Employee"), "The employee (cashier, consultant) of the receipt.", _line("employee")),
    Dimension("channel", _("Sales channel"), "offline or online.", _line("channel")),
    Dimension("category", _("Category"), "Product category.", {**_line("category"), W: "w.category"}),
    Dimension("brand", _("Brand"), "Product brand.", _line("brand")),
    Dimension("product", _("Product"), "Product name.", _line("product_name")),
    Dimension("promo_code", _("Promo code"), "The promo code of the line, empty without one.", _line("promo_code")),
    Dimension(
        "weekday",
        _("Weekday"),
        "ISO day of week in the tenant's timezone: 1 = Monday … 7 = Sunday.",
        _timed("toString(toDayOfWeek({ts}, 0, {{tz:String}}))"),
        sort_numeric=True,
    ),
    Dimension(
        "hour",
        _("Hour"),
        "Hour of day 0–23 in the tenant's timezone.",
        _timed("toString(toHour({ts}, {{tz:String}}))"),
        sort_numeric=True,
    ),
    Dimension("city", _("City"), "The customer's city.", _attribute("{row}.city")),
    Dimension("gender", _("Gender"), "The customer's gender: f, m or empty.", _attribute("{row}.gender")),
    Dimension(
        "age_band",
        _("Age band"),
        "Age at the end of the period's year from the birth year: <25, 25-34, 35-44, 45-54, 55+; empty if unknown.",
        _attribute(AGE_BAND),
    ),
    Dimension("home_store", _("Home store"), "The customer's home store.", _attribute("{row}.home_store")),
    Dimension(
        "loyalty_program",
        _("Loyalty programme"),
        "bonus, discount, or empty for non-members.",
        _attribute("{row}.loyalty_program"),
    ),
    Dimension(
        "customer_type",
        _("Customer type"),
        "Per receipt: new (the customer's first order ever), repeat, or anonymous.",
        {S: "multiIf(f.customer_id = '', 'anonymous', f.ts <= acq.first_order_ts, 'new', 'repeat')"},
    ),
    Dimension(
        "acquisition_cohort",
        _("Acquisition cohort"),
        "The month (YYYY-MM-01, tenant's timezone) of the customer's first order ever.",
        {
            source: "if(acq.customer_id = '', '', toString(toStartOfMonth(toDate(acq.first_order_ts, {tz:String}))))"
            for source in (*CUSTOMER_SOURCES, CO)
        },
    ),
    Dimension(
        "rfm_segment",
        _("RFM segment"),
        "The customer's RFM segment (champions, loyal_customers …) as of the period's last day, scored over the"
        " 365 days before it; empty for customers without a purchase in those days.",
        {**{source: "rfm.segment" for source in CUSTOMER_SOURCES}, CO: "rfm.segment"},
    ),
    Dimension(
        "segment",
        _("Segment"),
        "The segments (ids) the customer is a member of as of the period's last day: of each segment, its latest"
        " snapshot computed by the end of that day (tenant's timezone). A customer in several segments counts in"
        " each, so the rows do not add up to the total, which counts everyone once; customers in no segment, and"
        " anonymous receipts and events, are in no row. A filter keeps the members of any segment named (exclude:"
        " everyone else).",
        {source: "seg.segment_ids" for source in (*CUSTOMER_SOURCES, CO)},
        multi_valued=True,
        value_label=_segment_label,
    ),
    Dimension("mailing", _("Mailing"), "The mailing of the message.", {M: "m.mailing_id", A: "a.mailing_id"}),
    Dimension("campaign", _("Campaign"), "The campaign of the message.", {M: "m.campaign_id", A: "a.campaign_id"}),
    Dimension("message_channel", _("Message channel"), "email, sms, push …", {M: "m.channel", A: "a.message_channel"}),
    Dimension("platform", _("Platform"), "web or app.", {W: "w.platform"}),
)
