"""When a member's checklist, reminder and coaching nudge, and a cohort's digest, fall due in local time.

Everything here is a pure function of the program, a time zone, what was already sent and
an aware ``now``: the scheduler calls it on every tick, and the outbox's unique key
(member, kind, period) makes calling it again harmless. The rules, in the order they apply:

- Weeks are the ISO weeks of the member's *local* date, so a Monday 09:00 checklist is sent
  on the member's Monday even where that is still Sunday in UTC.
- Only running weeks of the cohort count, and only from the week the member joined.
- A member who paused, or skipped the week, gets nothing that week.
- Nothing is sent during quiet hours (before ``day_start`` or from ``day_end`` local time)
  nor at weekends unless allowed. A slot that falls there is *moved* to the next allowed
  instant in the same week; if the week has none left after it, to the morning of the
  last allowed day before it. It is never dropped for that reason alone.
- A snooze holds every touch back until it ends; a checklist snoozed after it was sent
  comes back, as the week's one reminder, when the snooze ends.
- Two touches are at least ``min_gap`` apart, and at most ``fatigue_cap`` touches are sent
  in a week; checklist beats reminder beats nudge, and a nudge never takes the place
  the week's checklist still needs.
- A late tick (the worker was down) still sends what became due earlier in the *current*
  week; a week that has ended is never back-filled.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from typing import Literal
from zoneinfo import ZoneInfo

from nudges.program import WEEKDAYS, Cohort, Slot
from nudges.weeks import IsoWeek

Kind = Literal["checklist", "reminder", "nudge", "digest"]
MemberKind = Literal["checklist", "reminder", "nudge"]
SnoozeChoice = Literal["2h", "tomorrow"]

# When the fatigue cap bites, the touches are kept in this order.
PRIORITY: tuple[MemberKind, ...] = ("checklist", "reminder", "nudge")
SHORT_SNOOZE = timedelta(hours=2)
_SATURDAY = 5


@dataclass(frozen=True)
class Rules:
    """The limits that protect a member's attention; the defaults are the issue's.

    ``day_start``/``day_end`` bound the hours a member may be messaged (end exclusive),
    ``min_gap`` keeps two touches apart (so a late tick does not send three at once), and
    ``reminder_after`` keeps a reminder from chasing a checklist that has only just arrived
    (a member who joined on Thursday).
    """

    day_start: time = time(8)
    day_end: time = time(19)
    weekends: bool = False
    fatigue_cap: int = 3
    min_gap: timedelta = timedelta(hours=2)
    reminder_after: timedelta = timedelta(hours=24)

    def __post_init__(self) -> None:
        if self.day_start.tzinfo is not None or self.day_end.tzinfo is not None:
            raise ValueError("day_start and day_end are local wall-clock times and carry no time zone")
        if not self.day_start < self.day_end:
            raise ValueError(f"day_start {self.day_start} must be before day_end {self.day_end}")
        if self.fatigue_cap < 0 or self.min_gap < timedelta(0) or self.reminder_after < timedelta(0):
            raise ValueError("fatigue_cap, min_gap and reminder_after cannot be negative")


DEFAULT_RULES = Rules()


@dataclass(frozen=True)
class MemberState:
    """What the schedule needs to know about one member, for the week in progress.

    ``sent`` maps each kind already queued or sent for this week to when it was; the
    fatigue cap counts those plus ``other_touches`` (proactive messages of other kinds
    this week, such as a consent prompt). Direct replies to the member never count.
    ``joined_at`` is None for a member who was there from the start.
    """

    joined_at: datetime | None = None
    sent: Mapping[MemberKind, datetime] = field(default_factory=dict)
    answered_this_week: bool = False
    other_touches: int = 0
    skipped_weeks: frozenset[IsoWeek] = frozenset()
    snoozed_until: datetime | None = None
    paused: bool = False


@dataclass(frozen=True)
class Due:
    """One thing to queue: its kind, the week it belongs to, the outbox period key, and the
    UTC instant it became due (earlier than ``now`` when the tick is late)."""

    kind: Kind
    week: IsoWeek
    period: str
    due_at: datetime


def zone(timezone: str | ZoneInfo) -> ZoneInfo:
    """A ZoneInfo from an IANA name (the program file stores names) or a ZoneInfo."""
    return timezone if isinstance(timezone, ZoneInfo) else ZoneInfo(timezone)


def local_instant(day: date, clock: time, timezone: str | ZoneInfo) -> datetime:
    """The UTC instant at which the wall clock shows ``clock`` on ``day`` in ``timezone``.

    A slot keeps its wall-clock time across DST changes. A time the clocks skip (02:30 on
    a spring-forward night) resolves to the first valid instant after it, the moment the
    clocks jump; a time that happens twice (fall back) resolves to its first occurrence.
    """
    tz = zone(timezone)
    naive = datetime.combine(day, clock)
    first = naive.replace(tzinfo=tz, fold=0).astimezone(UTC)
    if _wall(first, tz) == naive:
        return first
    # In a gap, fold=1 reads the time with the later offset (an instant before the jump)
    # and fold=0 with the earlier one (after it); the jump lies between, to the second.
    before = int(naive.replace(tzinfo=tz, fold=1).timestamp())
    after = int(first.timestamp())
    while after - before > 1:
        middle = (before + after) // 2
        if _wall(datetime.fromtimestamp(middle, UTC), tz) >= naive:
            after = middle
        else:
            before = middle
    return datetime.fromtimestamp(after, UTC)


def is_allowed(instant: datetime, timezone: str | ZoneInfo, rules: Rules = DEFAULT_RULES) -> bool:
    """Whether a member in ``timezone`` may be messaged at ``instant`` (not quiet hours or a weekend)."""
    local = _aware(instant).astimezone(zone(timezone))
    return _allowed_day(local.date(), rules) and rules.day_start <= local.time() < rules.day_end


def next_allowed(instant: datetime, timezone: str | ZoneInfo, rules: Rules = DEFAULT_RULES) -> datetime:
    """``instant`` (in UTC) if a member may be messaged then, else the next moment they may."""
    tz = zone(timezone)
    if is_allowed(instant, tz, rules):
        return instant.astimezone(UTC)
    local = instant.astimezone(tz)
    day = local.date()
    if not (_allowed_day(day, rules) and local.time() < rules.day_start):
        day = _next_allowed_day(day + timedelta(days=1), rules)
    return local_instant(day, rules.day_start, tz)


def snooze_until(choice: SnoozeChoice, now: datetime, timezone: str | ZoneInfo, rules: Rules = DEFAULT_RULES) -> datetime:
    """When a snooze chosen at ``now`` ends, in UTC.

    "2h" is two real hours later, pushed out of quiet hours; "tomorrow" is the start of the
    next allowed day after today, local time (Friday's "tomorrow" is Monday morning unless
    weekends are allowed).
    """
    tz = zone(timezone)
    if choice == "2h":
        return next_allowed(_aware(now) + SHORT_SNOOZE, tz, rules)
    if choice == "tomorrow":
        today = _aware(now).astimezone(tz).date()
        return local_instant(_next_allowed_day(today + timedelta(days=1), rules), rules.day_start, tz)
    raise ValueError(f"{choice!r} is not a snooze (expected '2h' or 'tomorrow')")


def due_for_member(
    cohort: Cohort,
    timezone: str | ZoneInfo,
    state: MemberState,
    now: datetime,
    rules: Rules = DEFAULT_RULES,
) -> list[Due]:
    """The member's touches due at ``now`` and not yet sent, checklist first (see the module docstring).

    Returns nothing during the member's quiet hours: whatever is due then is returned by
    the first tick after they end.
    """
    tz = zone(timezone)
    week = IsoWeek.of(_aware(now).astimezone(tz))
    if state.paused or week in state.skipped_weeks or not cohort.is_running(week) or not is_allowed(now, tz, rules):
        return []
    planned = _planned(cohort, tz, state, week, rules)
    budget = rules.fatigue_cap - state.other_touches - sum(1 for kind in PRIORITY if kind in state.sent)
    due: list[Due] = []
    for kind in PRIORITY:
        at = planned.get(kind)
        if at is None:
            continue
        if at > now:
            if kind == "checklist":
                budget -= 1  # keep the checklist's place under the cap for later this week
            continue
        if budget <= 0 or (due and rules.min_gap > timedelta(0)):
            continue
        due.append(Due(kind, week, str(week), at))
        budget -= 1
    return due


def digest_due(cohort: Cohort, channel_timezone: str | ZoneInfo, now: datetime) -> Due | None:
    """The sponsor digest due at ``now``, on the cohort's digest slot in the channel's time zone.

    One digest per running week (period "2026-W05"); it shows the most recent closed week
    and the counts so far of the week still open (bot.digests.scheduled_digest). One
    closing digest, on the first slot after the last week has closed, reports the last
    week (period "2026-W14:closing"). A cohort without a sponsor channel gets none. Quiet
    hours do not apply: they protect people from direct messages, and a channel post waits
    for its readers. A late tick posts later in the same week; a week that has ended is
    not back-filled.
    """
    if cohort.sponsor_channel is None:
        return None
    tz = zone(channel_timezone)
    week = IsoWeek.of(_aware(now).astimezone(tz))
    last = IsoWeek.of(cohort.starts) + (cohort.weeks - 1)
    if cohort.is_running(week):
        reported, period = week, str(week)
    elif week == _closing_week(cohort, tz):
        reported, period = last, f"{last}:closing"
    else:
        return None
    at = _slot_instant(week, cohort.schedule.digest, tz)
    return Due("digest", reported, period, at) if now >= at else None


def _closing_week(cohort: Cohort, tz: ZoneInfo) -> IsoWeek:
    """The week whose digest slot is the first at or after the cohort's last week closes."""
    last = IsoWeek.of(cohort.starts) + (cohort.weeks - 1)
    week = last + 1
    while _slot_instant(week, cohort.schedule.digest, tz) < cohort.closes_at(last):  # at most 5 weeks: grace <= 28 days
        week = week + 1
    return week


def _planned(cohort: Cohort, tz: ZoneInfo, state: MemberState, week: IsoWeek, rules: Rules) -> dict[MemberKind, datetime]:
    """When each touch not yet sent becomes due this week, ignoring ``now`` and the cap."""
    floors = [next_allowed(t, tz, rules) for t in (state.joined_at, state.snoozed_until) if t is not None]
    if state.sent:
        floors.append(next_allowed(max(state.sent.values()) + rules.min_gap, tz, rules))
    schedule = cohort.schedule
    planned: dict[MemberKind, datetime] = {}
    if "checklist" not in state.sent:
        planned["checklist"] = max([_placed(week, schedule.checklist, tz, rules), *floors])
    checklist_at = state.sent.get("checklist")
    if checklist_at is not None and "reminder" not in state.sent and not state.answered_this_week:
        if state.snoozed_until is not None and state.snoozed_until > checklist_at:
            planned["reminder"] = max(floors)  # the member asked for it back at that time
        else:
            after = next_allowed(checklist_at + rules.reminder_after, tz, rules)
            planned["reminder"] = max(_placed(week, schedule.reminder, tz, rules), after, *floors)
    if "nudge" not in state.sent:
        planned["nudge"] = max([_placed(week, schedule.nudge, tz, rules), *floors])
    return {kind: at for kind, at in planned.items() if IsoWeek.of(at.astimezone(tz)) == week}


def _placed(week: IsoWeek, slot: Slot, tz: ZoneInfo, rules: Rules) -> datetime:
    """The slot's instant in ``week``, moved out of quiet hours and weekends but kept in the week."""
    at = _slot_instant(week, slot, tz)
    moved = next_allowed(at, tz, rules)
    if IsoWeek.of(moved.astimezone(tz)) == week:
        return moved
    day = _wall(at, tz).date()
    while not _allowed_day(day, rules):
        day -= timedelta(days=1)
    return local_instant(day, rules.day_start, tz)


def _slot_instant(week: IsoWeek, slot: Slot, tz: ZoneInfo) -> datetime:
    day = week.monday() + timedelta(days=WEEKDAYS.index(slot.day))
    return local_instant(day, time.fromisoformat(slot.time), tz)


def _allowed_day(day: date, rules: Rules) -> bool:
    return rules.weekends or day.weekday() < _SATURDAY


def _next_allowed_day(day: date, rules: Rules) -> date:
    while not _allowed_day(day, rules):
        day += timedelta(days=1)
    return day


def _wall(instant: datetime, tz: ZoneInfo) -> datetime:
    return instant.astimezone(tz).replace(tzinfo=None)


def _aware(instant: datetime) -> datetime:
    if instant.tzinfo is None or instant.utcoffset() is None:
        raise ValueError(f"{instant.isoformat()} has no time zone; the schedule needs aware datetimes")
    return instant
