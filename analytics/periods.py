"""Periods in the tenant's calendar (DESIGN §2: timestamps are UTC, boundaries are local).

A period is a range of the tenant's local dates, both ends included. Queries compare
``ts`` with the UTC instants of local midnights, so a day is 23 or 25 hours long across a
DST change, and the result does not depend on the timezone the server runs in.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import TypeVar
from zoneinfo import ZoneInfo

from dateutil.relativedelta import relativedelta
from django.db import connection
from django.utils.translation import gettext as _

from tenants.errors import ApplicationError

ChoiceT = TypeVar("ChoiceT", bound=enum.StrEnum)


class Granularity(enum.StrEnum):
    DAY = "day"
    WEEK = "week"
    MONTH = "month"
    QUARTER = "quarter"
    YEAR = "year"


class Comparison(enum.StrEnum):
    PREVIOUS_PERIOD = "previous_period"
    PREVIOUS_YEAR = "previous_year"


# A query over more than this many days is almost surely a typo (year 2206), not an analysis.
MAX_PERIOD_DAYS = 366 * 20


@dataclass(frozen=True)
class Period:
    """Local dates ``start`` … ``end``, both included."""

    start: date
    end: date

    @property
    def days(self) -> int:
        return (self.end - self.start).days + 1

    def bounds(self, tz: ZoneInfo) -> tuple[datetime, datetime]:
        """``[start, end)`` as UTC instants: local midnight of ``start`` and of the day after ``end``."""
        return local_midnight(self.start, tz), local_midnight(self.end + timedelta(days=1), tz)

    def previous(self) -> Period:
        """The period of the same length that ends the day before this one starts."""
        return Period(self.start - timedelta(days=self.days), self.start - timedelta(days=1))

    def year_before(self) -> Period:
        # 29 February maps to 28 February (relativedelta clips to the month's end).
        return Period(self.start - relativedelta(years=1), self.end - relativedelta(years=1))

    def whole_months(self) -> int:
        """How many calendar months the period is made of exactly (0 if it is not whole months)."""
        following = self.end + timedelta(days=1)
        if self.start.day != 1 or following.day != 1:
            return 0
        return (following.year - self.start.year) * 12 + following.month - self.start.month

    def compared(self, comparison: Comparison) -> Period:
        """The period a comparison shows beside this one. The previous period of whole calendar months is
        as many months before (March: February; a quarter: the quarter before), so monthly rows line up;
        otherwise it is the same number of days right before."""
        if comparison is Comparison.PREVIOUS_YEAR:
            return self.year_before()
        months = self.whole_months()
        if months:
            return Period(self.start - relativedelta(months=months), self.start - timedelta(days=1))
        return self.previous()

    def as_json(self) -> dict[str, str]:
        return {"from": self.start.isoformat(), "to": self.end.isoformat()}


def local_midnight(day: date, tz: ZoneInfo) -> datetime:
    """The UTC instant of ``day`` 00:00 in ``tz`` (naive UTC, as ClickHouse parameters take it)."""
    return datetime.combine(day, time(), tzinfo=tz).astimezone(UTC).replace(tzinfo=None)


def parse_period(start: str | date, end: str | date) -> Period:
    """A period from ISO dates, or an ApplicationError that says what is wrong."""
    first, last = _parse_date(start, "from"), _parse_date(end, "to")
    if last < first:
        raise ApplicationError(
            _("The period ends (%(to)s) before it starts (%(from)s).") % {"to": last, "from": first},
            {"from": str(first), "to": str(last)},
        )
    period = Period(first, last)
    if period.days > MAX_PERIOD_DAYS:
        raise ApplicationError(_("The period is longer than %(days)s days.") % {"days": MAX_PERIOD_DAYS})
    return period


def _parse_date(value: str | date, name: str) -> date:
    if isinstance(value, date):
        return value
    try:
        return date.fromisoformat(str(value))
    except ValueError:
        raise ApplicationError(
            _("“%(value)s” is not a date for “%(name)s”: use YYYY-MM-DD.") % {"value": value, "name": name},
            {name: str(value)},
        ) from None


def parse_choice(value: str | None, choices: type[ChoiceT], name: str) -> ChoiceT | None:
    """An enum member from its value, None for empty, or an error listing the valid values."""
    if value in (None, ""):
        return None
    try:
        return choices(value)
    except ValueError:
        valid = [member.value for member in choices]
        raise ApplicationError(
            _("Unknown %(name)s “%(value)s”. Valid: %(valid)s.")
            % {"name": name, "value": value, "valid": ", ".join(valid)},
            {name: value, "valid": valid},
        ) from None


def bucket_start(day: date, granularity: Granularity) -> date:
    """The first day of the calendar bucket holding ``day`` (weeks start on Monday)."""
    if granularity is Granularity.DAY:
        return day
    if granularity is Granularity.WEEK:
        return day - timedelta(days=day.weekday())
    if granularity is Granularity.MONTH:
        return day.replace(day=1)
    if granularity is Granularity.QUARTER:
        return day.replace(month=(day.month - 1) // 3 * 3 + 1, day=1)
    return day.replace(month=1, day=1)


def buckets(period: Period, granularity: Granularity) -> list[Period]:
    """The calendar buckets covering ``period``, the first and last clipped to it."""
    step = {
        Granularity.DAY: relativedelta(days=1),
        Granularity.WEEK: relativedelta(weeks=1),
        Granularity.MONTH: relativedelta(months=1),
        Granularity.QUARTER: relativedelta(months=3),
        Granularity.YEAR: relativedelta(years=1),
    }[granularity]
    result = []
    start = bucket_start(period.start, granularity)
    while start <= period.end:
        following = start + step
        result.append(Period(max(start, period.start), min(following - timedelta(days=1), period.end)))
        start = following
    return result


def tenant_timezone() -> ZoneInfo:
    """The timezone of the tenant of the current connection."""
    return ZoneInfo(connection.tenant.timezone)


def tenant_today() -> date:
    return datetime.now(tenant_timezone()).date()


def last_twelve_months_start() -> date:
    """The first day of the month eleven months back: with the current month, the last 12 months."""
    return (tenant_today() - relativedelta(months=11)).replace(day=1)
