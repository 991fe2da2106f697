"""Tests for nudges/weeks.py: parsing, printing, ordering and arithmetic of ISO weeks."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given
from hypothesis import strategies as st

from nudges.weeks import IsoWeek, closes_at, is_closed, last_closed


def test_2026_has_a_week_53_and_2025_and_2027_do_not() -> None:
    """The facts the year-boundary tests below rely on."""
    assert date.fromisocalendar(2026, 53, 1) == date(2026, 12, 28)
    for year in (2025, 2027):
        with pytest.raises(ValueError):
            date.fromisocalendar(year, 53, 1)


@pytest.mark.parametrize("text", ["2026-W02", "2026-W53", "2027-W01", "2020-W53", "1999-W52"])
def test_parse_and_str_round_trip(text: str) -> None:
    assert str(IsoWeek.parse(text)) == text


def test_parse_reads_year_and_week() -> None:
    assert IsoWeek.parse("2026-W02") == IsoWeek(2026, 2)


def test_parse_ignores_surrounding_whitespace() -> None:
    assert IsoWeek.parse("  2026-W09\n") == IsoWeek(2026, 9)


def test_str_pads_the_week_to_two_digits() -> None:
    assert str(IsoWeek(2026, 3)) == "2026-W03"


@given(st.dates(min_value=date(1000, 1, 1), max_value=date(9998, 12, 31)))
def test_every_week_of_a_date_round_trips_through_its_text(day: date) -> None:
    week = IsoWeek.of(day)

    assert IsoWeek.parse(str(week)) == week


@pytest.mark.parametrize(
    "text",
    ["", "2026", "2026-02", "2026W02", "2026-w02", "2026-W2", "2026-W002", "26-W02", "W02-2026", "2026-W02-1", "yesterday"],
)
def test_parse_rejects_text_that_is_not_an_iso_week(text: str) -> None:
    with pytest.raises(ValueError, match="is not an ISO week like 2026-W02"):
        IsoWeek.parse(text)


@pytest.mark.parametrize("text", ["2025-W53", "2027-W53", "2026-W54", "2026-W00", "2026-W99"])
def test_parse_rejects_a_week_the_year_does_not_have(text: str) -> None:
    year, week = text.split("-W")

    with pytest.raises(ValueError, match=f"{year} has no week {int(week)}"):
        IsoWeek.parse(text)


def test_monday_is_the_first_day_of_the_week() -> None:
    assert IsoWeek(2026, 2).monday() == date(2026, 1, 5)
    assert IsoWeek(2026, 1).monday() == date(2025, 12, 29)


def test_adding_weeks_within_a_year() -> None:
    assert IsoWeek(2026, 2) + 3 == IsoWeek(2026, 5)


def test_adding_weeks_crosses_into_week_53_and_then_the_next_year() -> None:
    assert IsoWeek(2026, 52) + 1 == IsoWeek(2026, 53)
    assert IsoWeek(2026, 52) + 2 == IsoWeek(2027, 1)


def test_adding_weeks_skips_from_52_to_1_in_a_year_without_week_53() -> None:
    assert IsoWeek(2025, 52) + 1 == IsoWeek(2026, 1)


def test_adding_negative_weeks_goes_back_across_the_year() -> None:
    assert IsoWeek(2027, 1) + -1 == IsoWeek(2026, 53)
    assert IsoWeek(2026, 1) + -1 == IsoWeek(2025, 52)


def test_subtracting_weeks_across_a_year_boundary_counts_week_53() -> None:
    assert IsoWeek(2027, 1) - IsoWeek(2026, 52) == 2
    assert IsoWeek(2026, 1) - IsoWeek(2025, 52) == 1
    assert IsoWeek(2026, 52) - IsoWeek(2027, 1) == -2


@given(st.dates(min_value=date(1900, 1, 1), max_value=date(2200, 1, 1)), st.integers(min_value=-600, max_value=600))
def test_adding_then_subtracting_gives_back_the_weeks(day: date, weeks: int) -> None:
    start = IsoWeek.of(day)

    assert (start + weeks) - start == weeks


def test_weeks_order_by_year_then_week() -> None:
    assert IsoWeek(2026, 53) < IsoWeek(2027, 1)
    assert sorted([IsoWeek(2027, 1), IsoWeek(2026, 9), IsoWeek(2026, 10)]) == [IsoWeek(2026, 9), IsoWeek(2026, 10), IsoWeek(2027, 1)]


def test_weeks_are_usable_as_dictionary_keys() -> None:
    counts = {IsoWeek(2026, 2): 1}

    assert counts[IsoWeek.parse("2026-W02")] == 1


def test_of_a_date_in_early_january_can_belong_to_the_previous_year() -> None:
    assert IsoWeek.of(date(2027, 1, 1)) == IsoWeek(2026, 53)
    assert IsoWeek.of(date(2027, 1, 4)) == IsoWeek(2027, 1)


def test_of_a_datetime_uses_its_own_local_date() -> None:
    # Sunday 23:30 in New York is already Monday in UTC: the member's week is the local one.
    sunday_night = datetime(2026, 1, 4, 23, 30, tzinfo=ZoneInfo("America/New_York"))

    assert IsoWeek.of(sunday_night) == IsoWeek(2026, 1)
    assert IsoWeek.of(sunday_night.astimezone(UTC)) == IsoWeek(2026, 2)


def test_of_a_naive_datetime_uses_its_date() -> None:
    assert IsoWeek.of(datetime(2026, 12, 31, 12, 0)) == IsoWeek(2026, 53)


@given(st.dates(min_value=date(1000, 1, 1), max_value=date(9998, 12, 31)))
def test_every_day_falls_within_its_weeks_monday_to_sunday(day: date) -> None:
    monday = IsoWeek.of(day).monday()

    assert monday <= day < monday + timedelta(days=7)


# --- when a week closes ---------------------------------------------------------------------


def test_a_week_closes_its_grace_days_after_the_monday_that_follows_it_in_utc() -> None:
    assert closes_at(IsoWeek(2026, 2), 3) == datetime(2026, 1, 15, 0, 0, tzinfo=UTC)
    assert closes_at(IsoWeek(2026, 53), 1) == datetime(2027, 1, 5, 0, 0, tzinfo=UTC)


def test_a_week_is_open_until_the_instant_it_closes_and_closed_from_then_on() -> None:
    closing = closes_at(IsoWeek(2026, 2), 3)

    assert not is_closed(IsoWeek(2026, 2), 3, closing - timedelta(microseconds=1))
    assert is_closed(IsoWeek(2026, 2), 3, closing)
    # The same instant written in another zone is the same instant.
    assert is_closed(IsoWeek(2026, 2), 3, closing.astimezone(ZoneInfo("America/Los_Angeles")))


def test_a_grace_of_one_day_still_covers_sunday_evening_in_every_time_zone() -> None:
    # Sunday 23:59 on Baker Island (UTC-12), the last local minute of the week anywhere.
    last_minute = datetime(2026, 1, 11, 23, 59, tzinfo=ZoneInfo("Etc/GMT+12"))

    assert IsoWeek.of(last_minute) == IsoWeek(2026, 2)
    assert not is_closed(IsoWeek(2026, 2), 1, last_minute)


@given(
    st.datetimes(min_value=datetime(2000, 1, 1), max_value=datetime(2100, 1, 1), timezones=st.just(UTC)),
    st.integers(min_value=1, max_value=28),
)
def test_last_closed_is_closed_and_the_week_after_it_is_not(now: datetime, grace: int) -> None:
    week = last_closed(grace, now)

    assert is_closed(week, grace, now)
    assert not is_closed(week + 1, grace, now)
