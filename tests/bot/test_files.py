"""Tests for bot/files.py: program and scenario files read from disk, and every unreadable one explained."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from bot.files import MAX_FILE_BYTES, load_program, load_scenarios, read_program
from nudges.program import Program, ProgramError
from nudges.scenarios import ScenarioError

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "program.yaml"


@pytest.fixture
def data() -> dict[str, Any]:
    """A fresh, mutable copy of examples/program.yaml as parsed YAML."""
    return yaml.safe_load(EXAMPLE.read_text(encoding="utf-8"))


def cohort(data: dict[str, Any], key: str) -> dict[str, Any]:
    return next(c for c in data["cohorts"] if c["key"] == key)


def load_error(path: Path) -> str:
    with pytest.raises(ProgramError) as caught:
        load_program(str(path))
    message = str(caught.value)
    assert "\n" not in message
    return message


# --- program files --------------------------------------------------------------------


def test_a_valid_file_written_to_disk_loads(tmp_path: Path, data: dict[str, Any]) -> None:
    path = tmp_path / "program.yaml"
    path.write_text(yaml.safe_dump(data), encoding="utf-8")

    assert isinstance(load_program(str(path)), Program)


def test_problems_in_a_file_on_disk_name_its_path_and_line(tmp_path: Path, data: dict[str, Any]) -> None:
    cohort(data, "pilot-a")["comparison"] = "pilot-a"
    path = tmp_path / "bad.yaml"
    text = yaml.safe_dump(data)
    path.write_text(text, encoding="utf-8")
    line = text.splitlines().index("  comparison: pilot-a") + 1

    message = load_error(path)

    assert message.startswith(f"{path}:{line}: cohorts[pilot-a].comparison: ")


def test_file_that_is_a_list_is_rejected(tmp_path: Path) -> None:
    path = tmp_path / "list.yaml"
    path.write_text("- program\n- cohorts\n", encoding="utf-8")

    message = load_error(path)

    assert message.startswith(f"{path}: ")
    assert "must be a mapping" in message


def test_empty_file_is_rejected(tmp_path: Path) -> None:
    path = tmp_path / "empty.yaml"
    path.write_text("", encoding="utf-8")

    assert "must be a mapping" in load_error(path)


def test_invalid_yaml_is_reported_with_its_line_number(tmp_path: Path) -> None:
    path = tmp_path / "broken.yaml"
    path.write_text(
        "program: Pilot\nmin_group_size: 5\nbehaviors:\n  - key: [decision_huddle\ncohorts: []\n",
        encoding="utf-8",
    )

    message = load_error(path)

    assert message.startswith(f"{path}: not valid YAML at line 5")


def test_invalid_yaml_in_given_text_names_the_path(tmp_path: Path) -> None:
    with pytest.raises(ProgramError) as caught:
        load_program("inline.yaml", text="program: x\n  indented: wrongly\n")

    assert str(caught.value).startswith("inline.yaml: not valid YAML at line 2")


def test_missing_file_is_reported_as_unreadable(tmp_path: Path) -> None:
    path = tmp_path / "nowhere.yaml"

    message = load_error(path)

    assert message.startswith(f"{path}: cannot read the file")


def test_directory_is_reported_as_unreadable(tmp_path: Path) -> None:
    message = load_error(tmp_path)

    assert message.startswith(f"{tmp_path}: cannot read the file")


def test_file_that_is_not_utf8_is_rejected(tmp_path: Path) -> None:
    path = tmp_path / "latin1.yaml"
    path.write_bytes("program: Liderança\n".encode("latin-1"))

    message = load_error(path)

    assert message == f"{path}: the file is not UTF-8 text"


def test_oversized_file_is_rejected_without_parsing(tmp_path: Path) -> None:
    path = tmp_path / "huge.yaml"
    path.write_bytes(b"#" * (MAX_FILE_BYTES + 1))

    message = load_error(path)

    assert message.startswith(f"{path}: the file is larger than")


# --- line numbers, unquoted times, warnings ------------------------------------------------

# A small program; the numbers on the right are the line numbers the tests below rely on.
SMALL = """\
program: Pilot
behaviors:
  - key: huddle
    question: Did you huddle?
    nudges: [Huddle on Tuesday.]
  - key: escalate
    question: Did you escalate?
    nudges: [Escalate within a day.]
  - key: feedback
    question: Did you give feedback?
    nudges: [Name one thing.]
cohorts:
  - key: pilot
    name: Pilot
    starts: 2026-01-05
    weeks: 12
    checklist: [huddle, escalate, feedback]
    sponsor_channel: {platform: slack, id: C0SPONSOR}
    review_channel: {platform: slack, id: C0REVIEW}
    coaches: [coach@example.com]
    schedule:
      checklist: {day: monday, time: 10:00}
      nudge: {day: thursday, time: 9:30}
    plan:
      primary_behavior: huddle
      first_analysis: 2026-03-02
    members:
      - {email: ana@example.com, platform: slack, timezone: Europe/Lisbon}
      - {email: bo@example.com, platform: slack, timezone: Europe/Lisbon}
      - {email: cy@example.com, platform: slack, timezone: Europe/Lisbon}
      - {email: di@example.com, platform: slack, timezone: Europe/Lisbon}
      - {email: ed@example.com, platform: slack, timezone: Europe/Lisbon}
"""


def _line_of(text: str, fragment: str) -> int:
    return next(n for n, line in enumerate(text.splitlines(), 1) if fragment in line)


def test_the_small_program_loads_without_warnings() -> None:
    loaded = read_program("small.yaml", SMALL)

    assert loaded.warnings == []
    assert [c.key for c in loaded.program.cohorts] == ["pilot"]


def test_unquoted_times_are_read_as_the_times_they_look_like() -> None:
    schedule = load_program("small.yaml", SMALL).cohorts[0].schedule

    assert schedule.checklist.time == "10:00"  # YAML 1.1 alone would make this 600
    assert schedule.nudge.time == "09:30"


def test_an_unquoted_time_hashes_as_the_quoted_one() -> None:
    quoted = SMALL.replace("time: 10:00", 'time: "10:00"').replace("time: 9:30", "time: '09:30'")

    assert load_program("a.yaml", quoted).content_hash() == load_program("b.yaml", SMALL).content_hash()


def test_five_different_mistakes_are_reported_together_each_with_its_line() -> None:
    text = (
        SMALL.replace("[huddle, escalate, feedback]", "[huddle, escalate, feedbak]")  # unknown behavior
        .replace("{day: thursday, time: 9:30}", "{day: thursday, time: 9:30, hour: 9}")  # unknown key
        .replace("primary_behavior: huddle", "primary_behavior: one_on_ones")  # not in the checklist
        .replace(
            "{email: bo@example.com, platform: slack, timezone: Europe/Lisbon}", "{email: bo@example.com, platform: slack, timezone: EST}"
        )
        .replace("{email: di@example.com", "{email: ANA@example.com")  # the same member twice
    )

    with pytest.raises(ProgramError) as caught:
        load_program("five.yaml", text)

    assert caught.value.problems == [
        f"five.yaml:{_line_of(text, 'checklist: [')}: cohorts[pilot].checklist: unknown behavior 'feedbak' "
        "(known: escalate, feedback, huddle)",
        f"five.yaml:{_line_of(text, 'hour: 9')}: cohorts[pilot].schedule.nudge.hour: unknown key "
        "(see docs/program.md#schedule for the keys it takes)",
        f"five.yaml:{_line_of(text, 'one_on_ones')}: cohorts[pilot].plan.primary_behavior: 'one_on_ones' is not in this cohort's checklist",
        f"five.yaml:{_line_of(text, 'bo@example.com')}: cohorts[pilot].members[bo@example.com].timezone: 'EST' is a fixed UTC-5 zone "
        "without daylight saving; use America/New_York (or America/Panama for no DST) (see docs/program.md#time-zones)",
        f"five.yaml:{_line_of(text, 'ANA@example.com')}: cohorts[pilot].members[ANA@example.com]: duplicate member ana@example.com "
        "(already in cohort pilot)",
    ]


def test_a_missing_key_is_reported_on_the_line_of_what_lacks_it() -> None:
    text = SMALL.replace("    weeks: 12\n", "")

    with pytest.raises(ProgramError) as caught:
        load_program("p.yaml", text)

    assert str(caught.value) == f"p.yaml:{_line_of(text, '- key: pilot')}: cohorts[pilot].weeks: is required"


def test_a_key_given_twice_is_reported_on_the_line_whose_value_counts() -> None:
    text = SMALL.replace("    weeks: 12\n", "    weeks: 12\n    weeks: 0\n")

    with pytest.raises(ProgramError) as caught:
        load_program("p.yaml", text)

    assert str(caught.value).startswith(f"p.yaml:{_line_of(text, 'weeks: 0')}: cohorts[pilot].weeks: ")


def test_problems_under_an_alias_are_reported_on_the_anchor_s_line() -> None:
    text = SMALL.replace("    schedule:\n", "    schedule: &weekly\n") + "  - key: later\n    schedule: *weekly\n"
    text = text.replace("time: 9:30}", "time: 9:30, hour: 9}")

    with pytest.raises(ProgramError) as caught:
        load_program("p.yaml", text)

    hour = _line_of(text, "hour: 9")
    assert f"p.yaml:{hour}: cohorts[pilot].schedule.nudge.hour: unknown key" in str(caught.value)
    assert f"p.yaml:{hour}: cohorts[later].schedule.nudge.hour: unknown key" in str(caught.value)


def test_warnings_name_the_file_and_the_line_of_the_cohort() -> None:
    text = SMALL.replace("    sponsor_channel: {platform: slack, id: C0SPONSOR}\n", "")

    loaded = read_program("p.yaml", text)

    assert loaded.warnings == [
        f"p.yaml:{_line_of(text, '- key: pilot')}: cohorts[pilot].sponsor_channel: not set: the cohort will get no digest "
        "(see docs/program.md#channels)"
    ]


# --- scenario files -----------------------------------------------------------------------


def test_invalid_yaml_names_the_line(tmp_path: Path) -> None:
    path = tmp_path / "s.yaml"
    path.write_text("scenarios:\n  - key: a\n    title: [unclosed\n", encoding="utf-8")

    with pytest.raises(ScenarioError, match=r"s\.yaml: not valid YAML at line \d+"):
        load_scenarios(str(path))


def test_missing_file_is_explained(tmp_path: Path) -> None:
    with pytest.raises(ScenarioError, match=r"nothing\.yaml: cannot read the file"):
        load_scenarios(str(tmp_path / "nothing.yaml"))
