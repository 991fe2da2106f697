"""ISO weeks, the unit in which check-ins, signals and digests are counted."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta

_ISO_WEEK = re.compile(r"^([0-9]{4})-W([0-9]{2})$")


@dataclass(frozen=True, order=True)
class IsoWeek:
    """An ISO-8601 week such as 2026-W02; ordered and usable as a dictionary key."""

    year: int
    week: int

    @classmethod
    def of(cls, day: date | datetime) -> IsoWeek:
        """The ISO week a calendar day (or the local date of an aware datetime) falls in."""
        if isinstance(day, datetime):
            day = day.date()
        year, week, _ = day.isocalendar()
        return cls(year, week)

    @classmethod
    def parse(cls, text: str) -> IsoWeek:
        """Parse 'YYYY-Www'; raises ValueError with a message fit for a terminal."""
        match = _ISO_WEEK.match(text.strip())
        if not match:
            raise ValueError(f"{text!r} is not an ISO week like 2026-W02")
        year, week = int(match[1]), int(match[2])
        try:
            date.fromisocalendar(year, week, 1)
        except ValueError:
            raise ValueError(f"{text!r}: {year} has no week {week}") from None
        return cls(year, week)

    def monday(self) -> date:
        return date.fromisocalendar(self.year, self.week, 1)

    def __add__(self, weeks: int) -> IsoWeek:
        return IsoWeek.of(self.monday() + timedelta(weeks=weeks))

    def __sub__(self, other: IsoWeek) -> int:
        """Whole weeks between two ISO weeks."""
        return (self.monday() - other.monday()).days // 7

    def __str__(self) -> str:
        return f"{self.year}-W{self.week:02d}"


def closes_at(week: IsoWeek, grace_days: int) -> datetime:
    """When ``week`` closes: ``grace_days`` after it ends, the Monday 00:00 UTC that follows it.

    One instant in UTC for everyone rather than each member's own midnight, so that a
    cohort's week closes once and its figures are computed once; members' local weeks end
    within 14 hours of it, which a grace of at least one day covers.
    """
    return datetime.combine((week + 1).monday(), time(0), UTC) + timedelta(days=grace_days)


def is_closed(week: IsoWeek, grace_days: int, now: datetime) -> bool:
    """True from the instant ``week`` closes (``now`` must be timezone-aware)."""
    return now >= closes_at(week, grace_days)


def last_closed(grace_days: int, now: datetime) -> IsoWeek:
    """The latest week closed at ``now``: every earlier week is closed too, no later one is."""
    return IsoWeek.of((now.astimezone(UTC) - timedelta(days=grace_days)).date()) + -1
