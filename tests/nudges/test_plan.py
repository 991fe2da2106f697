"""Tests for nudges/plan.py: what is frozen, when a change is a new version, how it is named."""

from __future__ import annotations

from datetime import UTC, date, datetime
from functools import cache
from pathlib import Path

import pytest

from bot.files import load_program
from nudges.plan import PlanVersion, changed_fields, content_hash, next_version, snapshot
from nudges.program import Program

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "program.yaml"
JAN = datetime(2026, 1, 16, 16, tzinfo=UTC)
FEB = datetime(2026, 2, 10, 16, tzinfo=UTC)


@cache
def _example() -> Program:
    return load_program(str(EXAMPLE))


def with_plan(program: Program, **changes: object) -> Program:
    data = program.model_dump(mode="json")
    data["cohorts"][0]["plan"].update(changes)
    return Program.model_validate(data)


def frozen(program: Program, version: int = 1, at: datetime = JAN, changed: tuple[str, ...] = ()) -> PlanVersion:
    plan = snapshot(program, program.cohort("pilot-a"))
    return PlanVersion(version, content_hash(plan), plan, changed, at)


def test_snapshot_holds_the_plan_comparison_and_checklist_questions() -> None:
    program = _example()

    plan = snapshot(program, program.cohort("pilot-a"))

    assert plan["primary_behavior"] == "decision_huddle"
    assert plan["method"] == "comparison_cohort"
    assert plan["min_exposure_weeks"] == 6
    assert plan["first_analysis"] == "2026-03-02"
    assert plan["comparison"] == "wave-b"
    assert [q["key"] for q in plan["checklist"]] == ["decision_huddle", "escalate_24h", "specific_feedback"]
    assert plan["checklist"][0]["question"] == program.behavior("decision_huddle").question


def test_a_cohort_without_a_plan_still_freezes_its_checklist() -> None:
    data = _example().model_dump(mode="json")
    data["cohorts"][1]["plan"] = None
    program = Program.model_validate(data)

    plan = snapshot(program, program.cohort("wave-b"))

    assert plan["primary_behavior"] is None and plan["method"] is None
    assert len(plan["checklist"]) == 3


def test_reordering_the_checklist_keeps_the_hash() -> None:
    program = _example()
    data = program.model_dump(mode="json")
    data["cohorts"][0]["checklist"] = list(reversed(data["cohorts"][0]["checklist"]))
    reordered = Program.model_validate(data)

    assert content_hash(snapshot(reordered, reordered.cohort("pilot-a"))) == content_hash(snapshot(program, program.cohort("pilot-a")))


def test_rewording_a_question_changes_the_hash_and_names_the_questions() -> None:
    program = _example()
    data = program.model_dump(mode="json")
    data["behaviors"][0]["question"] = "Did you hold a decision huddle?"
    reworded = Program.model_validate(data)
    old, new = snapshot(program, program.cohort("pilot-a")), snapshot(reworded, reworded.cohort("pilot-a"))

    assert content_hash(old) != content_hash(new)
    assert changed_fields(old, new) == ["checklist"]


def test_the_first_plan_becomes_version_one() -> None:
    program = _example()

    new = next_version([], snapshot(program, program.cohort("pilot-a")))

    assert new is not None
    assert (new.version, new.changed) == (1, [])
    assert new.content_hash == content_hash(snapshot(program, program.cohort("pilot-a")))


def test_an_unchanged_plan_needs_no_new_version() -> None:
    program = _example()

    assert next_version([frozen(program)], snapshot(program, program.cohort("pilot-a"))) is None


def test_a_changed_primary_behavior_is_version_two_naming_the_change() -> None:
    program = _example()
    changed = with_plan(program, primary_behavior="escalate_24h")

    new = next_version([frozen(program)], snapshot(changed, changed.cohort("pilot-a")))

    assert new is not None
    assert (new.version, new.changed) == (2, ["primary_behavior"])


def test_every_changed_field_is_named_in_a_fixed_order() -> None:
    program = _example()
    changed = with_plan(program, first_analysis="2026-04-06", min_exposure_weeks=4, method="baseline")

    new = next_version([frozen(program)], snapshot(changed, changed.cohort("pilot-a")))

    assert new is not None
    assert new.changed == ["method", "min_exposure_weeks", "first_analysis"]


def test_changing_a_field_back_is_a_new_version_too() -> None:
    program = _example()
    changed = with_plan(program, primary_behavior="escalate_24h")
    history = [frozen(program), frozen(changed, 2, FEB, ("primary_behavior",))]

    new = next_version(history, snapshot(program, program.cohort("pilot-a")))

    assert new is not None
    assert (new.version, new.changed) == (3, ["primary_behavior"])


def test_label_of_the_first_version_says_frozen() -> None:
    assert frozen(_example()).label() == "plan v1, frozen 2026-01-16"


@pytest.mark.parametrize(
    ("changed", "text"),
    [
        (("primary_behavior",), "plan v2, changed 2026-02-10: primary behavior"),
        (("min_exposure_weeks", "first_analysis"), "plan v2, changed 2026-02-10: minimum exposure, first analysis date"),
        (("checklist",), "plan v2, changed 2026-02-10: checklist questions"),
    ],
)
def test_label_of_a_later_version_names_what_changed(changed: tuple[str, ...], text: str) -> None:
    assert frozen(_example(), 2, FEB, changed).label() == text


def test_first_analysis_is_stored_as_an_iso_date() -> None:
    plan = snapshot(_example(), _example().cohort("pilot-a"))

    assert date.fromisoformat(plan["first_analysis"]) == date(2026, 3, 2)
