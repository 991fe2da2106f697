"""Tests for bot/files.py: program and scenario files read from disk, and every unreadable one explained."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from bot.files import MAX_FILE_BYTES, load_program, load_scenarios
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


# --- scenario files -----------------------------------------------------------------------


def test_invalid_yaml_names_the_line(tmp_path: Path) -> None:
    path = tmp_path / "s.yaml"
    path.write_text("scenarios:\n  - key: a\n    title: [unclosed\n", encoding="utf-8")

    with pytest.raises(ScenarioError, match=r"s\.yaml: not valid YAML at line \d+"):
        load_scenarios(str(path))


def test_missing_file_is_explained(tmp_path: Path) -> None:
    with pytest.raises(ScenarioError, match=r"nothing\.yaml: cannot read the file"):
        load_scenarios(str(tmp_path / "nothing.yaml"))
