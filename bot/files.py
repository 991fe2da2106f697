"""The program and scenario files read from disk: ``nudges`` validates the data, this reads it.

Every problem is raised as the file kind's error (ProgramError, ScenarioError) naming the file,
and a program file's problems and warnings carry the line they are on.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import yaml

from nudges.program import Program, ProgramError, parse_program
from nudges.program_problems import Lines, Path, render
from nudges.program_rules import warnings
from nudges.scenarios import ScenarioBook, ScenarioError, parse_scenarios

MAX_FILE_BYTES = 2_000_000


@dataclass(frozen=True)
class ProgramFile:
    """A valid program file, and what in it loads but is probably not meant (``file:line: field: problem``)."""

    program: Program
    warnings: list[str]


def read_program(path: str, text: str | None = None) -> ProgramFile:
    """Read and validate a program file, with its warnings. ``text`` may be given to avoid reading from disk."""
    data, lines = _parse(path, _read_text(path, text, ProgramError), ProgramError)
    program = parse_program(data, path, lines, loading=True)
    return ProgramFile(program, render(path, data, warnings(program), lines))


def load_program(path: str, text: str | None = None) -> Program:
    """Read and validate a program file. ``text`` may be given to avoid reading from disk."""
    return read_program(path, text).program


def load_scenarios(path: str, text: str | None = None) -> ScenarioBook:
    """Read and validate a scenario file. ``text`` may be given to avoid reading from disk."""
    return parse_scenarios(read_yaml(path, text, ScenarioError), path)


def read_yaml(path: str, text: str | None = None, error: type[ProgramError] = ProgramError) -> Any:
    """Read a YAML file (size-capped, UTF-8); problems are raised as ``error`` naming the file."""
    return _parse(path, _read_text(path, text, error), error)[0]


def _read_text(path: str, text: str | None, error: type[ProgramError]) -> str:
    if text is not None:
        return text
    try:
        with open(path, "rb") as handle:
            raw = handle.read(MAX_FILE_BYTES + 1)
    except OSError as exc:
        raise error(f"{path}: cannot read the file ({exc.strerror or exc})") from None
    if len(raw) > MAX_FILE_BYTES:
        raise error(f"{path}: the file is larger than {MAX_FILE_BYTES // 1_000_000} MB")
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        raise error(f"{path}: the file is not UTF-8 text") from None


class _Loader(yaml.SafeLoader):
    """PyYAML's safe loader, except that an unquoted ``10:00`` stays the text "10:00".

    PyYAML follows YAML 1.1, which reads ``10:00`` as the base-60 integer 600 (and ``9:30`` as
    570, while ``09:00`` stays text), so an unquoted time would fail as "not a valid string" or,
    worse, half the times in a file would. YAML 1.2 dropped base 60, and no key of these files
    takes a number written with a colon, so every such scalar is kept as written.
    """


def _text_if_base_60(loader: yaml.SafeLoader, node: yaml.Node) -> Any:
    if not isinstance(node, yaml.ScalarNode):  # an explicit !!int on a list, say
        raise yaml.constructor.ConstructorError(None, None, "expected a number", node.start_mark)
    if ":" in node.value:
        return loader.construct_scalar(node)
    return loader.construct_yaml_int(node) if node.tag.endswith(":int") else loader.construct_yaml_float(node)


_Loader.add_constructor("tag:yaml.org,2002:int", _text_if_base_60)
_Loader.add_constructor("tag:yaml.org,2002:float", _text_if_base_60)


def _parse(path: str, text: str, error: type[ProgramError]) -> tuple[Any, Lines]:
    """The data in ``text`` and the line of each key and list item; problems raised as ``error``."""
    try:
        return _compose(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(exc, "problem", None) or "invalid YAML"
        raise error(f"{path}: not valid YAML{where}: {problem}") from None
    except ValueError as exc:  # PyYAML's own date and number constructors, e.g. 2026-13-45
        raise error(f"{path}: not valid YAML: {exc}") from None
    except RecursionError:
        raise error(f"{path}: not valid YAML: nested too deeply") from None


def _compose(text: str) -> tuple[Any, Lines]:
    """What ``yaml.safe_load`` does, keeping the composed nodes for their lines. Lines are read after
    construction, which has merged ``<<`` keys into the mappings that use them."""
    loader = _Loader(text)
    try:
        node = loader.get_single_node()
        return (loader.construct_document(node), _Lines(node)) if node is not None else (None, {})
    finally:
        loader.dispose()


class _Lines(Mapping[Path, int]):
    """The 1-based line of every mapping key and list item, by its path in the constructed data.

    An aliased node is walked once, where it is first reached, and a path through any other
    place it appears resolves to that first one: a file of aliases of aliases costs its size
    rather than its expansion, and every path still finds its line.
    """

    def __init__(self, root: yaml.Node) -> None:
        self._lines: dict[Path, int] = {}
        self._aliases: dict[Path, Path] = {}
        self._walk(root)

    def __getitem__(self, path: Path) -> int:
        if path in self._lines:
            return self._lines[path]
        for end in range(len(path) - 1, 0, -1):
            if (first := self._aliases.get(path[:end])) is not None:
                return self[(*first, *path[end:])]
        raise KeyError(path)

    def __iter__(self) -> Iterator[Path]:
        return iter(self._lines)

    def __len__(self) -> int:
        return len(self._lines)

    def _walk(self, root: yaml.Node) -> None:
        # A stack, not recursion: PyYAML composes documents nested deeper than Python recurses.
        first: dict[int, Path] = {}
        stack: list[tuple[Path, yaml.Node]] = [((), root)]
        while stack:
            path, node = stack.pop()
            if id(node) in first:
                self._aliases[path] = first[id(node)]
                continue
            first[id(node)] = path
            if isinstance(node, yaml.MappingNode):
                # A key given twice keeps its last value in the data, so its last line here.
                children = {(*path, key.value): (key, value) for key, value in node.value if isinstance(key, yaml.ScalarNode)}
            elif isinstance(node, yaml.SequenceNode):
                children = {(*path, i): (item, item) for i, item in enumerate(node.value)}
            else:
                continue
            for child, (marked, value) in children.items():
                self._lines[child] = marked.start_mark.line + 1
                stack.append((child, value))
