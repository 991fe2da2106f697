"""The program file: behaviors, cohorts, schedules and analysis plans, validated up front.

A program owner edits this YAML by hand, so every problem is reported as
``file: field: problem`` with the field named by cohort key or member email rather than
by list index wherever that is possible.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Mapping
from datetime import date, datetime
from typing import Annotated, Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    ValidationError,
    model_validator,
)

from nudges import weeks as iso_weeks
from nudges.weeks import IsoWeek

CHECKLIST_SIZE = 3
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


def _timezone(value: str) -> str:
    try:
        ZoneInfo(value)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(f"{value!r} is not a time zone (use an IANA name such as Europe/Lisbon)") from None
    return value


def _clock(value: str) -> str:
    match = re.fullmatch(r"([01]?\d|2[0-3]):([0-5]\d)", value)
    if not match:
        raise ValueError(f"{value!r} is not a time of day like 09:00")
    return f"{int(match[1]):02d}:{match[2]}"


Key = Annotated[str, StringConstraints(pattern=r"^[a-z0-9][a-z0-9_-]{0,62}$")]
Email = Annotated[str, AfterValidator(_email)]
TimeZone = Annotated[str, AfterValidator(_timezone)]
Clock = Annotated[str, AfterValidator(_clock)]
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
            raise _FieldError("day_end", f"must be later than day_start {self.day_start}")
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

    @model_validator(mode="after")
    def _checklist_has_three_distinct_behaviors(self) -> Cohort:
        if len(self.checklist) != CHECKLIST_SIZE:
            raise _FieldError("checklist", f"must list exactly {CHECKLIST_SIZE} behaviors, got {len(self.checklist)}")
        if len(set(self.checklist)) != CHECKLIST_SIZE:
            raise _FieldError("checklist", "lists the same behavior twice")
        return self

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
        _unique(self.behaviors, "behaviors", lambda b: b.key, "behavior key")
        _unique(self.cohorts, "cohorts", lambda c: c.key, "cohort key")
        behavior_keys = {b.key for b in self.behaviors}
        cohort_keys = {c.key for c in self.cohorts}
        seen_members: dict[str, str] = {}
        for i, cohort in enumerate(self.cohorts):
            where = f"cohorts[{i}]"
            _check_cohort_references(cohort, where, behavior_keys, cohort_keys)
            for j, member in enumerate(cohort.members):
                if member.email in seen_members:
                    raise _FieldError(f"{where}.members[{j}]", f"duplicate member {member.email} (already in {seen_members[member.email]})")
                seen_members[member.email] = f"cohort {cohort.key}"
        return self

    @model_validator(mode="after")
    def _treatment_starts_fits(self) -> Program:
        for i, cohort in enumerate(self.cohorts):
            if cohort.treatment_starts is None:
                continue
            if not self.compared_with(cohort.key):
                raise _FieldError(
                    f"cohorts[{i}].treatment_starts", "only a comparison cohort (one another cohort names as `comparison`) has one"
                )
            if cohort.treatment_starts < cohort.starts:
                raise _FieldError(f"cohorts[{i}].treatment_starts", f"is before the cohort starts ({cohort.starts})")
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

    @model_validator(mode="after")
    def _comparisons_close_together(self) -> Program:
        # Both sides of a comparison must be final at the same instant, or a digest would
        # compare a closed week with one still taking answers.
        grace = {c.key: c.answer_grace_days for c in self.cohorts}
        for i, cohort in enumerate(self.cohorts):
            if cohort.comparison is not None and grace.get(cohort.comparison, cohort.answer_grace_days) != cohort.answer_grace_days:
                raise _FieldError(
                    f"cohorts[{i}].answer_grace_days",
                    f"{cohort.answer_grace_days} differs from its comparison {cohort.comparison!r} "
                    f"({grace[cohort.comparison]}): a cohort and its comparison must close their weeks together",
                )
        return self

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


def _check_cohort_references(cohort: Cohort, where: str, behavior_keys: set[str], cohort_keys: set[str]) -> None:
    """A cohort's checklist and comparison name what the program defines, and its plan fits it."""
    for key in cohort.checklist:
        if key not in behavior_keys:
            raise _FieldError(f"{where}.checklist", f"unknown behavior {key!r} (known: {', '.join(sorted(behavior_keys))})")
    if cohort.comparison is not None:
        if cohort.comparison == cohort.key:
            raise _FieldError(f"{where}.comparison", "a cohort cannot be its own comparison")
        if cohort.comparison not in cohort_keys:
            raise _FieldError(f"{where}.comparison", f"no cohort has the key {cohort.comparison!r}")
    if cohort.plan is not None:
        _check_plan(cohort, cohort.plan, where)


def _check_plan(cohort: Cohort, plan: Plan, where: str) -> None:
    if plan.primary_behavior not in cohort.checklist:
        raise _FieldError(f"{where}.plan.primary_behavior", f"{plan.primary_behavior!r} is not in this cohort's checklist")
    if plan.method in ("comparison_cohort", "stepped_wedge") and cohort.comparison is None:
        raise _FieldError(f"{where}.plan.method", f"{plan.method} needs a comparison cohort")
    if plan.min_exposure_weeks > cohort.weeks:
        raise _FieldError(f"{where}.plan.min_exposure_weeks", f"{plan.min_exposure_weeks} is more than the cohort's {cohort.weeks} weeks")


class ProgramError(ValueError):
    """A program file problem, worded for the program owner at the terminal."""

    def __init__(self, *problems: str) -> None:
        super().__init__("\n".join(problems))
        self.problems = list(problems)


class _FieldError(ValueError):
    """Raised inside validators so the reported location is the offending field."""

    def __init__(self, field: str, problem: str) -> None:
        super().__init__(problem)
        self.field = field
        self.problem = problem


def _unique(items: list[Any], where: str, key_of: Any, what: str) -> None:
    seen: set[str] = set()
    for i, item in enumerate(items):
        key = key_of(item)
        if key in seen:
            raise _FieldError(f"{where}[{i}].key", f"duplicate {what} {key!r}")
        seen.add(key)


def parse_program(data: Any, source: str = "<program>") -> Program:
    """Validate already-parsed YAML/JSON data; raises ProgramError with one line per problem."""
    if not isinstance(data, Mapping):
        raise ProgramError(f"{source}: the file must be a mapping with keys program, behaviors and cohorts")
    try:
        return Program.model_validate(data)
    except ValidationError as exc:
        raise ProgramError(*(_describe(source, data, err) for err in exc.errors())) from None


def _describe(source: str, data: Any, err: Mapping[str, Any]) -> str:
    """One line for one pydantic error: file, field path (with keys), problem."""
    loc = list(err["loc"])
    problem = err["msg"]
    cause = (err.get("ctx") or {}).get("error")
    if isinstance(cause, _FieldError):
        loc += _relative(cause.field)
        problem = cause.problem
    elif err["type"] == "extra_forbidden":
        problem = "unknown key (check the spelling against the program file reference)"
    elif err["type"] == "missing":
        problem = "is required"
    elif problem.startswith("Value error, "):
        problem = problem.removeprefix("Value error, ")
    return f"{source}: {_path(data, loc)}: {problem}"


def _relative(field: str) -> list[str | int]:
    """Split 'cohorts[0].checklist' into ['cohorts', 0, 'checklist']."""
    parts: list[str | int] = []
    for piece in field.split("."):
        name, _, index = piece.partition("[")
        parts.append(name)
        if index:
            parts.append(int(index.rstrip("]")))
    return parts


def _printable(name: object) -> str:
    """A key from the file as typed, or quoted if it holds control characters (one line per problem)."""
    text = str(name)
    return text if text.isprintable() else repr(text)


def _path(data: Any, loc: list[Any]) -> str:
    """Render a location, naming list items by their key or email where they have one."""
    text, node = "", data
    for part in loc:
        if isinstance(part, int):
            item = node[part] if isinstance(node, list) and part < len(node) else None
            label = item.get("key") or item.get("email") if isinstance(item, Mapping) else None
            text += f"[{_printable(label)}]" if isinstance(label, str) and label else f"[{part}]"
            node = item
        else:
            text += f".{_printable(part)}" if text else _printable(part)
            node = node.get(part) if isinstance(node, Mapping) else None
    return text or "(top level)"
