"""Tests for bot/programs.py: the program in force as running processes see it."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from typing import Any

import pytest

from bot import programs
from bot.files import load_program
from bot.programs import ProgramSource, store_program
from nudges.program import parse_program
from storage.db import Database
from storage.programs import current_program

NOW = datetime(2026, 1, 5, 9, 0, tzinfo=UTC)


async def test_requests_arriving_together_parse_the_program_once(db: Database, monkeypatch: pytest.MonkeyPatch) -> None:
    program = load_program("examples/program.yaml")
    await store_program(db, program, "test", NOW)
    parsed = []

    async def slow_current_program(session: Any) -> Any:  # a large program takes a while to parse
        parsed.append(1)
        await asyncio.sleep(0.05)
        return await current_program(session)

    monkeypatch.setattr(programs, "current_program", slow_current_program)
    source = ProgramSource(db)
    seen = await asyncio.gather(*(source.get() for _ in range(20)))  # the first burst after a start
    assert len(parsed) == 1
    assert seen[0] == program and all(p is seen[0] for p in seen)


async def test_a_program_loaded_later_is_in_force_after_the_recheck(db: Database) -> None:
    program = load_program("examples/program.yaml")
    await store_program(db, program, "test", NOW)
    source = ProgramSource(db, recheck=0)
    first = await source.get()
    assert await source.get() is first  # nothing new was loaded: not parsed again
    data = program.model_dump(mode="json")
    data["behaviors"][0]["question"] = "Did you hold a decision huddle this week?"
    await store_program(db, parse_program(data, "test"), "test", NOW)
    assert (await source.get()).behaviors[0].question == "Did you hold a decision huddle this week?"
