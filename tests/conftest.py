"""Shared fixtures: a ``db_url`` for every storage test on SQLite and on PostgreSQL."""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from pathlib import Path

import psycopg
import pytest
from hypothesis import settings as hypothesis_settings

from storage.db import Database, upgrade

# Set by .ci/run. When it is set the PostgreSQL runs are mandatory: an unreachable server
# fails them. When it is not, the local default is tried and, if unreachable, those runs
# are skipped with the reason printed by pytest's -ra summary.
PG_ENV = "TEST_DATABASE_URL"
PG_DEFAULT = "postgresql://postgres@127.0.0.1:5432/test"


def _postgres_base() -> tuple[str | None, str | None]:
    url = os.environ.get(PG_ENV)
    if url:
        return url, None
    try:
        psycopg.connect(PG_DEFAULT, connect_timeout=2).close()
    except psycopg.Error as exc:
        return None, f"no PostgreSQL at {PG_DEFAULT} ({str(exc).strip().splitlines()[0]}); set {PG_ENV} to run these"
    return PG_DEFAULT, None


PG_URL, PG_SKIP_REASON = _postgres_base()

# In CI the property and fuzz tests try the same examples on every run, so a red CI points at
# a change rather than at luck; run locally, they keep exploring new ones.
hypothesis_settings.register_profile("ci", derandomize=True)
if os.environ.get("CI"):
    hypothesis_settings.load_profile("ci")


@contextmanager
def _postgres_schema() -> Iterator[str]:
    """A URL whose connections use a fresh, private schema on the PostgreSQL server."""
    if PG_URL is None:
        pytest.skip(PG_SKIP_REASON)
    schema = f"t_{uuid.uuid4().hex[:12]}"
    plain = PG_URL.replace("postgresql+psycopg://", "postgresql://")
    with psycopg.connect(plain, autocommit=True) as conn:
        conn.execute(f'CREATE SCHEMA "{schema}"')
    sep = "&" if "?" in PG_URL else "?"
    try:
        yield f"{PG_URL}{sep}options=-csearch_path%3D{schema}"
    finally:
        with psycopg.connect(plain, autocommit=True) as conn:
            conn.execute(f'DROP SCHEMA "{schema}" CASCADE')


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """An empty database: a fresh SQLite file, or a fresh schema on the PostgreSQL server."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'test.db'}"
        return
    with _postgres_schema() as url:
        yield url


@pytest.fixture
async def pg(request: pytest.FixtureRequest) -> AsyncIterator[tuple[Database, str]]:
    """A migrated PostgreSQL database and its URL, for what only PostgreSQL does."""
    with _postgres_schema() as url:
        upgrade(url)
        database = Database(url)
        yield database, url
        await database.close()


@pytest.fixture
async def db(db_url: str) -> AsyncIterator[Database]:
    """A migrated database (through the real Alembic migrations, not create_all)."""
    upgrade(db_url)
    database = Database(db_url)
    yield database
    await database.close()
