"""Fixtures shared by the use-case tests of bot/."""

from __future__ import annotations

from pathlib import Path

import pytest

from bot.files import load_program
from storage.db import Database, upgrade
from tests.bot.test_digests import EXAMPLE, answer_every_week, load


@pytest.fixture
async def loaded_sqlite(tmp_path: Path) -> str:
    url = f"sqlite:///{tmp_path / 'r.db'}"
    upgrade(url)
    db = Database(url)
    await load(db, load_program(str(EXAMPLE)))
    await answer_every_week(db)
    await db.close()
    return url
