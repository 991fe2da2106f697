"""The program file's rules across fields: what must refer to what, and what loads but is probably not meant.

Both work on the parts of a file that passed their own field checks, so one run reports a bad
time zone in one cohort and an unknown checklist behavior in another together.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from nudges.program_problems import Path, Problem, section
from nudges.weeks import IsoWeek

if TYPE_CHECKING:
    from nudges.program import Behavior, Cohort, Member, Plan, Program

__all__ = ["CHECKLIST_SIZE", "CohortPart", "Parts", "reference_problems", "warnings"]

CHECKLIST_SIZE = 3


@dataclass(frozen=True)
class CohortPart:
    """A cohort that passed its field checks, its position in the file, and its members that did."""

    index: int
    cohort: Cohort
    members: Sequence[tuple[int, Member]]


@dataclass(frozen=True)
class Parts:
    """The behaviors and cohorts of a file that passed their field checks, with their positions in it,
    and every key and comparison the file names (so a broken behavior is not also an unknown one)."""

    behaviors: Sequence[tuple[int, Behavior]]
    cohorts: Sequence[CohortPart]
    behavior_keys: frozenset[str]
    cohort_keys: frozenset[str]
    comparisons: frozenset[str]

    @classmethod
    def of(cls, program: Program) -> Parts:
        return cls(
            list(enumerate(program.behaviors)),
            [CohortPart(i, c, list(enumerate(c.members))) for i, c in enumerate(program.cohorts)],
            frozenset(b.key for b in program.behaviors),
            frozenset(c.key for c in program.cohorts),
            frozenset(c.comparison for c in program.cohorts if c.comparison is not None),
        )


def reference_problems(parts: Parts) -> list[Problem]:
    """Every rule across fields that the parts break: unique keys, known references, plans that fit."""
    problems = _duplicates([(("behaviors", i, "key"), b.key) for i, b in parts.behaviors], "behavior key")
    problems += _duplicates([(("cohorts", p.index, "key"), p.cohort.key) for p in parts.cohorts], "cohort key")
    cohorts = {p.cohort.key: p.cohort for p in parts.cohorts}
    for part in parts.cohorts:
        where: Path = ("cohorts", part.index)
        problems += _checklist(part.cohort, where, parts.behavior_keys)
        problems += _comparison(part.cohort, where, parts.cohort_keys, cohorts)
        problems += _treatment(part.cohort, where, parts)
        if part.cohort.plan is not None:
            problems += _plan(part.cohort, part.cohort.plan, where)
    return problems + _duplicate_members(parts.cohorts)


def _duplicates(keyed: list[tuple[Path, str]], what: str) -> list[Problem]:
    seen: set[str] = set()
    problems = []
    for path, key in keyed:
        if key in seen:
            problems.append(Problem(path, f"duplicate {what} {key!r}"))
        seen.add(key)
    return problems


def _checklist(cohort: Cohort, where: Path, behavior_keys: frozenset[str]) -> list[Problem]:
    at = (*where, "checklist")
    known = ", ".join(sorted(behavior_keys))
    problems = [Problem(at, f"unknown behavior {key!r} (known: {known})") for key in cohort.checklist if key not in behavior_keys]
    if len(cohort.checklist) != CHECKLIST_SIZE:
        problems.append(Problem(at, f"must list exactly {CHECKLIST_SIZE} behaviors, got {len(cohort.checklist)} (see {section(where)})"))
    elif len(set(cohort.checklist)) != CHECKLIST_SIZE:
        problems.append(Problem(at, "lists the same behavior twice"))
    return problems


def _comparison(cohort: Cohort, where: Path, keys: frozenset[str], cohorts: dict[str, Cohort]) -> list[Problem]:
    if cohort.comparison is None:
        return []
    if cohort.comparison == cohort.key:
        return [Problem((*where, "comparison"), "a cohort cannot be its own comparison")]
    if cohort.comparison not in keys:
        return [Problem((*where, "comparison"), f"no cohort has the key {cohort.comparison!r} (known: {', '.join(sorted(keys))})")]
    other = cohorts.get(cohort.comparison)  # None: the other cohort has problems of its own, reported there
    if other is not None and other.answer_grace_days != cohort.answer_grace_days:
        # Both sides of a comparison must be final at the same instant, or a digest would
        # compare a closed week with one still taking answers.
        return [
            Problem(
                (*where, "answer_grace_days"),
                f"{cohort.answer_grace_days} differs from its comparison {other.key!r} "
                f"({other.answer_grace_days}): a cohort and its comparison must close their weeks together",
            )
        ]
    return []


def _treatment(cohort: Cohort, where: Path, parts: Parts) -> list[Problem]:
    if cohort.treatment_starts is None:
        return []
    at = (*where, "treatment_starts")
    # While some comparison names no cohort, which cohort it meant is unknown: that one problem is enough.
    resolved = parts.comparisons <= parts.cohort_keys and all(p.cohort.comparison != p.cohort.key for p in parts.cohorts)
    if resolved and cohort.key not in parts.comparisons:
        return [Problem(at, "only a comparison cohort (one another cohort names as `comparison`) has one")]
    if cohort.treatment_starts < cohort.starts:
        return [Problem(at, f"is before the cohort starts ({cohort.starts})")]
    return []


def _plan(cohort: Cohort, plan: Plan, where: Path) -> list[Problem]:
    at = (*where, "plan")
    problems = []
    if plan.primary_behavior not in cohort.checklist:
        problems.append(Problem((*at, "primary_behavior"), f"{plan.primary_behavior!r} is not in this cohort's checklist"))
    if plan.method in ("comparison_cohort", "stepped_wedge") and cohort.comparison is None:
        problems.append(Problem((*at, "method"), f"{plan.method} needs a comparison cohort (see {section(at)})"))
    if plan.min_exposure_weeks > cohort.weeks:
        problems.append(Problem((*at, "min_exposure_weeks"), f"{plan.min_exposure_weeks} is more than the cohort's {cohort.weeks} weeks"))
    return problems


def _duplicate_members(cohorts: Sequence[CohortPart]) -> list[Problem]:
    seen: dict[str, str] = {}
    problems = []
    for part in cohorts:
        for j, member in part.members:
            if member.email in seen:
                path = ("cohorts", part.index, "members", j)
                problems.append(Problem(path, f"duplicate member {member.email} (already in {seen[member.email]})"))
            else:
                seen[member.email] = f"cohort {part.cohort.key}"
    return problems


def warnings(program: Program) -> list[Problem]:
    """What loads but is probably not meant: a cohort whose digest, reviews or analysis would go nowhere."""
    found: list[Problem] = []
    for i, cohort in enumerate(program.cohorts):
        where: Path = ("cohorts", i)
        found += _reach_warnings(program, cohort, where)
        found += _member_warnings(program, cohort, where)
        if cohort.plan is not None:
            found += _plan_warnings(cohort, cohort.plan, where)
    return found


def _reach_warnings(program: Program, cohort: Cohort, where: Path) -> list[Problem]:
    """Who would read the cohort's digest and review its AI feedback."""
    found = []
    if cohort.sponsor_channel is None:
        at = (*where, "sponsor_channel")
        found.append(Problem(at, f"not set: the cohort will get no digest (see {section(at)})"))
    if program.treatment_starts(cohort.key) is None:
        return found  # never treated: no rehearsals, so no AI feedback to review
    if not cohort.coaches:
        found.append(Problem((*where, "coaches"), "none: flagged AI feedback from this cohort's rehearsals has nobody to review it"))
    if cohort.review_channel is None:
        at = (*where, "review_channel")
        found.append(Problem(at, f"not set: flagged AI feedback is posted nowhere for coaches to review (see {section(at)})"))
    return found


def _member_warnings(program: Program, cohort: Cohort, where: Path) -> list[Problem]:
    found = []
    if len(cohort.members) < program.min_group_size:
        found.append(
            Problem(
                (*where, "members"),
                f"{len(cohort.members)} members, fewer than min_group_size {program.min_group_size}: "
                "every figure in its digest will be withheld",
            )
        )
    unzoned = [m for m in cohort.members if m.timezone == "UTC" and "timezone" not in m.model_fields_set]
    if unzoned:
        found.append(
            Problem(
                (*where, "members"),
                f"{len(unzoned)} members without a timezone (such as {unzoned[0].email}) get their messages on UTC time "
                f"(see {section((*where, 'members'))})",
            )
        )
    return found


def _plan_warnings(cohort: Cohort, plan: Plan, where: Path) -> list[Problem]:
    """A pre-registered first analysis that no member could meet, or that no digest would show."""
    at = (*where, "plan", "first_analysis")
    week = cohort.week_number(IsoWeek.of(plan.first_analysis))
    if week < plan.min_exposure_weeks:
        return [
            Problem(
                at,
                f"{plan.first_analysis} is in the cohort's week {week}, before any member can have answered the plan's "
                f"min_exposure_weeks {plan.min_exposure_weeks} weeks: the first analysis would count nobody as exposed",
            )
        ]
    if week > cohort.weeks:
        return [Problem(at, f"{plan.first_analysis} is after the cohort's last week {cohort.weeks}: no digest will show the analysis")]
    return []
