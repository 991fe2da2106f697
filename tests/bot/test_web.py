"""The web process under conditions a healthy test never meets: its database connections cut
from under it, clients that send slowly or go away. The real aiohttp server, as `reinforce
serve` runs it, against the fakes."""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import psycopg
import pytest
from aiohttp import web

from bot.app import build
from bot.settings import Settings
from bot.web import make_runner
from storage.db import Database, upgrade
from tests.rig import running_rig, wait_for

HEAD = b"POST /slack/events HTTP/1.1\r\nHost: reinforce\r\nContent-Type: application/x-www-form-urlencoded\r\n"


@asynccontextmanager
async def serving(tmp_path: Path, **settings: Any) -> AsyncIterator[int]:
    """`reinforce serve`'s server (bot.web.make_runner) with Slack configured; yields its port."""
    url = f"sqlite:///{tmp_path / 'r.db'}"
    upgrade(url)
    options = {"slack_bot_token": "xoxb-web", "slack_signing_secret": "web-secret", "slack_api_url": "http://127.0.0.1:9/api/", **settings}
    runner = make_runner(build(Settings(database_url=url, **options)))
    await runner.setup()
    try:
        await web.TCPSite(runner, "127.0.0.1", 0).start()
        yield runner.addresses[0][1]
    finally:
        await runner.cleanup()


async def trickle(port: int, head: bytes, drip: bytes, seconds: float = 10.0) -> bool:
    """Send ``head``, then ``drip`` every 50 ms for up to ``seconds``: True when the server
    closed the connection before the client was done."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(head)
    deadline = time.monotonic() + seconds
    try:
        while time.monotonic() < deadline:
            await writer.drain()
            try:
                if await asyncio.wait_for(reader.read(1024), 0.05) == b"":
                    return True
            except TimeoutError:
                pass
            writer.write(drip)
    except ConnectionError:
        return True
    finally:
        writer.close()
    return False


def problems(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING or r.exc_info]


async def test_a_client_trickling_its_headers_is_disconnected_without_a_log_line(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    async with serving(tmp_path, reinforce_header_timeout=0.5) as port:
        caplog.clear()
        assert await trickle(port, HEAD, b"X")  # a header line that never ends
        assert problems(caplog) == []


async def test_a_client_trickling_its_body_is_disconnected_with_one_line(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO)
    async with serving(tmp_path, reinforce_body_timeout=0.5) as port:
        caplog.clear()
        assert await trickle(port, HEAD + b"Content-Length: 100000\r\n\r\npayload=", b"a")
        assert [r.getMessage() for r in caplog.records] == ["refused POST /slack/events: the body did not arrive within 0.5 s"]


async def test_a_client_that_goes_away_while_sending_its_body_is_one_debug_line(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    async with serving(tmp_path) as port:
        caplog.clear()
        _reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(HEAD + b"Content-Length: 1000\r\n\r\npayload=")
        await writer.drain()
        writer.close()
        gone = await wait_for(lambda: [r for r in caplog.records if "went away" in r.getMessage()])
        assert [(r.levelno, r.getMessage()) for r in gone] == [
            (logging.DEBUG, "POST /slack/events: the client went away while sending the body")
        ]
        assert problems(caplog) == []


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
