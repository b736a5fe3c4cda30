"""ClickHouse DDL as functions (the PostHog way): each table's CREATE and DROP side by side.

``tenant_id`` leads every ORDER BY so a tenant's rows sit together and every query
prunes to them.
"""

from __future__ import annotations

MIGRATIONS_TABLE = "clickhouse_migrations"


def MIGRATIONS_TABLE_SQL() -> str:
    return f"""
CREATE TABLE IF NOT EXISTS {MIGRATIONS_TABLE} (
    name String,
    applied_at DateTime DEFAULT now()
) ENGINE = MergeTree ORDER BY name
"""


def TENANT_SETTINGS_TABLE_SQL() -> str:
    # What queries need to know of a tenant without asking Postgres: its timezone for
    # period boundaries, its currency. Replaced on every change (latest version wins).
    return """
CREATE TABLE IF NOT EXISTS tenant_settings (
    tenant_id UInt32,
    timezone LowCardinality(String),
    currency LowCardinality(String),
    churn_window_days UInt16,
    attribution_window_days UInt16,
    version UInt64
) ENGINE = ReplacingMergeTree(version) ORDER BY tenant_id
"""


def DROP_TENANT_SETTINGS_TABLE_SQL() -> str:
    return "DROP TABLE IF EXISTS tenant_settings"


# --- Facts (DESIGN §2, §8). Rows are keyed by their source identity and carry an ingest
# ``version``: ReplacingMergeTree keeps one row per key, so re-importing the same order,
# event or customer never counts twice. Readers that need exact totals before background
# merges have run read with FINAL (or argMax(…, version)). Money is Decimal, never float.
# No column may hold personal data (names, e-mails, phones): those live in Postgres.


def SALES_LINES_TABLE_SQL() -> str:
    # One row per receipt line; returns have is_return = 1 and negative qty, discount and amount.
    return """
CREATE TABLE IF NOT EXISTS sales_lines (
    tenant_id UInt32,
    order_id String,
    line_no UInt32,
    ts DateTime64(3, 'UTC') CODEC(Delta, ZSTD(1)),
    customer_id String CODEC(ZSTD(1)),
    store LowCardinality(String),
    employee LowCardinality(String),
    channel LowCardinality(String),
    product_id String CODEC(ZSTD(1)),
    product_name String CODEC(ZSTD(1)),
    category LowCardinality(String),
    brand LowCardinality(String),
    qty Decimal(18, 3),
    price Decimal(18, 2),
    discount Decimal(18, 2),
    amount Decimal(18, 2),
    is_return UInt8,
    promo_code LowCardinality(String),
    source LowCardinality(String),
    version UInt64
) ENGINE = ReplacingMergeTree(version)
PARTITION BY toYYYYMM(ts)
ORDER BY (tenant_id, toDate(ts), order_id, line_no, is_return)
"""


def MESSAGE_EVENTS_TABLE_SQL() -> str:
    return """
CREATE TABLE IF NOT EXISTS message_events (
    tenant_id UInt32,
    event_id String,
    ts DateTime64(3, 'UTC') CODEC(Delta, ZSTD(1)),
    customer_id String CODEC(ZSTD(1)),
    mailing_id LowCardinality(String),
    campaign_id LowCardinality(String),
    channel LowCardinality(String),
    event_type LowCardinality(String),
    source LowCardinality(String),
    version UInt64
) ENGINE = ReplacingMergeTree(version)
PARTITION BY toYYYYMM(ts)
ORDER BY (tenant_id, toDate(ts), event_type, event_id)
"""


def WEB_EVENTS_TABLE_SQL() -> str:
    return """
CREATE TABLE IF NOT EXISTS web_events (
    tenant_id UInt32,
    event_id String,
    ts DateTime64(3, 'UTC') CODEC(Delta, ZSTD(1)),
    customer_id String CODEC(ZSTD(1)),
    session_id String CODEC(ZSTD(1)),
    event_type LowCardinality(String),
    platform LowCardinality(String),
    category LowCardinality(String),
    product_id String CODEC(ZSTD(1)),
    source LowCardinality(String),
    version UInt64
) ENGINE = ReplacingMergeTree(version)
PARTITION BY toYYYYMM(ts)
ORDER BY (tenant_id, toDate(ts), event_type, event_id)
"""


def CUSTOMER_ATTRIBUTES_TABLE_SQL() -> str:
    # Attributes without PII: gender, birth year, city and reachability, never contacts.
    return """
CREATE TABLE IF NOT EXISTS customer_attributes (
    tenant_id UInt32,
    customer_id String,
    created_at DateTime64(3, 'UTC'),
    gender LowCardinality(String),
    birth_year UInt16,
    city LowCardinality(String),
    home_store LowCardinality(String),
    loyalty_program LowCardinality(String),
    email_reachable UInt8,
    sms_reachable UInt8,
    source LowCardinality(String),
    version UInt64
) ENGINE = ReplacingMergeTree(version)
ORDER BY (tenant_id, customer_id)
"""


def SEGMENT_SNAPSHOTS_TABLE_SQL() -> str:
    return """
CREATE TABLE IF NOT EXISTS segment_snapshots (
    tenant_id UInt32,
    segment_id UInt64,
    computed_at DateTime('UTC'),
    customer_id String
) ENGINE = MergeTree
PARTITION BY toYYYYMM(computed_at)
ORDER BY (tenant_id, segment_id, computed_at, customer_id)
"""


FACT_TABLES = ("sales_lines", "message_events", "web_events", "customer_attributes", "segment_snapshots")


# --- Pre-aggregations (rebuilt per tenant from the facts: analytics/preaggregations.py). Each build
# writes its rows under a new ``build`` id and then deletes the tenant's older builds; readers name
# the build they read (preaggregation_builds), so they never see half of one. Local days are in the
# tenant's timezone at build time: a timezone change makes the build stale.


def ORDERS_TABLE_SQL() -> str:
    # One row per order (a sale and its return apart): receipts are counted, not uniqExact-ed.
    return """
CREATE TABLE IF NOT EXISTS orders (
    tenant_id UInt32,
    build UInt64,
    day Date,
    ts DateTime64(3, 'UTC') CODEC(Delta, ZSTD(1)),
    order_id String CODEC(ZSTD(1)),
    is_return UInt8,
    customer_id String CODEC(ZSTD(1)),
    store LowCardinality(String),
    employee LowCardinality(String),
    channel LowCardinality(String),
    qty Decimal(18, 3),
    discount Decimal(18, 2),
    amount Decimal(18, 2),
    promo_lines UInt32,
    promo_amount Decimal(18, 2)
) ENGINE = MergeTree
PARTITION BY toYYYYMM(day)
ORDER BY (tenant_id, build, day, store)
"""


def CUSTOMER_HISTORIES_TABLE_SQL() -> str:
    # One row per identified customer: their sale-order days and (day, net amount) of every order.
    return """
CREATE TABLE IF NOT EXISTS customer_histories (
    tenant_id UInt32,
    build UInt64,
    customer_id String,
    first_order_ts DateTime64(3, 'UTC'),
    orders Array(Date),
    money Array(Tuple(Date, Decimal(18, 2)))
) ENGINE = MergeTree
ORDER BY (tenant_id, build, customer_id)
"""


def PREAGGREGATION_BUILDS_TABLE_SQL() -> str:
    # The latest build of each pre-aggregation per tenant, and the data version it was built from.
    return """
CREATE TABLE IF NOT EXISTS preaggregation_builds (
    tenant_id UInt32,
    name LowCardinality(String),
    build UInt64,
    data_version UInt64,
    rows UInt64,
    seconds Float64
) ENGINE = ReplacingMergeTree(build)
ORDER BY (tenant_id, name)
"""


PREAGGREGATION_TABLES = ("orders", "customer_histories")


def DATA_VERSIONS_TABLE_SQL() -> str:
    # A tenant's data version: bumped by every write to its facts (analytics/clickhouse/query.py). Cached
    # answers and pre-aggregation builds name the version they were computed from. Kept in ClickHouse,
    # next to the data, so every process (web, worker, a command) agrees on it.
    return """
CREATE TABLE IF NOT EXISTS data_versions (
    tenant_id UInt32,
    version UInt64
) ENGINE = ReplacingMergeTree(version)
ORDER BY tenant_id
"""


def CUSTOMER_DAYS_TABLE_SQL() -> str:
    # One row per identified customer, day with an order and slice (the whole shop, or one store, employee or
    # channel): the customer's history within the slice, with the neighbouring purchase days, so customer metrics
    # count rows of a few days instead of evaluating every history (analytics/semantic/customer_days.py).
    # Not partitioned: the build inserts customer by customer, so each block would touch every month's partition.
    return """
CREATE TABLE IF NOT EXISTS customer_days (
    tenant_id UInt32,
    build UInt64,
    slice Enum8('all' = 0, 'store' = 1, 'employee' = 2, 'channel' = 3),
    slice_value LowCardinality(String),
    day Date,
    customer_id String CODEC(ZSTD(1)),
    orders UInt32,
    cum_orders UInt32,
    amount Decimal(18, 2),
    first_day Date,
    prev_day Date,
    next_day Date
) ENGINE = MergeTree
ORDER BY (tenant_id, build, slice, day, slice_value)
"""


def CUSTOMER_BASE_DAYS_TABLE_SQL() -> str:
    # Per slice value and day, what the customer base accumulates: customers whose first purchase it was, days of
    # lifetime added, net amount. Summed over the days before a bucket's end they give the base at that end.
    return """
CREATE TABLE IF NOT EXISTS customer_base_days (
    tenant_id UInt32,
    build UInt64,
    slice Enum8('all' = 0, 'store' = 1, 'employee' = 2, 'channel' = 3),
    slice_value LowCardinality(String),
    day Date,
    first_purchases UInt64,
    lifetime_days Int64,
    amount Decimal(38, 2)
) ENGINE = MergeTree
ORDER BY (tenant_id, build, slice, slice_value, day)
"""


def SALES_DAYS_TABLE_SQL() -> str:
    # Per day, store, employee and channel the additive sales sums (analytics/semantic/rollups.py): a month of
    # sales metrics reads thousands of rows instead of its orders. Receipts count each sale order on its day.
    return """
CREATE TABLE IF NOT EXISTS sales_days (
    tenant_id UInt32,
    build UInt64,
    day Date,
    store LowCardinality(String),
    employee LowCardinality(String),
    channel LowCardinality(String),
    revenue Decimal(38, 2),
    sales_revenue Decimal(38, 2),
    gross_sales Decimal(38, 2),
    discounts Decimal(38, 2),
    returns Decimal(38, 2),
    items Decimal(38, 3),
    orders UInt64,
    promo_orders UInt64,
    promo_revenue Decimal(38, 2),
    identified_orders UInt64,
    identified_revenue Decimal(38, 2)
) ENGINE = MergeTree
PARTITION BY toYear(day)
ORDER BY (tenant_id, build, day, store, employee, channel)
"""


def ASSORTMENT_DAYS_TABLE_SQL() -> str:
    # The same sums per day, store, channel and one assortment value: a row of grain 'category' has its category
    # and empty brand, product and promo code, and so on. Receipts are distinct orders within the row, so they add
    # up over days, stores and channels (an order has one of each) but never across grains or values.
    return """
CREATE TABLE IF NOT EXISTS assortment_days (
    tenant_id UInt32,
    build UInt64,
    grain Enum8('category' = 1, 'brand' = 2, 'product' = 3, 'promo_code' = 4),
    day Date,
    store LowCardinality(String),
    channel LowCardinality(String),
    category LowCardinality(String),
    brand LowCardinality(String),
    product_name String CODEC(ZSTD(1)),
    promo_code LowCardinality(String),
    revenue Decimal(38, 2),
    sales_revenue Decimal(38, 2),
    gross_sales Decimal(38, 2),
    discounts Decimal(38, 2),
    returns Decimal(38, 2),
    items Decimal(38, 3),
    orders UInt64,
    promo_orders UInt64,
    promo_revenue Decimal(38, 2),
    identified_orders UInt64,
    identified_revenue Decimal(38, 2)
) ENGINE = MergeTree
PARTITION BY toYear(day)
ORDER BY (tenant_id, build, grain, day, store, channel)
"""


def MESSAGE_DAYS_TABLE_SQL() -> str:
    # Message events counted per local day and the columns mailing metrics slice by
    # (analytics/semantic/event_rollups.py).
    return """
CREATE TABLE IF NOT EXISTS message_days (
    tenant_id UInt32,
    build UInt64,
    day Date,
    mailing_id LowCardinality(String),
    campaign_id LowCardinality(String),
    channel LowCardinality(String),
    event_type LowCardinality(String),
    events UInt64
) ENGINE = MergeTree
PARTITION BY toYear(day)
ORDER BY (tenant_id, build, day, event_type, mailing_id)
"""


def WEB_DAYS_TABLE_SQL() -> str:
    # Web events counted per local day, event type, category and platform.
    return """
CREATE TABLE IF NOT EXISTS web_days (
    tenant_id UInt32,
    build UInt64,
    day Date,
    event_type LowCardinality(String),
    category LowCardinality(String),
    platform LowCardinality(String),
    events UInt64
) ENGINE = MergeTree
PARTITION BY toYear(day)
ORDER BY (tenant_id, build, day, event_type)
"""


def ATTRIBUTED_ORDERS_TABLE_SQL() -> str:
    # One row per identified sale order and (mailing, campaign, channel) that touched it within the attribution
    # window the build recorded (preaggregation_builds.attribution_window_days).
    return """
CREATE TABLE IF NOT EXISTS attributed_orders (
    tenant_id UInt32,
    build UInt64,
    day Date,
    order_ts DateTime64(3, 'UTC') CODEC(Delta, ZSTD(1)),
    order_id String CODEC(ZSTD(1)),
    customer_id String CODEC(ZSTD(1)),
    amount Decimal(18, 2),
    mailing_id LowCardinality(String),
    campaign_id LowCardinality(String),
    message_channel LowCardinality(String)
) ENGINE = MergeTree
PARTITION BY toYear(day)
ORDER BY (tenant_id, build, day, mailing_id)
"""


def PREAGGREGATION_BUILDS_WINDOW_SQL() -> str:
    # The attribution window (days) a build was made with: attributed orders are fresh only under the same one.
    return "ALTER TABLE preaggregation_builds ADD COLUMN IF NOT EXISTS attribution_window_days UInt16 DEFAULT 0"


def CONTACT_DAYS_TABLE_SQL() -> str:
    # Contacts counted per local day they joined, reachability and one attribute (``grain``: 'all' or the attribute's
    # column; the other attribute columns are empty there). The contacts source sums these instead of reading
    # every contact when a query is split or filtered by that attribute at most.
    return """
CREATE TABLE IF NOT EXISTS contact_days (
    tenant_id UInt32,
    build UInt64,
    grain LowCardinality(String),
    created_day Date,
    city LowCardinality(String),
    gender LowCardinality(String),
    birth_year UInt16,
    home_store LowCardinality(String),
    loyalty_program LowCardinality(String),
    email_reachable UInt8,
    sms_reachable UInt8,
    contacts UInt64
) ENGINE = MergeTree
ORDER BY (tenant_id, build, grain, created_day)
"""


def CUSTOMER_FLOWS_TABLE_SQL() -> str:
    # Per calendar bucket (granularity and first day), slice and slice value: buyers, new, repeat, one-time and
    # retained customers, counted from customer_days at build time (analytics/semantic/customer_days.py);
    # churns and channel buyers since migration 0010 (CUSTOMER_FLOWS_CHURNS_AND_CHANNELS_SQL).
    return """
CREATE TABLE IF NOT EXISTS customer_flows (
    tenant_id UInt32,
    build UInt64,
    granularity LowCardinality(String),
    bucket_start Date,
    slice Enum8('all' = 0, 'store' = 1, 'employee' = 2, 'channel' = 3),
    slice_value LowCardinality(String),
    buyers UInt64,
    new_customers UInt64,
    repeat_customers UInt64,
    one_time_customers UInt64,
    retained_customers UInt64
) ENGINE = MergeTree
ORDER BY (tenant_id, build, granularity, slice, bucket_start, slice_value)
"""


def CUSTOMER_FLOWS_CHURNS_AND_CHANNELS_SQL() -> str:
    # Customers churning in the bucket (under the churn window the build was made with), and the whole shop's
    # buyers online, offline and in either channel (slice 'all' rows).
    return (
        "ALTER TABLE customer_flows ADD COLUMN IF NOT EXISTS churned_customers UInt64,"
        " ADD COLUMN IF NOT EXISTS online_buyers UInt64, ADD COLUMN IF NOT EXISTS offline_buyers UInt64,"
        " ADD COLUMN IF NOT EXISTS channel_buyers UInt64"
    )


def PREAGGREGATION_BUILDS_CHURN_WINDOW_SQL() -> str:
    # The churn window (days) a build was made with: customer flows are fresh only under the same one. Builds
    # recorded before have none (NULL equals no window): their flows, without churns, are stale.
    return "ALTER TABLE preaggregation_builds ADD COLUMN IF NOT EXISTS churn_window_days Nullable(UInt16)"


def DATA_VERSIONS_PER_FACT_SQL() -> str:
    # A version per fact table written, so a build stays fresh while only other facts change (web events do not
    # stale the sales rollups). Rows from before name no fact: they count as a change of every fact.
    return (
        "ALTER TABLE data_versions ADD COLUMN IF NOT EXISTS fact LowCardinality(String) AFTER tenant_id,"
        " MODIFY ORDER BY (tenant_id, fact)"
    )


def AUDIENCE_SENDS_TABLE_SQL() -> str:
    # One row per sent or control (held-out) message event of an identified customer, with the customer's revenue
    # within the attribution window the build recorded after it (analytics/semantic/audiences.py).
    return """
CREATE TABLE IF NOT EXISTS audience_sends (
    tenant_id UInt32,
    build UInt64,
    day Date,
    ts DateTime64(3, 'UTC') CODEC(Delta, ZSTD(1)),
    mailing_id LowCardinality(String),
    campaign_id LowCardinality(String),
    channel LowCardinality(String),
    event_type LowCardinality(String),
    customer_id String CODEC(ZSTD(1)),
    revenue Decimal(18, 2),
    single UInt8  -- the customer's only event of this role for this mailing
) ENGINE = MergeTree
PARTITION BY toYear(day)
ORDER BY (tenant_id, build, day, mailing_id)
"""
