"""Database URLs, engines, sessions and migrations for SQLite and PostgreSQL alike."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import create_engine, event, make_url
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import URL
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker, create_async_engine

MIGRATIONS = Path(__file__).parent / "migrations"

_DRIVERS = {
    # scheme -> (async driver, sync driver); psycopg 3 serves both.
    "sqlite": ("sqlite+aiosqlite", "sqlite+pysqlite"),
    "postgresql": ("postgresql+psycopg", "postgresql+psycopg"),
}


class DatabaseUrlError(ValueError):
    pass


def _parse(url: str) -> tuple[URL, str]:
    try:
        parsed = make_url(url)
    except Exception:
        raise DatabaseUrlError("is not a database URL (expected sqlite:///file.db or postgresql://user@host/db)") from None
    backend = parsed.get_backend_name()
    if backend == "postgres":  # Heroku-style URLs
        backend = "postgresql"
    if backend not in _DRIVERS:
        raise DatabaseUrlError(f"uses {backend!r}; Reinforce supports sqlite and postgresql")
    return parsed, backend


def check_url(url: str) -> str:
    """Validate a DATABASE_URL; raises DatabaseUrlError with a short reason."""
    _parse(url)
    return url


def async_url(url: str) -> URL:
    parsed, backend = _parse(url)
    return parsed.set(drivername=_DRIVERS[backend][0])


def sync_url(url: str) -> URL:
    parsed, backend = _parse(url)
    return parsed.set(drivername=_DRIVERS[backend][1])


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    # WAL lets the web and worker processes read while one writes; the busy timeout makes
    # a second writer wait instead of failing; SQLite enforces foreign keys only when asked.
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA busy_timeout=10000")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.close()


class Database:
    """One async engine and its session factory; ``session()`` is a unit of work."""

    def __init__(self, url: str, **engine_args: Any) -> None:
        self.url = url
        # pool_pre_ping: after PostgreSQL restarts, or drops idle connections, the pool holds dead
        # ones; a ping at checkout replaces them, so the next request does not fail (SQLite has no server).
        self.engine: AsyncEngine = create_async_engine(
            async_url(url), pool_pre_ping=async_url(url).get_backend_name() == "postgresql", **engine_args
        )
        if self.engine.dialect.name == "sqlite":
            event.listen(self.engine.sync_engine, "connect", _sqlite_pragmas)
        self._sessions = async_sessionmaker(self.engine, expire_on_commit=False)

    @property
    def dialect(self) -> str:
        return self.engine.dialect.name

    @asynccontextmanager
    async def session(self) -> AsyncIterator[AsyncSession]:
        """One transaction: committed when the block ends, rolled back if it raises."""
        async with self._sessions() as session, session.begin():
            yield session

    async def close(self) -> None:
        await self.engine.dispose()


def insert(session: AsyncSession, table: Any) -> Any:
    """The dialect's INSERT, which has ``on_conflict_do_nothing/update`` on both databases."""
    return (postgresql.insert if session.get_bind().dialect.name == "postgresql" else sqlite.insert)(table)


def alembic_config(url: str) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    # Alembic runs with the synchronous driver; '%' must be escaped for configparser.
    config.set_main_option("sqlalchemy.url", sync_url(url).render_as_string(hide_password=False).replace("%", "%%"))
    return config


def upgrade(url: str, revision: str = "head") -> None:
    """Apply migrations up to ``revision`` (blocking: call from a thread inside an event loop)."""
    command.upgrade(alembic_config(url), revision)


def downgrade(url: str, revision: str = "base") -> None:
    command.downgrade(alembic_config(url), revision)


def schema_problem(url: str) -> str | None:
    """None when the database is at the latest migration; otherwise what the operator should do.

    Blocking (it connects with the synchronous driver): call it from a thread in async code.
    """
    head = ScriptDirectory.from_config(alembic_config(url)).get_current_head()
    engine = create_engine(sync_url(url))
    try:
        with engine.connect() as conn:
            current = MigrationContext.configure(conn).get_current_revision()
    finally:
        engine.dispose()
    if current == head:
        return None
    if current is None:
        return "the database has no Reinforce tables yet: run `reinforce db upgrade`"
    return f"the database is at schema {current}, this version needs {head}: run `reinforce db upgrade`"
