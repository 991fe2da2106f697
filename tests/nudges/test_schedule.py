"""Tests for nudges/schedule.py: local-time slots, DST, quiet hours, cap, snooze, skip, boundaries, digest."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from nudges.program import WEEKDAYS, Cohort, Schedule, Slot, parse_program
from nudges.schedule import (
    Due,
    MemberState,
    Rules,
    digest_due,
    due_for_member,
    is_allowed,
    local_instant,
    next_allowed,
    snooze_until,
)
from nudges.weeks import IsoWeek

START = date(2026, 3, 2)  # a Monday, ISO week 2026-W10; 12 weeks run to 2026-W21
FIRST, LAST = IsoWeek(2026, 10), IsoWeek(2026, 21)
LISBON = "Europe/Lisbon"


def make_cohort(starts: date = START, weeks: int = 12, sponsor: bool = True, **slots: tuple[str, str]) -> Cohort:
    """A cohort with the default schedule (Mon 09:00, Wed 14:00, Thu 10:00, Fri 16:00) unless overridden."""
    cohort: dict[str, Any] = {
        "key": "pilot",
        "name": "Pilot",
        "starts": starts.isoformat(),
        "weeks": weeks,
        "checklist": ["a", "b", "c"],
        "schedule": {kind: {"day": day, "time": clock} for kind, (day, clock) in slots.items()},
    }
    if sponsor:
        cohort["sponsor_channel"] = {"platform": "slack", "id": "C1"}
    data = {
        "program": "Test",
        "behaviors": [{"key": k, "question": f"{k}?", "nudges": ["Do it."]} for k in ("a", "b", "c")],
        "cohorts": [cohort],
    }
    return parse_program(data, "test.yaml").cohorts[0]


def local(zone: str, y: int, m: int, d: int, hh: int = 0, mm: int = 0) -> datetime:
    """An aware instant given as the wall clock in ``zone``."""
    return datetime(y, m, d, hh, mm, tzinfo=ZoneInfo(zone))


def utc(y: int, m: int, d: int, hh: int = 0, mm: int = 0) -> datetime:
    return datetime(y, m, d, hh, mm, tzinfo=UTC)


def kinds(due: list[Due]) -> list[str]:
    return [d.kind for d in due]


COHORT = make_cohort()


# --- time zones on both sides of UTC ------------------------------------------------------


@pytest.mark.parametrize(
    ("zone", "slot_utc"),
    [
        ("Pacific/Auckland", utc(2026, 3, 1, 20)),  # NZDT +13: still Sunday in UTC, before the cohort's UTC week
        ("Asia/Kolkata", utc(2026, 3, 2, 3, 30)),  # +05:30
        ("America/Los_Angeles", utc(2026, 3, 2, 17)),  # PST -8, the week before DST starts
    ],
)
def test_first_checklist_is_due_at_nine_on_the_members_own_monday(zone: str, slot_utc: datetime) -> None:
    assert due_for_member(COHORT, zone, MemberState(), slot_utc - timedelta(minutes=1)) == []

    due = due_for_member(COHORT, zone, MemberState(), slot_utc)

    assert due == [Due("checklist", FIRST, "2026-W10", slot_utc)]
    assert due[0].due_at.tzinfo == UTC


def test_auckland_member_is_in_the_next_iso_week_while_utc_is_still_sunday() -> None:
    due = due_for_member(COHORT, "Pacific/Auckland", MemberState(), utc(2026, 3, 8, 21))

    assert [(d.kind, d.week) for d in due] == [("checklist", IsoWeek(2026, 11))]


def test_los_angeles_member_still_in_sunday_gets_nothing_while_utc_is_in_the_first_week() -> None:
    any_hour = Rules(day_start=time(0), day_end=time(23, 59), weekends=True)
    sunday_evening = utc(2026, 3, 2, 1)  # 17:00 PST on Sunday 1 March

    assert due_for_member(COHORT, "America/Los_Angeles", MemberState(), sunday_evening, any_hour) == []
    assert kinds(due_for_member(COHORT, "Europe/Berlin", MemberState(), utc(2026, 3, 2, 8), any_hour)) == ["checklist"]


# --- DST ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("zone", "before", "after"),
    [
        ("Europe/Berlin", local("Europe/Berlin", 2026, 3, 23, 9), utc(2026, 3, 30, 7)),  # CET -> CEST on 29 March
        ("America/New_York", local("America/New_York", 2026, 3, 2, 9), utc(2026, 3, 9, 13)),  # EST -> EDT on 8 March
    ],
)
def test_checklist_stays_at_nine_local_on_the_monday_after_spring_forward(zone: str, before: datetime, after: datetime) -> None:
    assert due_for_member(COHORT, zone, MemberState(), before)[0].due_at == before.astimezone(UTC)

    due = due_for_member(COHORT, zone, MemberState(), after)

    assert due[0].due_at == after
    assert due[0].due_at.astimezone(ZoneInfo(zone)).time() == time(9)
    assert before.astimezone(UTC).time() != after.time()  # the UTC hour moved, the local one did not


def test_checklist_stays_at_nine_local_on_the_monday_after_fall_back_in_berlin() -> None:
    cohort = make_cohort(starts=date(2026, 10, 5))
    summer = due_for_member(cohort, "Europe/Berlin", MemberState(), utc(2026, 10, 19, 7))
    winter = due_for_member(cohort, "Europe/Berlin", MemberState(), utc(2026, 10, 26, 8))

    assert summer[0].due_at == utc(2026, 10, 19, 7)
    assert winter[0].due_at == utc(2026, 10, 26, 8)
    assert due_for_member(cohort, "Europe/Berlin", MemberState(), utc(2026, 10, 26, 7, 59)) == []


@pytest.mark.parametrize(
    ("zone", "day", "expected"),
    [
        ("Europe/Berlin", date(2026, 3, 29), utc(2026, 3, 29, 1)),  # 02:30 does not exist: 03:00 CEST
        ("America/New_York", date(2026, 3, 8), utc(2026, 3, 8, 7)),  # 02:30 does not exist: 03:00 EDT
    ],
)
def test_time_skipped_by_spring_forward_resolves_to_the_moment_the_clocks_jump(zone: str, day: date, expected: datetime) -> None:
    instant = local_instant(day, time(2, 30), zone)

    assert instant == expected
    assert instant.astimezone(ZoneInfo(zone)).time() == time(3)


def test_time_repeated_by_fall_back_resolves_to_its_first_occurrence() -> None:
    instant = local_instant(date(2026, 10, 25), time(2, 30), "Europe/Berlin")

    assert instant == utc(2026, 10, 25, 0, 30)  # 02:30 CEST, not 02:30 CET an hour later


def test_slot_inside_the_spring_forward_gap_is_due_when_the_clocks_jump() -> None:
    cohort = make_cohort(checklist=("sunday", "02:30"), nudge=("sunday", "23:00"))
    night_owl = Rules(day_start=time(0), day_end=time(23, 59), weekends=True)

    assert due_for_member(cohort, "Europe/Berlin", MemberState(), utc(2026, 3, 29, 0, 59), night_owl) == []
    due = due_for_member(cohort, "Europe/Berlin", MemberState(), utc(2026, 3, 29, 1), night_owl)

    assert due == [Due("checklist", IsoWeek(2026, 13), "2026-W13", utc(2026, 3, 29, 1))]


# --- quiet hours and weekends -------------------------------------------------------------


def test_slot_before_eight_moves_to_eight_the_same_morning() -> None:
    cohort = make_cohort(checklist=("tuesday", "06:30"))

    assert due_for_member(cohort, LISBON, MemberState(), local(LISBON, 2026, 3, 10, 7, 59)) == []
    assert due_for_member(cohort, LISBON, MemberState(), local(LISBON, 2026, 3, 10, 8))[0].due_at == local(LISBON, 2026, 3, 10, 8)


def test_slot_at_seven_pm_is_quiet_and_moves_to_eight_next_morning() -> None:
    cohort = make_cohort(checklist=("tuesday", "19:00"))

    assert due_for_member(cohort, LISBON, MemberState(), local(LISBON, 2026, 3, 10, 21)) == []
    assert due_for_member(cohort, LISBON, MemberState(), local(LISBON, 2026, 3, 11, 8))[0].due_at == local(LISBON, 2026, 3, 11, 8)


def test_slot_a_minute_before_seven_pm_is_kept() -> None:
    cohort = make_cohort(checklist=("tuesday", "18:59"))

    assert due_for_member(cohort, LISBON, MemberState(), local(LISBON, 2026, 3, 10, 18, 59))[0].due_at == local(LISBON, 2026, 3, 10, 18, 59)


def test_late_tick_in_quiet_hours_waits_for_the_morning_and_keeps_the_original_due_time() -> None:
    state = MemberState()

    assert due_for_member(COHORT, LISBON, state, local(LISBON, 2026, 3, 2, 22)) == []
    assert due_for_member(COHORT, LISBON, state, local(LISBON, 2026, 3, 3, 7, 59)) == []
    due = due_for_member(COHORT, LISBON, state, local(LISBON, 2026, 3, 3, 8))

    assert due == [Due("checklist", FIRST, "2026-W10", local(LISBON, 2026, 3, 2, 9))]


def test_saturday_slot_without_weekends_moves_back_to_friday_morning_rather_than_out_of_its_week() -> None:
    cohort = make_cohort(nudge=("saturday", "10:00"))
    state = MemberState(sent={"checklist": local(LISBON, 2026, 3, 2, 9)}, answered_this_week=True)

    due = due_for_member(cohort, LISBON, state, local(LISBON, 2026, 3, 6, 8))

    assert due == [Due("nudge", FIRST, "2026-W10", local(LISBON, 2026, 3, 6, 8))]


def test_saturday_slot_is_kept_when_weekends_are_allowed() -> None:
    cohort = make_cohort(nudge=("saturday", "10:00"))
    state = MemberState(sent={"checklist": local(LISBON, 2026, 3, 2, 9)}, answered_this_week=True)
    weekends = Rules(weekends=True)

    assert due_for_member(cohort, LISBON, state, local(LISBON, 2026, 3, 6, 12), weekends) == []
    assert kinds(due_for_member(cohort, LISBON, state, local(LISBON, 2026, 3, 7, 10), weekends)) == ["nudge"]


def test_nothing_is_sent_on_a_weekend_even_if_something_is_still_due() -> None:
    saturday = local(LISBON, 2026, 3, 7, 11)

    assert due_for_member(COHORT, LISBON, MemberState(), saturday) == []
    assert kinds(due_for_member(COHORT, LISBON, MemberState(), saturday, Rules(weekends=True))) == ["checklist"]


# --- reminder -----------------------------------------------------------------------------


def sent_monday(**extra: Any) -> MemberState:
    return MemberState(sent={"checklist": local(LISBON, 2026, 3, 2, 9)}, **extra)


def test_unanswered_checklist_gets_one_reminder_after_the_reminder_slot() -> None:
    assert due_for_member(COHORT, LISBON, sent_monday(), local(LISBON, 2026, 3, 4, 13, 59)) == []

    due = due_for_member(COHORT, LISBON, sent_monday(), local(LISBON, 2026, 3, 4, 14))

    assert due == [Due("reminder", FIRST, "2026-W10", local(LISBON, 2026, 3, 4, 14))]


def test_answered_checklist_gets_no_reminder() -> None:
    assert due_for_member(COHORT, LISBON, sent_monday(answered_this_week=True), local(LISBON, 2026, 3, 4, 15)) == []


def test_reminder_is_sent_only_once() -> None:
    state = MemberState(sent={"checklist": local(LISBON, 2026, 3, 2, 9), "reminder": local(LISBON, 2026, 3, 4, 14)})

    assert due_for_member(COHORT, LISBON, state, local(LISBON, 2026, 3, 4, 18)) == []


def test_reminder_needs_the_checklist_to_have_been_sent() -> None:
    due = due_for_member(COHORT, LISBON, MemberState(), local(LISBON, 2026, 3, 4, 15))

    assert kinds(due) == ["checklist"]


def test_reminder_waits_a_day_after_a_checklist_sent_late() -> None:
    state = MemberState(joined_at=local(LISBON, 2026, 3, 5, 9, 30), sent={"checklist": local(LISBON, 2026, 3, 5, 10)})

    assert "reminder" not in kinds(due_for_member(COHORT, LISBON, state, local(LISBON, 2026, 3, 5, 18)))
    friday = local(LISBON, 2026, 3, 6, 10)
    assert due_for_member(COHORT, LISBON, state, friday)[0] == Due("reminder", FIRST, "2026-W10", friday)


# --- coaching nudge, gaps and the fatigue cap ---------------------------------------------


def test_nudge_is_due_after_the_nudge_slot() -> None:
    state = sent_monday(answered_this_week=True)

    assert due_for_member(COHORT, LISBON, state, local(LISBON, 2026, 3, 5, 9, 59)) == []
    due = due_for_member(COHORT, LISBON, state, local(LISBON, 2026, 3, 5, 10))
    assert due == [Due("nudge", FIRST, "2026-W10", local(LISBON, 2026, 3, 5, 10))]


def test_fatigue_cap_counts_other_proactive_messages_of_the_week() -> None:
    state = MemberState(
        sent={"checklist": local(LISBON, 2026, 3, 2, 9), "reminder": local(LISBON, 2026, 3, 4, 14)},
        other_touches=1,
    )

    assert due_for_member(COHORT, LISBON, state, local(LISBON, 2026, 3, 5, 12)) == []
    assert kinds(due_for_member(COHORT, LISBON, state, local(LISBON, 2026, 3, 5, 12), Rules(fatigue_cap=4))) == ["nudge"]


def test_early_nudge_does_not_take_the_place_the_weeks_checklist_needs() -> None:
    cohort = make_cohort(nudge=("monday", "08:00"), checklist=("monday", "11:00"))
    one_touch = Rules(fatigue_cap=1)

    assert due_for_member(cohort, LISBON, MemberState(), local(LISBON, 2026, 3, 2, 9), one_touch) == []
    assert kinds(due_for_member(cohort, LISBON, MemberState(), local(LISBON, 2026, 3, 2, 11), one_touch)) == ["checklist"]
    after = MemberState(sent={"checklist": local(LISBON, 2026, 3, 2, 11)})
    assert due_for_member(cohort, LISBON, after, local(LISBON, 2026, 3, 2, 16), one_touch) == []


def test_early_nudge_goes_first_when_the_cap_leaves_room_for_the_checklist() -> None:
    cohort = make_cohort(nudge=("monday", "08:00"), checklist=("monday", "11:00"))

    assert kinds(due_for_member(cohort, LISBON, MemberState(), local(LISBON, 2026, 3, 2, 9))) == ["nudge"]


def test_late_tick_sends_one_touch_at_a_time_checklist_first() -> None:
    thursday = local(LISBON, 2026, 3, 5, 11)

    assert kinds(due_for_member(COHORT, LISBON, MemberState(), thursday)) == ["checklist"]


def test_touches_are_spaced_by_the_minimum_gap() -> None:
    state = MemberState(sent={"checklist": local(LISBON, 2026, 3, 5, 11)}, answered_this_week=True)

    assert due_for_member(COHORT, LISBON, state, local(LISBON, 2026, 3, 5, 12, 59)) == []
    assert due_for_member(COHORT, LISBON, state, local(LISBON, 2026, 3, 5, 13))[0].due_at == local(LISBON, 2026, 3, 5, 13)


def test_without_a_gap_the_cap_keeps_priority_order() -> None:
    thursday = local(LISBON, 2026, 3, 5, 11)

    assert kinds(due_for_member(COHORT, LISBON, MemberState(), thursday, Rules(min_gap=timedelta(0)))) == ["checklist", "nudge"]
    assert kinds(due_for_member(COHORT, LISBON, MemberState(), thursday, Rules(min_gap=timedelta(0), fatigue_cap=1))) == ["checklist"]
    assert due_for_member(COHORT, LISBON, MemberState(), thursday, Rules(fatigue_cap=0)) == []


# --- late ticks and past weeks ------------------------------------------------------------


def test_late_tick_still_sends_this_weeks_checklist_with_its_original_due_time() -> None:
    due = due_for_member(COHORT, LISBON, MemberState(), local(LISBON, 2026, 3, 4, 15))

    assert due == [Due("checklist", FIRST, "2026-W10", local(LISBON, 2026, 3, 2, 9))]


def test_missed_week_is_not_back_filled() -> None:
    """The worker was down from Friday to the next Monday 08:30: last week's nudge is gone."""
    assert due_for_member(COHORT, LISBON, MemberState(), local(LISBON, 2026, 3, 9, 8, 30)) == []
    due = due_for_member(COHORT, LISBON, MemberState(), local(LISBON, 2026, 3, 9, 9))
    assert [(d.kind, d.week) for d in due] == [("checklist", IsoWeek(2026, 11))]


# --- snooze -------------------------------------------------------------------------------


def test_snooze_two_hours_is_two_hours_later() -> None:
    assert snooze_until("2h", local(LISBON, 2026, 3, 3, 10, 15), LISBON) == local(LISBON, 2026, 3, 3, 12, 15)


def test_snooze_two_hours_late_in_the_day_ends_next_morning() -> None:
    assert snooze_until("2h", local(LISBON, 2026, 3, 3, 17, 30), LISBON) == local(LISBON, 2026, 3, 4, 8)


def test_snooze_two_hours_late_on_friday_ends_on_monday_morning() -> None:
    assert snooze_until("2h", local(LISBON, 2026, 3, 6, 18), LISBON) == local(LISBON, 2026, 3, 9, 8)


@pytest.mark.parametrize(
    ("now", "rules", "expected"),
    [
        (local("Asia/Kolkata", 2026, 3, 3, 9), Rules(), local("Asia/Kolkata", 2026, 3, 4, 8)),
        (local("Asia/Kolkata", 2026, 3, 6, 9), Rules(), local("Asia/Kolkata", 2026, 3, 9, 8)),  # Friday -> Monday
        (local("Asia/Kolkata", 2026, 3, 6, 9), Rules(weekends=True), local("Asia/Kolkata", 2026, 3, 7, 8)),
    ],
)
def test_snooze_until_tomorrow_is_the_next_allowed_morning(now: datetime, rules: Rules, expected: datetime) -> None:
    assert snooze_until("tomorrow", now, "Asia/Kolkata", rules) == expected


def test_snooze_until_tomorrow_across_a_dst_weekend_is_eight_local() -> None:
    ends = snooze_until("tomorrow", local("Europe/Berlin", 2026, 3, 27, 10), "Europe/Berlin")

    assert ends == utc(2026, 3, 30, 6)  # Monday 08:00 CEST


def test_unknown_snooze_is_refused() -> None:
    with pytest.raises(ValueError, match="not a snooze"):
        snooze_until("forever", local(LISBON, 2026, 3, 3, 10), LISBON)  # type: ignore[arg-type]


def test_snoozed_checklist_comes_back_as_the_reminder_when_the_snooze_ends() -> None:
    state = sent_monday(snoozed_until=local(LISBON, 2026, 3, 2, 11, 5))

    assert due_for_member(COHORT, LISBON, state, local(LISBON, 2026, 3, 2, 11)) == []
    due = due_for_member(COHORT, LISBON, state, local(LISBON, 2026, 3, 2, 11, 5))
    assert due == [Due("reminder", FIRST, "2026-W10", local(LISBON, 2026, 3, 2, 11, 5))]


def test_snooze_holds_back_the_nudge_until_it_ends() -> None:
    state = sent_monday(answered_this_week=True, snoozed_until=local(LISBON, 2026, 3, 6, 8))

    assert due_for_member(COHORT, LISBON, state, local(LISBON, 2026, 3, 5, 15)) == []
    assert due_for_member(COHORT, LISBON, state, local(LISBON, 2026, 3, 6, 8))[0].kind == "nudge"


def test_snooze_into_next_week_drops_this_weeks_reminder() -> None:
    state = sent_monday(snoozed_until=local(LISBON, 2026, 3, 9, 8))

    assert due_for_member(COHORT, LISBON, state, local(LISBON, 2026, 3, 6, 15)) == []


def test_snooze_from_before_the_checklist_does_not_replace_the_reminder_slot() -> None:
    state = MemberState(sent={"checklist": local(LISBON, 2026, 3, 2, 11)}, snoozed_until=local(LISBON, 2026, 3, 2, 10))

    assert due_for_member(COHORT, LISBON, state, local(LISBON, 2026, 3, 3, 12)) == []
    assert kinds(due_for_member(COHORT, LISBON, state, local(LISBON, 2026, 3, 4, 14))) == ["reminder"]


# --- skip, pause, joining and cohort boundaries -------------------------------------------


def test_skipped_week_gets_nothing_and_the_next_week_is_normal() -> None:
    state = MemberState(skipped_weeks=frozenset({FIRST}))

    assert due_for_member(COHORT, LISBON, state, local(LISBON, 2026, 3, 5, 12)) == []
    assert kinds(due_for_member(COHORT, LISBON, state, local(LISBON, 2026, 3, 9, 9))) == ["checklist"]


def test_paused_member_gets_nothing() -> None:
    assert due_for_member(COHORT, LISBON, MemberState(paused=True), local(LISBON, 2026, 3, 2, 9)) == []


@pytest.mark.parametrize(
    ("monday", "expected"),
    [
        (date(2026, 2, 23), []),  # the week before the start
        (date(2026, 3, 2), ["checklist"]),  # week 1
        (date(2026, 5, 18), ["checklist"]),  # week 12, the last
        (date(2026, 5, 25), []),  # the week after the end
    ],
)
def test_checklists_run_from_the_cohorts_first_to_its_last_week(monday: date, expected: list[str]) -> None:
    now = local(LISBON, monday.year, monday.month, monday.day, 9)

    assert kinds(due_for_member(COHORT, LISBON, MemberState(), now)) == expected


def test_member_joining_mid_week_gets_that_weeks_checklist_when_they_join() -> None:
    state = MemberState(joined_at=local(LISBON, 2026, 3, 18, 10, 30))

    assert due_for_member(COHORT, LISBON, state, local(LISBON, 2026, 3, 18, 10)) == []
    assert due_for_member(COHORT, LISBON, state, local(LISBON, 2026, 3, 18, 10, 30)) == [
        Due("checklist", IsoWeek(2026, 12), "2026-W12", local(LISBON, 2026, 3, 18, 10, 30))
    ]


def test_member_joining_in_the_evening_gets_the_checklist_next_morning() -> None:
    state = MemberState(joined_at=local(LISBON, 2026, 3, 18, 21))

    assert due_for_member(COHORT, LISBON, state, local(LISBON, 2026, 3, 19, 8))[0].due_at == local(LISBON, 2026, 3, 19, 8)


def test_member_joining_on_saturday_starts_with_the_next_weeks_checklist() -> None:
    state = MemberState(joined_at=local(LISBON, 2026, 3, 21, 10))

    assert due_for_member(COHORT, LISBON, state, local(LISBON, 2026, 3, 21, 12), Rules(weekends=False)) == []
    assert due_for_member(COHORT, LISBON, state, local(LISBON, 2026, 3, 23, 9))[0].week == IsoWeek(2026, 13)


def test_member_who_joins_later_gets_nothing_before() -> None:
    state = MemberState(joined_at=local(LISBON, 2026, 3, 30, 9))

    assert due_for_member(COHORT, LISBON, state, local(LISBON, 2026, 3, 23, 12)) == []


def test_naive_now_is_refused() -> None:
    with pytest.raises(ValueError, match="no time zone"):
        due_for_member(COHORT, LISBON, MemberState(), datetime(2026, 3, 2, 9))


def test_rules_refuse_a_day_that_ends_before_it_starts() -> None:
    with pytest.raises(ValueError, match="before"):
        Rules(day_start=time(19), day_end=time(8))


# --- digest -------------------------------------------------------------------------------

NEW_YORK = "America/New_York"


def test_digest_is_due_on_friday_at_four_in_the_channels_time_zone() -> None:
    friday = local(NEW_YORK, 2026, 3, 13, 16)

    assert digest_due(COHORT, NEW_YORK, friday - timedelta(minutes=1)) is None
    assert digest_due(COHORT, NEW_YORK, friday) == Due("digest", IsoWeek(2026, 11), "2026-W11", utc(2026, 3, 13, 20))


def test_late_digest_tick_posts_later_the_same_week_but_not_the_next() -> None:
    due = digest_due(COHORT, NEW_YORK, local(NEW_YORK, 2026, 3, 15, 12))

    assert due is not None and due.week == IsoWeek(2026, 11)
    assert digest_due(COHORT, NEW_YORK, local(NEW_YORK, 2026, 3, 16, 12)) is None


def test_closing_digest_reports_the_last_week_in_the_week_after_it() -> None:
    due = digest_due(COHORT, "Asia/Kolkata", local("Asia/Kolkata", 2026, 5, 29, 16))

    assert due == Due("digest", LAST, "2026-W21:closing", local("Asia/Kolkata", 2026, 5, 29, 16))
    last_friday = local("Asia/Kolkata", 2026, 5, 22, 16)
    assert digest_due(COHORT, "Asia/Kolkata", last_friday) == Due("digest", LAST, "2026-W21", last_friday)


def test_closing_digest_waits_for_the_first_slot_after_the_last_week_closes() -> None:
    # A Tuesday digest and three days' grace: the last week (2026-W21) closes on Thursday
    # 2026-05-28, after the Tuesday of the week after it, so its closing digest goes out
    # on the Tuesday after that.
    cohort = make_cohort(digest=("tuesday", "16:00"))
    assert cohort.closes_at(LAST) == utc(2026, 5, 28, 0)

    assert digest_due(cohort, NEW_YORK, local(NEW_YORK, 2026, 5, 26, 17)) is None
    closing = local(NEW_YORK, 2026, 6, 2, 16)
    assert digest_due(cohort, NEW_YORK, closing) == Due("digest", LAST, "2026-W21:closing", closing)
    assert digest_due(cohort, NEW_YORK, local(NEW_YORK, 2026, 6, 9, 17)) is None


@pytest.mark.parametrize("friday", [date(2026, 2, 27), date(2026, 6, 5)])
def test_no_digest_before_the_start_or_after_the_closing_one(friday: date) -> None:
    assert digest_due(COHORT, NEW_YORK, local(NEW_YORK, friday.year, friday.month, friday.day, 17)) is None


def test_cohort_without_a_sponsor_channel_gets_no_digest() -> None:
    assert digest_due(make_cohort(sponsor=False), NEW_YORK, local(NEW_YORK, 2026, 3, 13, 17)) is None


def test_digest_week_follows_the_channels_zone_not_utc() -> None:
    cohort = make_cohort(digest=("monday", "08:00"))
    auckland_monday = local("Pacific/Auckland", 2026, 3, 9, 8)  # Sunday 19:00 UTC

    due = digest_due(cohort, "Pacific/Auckland", auckland_monday)

    assert due is not None and due.week == IsoWeek(2026, 11) and due.due_at == utc(2026, 3, 8, 19)


# --- properties ---------------------------------------------------------------------------

ZONES = st.sampled_from(
    [
        "Pacific/Auckland",
        "Pacific/Kiritimati",
        "Asia/Kolkata",
        "Europe/Berlin",
        "Europe/Lisbon",
        "UTC",
        "America/New_York",
        "America/Los_Angeles",
        "America/St_Johns",
        "Pacific/Pago_Pago",
    ]
)
INSTANTS = st.datetimes(min_value=datetime(2026, 2, 20), max_value=datetime(2026, 6, 10), timezones=st.just(UTC))
SLOTS = st.builds(
    lambda day, h, m: Slot(day=day, time=f"{h:02d}:{m:02d}"), st.sampled_from(WEEKDAYS), st.integers(0, 23), st.integers(0, 59)
)


@settings(max_examples=150)
@given(now=INSTANTS, zone=ZONES, slot=SLOTS, weekends=st.booleans())
def test_nothing_is_ever_due_in_quiet_hours_nor_outside_its_week(now: datetime, zone: str, slot: Slot, weekends: bool) -> None:
    cohort = COHORT.model_copy(update={"schedule": Schedule(checklist=slot)})
    rules = Rules(weekends=weekends)

    for due in due_for_member(cohort, zone, MemberState(), now, rules):
        assert is_allowed(now, zone, rules)
        assert due.due_at <= now
        assert is_allowed(due.due_at, zone, rules)
        assert IsoWeek.of(due.due_at.astimezone(ZoneInfo(zone))) == due.week == IsoWeek.of(now.astimezone(ZoneInfo(zone)))


@settings(max_examples=150)
@given(now=INSTANTS, zone=ZONES, slot=SLOTS)
def test_every_running_week_has_its_checklist_at_an_allowed_time(now: datetime, zone: str, slot: Slot) -> None:
    """Moving a slot out of quiet hours never loses the week's checklist."""
    cohort = COHORT.model_copy(update={"schedule": Schedule(checklist=slot)})
    week = IsoWeek.of(now.astimezone(ZoneInfo(zone)))
    sunday_night = local_instant(week.monday() + timedelta(days=6), time(23, 59), zone)

    friday_evening = local_instant(week.monday() + timedelta(days=4), time(18, 59), zone)
    due = due_for_member(cohort, zone, MemberState(), friday_evening)

    assert kinds(due) == (["checklist"] if cohort.is_running(week) else [])
    assert all(d.due_at < sunday_night for d in due)


@given(now=INSTANTS, zone=ZONES, choice=st.sampled_from(["2h", "tomorrow"]), weekends=st.booleans())
def test_a_snooze_always_ends_later_at_an_allowed_time(now: datetime, zone: str, choice: str, weekends: bool) -> None:
    rules = Rules(weekends=weekends)

    ends = snooze_until(choice, now, zone, rules)  # type: ignore[arg-type]

    assert ends > now
    assert is_allowed(ends, zone, rules)


@given(instant=INSTANTS, zone=ZONES)
def test_next_allowed_is_the_instant_itself_or_a_later_allowed_one(instant: datetime, zone: str) -> None:
    moved = next_allowed(instant, zone)

    assert moved >= instant
    assert is_allowed(moved, zone)
    assert (moved == instant) == is_allowed(instant, zone)
