"""Periods in the tenant's calendar: parsing, UTC bounds of local days (DST included), buckets, comparisons."""

from __future__ import annotations

import itertools
import random
import time
from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from django_tenants.utils import tenant_context

from analytics.periods import (
    MAX_PERIOD_DAYS,
    Comparison,
    Granularity,
    Period,
    bucket_start,
    buckets,
    local_midnight,
    parse_choice,
    parse_period,
    tenant_timezone,
    tenant_today,
)
from tenants.errors import ApplicationError

HOUR = timedelta(hours=1)


def test_a_period_from_iso_dates_or_dates():
    assert parse_period("2025-01-01", "2025-01-31") == Period(date(2025, 1, 1), date(2025, 1, 31))
    assert parse_period(date(2025, 2, 1), "2025-02-01").days == 1
    assert parse_period("2024-01-01", "2024-12-31").days == 366


@pytest.mark.parametrize(
    ("start", "end", "message"),
    [
        ("2025-13-01", "2025-12-31", "“2025-13-01” is not a date for “from”"),
        ("2025-01-01", "yesterday", "“yesterday” is not a date for “to”"),
        ("2025-02-30", "2025-03-01", "“2025-02-30” is not a date for “from”"),
        ("2025-03-01", "2025-02-28", "ends (2025-02-28) before it starts (2025-03-01)"),
        ("2000-01-01", "2206-01-01", f"longer than {MAX_PERIOD_DAYS} days"),
    ],
)
def test_a_bad_period_says_what_is_wrong(start, end, message):
    with pytest.raises(ApplicationError) as error:
        parse_period(start, end)
    assert message in error.value.message


@pytest.mark.parametrize(
    ("timezone", "day", "hours"),
    [
        ("America/New_York", date(2025, 3, 9), 23),
        ("America/New_York", date(2025, 11, 2), 25),
        ("Europe/Berlin", date(2025, 3, 30), 23),
        ("Europe/Berlin", date(2025, 10, 26), 25),
        ("Europe/Berlin", date(2025, 10, 27), 24),
        ("Europe/Moscow", date(2025, 3, 30), 24),  # no DST since 2014
    ],
)
def test_a_local_day_lasts_23_24_or_25_hours(timezone, day, hours):
    start, end = Period(day, day).bounds(ZoneInfo(timezone))
    assert end - start == hours * HOUR


def test_bounds_are_naive_utc_instants_of_local_midnights():
    assert Period(date(2025, 1, 1), date(2025, 1, 31)).bounds(ZoneInfo("Europe/Moscow")) == (
        datetime(2024, 12, 31, 21),
        datetime(2025, 1, 31, 21),
    )
    assert local_midnight(date(2025, 7, 1), ZoneInfo("Asia/Vladivostok")) == datetime(2025, 6, 30, 14)
    assert local_midnight(date(2025, 7, 1), ZoneInfo("America/New_York")) == datetime(2025, 7, 1, 4)
    assert local_midnight(date(2025, 1, 1), ZoneInfo("America/New_York")) == datetime(2025, 1, 1, 5)


def test_bounds_do_not_depend_on_the_servers_timezone(monkeypatch):
    period = Period(date(2025, 3, 9), date(2025, 11, 2))
    expected = period.bounds(ZoneInfo("America/New_York"))
    try:
        for server in ("Pacific/Kiritimati", "America/Los_Angeles", "Asia/Kathmandu"):
            monkeypatch.setenv("TZ", server)
            time.tzset()
            assert time.localtime(0).tm_hour == datetime.fromtimestamp(0, ZoneInfo(server)).hour
            assert period.bounds(ZoneInfo("America/New_York")) == expected
    finally:
        monkeypatch.undo()
        time.tzset()


def test_the_previous_period_has_the_same_length_and_ends_the_day_before():
    assert Period(date(2025, 3, 1), date(2025, 3, 31)).previous() == Period(date(2025, 1, 29), date(2025, 2, 28))
    assert Period(date(2025, 1, 1), date(2025, 1, 1)).previous() == Period(date(2024, 12, 31), date(2024, 12, 31))
    assert Period(date(2025, 1, 1), date(2025, 1, 14)).compared(Comparison.PREVIOUS_PERIOD) == Period(
        date(2024, 12, 18), date(2024, 12, 31)
    )


def test_the_year_before_keeps_the_dates_and_maps_29_february_to_the_28th():
    assert Period(date(2025, 4, 1), date(2025, 6, 30)).year_before() == Period(date(2024, 4, 1), date(2024, 6, 30))
    assert Period(date(2024, 2, 29), date(2024, 3, 1)).compared(Comparison.PREVIOUS_YEAR) == Period(
        date(2023, 2, 28), date(2023, 3, 1)
    )


@pytest.mark.parametrize(
    ("granularity", "day", "start"),
    [
        (Granularity.DAY, date(2025, 3, 5), date(2025, 3, 5)),
        (Granularity.WEEK, date(2025, 3, 5), date(2025, 3, 3)),  # a Wednesday: its Monday
        (Granularity.WEEK, date(2025, 3, 3), date(2025, 3, 3)),
        (Granularity.WEEK, date(2025, 1, 1), date(2024, 12, 30)),  # weeks cross the new year
        (Granularity.MONTH, date(2025, 3, 31), date(2025, 3, 1)),
        (Granularity.QUARTER, date(2025, 6, 30), date(2025, 4, 1)),
        (Granularity.QUARTER, date(2025, 10, 1), date(2025, 10, 1)),
        (Granularity.YEAR, date(2025, 12, 31), date(2025, 1, 1)),
    ],
)
def test_bucket_start(granularity, day, start):
    assert bucket_start(day, granularity) == start


def test_buckets_are_calendar_units_clipped_to_the_period():
    weeks = buckets(Period(date(2024, 12, 18), date(2025, 1, 12)), Granularity.WEEK)
    assert [(b.start, b.end) for b in weeks] == [
        (date(2024, 12, 18), date(2024, 12, 22)),
        (date(2024, 12, 23), date(2024, 12, 29)),
        (date(2024, 12, 30), date(2025, 1, 5)),
        (date(2025, 1, 6), date(2025, 1, 12)),
    ]
    months = buckets(Period(date(2025, 1, 15), date(2025, 3, 10)), Granularity.MONTH)
    assert [(b.start, b.end) for b in months] == [
        (date(2025, 1, 15), date(2025, 1, 31)),
        (date(2025, 2, 1), date(2025, 2, 28)),
        (date(2025, 3, 1), date(2025, 3, 10)),
    ]
    assert buckets(Period(date(2025, 5, 5), date(2025, 5, 5)), Granularity.YEAR) == [
        Period(date(2025, 5, 5), date(2025, 5, 5))
    ]


@pytest.mark.parametrize("granularity", list(Granularity))
def test_buckets_tile_any_period_without_gaps(granularity):
    """Random periods: buckets follow each other day by day, each inside one calendar unit, a new one at each."""
    draw = random.Random(5)
    for _ in range(200):
        start = date(2023, 1, 1) + timedelta(days=draw.randrange(1200))
        period = Period(start, start + timedelta(days=draw.randrange(400)))
        tiles = buckets(period, granularity)
        assert tiles[0].start == period.start
        assert tiles[-1].end == period.end
        for bucket, following in itertools.pairwise(tiles):
            assert following.start == bucket.end + timedelta(days=1)
            assert bucket_start(following.start, granularity) == following.start
        for bucket in tiles:
            assert bucket.start <= bucket.end
            assert bucket_start(bucket.start, granularity) == bucket_start(bucket.end, granularity)
        assert sum(bucket.days for bucket in tiles) == period.days


def test_a_choice_is_a_member_none_or_an_error_listing_the_valid_ones():
    assert parse_choice("week", Granularity, "granularity") is Granularity.WEEK
    assert parse_choice("", Comparison, "compare") is None
    assert parse_choice(None, Comparison, "compare") is None
    with pytest.raises(ApplicationError) as error:
        parse_choice("fortnight", Granularity, "granularity")
    assert error.value.message == "Unknown granularity “fortnight”. Valid: day, week, month, quarter, year."
    assert error.value.extra["valid"] == ["day", "week", "month", "quarter", "year"]


def test_the_tenants_timezone_and_today(make_tenant):
    tenant = make_tenant(timezone="Pacific/Kiritimati")  # UTC+14: its today is often not the UTC one
    with tenant_context(tenant):
        assert tenant_timezone() == ZoneInfo("Pacific/Kiritimati")
        assert tenant_today() == datetime.now(ZoneInfo("Pacific/Kiritimati")).date()


def test_the_previous_period_of_whole_months_is_as_many_months_before():
    march = Period(date(2025, 3, 1), date(2025, 3, 31))
    assert march.compared(Comparison.PREVIOUS_PERIOD) == Period(date(2025, 2, 1), date(2025, 2, 28))
    second_quarter = Period(date(2025, 4, 1), date(2025, 6, 30))
    assert second_quarter.compared(Comparison.PREVIOUS_PERIOD) == Period(date(2025, 1, 1), date(2025, 3, 31))
    year = Period(date(2025, 1, 1), date(2025, 12, 31))
    assert year.compared(Comparison.PREVIOUS_PERIOD) == Period(date(2024, 1, 1), date(2024, 12, 31))
    # Not whole months: the same number of days right before.
    mid_month = Period(date(2025, 3, 2), date(2025, 3, 31))
    assert mid_month.compared(Comparison.PREVIOUS_PERIOD) == Period(date(2025, 1, 31), date(2025, 3, 1))
