"""The web process under conditions a healthy test never meets: its database connections cut
from under it, clients that send slowly or go away. The real aiohttp server, as `reinforce
serve` runs it, against the fakes."""

from __future__ import annotations

import uuid

import psycopg

from storage.db import Database
from tests.rig import running_rig


async def test_a_request_after_postgresql_dropped_every_connection_succeeds(pg: tuple[Database, str]) -> None:
    """PostgreSQL restarted, or a proxy reaped idle connections: the pool holds dead ones, and
    the first request after must not be the one that finds out (a 500 to Slack)."""
    _db, url = pg
    name = f"reinforce-{uuid.uuid4().hex[:8]}"  # kills only this test's connections, on a shared server
    async with running_rig(f"{url}&application_name={name}") as rig:
        assert "Paused" in await rig.slack_command("ana@example.com", "pause")  # the pool now holds a connection
        plain = url.replace("postgresql+psycopg://", "postgresql://").split("?")[0]
        with psycopg.connect(plain, autocommit=True) as admin:
            killed = admin.execute("SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE application_name = %s", (name,))
            assert killed.fetchone() == (1,)
        assert "Resumed" in await rig.slack_command("ana@example.com", "resume")
