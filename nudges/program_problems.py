"""How a program file's problems reach its owner: one line each, ``file:line: field: problem``, at most fifty."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

__all__ = ["MAX_PROBLEMS", "FieldError", "Lines", "Path", "Problem", "ProgramError", "describe", "label", "relative", "render", "section"]

# A place in the parsed file: mapping keys as text, list items by position.
Path = tuple[str | int, ...]
# The line (1-based) where each path's key or list item starts in the YAML; see bot/files.py.
Lines = Mapping[Path, int]

# Past this many, the first ones in the file are shown and the rest counted: a file with
# hundreds of problems is usually one mistake repeated, and the terminal should still show the top.
MAX_PROBLEMS = 50
DOCS = "docs/program.md"


class ProgramError(ValueError):
    """A program file problem, worded for the program owner at the terminal."""

    def __init__(self, *problems: str) -> None:
        super().__init__("\n".join(problems))
        self.problems = list(problems)


class FieldError(ValueError):
    """Raised inside a model validator so the reported location is the offending field (a dotted path
    such as ``scenarios[2].key``, relative to that model)."""

    def __init__(self, field: str, problem: str) -> None:
        super().__init__(problem)
        self.field = field
        self.problem = problem


@dataclass(frozen=True)
class Problem:
    """One thing wrong (or, for a warning, probably not meant) at one place in the file."""

    path: Path
    message: str


def section(path: Path) -> str:
    """The docs/program.md section that documents the object holding ``path``, as a link."""
    names = [part for part in path if isinstance(part, str)]
    anchor = "top-level-keys"
    if names and names[0] in ("behaviors", "cohorts"):
        anchor = names[0]
    if len(names) > 1 and names[0] == "cohorts":
        if names[1] in ("schedule", "limits", "plan", "members"):
            anchor = names[1]
        elif names[1] in ("sponsor_channel", "review_channel"):
            anchor = "channels"
    return f"{DOCS}#{anchor}"


def describe(err: Mapping[str, Any]) -> Problem:
    """One pydantic error as a Problem at the offending field."""
    loc: Path = tuple(err["loc"])
    problem = err["msg"]
    cause = (err.get("ctx") or {}).get("error")
    if isinstance(cause, FieldError):
        loc = (*loc, *relative(cause.field))
        problem = cause.problem
    elif err["type"] == "extra_forbidden":
        problem = f"unknown key (see {section(loc[:-1])} for the keys it takes)"
    elif err["type"] == "missing":
        problem = "is required"
    elif problem.startswith("Value error, "):
        problem = problem.removeprefix("Value error, ")
    return Problem(loc, problem)


def render(source: str, data: Any, problems: Sequence[Problem], lines: Lines | None = None) -> list[str]:
    """One line per problem, in file order when lines are known, capped at MAX_PROBLEMS."""
    located = [(_line(lines, p.path) if lines else None, p) for p in problems]
    if lines:
        located.sort(key=lambda pair: pair[0] or 0)  # stable: same line keeps the order found
    text = [
        f"{source}{f':{line}' if line else ''}: {label(data, list(problem.path))}: {problem.message}"
        for line, problem in located[:MAX_PROBLEMS]
    ]
    if len(located) > MAX_PROBLEMS:
        text.append(f"{source}: ... and {len(located) - MAX_PROBLEMS} more problems")
    return text


def _line(lines: Lines, path: Path) -> int | None:
    """The line of ``path``, or of its nearest ancestor in the file (a missing key: the object lacking it)."""
    for end in range(len(path), 0, -1):
        try:
            line = lines.get(path[:end])
        except TypeError:  # a key PyYAML built as something unhashable in a tuple
            line = None
        if line is not None:
            return line
    return None


def relative(field: str) -> list[str | int]:
    """Split 'scenarios[0].key' into ['scenarios', 0, 'key']."""
    parts: list[str | int] = []
    for piece in field.split("."):
        name, _, index = piece.partition("[")
        parts.append(name)
        if index:
            parts.append(int(index.rstrip("]")))
    return parts


def _printable(name: object) -> str:
    """Text from the file as typed, or quoted if it holds control characters (one line per problem)."""
    text = str(name)
    return text if text.isprintable() else repr(text)


def label(data: Any, loc: list[Any]) -> str:
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
