"""The program and scenario files read from disk: ``nudges`` validates the data, this reads it.

Every problem is raised as the file kind's error (ProgramError, ScenarioError) naming the file.
"""

from __future__ import annotations

from typing import Any

import yaml

from nudges.program import Program, ProgramError, parse_program
from nudges.scenarios import ScenarioBook, ScenarioError, parse_scenarios

MAX_FILE_BYTES = 2_000_000


def load_program(path: str, text: str | None = None) -> Program:
    """Read and validate a program file. ``text`` may be given to avoid reading from disk."""
    return parse_program(read_yaml(path, text), path)


def load_scenarios(path: str, text: str | None = None) -> ScenarioBook:
    """Read and validate a scenario file. ``text`` may be given to avoid reading from disk."""
    return parse_scenarios(read_yaml(path, text, ScenarioError), path)


def read_yaml(path: str, text: str | None = None, error: type[ProgramError] = ProgramError) -> Any:
    """Read a YAML file (size-capped, UTF-8); problems are raised as ``error`` naming the file."""
    if text is None:
        try:
            with open(path, "rb") as handle:
                raw = handle.read(MAX_FILE_BYTES + 1)
        except OSError as exc:
            raise error(f"{path}: cannot read the file ({exc.strerror or exc})") from None
        if len(raw) > MAX_FILE_BYTES:
            raise error(f"{path}: the file is larger than {MAX_FILE_BYTES // 1_000_000} MB")
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError:
            raise error(f"{path}: the file is not UTF-8 text") from None
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(exc, "problem", None) or "invalid YAML"
        raise error(f"{path}: not valid YAML{where}: {problem}") from None
    except ValueError as exc:  # PyYAML's own date and number constructors, e.g. 2026-13-45
        raise error(f"{path}: not valid YAML: {exc}") from None
    except RecursionError:
        raise error(f"{path}: not valid YAML: nested too deeply") from None
