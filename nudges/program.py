"""The program file: behaviors, cohorts, schedules and analysis plans, validated up front.

A program owner edits this YAML by hand, so every problem in it is reported at once, each as
``file:line: field: problem`` with the field named by cohort key or member email rather than
by list index wherever that is possible (see nudges/program_problems.py).
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Mapping
from datetime import date, datetime
from typing import Annotated, Any, Literal, TypeVar
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    StringConstraints,
    ValidationError,
    ValidationInfo,
    model_validator,
)

from nudges import weeks as iso_weeks
from nudges.program_problems import FieldError, Lines, Problem, ProgramError, describe, render
from nudges.program_rules import CHECKLIST_SIZE, CohortPart, Parts, reference_problems
from nudges.weeks import IsoWeek
from nudges.zones import zone_problem

__all__ = ["CHECKLIST_SIZE", "WEEKDAYS", "Behavior", "ChannelRef", "Cohort", "Limits", "Member", "Plan", "Program"]
__all__ += ["ProgramError", "Schedule", "Slot", "parse_program"]
MAX_MEMBERS_PER_COHORT = 5000

Platform = Literal["slack", "teams"]
AnswerKind = Literal["yes_partly_no", "scale_1_5", "count"]
Weekday = Literal["monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday"]
WEEKDAYS: tuple[str, ...] = Weekday.__args__  # type: ignore[attr-defined]

_EMAIL = re.compile(r"^[^@\s<>]+@[^@\s<>]+\.[^@\s<>]+$")


def _email(value: str) -> str:
    value = value.strip().lower()
    if not _EMAIL.match(value):
        raise ValueError(f"{value!r} is not an email address")
    return value


def _timezone(value: str, info: ValidationInfo) -> str:
    # Only a file being loaded now: a version stored before these names were refused must still read.
    if isinstance(info.context, Mapping) and info.context.get("loading") and (problem := zone_problem(value)) is not None:
        raise ValueError(problem)
    try:
        ZoneInfo(value)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(f"{value!r} is not a time zone (use an IANA name such as Europe/Lisbon; see docs/program.md#time-zones)") from None
    return value


def _clock_text(value: object) -> object:
    # A number here is a time YAML 1.1 read as base 60 (10:00 is 600) from data that did not
    # come through bot/files.py, which keeps unquoted times as text.
    if isinstance(value, int) and not isinstance(value, bool):
        raise ValueError(f'{value} is a number, not a time of day; write times in quotes: "10:00" (see docs/program.md#times-of-day)')
    return value


def _clock(value: str) -> str:
    match = re.fullmatch(r"([01]?\d|2[0-3]):([0-5]\d)", value)
    if not match:
        raise ValueError(f"{value!r} is not a time of day like 09:00 (see docs/program.md#times-of-day)")
    return f"{int(match[1]):02d}:{match[2]}"


Key = Annotated[str, StringConstraints(pattern=r"^[a-z0-9][a-z0-9_-]{0,62}$")]
Email = Annotated[str, AfterValidator(_email)]
TimeZone = Annotated[str, AfterValidator(_timezone)]
Clock = Annotated[str, BeforeValidator(_clock_text), AfterValidator(_clock)]
Text = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=500)]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Behavior(_Strict):
    """One observable behavior, the question that asks about it and its coaching nudges."""

    key: Key
    label: Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=60)] | None = None
    question: Text
    answer: AnswerKind = "yes_partly_no"
    nudges: list[Text] = Field(min_length=1, max_length=50)


class ChannelRef(_Strict):
    platform: Platform
    id: Annotated[str, StringConstraints(min_length=1, max_length=200)]
    timezone: TimeZone = "UTC"  # the channel's readers' zone, for the digest slot


class Slot(_Strict):
    day: Weekday
    time: Clock


class Schedule(_Strict):
    """When each touch happens, in each member's own local time."""

    checklist: Slot = Slot(day="monday", time="09:00")
    reminder: Slot = Slot(day="wednesday", time="14:00")
    nudge: Slot = Slot(day="thursday", time="10:00")
    digest: Slot = Slot(day="friday", time="16:00")


class Limits(_Strict):
    """When members may be messaged (their local time) and how often: quiet hours, weekends,
    and the fatigue cap on proactive touches per week."""

    day_start: Clock = "08:00"
    day_end: Clock = "19:00"
    weekends: bool = False
    fatigue_cap: int = Field(default=3, ge=1, le=21)

    @model_validator(mode="after")
    def _day_has_hours(self) -> Limits:
        if self.day_start >= self.day_end:
            raise FieldError("day_end", f"must be later than day_start {self.day_start}")
        return self


class Plan(_Strict):
    """The pre-registered analysis plan of a cohort."""

    primary_behavior: Key
    method: Literal["comparison_cohort", "baseline", "stepped_wedge"] = "baseline"
    min_exposure_weeks: int = Field(default=6, ge=1, le=104)
    first_analysis: date


class Member(_Strict):
    email: Email
    platform: Platform
    timezone: TimeZone = "UTC"
    name: Annotated[str, StringConstraints(strip_whitespace=True, max_length=120)] | None = None


class Cohort(_Strict):
    key: Key
    name: Text
    starts: date
    weeks: int = Field(ge=1, le=104)
    checklist: list[Key]
    comparison: Key | None = None
    # For a cohort that another names as its comparison: the day its own treatment (coaching
    # nudges, rehearsals) begins, as the later wave of a phased rollout. Until then, and
    # always without it, it is measured only: consent, checklists and reminders.
    treatment_starts: date | None = None
    sponsor_channel: ChannelRef | None = None
    review_channel: ChannelRef | None = None
    sponsors: list[Email] = Field(default_factory=list, max_length=100)
    coaches: list[Email] = Field(default_factory=list, max_length=100)
    schedule: Schedule = Schedule()
    limits: Limits = Limits()
    plan: Plan | None = None
    # Days after a week ends (in UTC) during which its answers still count; then the week
    # closes and its figures are computed once. At least a day, so every time zone's Sunday fits.
    answer_grace_days: int = Field(default=3, ge=1, le=28)
    members: list[Member] = Field(default_factory=list, max_length=MAX_MEMBERS_PER_COHORT)

    def week_number(self, week: IsoWeek) -> int:
        """1 for the cohort's first week; may be <1 before it starts or >weeks after it ends."""
        return week - IsoWeek.of(self.starts) + 1

    def is_running(self, week: IsoWeek) -> bool:
        return 1 <= self.week_number(week) <= self.weeks

    def closes_at(self, week: IsoWeek) -> datetime:
        """When ``week`` closes for this cohort: ``answer_grace_days`` after it ends (UTC)."""
        return iso_weeks.closes_at(week, self.answer_grace_days)

    def is_closed(self, week: IsoWeek, now: datetime) -> bool:
        """True once ``week`` has closed: no answer for it counts any more, and its figures are final."""
        return iso_weeks.is_closed(week, self.answer_grace_days, now)

    def last_closed_week(self, now: datetime) -> IsoWeek | None:
        """The cohort's most recent closed week at ``now`` (its last week once that has closed),
        or None while its first week is still open."""
        week = min(iso_weeks.last_closed(self.answer_grace_days, now), IsoWeek.of(self.starts) + (self.weeks - 1))
        return week if self.week_number(week) >= 1 else None


class Program(_Strict):
    program: Text
    min_group_size: int = Field(default=5, ge=2, le=1000)
    admins: list[Email] = Field(default_factory=list, max_length=100)
    behaviors: list[Behavior] = Field(min_length=1, max_length=100)
    cohorts: list[Cohort] = Field(min_length=1, max_length=100)

    @model_validator(mode="after")
    def _references_resolve(self) -> Program:
        if problems := reference_problems(Parts.of(self)):
            raise _Broken(problems)
        return self

    def compared_with(self, key: str) -> list[Cohort]:
        """The cohorts that name cohort ``key`` as their comparison."""
        return [c for c in self.cohorts if c.comparison == key]

    def treatment_starts(self, key: str) -> date | None:
        """The day cohort ``key``'s members start receiving coaching nudges and rehearsals: the
        cohort's start, or for a comparison cohort its ``treatment_starts`` (None: never)."""
        cohort = self.cohort(key)
        return cohort.treatment_starts if self.compared_with(key) else cohort.starts

    def is_treated(self, key: str, day: date) -> bool:
        """Whether cohort ``key`` receives treatment (nudges, rehearsals) on ``day``."""
        starts = self.treatment_starts(key)
        return starts is not None and day >= starts

    def treatment_summary(self, key: str) -> str:
        """What the cohort's members receive, in a few words for the program owner and the sponsor."""
        starts = self.treatment_starts(key)
        if starts is None:
            of = ", ".join(c.name for c in self.compared_with(key))
            return f"checklists only (the comparison for {of})"
        if starts > self.cohort(key).starts:
            return f"checklists only until {starts}, then coaching nudges and rehearsals"
        return "checklists, coaching nudges and rehearsals"

    def behavior(self, key: str) -> Behavior:
        for behavior in self.behaviors:
            if behavior.key == key:
                return behavior
        raise ProgramError(f"no behavior {key!r} in the program")

    def cohort(self, key: str) -> Cohort:
        """The cohort with this key; raises ProgramError naming the known keys otherwise."""
        for cohort in self.cohorts:
            if cohort.key == key:
                return cohort
        known = ", ".join(c.key for c in self.cohorts)
        raise ProgramError(f"no cohort {key!r} in the program (known: {known})")

    def content_hash(self) -> str:
        """A stable hash of the validated content, independent of YAML formatting."""
        canonical = json.dumps(self.model_dump(mode="json"), sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(canonical.encode()).hexdigest()


class _Broken(ValueError):
    """The rules across fields a program breaks, raised from its validator so pydantic carries them out."""

    def __init__(self, problems: list[Problem]) -> None:
        super().__init__(f"{len(problems)} problems")
        self.problems = problems


def parse_program(data: Any, source: str = "<program>", lines: Lines | None = None, *, loading: bool = False) -> Program:
    """Validate already-parsed YAML/JSON data; raises ProgramError with one line per problem, every
    problem at once. ``lines`` (from bot/files.py) puts each problem's line in the file on it.

    ``loading``: the data is a file being loaded now, so it is held to the rules that a version
    stored earlier may predate (legacy and fixed-offset time zones, see nudges/zones.py)."""
    if not isinstance(data, Mapping):
        raise ProgramError(f"{source}: the file must be a mapping with keys program, behaviors and cohorts (see docs/program.md)")
    try:
        return Program.model_validate(data, context={"loading": loading})
    except ValidationError as exc:
        errors = exc.errors()
        cause = (errors[0].get("ctx") or {}).get("error")
        if isinstance(cause, _Broken):
            problems = cause.problems  # every field is valid: these are the rules across them
        else:
            # Pydantic checks the rules across fields only once every field is valid; check them
            # on the parts that are, so that one run reports everything.
            problems = [describe(err) for err in errors] + reference_problems(_valid_parts(data))
        raise ProgramError(*render(source, data, problems, lines)) from None


def _valid_parts(data: Mapping[str, Any]) -> Parts:
    """The behaviors, cohorts and members of a file that fails validation that pass their own field checks."""
    behaviors = [(i, b) for i, raw in _items(data.get("behaviors")) if (b := _salvage(Behavior, raw)) is not None]
    cohorts = []
    for i, raw in _items(data.get("cohorts")):
        if not isinstance(raw, Mapping):
            continue
        cohort = _salvage(Cohort, {**raw, "members": []})
        if cohort is not None:
            members = [(j, m) for j, item in _items(raw.get("members")) if (m := _salvage(Member, item)) is not None]
            cohorts.append(CohortPart(i, cohort, members))
    return Parts(
        behaviors,
        cohorts,
        _named(data.get("behaviors"), "key"),
        _named(data.get("cohorts"), "key"),
        _named(data.get("cohorts"), "comparison"),
    )


def _named(items: Any, field: str) -> frozenset[str]:
    """Every text value of ``field`` among the mappings of ``items``, valid or not."""
    return frozenset(item[field] for _, item in _items(items) if isinstance(item, Mapping) and isinstance(item.get(field), str))


_M = TypeVar("_M", bound=BaseModel)


def _items(value: Any) -> list[tuple[int, Any]]:
    return list(enumerate(value)) if isinstance(value, list) else []


def _salvage(model: type[_M], raw: Any) -> _M | None:
    """``raw`` validated, without its invalid optional keys (already reported); None if a required one is invalid."""
    try:
        return model.model_validate(raw)
    except ValidationError as exc:
        if not isinstance(raw, Mapping):
            return None
        failed = {err["loc"][0] for err in exc.errors() if err["loc"]}
    try:
        return model.model_validate({key: value for key, value in raw.items() if key not in failed})
    except ValidationError:
        return None
