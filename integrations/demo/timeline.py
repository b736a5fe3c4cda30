"""The calendar of demand: how much a retailer sells on each day of the history, and local time → UTC.

Each day gets a weight (season × weekday × holidays). Customers' purchase processes run in
"demand time", the running sum of those weights, and are mapped back to calendar days: a
constant purchase rate in demand time then peaks in December and before 8 March, dips in
summer and is quietest on Mondays, as the seed 004 retailer saw.
"""

from __future__ import annotations

import calendar
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import numpy as np

# A beauty retailer: New Year gifts, 8 March, a summer dip (seed 000's "seasonality" of sales).
MONTH_WEIGHTS = (0.85, 1.0, 1.1, 0.95, 0.9, 0.85, 0.78, 0.85, 0.95, 1.0, 1.08, 1.4)
# Monday … Sunday: Saturday queues, quiet Mondays (seed 004, "Monday without queues").
WEEKDAY_WEIGHTS = (0.78, 0.92, 0.96, 1.0, 1.12, 1.3, 1.1)
# (month, first day, last day, factor): gift seasons and the New Year holidays.
HOLIDAY_FACTORS = (
    (2, 10, 14, 1.25),  # St Valentine's Day
    (2, 20, 23, 1.15),  # Defender of the Fatherland Day
    (3, 1, 7, 1.6),  # International Women's Day (8 March)
    (12, 15, 30, 1.5),
    (12, 31, 31, 0.8),
    (1, 1, 1, 0.3),
    (1, 2, 7, 0.75),
)
BLACK_FRIDAY_FACTOR = 1.7  # the last Friday of November and the weekend after it
SECONDS_PER_DAY = 86_400
# The shop is older than the history we generate: customers who joined during this year before it
# are the base the history starts with (their purchases before the history are not emitted).
WARMUP_MONTHS = 12


def months_before(day: date, months: int) -> date:
    """The same day ``months`` earlier, clamped to the month's length (31 March − 1 month = 28/29 February)."""
    index = day.year * 12 + day.month - 1 - months
    year, month = divmod(index, 12)
    return date(year, month + 1, min(day.day, calendar.monthrange(year, month + 1)[1]))


def day_weight(day: date) -> float:
    weight = MONTH_WEIGHTS[day.month - 1] * WEEKDAY_WEIGHTS[day.weekday()]
    for month, first, last, factor in HOLIDAY_FACTORS:
        if day.month == month and first <= day.day <= last:
            weight *= factor
    if day.month == 11:
        last_day = date(day.year, 11, 30)
        black_friday = last_day - timedelta(days=(last_day.weekday() - 4) % 7)
        if black_friday <= day <= black_friday + timedelta(days=2):
            weight *= BLACK_FRIDAY_FACTOR
    return weight


@dataclass(frozen=True)
class Timeline:
    """Days ``[origin, end_day)`` in the tenant's timezone, one entry per day; the history is ``[first_day, end_day)``.

    Day indexes count from ``origin``: the warm-up year comes first, the history starts at ``history_start``.
    """

    origin: date
    history_start: int
    end_day: date
    weights: np.ndarray  # demand weight per day, mean 1
    demand: np.ndarray  # running sum of weights at each day boundary: demand[0] = 0, demand[-1] = days
    midnight_utc: np.ndarray  # UTC epoch seconds of each local midnight

    @property
    def days(self) -> int:
        return len(self.weights)

    @property
    def first_day(self) -> date:
        return self.origin + timedelta(days=self.history_start)

    @property
    def end_ms(self) -> int:
        """UTC epoch milliseconds at which the history ends (exclusive)."""
        return int(self.midnight_utc[-1]) * 1000

    def day_at(self, demand_time: np.ndarray) -> np.ndarray:
        """Fractional calendar day (0 = first_day) at which the demand clock shows ``demand_time``."""
        return np.interp(demand_time, self.demand, np.arange(self.days + 1, dtype=np.float64))

    def demand_at(self, day: np.ndarray) -> np.ndarray:
        return np.interp(day, np.arange(self.days + 1, dtype=np.float64), self.demand)

    def utc_ms(self, day: np.ndarray, second_of_day: np.ndarray) -> np.ndarray:
        """UTC epoch milliseconds of a local day index and second of that day."""
        return (self.midnight_utc[day] + second_of_day.astype(np.int64)) * 1000

    def local_day_of(self, utc_ms: np.ndarray) -> np.ndarray:
        """Local day index of UTC epoch milliseconds (may fall outside ``[0, days)``)."""
        return np.searchsorted(self.midnight_utc, utc_ms // 1000, side="right").astype(np.int64) - 1


def timeline_build(*, end_day: date, months: int, timezone: str) -> Timeline:
    origin = months_before(end_day, months + WARMUP_MONTHS)
    days = [origin + timedelta(days=offset) for offset in range((end_day - origin).days)]
    weights = np.array([day_weight(day) for day in days], dtype=np.float64)
    weights /= weights.mean()
    zone = ZoneInfo(timezone)
    # One extra midnight: the end of the last day, so searches past the window stay in range.
    midnights = [datetime.combine(day, datetime.min.time(), tzinfo=zone) for day in [*days, end_day]]
    return Timeline(
        origin=origin,
        history_start=(months_before(end_day, months) - origin).days,
        end_day=end_day,
        weights=weights,
        demand=np.concatenate([[0.0], np.cumsum(weights)]),
        midnight_utc=np.array([int(m.astimezone(UTC).timestamp()) for m in midnights], dtype=np.int64),
    )
