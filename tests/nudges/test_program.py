"""Tests for nudges/program.py: the example program loads, and every bad file is explained."""

from __future__ import annotations

import copy
import json
from datetime import UTC, datetime
from functools import cache
from pathlib import Path
from typing import Any

import pytest
import yaml

from bot.files import load_program
from nudges.program import ProgramError, parse_program
from nudges.program_rules import warnings
from nudges.weeks import IsoWeek

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "program.yaml"


@cache
def _example_data() -> dict[str, Any]:
    return yaml.safe_load(EXAMPLE.read_text(encoding="utf-8"))


@pytest.fixture
def data() -> dict[str, Any]:
    """A fresh, mutable copy of examples/program.yaml as parsed YAML."""
    return copy.deepcopy(_example_data())


def cohort(data: dict[str, Any], key: str) -> dict[str, Any]:
    return next(c for c in data["cohorts"] if c["key"] == key)


def member(data: dict[str, Any], cohort_key: str, email: str) -> dict[str, Any]:
    return next(m for m in cohort(data, cohort_key)["members"] if m["email"] == email)


def problems(data: Any, source: str = "bad.yaml") -> list[str]:
    """The problems parse_program reports on a file being loaded; each must be one line, and the message their join."""
    with pytest.raises(ProgramError) as caught:
        parse_program(data, source, loading=True)
    found = caught.value.problems
    assert found, "a ProgramError must carry at least one problem"
    for problem in found:
        assert "\n" not in problem, f"a problem spans more than one line: {problem!r}"
    assert str(caught.value) == "\n".join(found)
    return found


def only_problem(data: Any, source: str = "bad.yaml") -> str:
    found = problems(data, source)
    assert len(found) == 1, found
    return found[0]


# --- the example file ---------------------------------------------------------------------


def test_example_program_loads_with_cohorts_pilot_a_and_wave_b() -> None:
    program = load_program(str(EXAMPLE))

    assert [c.key for c in program.cohorts] == ["pilot-a", "wave-b"]
    assert program.cohort("pilot-a").comparison == "wave-b"


def test_example_program_has_at_least_thirty_members() -> None:
    program = load_program(str(EXAMPLE))

    assert sum(len(c.members) for c in program.cohorts) >= 30


def test_every_example_behavior_has_at_least_three_nudges() -> None:
    program = load_program(str(EXAMPLE))

    assert program.behaviors
    for behavior in program.behaviors:
        assert len(behavior.nudges) >= 3, behavior.key


def test_example_checklists_have_three_known_behaviors() -> None:
    program = load_program(str(EXAMPLE))
    known = {b.key for b in program.behaviors}

    for c in program.cohorts:
        assert len(c.checklist) == 3
        assert set(c.checklist) <= known


def test_unknown_cohort_lookup_names_the_known_cohorts() -> None:
    program = load_program(str(EXAMPLE))

    with pytest.raises(ProgramError, match=r"no cohort 'pilot-z'.*pilot-a, wave-b"):
        program.cohort("pilot-z")


def test_emails_are_lowercased_and_times_padded(data: dict[str, Any]) -> None:
    member(data, "pilot-a", "ana@example.com")["email"] = "Ana@Example.COM"
    cohort(data, "pilot-a")["schedule"]["checklist"]["time"] = "9:00"

    program = parse_program(data, "ok.yaml")

    assert program.cohort("pilot-a").members[0].email == "ana@example.com"
    assert program.cohort("pilot-a").schedule.checklist.time == "09:00"


# --- content_hash -------------------------------------------------------------------------


def test_content_hash_is_the_same_for_two_loads_of_the_same_file() -> None:
    assert load_program(str(EXAMPLE)).content_hash() == load_program(str(EXAMPLE)).content_hash()


@pytest.mark.parametrize(
    "reformat",
    [
        pytest.param(lambda d: yaml.safe_dump(d, sort_keys=True, default_flow_style=False), id="block-style-sorted-keys"),
        pytest.param(lambda d: yaml.safe_dump(d, sort_keys=False, default_flow_style=True, width=10_000), id="flow-style"),
        pytest.param(lambda d: json.dumps(d, default=str, indent=3), id="json"),
        pytest.param(
            lambda d: "# a comment on top\n" + yaml.safe_dump(dict(reversed(list(d.items()))), sort_keys=False, indent=4),
            id="comment-and-reversed-key-order",
        ),
    ],
)
def test_content_hash_ignores_yaml_formatting(reformat: Any) -> None:
    original = load_program(str(EXAMPLE))
    text = reformat(_example_data())
    assert text != EXAMPLE.read_text(encoding="utf-8")

    reformatted = load_program("reformatted.yaml", text=text)

    assert reformatted.content_hash() == original.content_hash()


def test_content_hash_ignores_quoting_and_spacing_of_a_value() -> None:
    text = EXAMPLE.read_text(encoding="utf-8")
    changed = text.replace("weeks: 12", "weeks:     12   # twelve").replace('time: "09:00"', "time: '09:00'")
    assert changed != text

    assert load_program("a.yaml", text=changed).content_hash() == load_program(str(EXAMPLE)).content_hash()


def test_content_hash_changes_when_a_nudge_changes(data: dict[str, Any]) -> None:
    before = parse_program(data).content_hash()
    data["behaviors"][0]["nudges"][0] = "Something else entirely."

    assert parse_program(data).content_hash() != before


def test_content_hash_changes_when_a_member_timezone_changes(data: dict[str, Any]) -> None:
    before = parse_program(data).content_hash()
    member(data, "pilot-a", "ana@example.com")["timezone"] = "Europe/Paris"

    assert parse_program(data).content_hash() != before


def test_content_hash_changes_when_a_member_is_added(data: dict[str, Any]) -> None:
    before = parse_program(data).content_hash()
    cohort(data, "wave-b")["members"].append({"email": "new@example.com", "platform": "slack"})

    assert parse_program(data).content_hash() != before


def test_content_hash_changes_when_the_checklist_order_changes(data: dict[str, Any]) -> None:
    before = parse_program(data).content_hash()
    cohort(data, "pilot-a")["checklist"].reverse()

    assert parse_program(data).content_hash() != before


# --- bad content: each problem names the file, the field and the problem --------------------


def test_checklist_with_an_unknown_behavior_is_rejected_naming_the_field(data: dict[str, Any]) -> None:
    cohort(data, "pilot-a")["checklist"][1] = "escalate_48h"

    problem = only_problem(data)

    assert problem.startswith("bad.yaml: cohorts[pilot-a].checklist: ")
    assert "unknown behavior 'escalate_48h'" in problem
    assert "escalate_24h" in problem  # the known keys are listed


def test_checklist_with_two_behaviors_is_rejected_naming_the_field(data: dict[str, Any]) -> None:
    cohort(data, "pilot-a")["checklist"] = ["decision_huddle", "escalate_24h"]

    problem = only_problem(data)

    assert problem.startswith("bad.yaml: cohorts[pilot-a].checklist: ")
    assert "exactly 3" in problem
    assert "got 2" in problem


def test_checklist_with_four_behaviors_is_rejected_naming_the_field(data: dict[str, Any]) -> None:
    cohort(data, "wave-b")["checklist"].append("one_on_ones")

    problem = only_problem(data)

    assert problem.startswith("bad.yaml: cohorts[wave-b].checklist: ")
    assert "exactly 3" in problem
    assert "got 4" in problem


def test_checklist_with_the_same_behavior_twice_is_rejected(data: dict[str, Any]) -> None:
    cohort(data, "pilot-a")["checklist"] = ["decision_huddle", "escalate_24h", "decision_huddle"]

    problem = only_problem(data)

    assert problem.startswith("bad.yaml: cohorts[pilot-a].checklist: ")
    assert "same behavior twice" in problem


def test_member_with_a_bad_timezone_is_named_by_email(data: dict[str, Any]) -> None:
    member(data, "pilot-a", "bruno@example.com")["timezone"] = "Europe/Atlantis"

    problem = only_problem(data)

    assert problem.startswith("bad.yaml: cohorts[pilot-a].members[bruno@example.com].timezone: ")
    assert "'Europe/Atlantis' is not a time zone" in problem


def test_comparison_with_a_cohort_that_does_not_exist_is_rejected(data: dict[str, Any]) -> None:
    cohort(data, "pilot-a")["comparison"] = "wave-c"

    problem = only_problem(data)

    assert problem.startswith("bad.yaml: cohorts[pilot-a].comparison: ")
    assert "'wave-c'" in problem


def test_cohort_compared_with_itself_is_rejected(data: dict[str, Any]) -> None:
    cohort(data, "pilot-a")["comparison"] = "pilot-a"

    problem = only_problem(data)

    assert problem.startswith("bad.yaml: cohorts[pilot-a].comparison: ")
    assert "its own comparison" in problem


def test_member_listed_twice_in_one_cohort_is_rejected(data: dict[str, Any]) -> None:
    members = cohort(data, "pilot-a")["members"]
    members.append(dict(members[2]))

    problem = only_problem(data)

    assert problem.startswith("bad.yaml: cohorts[pilot-a].members[carla@example.com]: ")
    assert "duplicate member carla@example.com" in problem
    assert "pilot-a" in problem.split(": ", 2)[2]


def test_member_in_two_cohorts_is_rejected_naming_the_first_cohort(data: dict[str, Any]) -> None:
    cohort(data, "wave-b")["members"].append({"email": "ana@example.com", "platform": "teams"})

    problem = only_problem(data)

    assert problem.startswith("bad.yaml: cohorts[wave-b].members[ana@example.com]: ")
    assert "duplicate member ana@example.com" in problem
    assert "already in cohort pilot-a" in problem


def test_member_duplicate_differing_only_in_case_is_rejected(data: dict[str, Any]) -> None:
    cohort(data, "wave-b")["members"].append({"email": "ANA@example.com", "platform": "slack"})

    problem = only_problem(data)

    assert "cohorts[wave-b].members[" in problem
    assert "duplicate member ana@example.com" in problem


def test_duplicate_behavior_key_is_rejected(data: dict[str, Any]) -> None:
    data["behaviors"].append(dict(data["behaviors"][0], question="Asked again?"))

    problem = only_problem(data)

    assert problem.startswith("bad.yaml: behaviors[decision_huddle].key: ")
    assert "duplicate behavior key 'decision_huddle'" in problem


def test_duplicate_cohort_key_is_rejected(data: dict[str, Any]) -> None:
    data["cohorts"].append(dict(cohort(data, "wave-b"), members=[], comparison=None))

    problem = only_problem(data)

    assert problem.startswith("bad.yaml: cohorts[wave-b].key: ")
    assert "duplicate cohort key 'wave-b'" in problem


def test_unknown_top_level_key_is_rejected(data: dict[str, Any]) -> None:
    data["sponsers"] = ["vp.product@example.com"]

    problem = only_problem(data)

    assert problem.startswith("bad.yaml: sponsers: ")
    assert "unknown key" in problem


def test_unknown_nested_key_is_rejected(data: dict[str, Any]) -> None:
    cohort(data, "pilot-a")["schedule"]["nudge"]["hour"] = 10

    problem = only_problem(data)

    assert problem.startswith("bad.yaml: cohorts[pilot-a].schedule.nudge.hour: ")
    assert "unknown key" in problem


def test_unknown_key_on_a_member_is_named_by_email(data: dict[str, Any]) -> None:
    member(data, "wave-b", "tara@example.com")["phone"] = "+351 000"

    problem = only_problem(data)

    assert problem.startswith("bad.yaml: cohorts[wave-b].members[tara@example.com].phone: ")
    assert "unknown key" in problem


def test_unknown_key_on_a_behavior_is_named_by_key(data: dict[str, Any]) -> None:
    data["behaviors"][1]["nudge"] = "singular by mistake"

    problem = only_problem(data)

    assert problem.startswith("bad.yaml: behaviors[escalate_24h].nudge: ")
    assert "unknown key" in problem


def test_missing_required_cohort_field_is_reported(data: dict[str, Any]) -> None:
    del cohort(data, "pilot-a")["starts"]

    problem = only_problem(data)

    assert problem == "bad.yaml: cohorts[pilot-a].starts: is required"


def test_missing_required_top_level_field_is_reported(data: dict[str, Any]) -> None:
    del data["program"]

    assert only_problem(data) == "bad.yaml: program: is required"


@pytest.mark.parametrize("bad_time", ["25:00", "9am", "09:60", "0900", ""])
def test_bad_time_of_day_in_schedule_is_rejected(data: dict[str, Any], bad_time: str) -> None:
    cohort(data, "pilot-a")["schedule"]["reminder"]["time"] = bad_time

    problem = only_problem(data)

    assert problem.startswith("bad.yaml: cohorts[pilot-a].schedule.reminder.time: ")
    assert f"{bad_time!r} is not a time of day" in problem


def test_bad_weekday_in_schedule_is_rejected(data: dict[str, Any]) -> None:
    cohort(data, "wave-b")["schedule"] = {"digest": {"day": "funday", "time": "16:00"}}

    problem = only_problem(data)

    assert problem.startswith("bad.yaml: cohorts[wave-b].schedule.digest.day: ")


def test_member_with_a_bad_email_is_rejected(data: dict[str, Any]) -> None:
    member(data, "pilot-a", "carla@example.com")["email"] = "carla-at-example.com"

    problem = only_problem(data)

    assert problem.startswith("bad.yaml: cohorts[pilot-a].members[carla-at-example.com].email: ")
    assert "'carla-at-example.com' is not an email address" in problem


def test_sponsor_with_a_bad_email_is_rejected_by_position(data: dict[str, Any]) -> None:
    cohort(data, "wave-b")["sponsors"] = ["vp.product@example.com", "vp sales"]

    problem = only_problem(data)

    assert problem.startswith("bad.yaml: cohorts[wave-b].sponsors[1]: ")
    assert "is not an email address" in problem


def test_plan_primary_behavior_outside_the_checklist_is_rejected(data: dict[str, Any]) -> None:
    cohort(data, "pilot-a")["plan"]["primary_behavior"] = "one_on_ones"

    problem = only_problem(data)

    assert problem.startswith("bad.yaml: cohorts[pilot-a].plan.primary_behavior: ")
    assert "'one_on_ones' is not in this cohort's checklist" in problem


@pytest.mark.parametrize("method", ["comparison_cohort", "stepped_wedge"])
def test_plan_needing_a_comparison_without_one_is_rejected(data: dict[str, Any], method: str) -> None:
    cohort(data, "wave-b")["plan"]["method"] = method

    problem = only_problem(data)

    assert problem.startswith("bad.yaml: cohorts[wave-b].plan.method: ")
    assert f"{method} needs a comparison cohort" in problem


def test_plan_exposure_longer_than_the_cohort_is_rejected(data: dict[str, Any]) -> None:
    cohort(data, "pilot-a")["plan"]["min_exposure_weeks"] = 13

    problem = only_problem(data)

    assert problem.startswith("bad.yaml: cohorts[pilot-a].plan.min_exposure_weeks: ")
    assert "12 weeks" in problem


def test_answer_grace_days_defaults_to_three_and_sets_when_the_cohorts_weeks_close(data: dict[str, Any]) -> None:
    program = parse_program(data)
    assert program.cohort("pilot-a").answer_grace_days == 3

    for c in data["cohorts"]:
        c["answer_grace_days"] = 7
    pilot = parse_program(data).cohort("pilot-a")

    assert pilot.closes_at(IsoWeek(2026, 2)) == datetime(2026, 1, 19, tzinfo=UTC)
    assert not pilot.is_closed(IsoWeek(2026, 2), datetime(2026, 1, 18, 23, 59, tzinfo=UTC))
    assert pilot.is_closed(IsoWeek(2026, 2), datetime(2026, 1, 19, tzinfo=UTC))


@pytest.mark.parametrize("grace", [0, 29, -1, "three"])
def test_answer_grace_days_outside_one_to_28_is_rejected(data: dict[str, Any], grace: Any) -> None:
    for c in data["cohorts"]:
        c["answer_grace_days"] = grace

    found = problems(data)

    assert found[0].startswith("bad.yaml: cohorts[pilot-a].answer_grace_days: ")


def test_a_cohort_and_its_comparison_must_close_their_weeks_together(data: dict[str, Any]) -> None:
    cohort(data, "wave-b")["answer_grace_days"] = 5

    problem = only_problem(data)

    assert problem.startswith("bad.yaml: cohorts[pilot-a].answer_grace_days: ")
    assert "differs from its comparison 'wave-b' (5)" in problem


def test_the_last_closed_week_stays_within_the_cohort(data: dict[str, Any]) -> None:
    pilot = parse_program(data).cohort("pilot-a")  # 12 weeks from 2026-W02, grace 3 days

    assert pilot.last_closed_week(datetime(2026, 1, 14, 23, tzinfo=UTC)) is None  # its first week closes on the 15th
    assert pilot.last_closed_week(datetime(2026, 1, 15, tzinfo=UTC)) == IsoWeek(2026, 2)
    assert pilot.last_closed_week(datetime(2026, 3, 6, 16, tzinfo=UTC)) == IsoWeek(2026, 9)
    assert pilot.last_closed_week(datetime(2027, 1, 1, tzinfo=UTC)) == IsoWeek(2026, 13)  # its 12th and last week


def test_several_problems_are_reported_one_per_line(data: dict[str, Any]) -> None:
    member(data, "pilot-a", "bruno@example.com")["timezone"] = "Nowhere/Land"
    member(data, "wave-b", "tara@example.com")["platform"] = "discord"

    with pytest.raises(ProgramError) as caught:
        parse_program(data, "bad.yaml")

    lines = str(caught.value).splitlines()
    assert lines == caught.value.problems
    assert len(lines) == 2
    assert lines[0].startswith("bad.yaml: cohorts[pilot-a].members[bruno@example.com].timezone: ")
    assert lines[1].startswith("bad.yaml: cohorts[wave-b].members[tara@example.com].platform: ")


@pytest.mark.parametrize(
    "break_it",
    [
        pytest.param(lambda d: cohort(d, "pilot-a").__setitem__("key", "pilot\na"), id="cohort-key"),
        pytest.param(lambda d: d.__setitem__("spon\nsors", []), id="unknown-key"),
        pytest.param(lambda d: member(d, "pilot-a", "ana@example.com").__setitem__("email", "ana\n@example.com"), id="member-email"),
    ],
)
def test_problem_stays_on_one_line_when_the_file_has_a_newline_in_a_key(data: dict[str, Any], break_it: Any) -> None:
    break_it(data)

    problems(data)  # asserts every problem is a single line


@pytest.mark.parametrize("not_a_mapping", [None, [], ["program"], "program: x", 42])
def test_content_that_is_not_a_mapping_is_rejected(not_a_mapping: Any) -> None:
    problem = only_problem(not_a_mapping)

    assert problem.startswith("bad.yaml: ")
    assert "must be a mapping" in problem


def test_treatment_starts_belongs_to_a_comparison_cohort_and_not_before_it_starts(data: dict[str, Any]) -> None:
    cohort(data, "pilot-a")["treatment_starts"] = "2026-02-02"
    assert problems(data) == [
        "bad.yaml: cohorts[pilot-a].treatment_starts: only a comparison cohort (one another cohort names as `comparison`) has one"
    ]
    del cohort(data, "pilot-a")["treatment_starts"]
    cohort(data, "wave-b")["treatment_starts"] = "2025-12-29"
    assert problems(data) == ["bad.yaml: cohorts[wave-b].treatment_starts: is before the cohort starts (2026-01-05)"]


# --- time zones: a place's zone or UTC, never a fixed offset or a legacy alias ------------------


@pytest.mark.parametrize(
    ("zone", "advice"),
    [
        ("EST", "fixed UTC-5 zone without daylight saving; use America/New_York (or America/Panama for no DST)"),
        ("MST", "use America/Denver (or America/Phoenix for no DST)"),
        ("HST", "use Pacific/Honolulu"),
        ("PST8PDT", "use America/Los_Angeles"),
        ("CST6CDT", "use America/Chicago"),
        ("EST5EDT", "use America/New_York"),
        ("Etc/GMT+5", "fixed UTC-5 zone without daylight saving"),
        ("Etc/GMT-3", "fixed UTC+3 zone"),
        ("GMT+0", "use UTC, or Europe/London"),
        ("Zulu", "another name for UTC; write UTC"),
        ("US/Eastern", "legacy name; use America/New_York"),
        ("Asia/Calcutta", "legacy name; use Asia/Kolkata"),
        ("Iceland", "legacy name; use Atlantic/Reykjavik"),
        ("UTC+1", "a UTC offset, not a time zone"),
    ],
)
def test_fixed_offset_and_legacy_zones_are_refused_naming_the_zone_to_use(data: dict[str, Any], zone: str, advice: str) -> None:
    member(data, "pilot-a", "bruno@example.com")["timezone"] = zone

    problem = only_problem(data)

    assert problem.startswith(f"bad.yaml: cohorts[pilot-a].members[bruno@example.com].timezone: {zone!r} is ")
    assert advice in problem
    assert "see docs/program.md#time-zones" in problem


def test_a_stored_version_with_a_legacy_zone_still_reads(data: dict[str, Any]) -> None:
    # A version loaded before these names were refused is read back by storage without ``loading``.
    member(data, "pilot-a", "bruno@example.com")["timezone"] = "US/Eastern"

    assert parse_program(data, "program version 3").cohort("pilot-a").members[1].timezone == "US/Eastern"


def test_a_sponsor_channel_in_est_is_refused_too(data: dict[str, Any]) -> None:
    cohort(data, "pilot-a")["sponsor_channel"]["timezone"] = "EST"

    assert "use America/New_York" in only_problem(data)


@pytest.mark.parametrize("zone", ["UTC", "Etc/UTC", "Europe/Bratislava", "America/Panama", "Asia/Kolkata"])
def test_utc_and_the_zones_of_places_are_accepted(data: dict[str, Any], zone: str) -> None:
    member(data, "pilot-a", "bruno@example.com")["timezone"] = zone

    assert parse_program(data, loading=True).cohort("pilot-a").members[1].timezone == zone


def test_a_time_that_arrived_as_a_number_asks_for_quotes(data: dict[str, Any]) -> None:
    cohort(data, "pilot-a")["schedule"]["nudge"]["time"] = 600  # what YAML 1.1 makes of an unquoted 10:00

    problem = only_problem(data)

    assert problem.startswith("bad.yaml: cohorts[pilot-a].schedule.nudge.time: ")
    assert 'write times in quotes: "10:00"' in problem


# --- every problem at once ----------------------------------------------------------------


def test_reference_problems_are_reported_together_with_field_problems(data: dict[str, Any]) -> None:
    cohort(data, "pilot-a")["checklist"][1] = "escalate_48h"
    cohort(data, "pilot-a")["plan"]["primary_behavior"] = "one_on_ones"
    member(data, "pilot-a", "bruno@example.com")["timezone"] = "Nowhere/Land"
    cohort(data, "wave-b")["members"].append({"email": "ana@example.com", "platform": "slack"})
    cohort(data, "wave-b")["schedule"] = {"digest": {"day": "funday", "time": "16:00"}}

    found = problems(data)

    assert [p.split(": ", 2)[1] for p in found] == [
        "cohorts[pilot-a].members[bruno@example.com].timezone",
        "cohorts[wave-b].schedule.digest.day",
        "cohorts[pilot-a].checklist",
        "cohorts[pilot-a].plan.primary_behavior",
        "cohorts[wave-b].members[ana@example.com]",
    ]


def test_several_reference_problems_are_reported_at_once(data: dict[str, Any]) -> None:
    cohort(data, "pilot-a")["checklist"] = ["decision_huddle", "escalate_48h", "feedback"]
    cohort(data, "wave-b")["plan"]["method"] = "stepped_wedge"
    data["behaviors"].append(dict(data["behaviors"][0]))

    found = problems(data)

    assert len(found) == 4, found
    assert "duplicate behavior key 'decision_huddle'" in found[0]
    assert "unknown behavior 'escalate_48h'" in found[1]
    assert "unknown behavior 'feedback'" in found[2]
    assert "stepped_wedge needs a comparison cohort" in found[3]


def test_a_behavior_with_a_bad_field_is_not_also_an_unknown_behavior(data: dict[str, Any]) -> None:
    data["behaviors"][1]["answer"] = "maybe"  # escalate_24h, in both checklists

    problem = only_problem(data)

    assert problem.startswith("bad.yaml: behaviors[escalate_24h].answer: ")


def test_a_cohort_with_a_bad_field_is_still_a_known_comparison(data: dict[str, Any]) -> None:
    del cohort(data, "wave-b")["starts"]

    assert only_problem(data) == "bad.yaml: cohorts[wave-b].starts: is required"


def test_problems_past_fifty_are_counted_on_a_last_line(data: dict[str, Any]) -> None:
    cohort(data, "wave-b")["members"] = [{"email": f"m{i}@example.com", "platform": "slack", "timezone": "EST"} for i in range(60)]

    found = problems(data)

    assert len(found) == 51
    assert all("'EST' is a fixed UTC-5 zone" in p for p in found[:50])
    assert found[50] == "bad.yaml: ... and 10 more problems"


# --- wording: errors point to sections of docs/program.md ----------------------------------

DOCS = Path(__file__).resolve().parents[2] / "docs" / "program.md"


def _anchors() -> set[str]:
    """The anchors GitHub gives the headings of docs/program.md."""
    anchors = set()
    for line in DOCS.read_text(encoding="utf-8").splitlines():
        if line.startswith("#"):
            title = line.lstrip("#").strip().lower().replace("`", "")
            anchors.add("".join(c for c in title if c.isalnum() or c in "-_ ").replace(" ", "-"))
    return anchors


@pytest.mark.parametrize(
    "break_it",
    [
        pytest.param(lambda d: d.__setitem__("sponsers", []), id="top-level-key"),
        pytest.param(lambda d: d["behaviors"][0].__setitem__("nudge", "x"), id="behavior-key"),
        pytest.param(lambda d: cohort(d, "pilot-a").__setitem__("sponsers", []), id="cohort-key"),
        pytest.param(lambda d: cohort(d, "pilot-a")["schedule"].__setitem__("nudges", {}), id="schedule-key"),
        pytest.param(lambda d: cohort(d, "pilot-a")["limits"].__setitem__("quiet", 1), id="limits-key"),
        pytest.param(lambda d: cohort(d, "pilot-a")["plan"].__setitem__("metric", 1), id="plan-key"),
        pytest.param(lambda d: cohort(d, "pilot-a")["sponsor_channel"].__setitem__("name", 1), id="channel-key"),
        pytest.param(lambda d: member(d, "pilot-a", "ana@example.com").__setitem__("phone", 1), id="member-key"),
        pytest.param(lambda d: member(d, "pilot-a", "ana@example.com").__setitem__("timezone", "EST"), id="zone"),
        pytest.param(lambda d: cohort(d, "pilot-a")["schedule"]["nudge"].__setitem__("time", "10am"), id="time"),
        pytest.param(lambda d: cohort(d, "pilot-a")["checklist"].pop(), id="checklist"),
        pytest.param(lambda d: cohort(d, "wave-b")["plan"].__setitem__("method", "stepped_wedge"), id="plan-method"),
    ],
)
def test_problems_point_to_a_section_of_the_program_docs_that_exists(data: dict[str, Any], break_it: Any) -> None:
    break_it(data)

    problem = only_problem(data)

    assert "reference" not in problem  # there is no "program file reference"; docs/program.md is it
    link = problem.split("see docs/program.md#", 1)[1].split(" ")[0].rstrip(")")
    assert link in _anchors(), problem


# --- warnings: loads, but probably not meant --------------------------------------------------


def warned(data: dict[str, Any]) -> list[tuple[str, str]]:
    """The warnings on a valid program, as (path, message) with list items by position."""
    return [(".".join(map(str, w.path)), w.message) for w in warnings(parse_program(data))]


def test_the_example_program_has_no_warnings(data: dict[str, Any]) -> None:
    assert warned(data) == []


def test_a_cohort_without_a_sponsor_channel_is_warned_it_gets_no_digest(data: dict[str, Any]) -> None:
    del cohort(data, "wave-b")["sponsor_channel"]

    assert warned(data) == [("cohorts.1.sponsor_channel", "not set: the cohort will get no digest (see docs/program.md#channels)")]


def test_a_treated_cohort_without_coaches_or_review_channel_is_warned_nobody_reviews_its_ai_feedback(data: dict[str, Any]) -> None:
    del cohort(data, "pilot-a")["coaches"]
    del cohort(data, "pilot-a")["review_channel"]

    assert [path for path, _ in warned(data)] == ["cohorts.0.coaches", "cohorts.0.review_channel"]
    assert "nobody to review it" in warned(data)[0][1]


def test_a_comparison_cohort_never_treated_needs_no_coaches(data: dict[str, Any]) -> None:
    del cohort(data, "wave-b")["treatment_starts"]
    del cohort(data, "wave-b")["coaches"]
    del cohort(data, "wave-b")["review_channel"]

    assert warned(data) == []


def test_a_first_analysis_before_the_minimum_exposure_is_warned(data: dict[str, Any]) -> None:
    cohort(data, "pilot-a")["plan"]["first_analysis"] = "2026-01-26"  # the cohort's week 4; exposure needs 6

    [(path, message)] = warned(data)

    assert path == "cohorts.0.plan.first_analysis"
    assert "week 4, before any member can have answered the plan's min_exposure_weeks 6 weeks" in message


def test_a_first_analysis_after_the_cohort_ends_is_warned(data: dict[str, Any]) -> None:
    cohort(data, "pilot-a")["plan"]["first_analysis"] = "2026-06-01"

    [(path, message)] = warned(data)

    assert path == "cohorts.0.plan.first_analysis"
    assert "after the cohort's last week 12" in message


def test_a_cohort_smaller_than_min_group_size_is_warned_its_figures_are_withheld(data: dict[str, Any]) -> None:
    cohort(data, "wave-b")["members"] = cohort(data, "wave-b")["members"][:4]

    assert warned(data) == [("cohorts.1.members", "4 members, fewer than min_group_size 5: every figure in its digest will be withheld")]


def test_members_without_a_timezone_are_warned_they_get_utc_times(data: dict[str, Any]) -> None:
    del member(data, "pilot-a", "ana@example.com")["timezone"]
    del member(data, "pilot-a", "bruno@example.com")["timezone"]

    [(path, message)] = warned(data)

    assert path == "cohorts.0.members"
    assert message.startswith("2 members without a timezone (such as ana@example.com) get their messages on UTC time")
