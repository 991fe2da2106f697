"""/metrics tells the truth: outbox figures from the database in any process, each counter the
docs list moves when its event happens, the worker serves what it counts, and a token guards it."""

from __future__ import annotations

import asyncio
import os
import socket
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp.test_utils import TestServer
from prometheus_client import REGISTRY
from prometheus_client.parser import text_string_to_metric_families

from bot.app import App, build
from bot.digests import queue_digest
from bot.files import load_program
from bot.programs import store_program
from bot.settings import Settings
from bot.web import make_web_app
from nudges.weeks import IsoWeek
from storage import heartbeats
from storage.db import upgrade
from storage.outbox import Claimed
from tests.fakes.slack import FakeSlack, running_fake_slack

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "examples" / "program.yaml"
WEEK = IsoWeek.parse("2026-W03")


@asynccontextmanager
async def _app(db_url: str, fake: FakeSlack, **settings: Any) -> AsyncIterator[App]:
    await asyncio.to_thread(upgrade, db_url)
    app = build(Settings(database_url=db_url, slack_bot_token="xoxb-t", slack_signing_secret="s", slack_api_url=fake.url, **settings))
    await app.start()
    try:
        await store_program(app.db, load_program(str(EXAMPLE)), "examples/program.yaml", datetime.now(UTC))
        yield app
    finally:
        await app.close()


async def _scrape(url: str, token: str | None = None) -> tuple[int, dict[tuple[str, tuple[tuple[str, str], ...]], float]]:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    async with aiohttp.ClientSession() as http, http.get(url, headers=headers) as response:
        text = await response.text()
    if response.status != 200:
        return response.status, {}
    samples = {
        (s.name, tuple(sorted(s.labels.items()))): s.value for family in text_string_to_metric_families(text) for s in family.samples
    }
    return 200, samples


def _value(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


async def test_the_web_process_reports_the_lag_of_a_row_47_hours_overdue_from_the_database(db_url: str) -> None:
    async with running_fake_slack() as fake, _app(db_url, fake) as app:
        program = await app.programs.get()
        await queue_digest(app.db, program, "pilot-a", WEEK, datetime.now(UTC) - timedelta(hours=47))
        server = TestServer(make_web_app(app), host="127.0.0.1")
        await server.start_server()
        try:
            status, samples = await _scrape(str(server.make_url("/metrics")))
        finally:
            await server.close()
    assert status == 200
    assert 47 * 3600 <= samples[("reinforce_outbox_lag_seconds", ())] < 47 * 3600 + 120
    assert samples[("reinforce_outbox_pending", ())] == 1
    assert samples[("reinforce_outbox_failed", ())] == 0


async def test_a_metrics_token_is_required_when_one_is_configured(db_url: str) -> None:
    async with running_fake_slack() as fake, _app(db_url, fake, reinforce_metrics_token="s3cret-token") as app:
        server = TestServer(make_web_app(app), host="127.0.0.1")
        await server.start_server()
        try:
            url = str(server.make_url("/metrics"))
            assert (await _scrape(url))[0] == 401
            assert (await _scrape(url, "wrong"))[0] == 401
            assert (await _scrape(url, "s3cret-token"))[0] == 200
        finally:
            await server.close()


async def test_sent_retried_and_rate_limited_deliveries_are_counted(db_url: str) -> None:
    before = (
        _value("reinforce_deliveries_total", kind="digest", status="sent"),
        _value("reinforce_delivery_retries_total", platform="slack", reason="rate_limited"),
        _value("reinforce_rate_limited_total", platform="slack"),
    )
    async with running_fake_slack() as fake, _app(db_url, fake) as app:
        program = await app.programs.get()
        now = datetime.now(UTC)
        await queue_digest(app.db, program, "pilot-a", WEEK, now)
        fake.fail("chat.postMessage", status=429, retry_after=1, times=2)  # slack_sdk retries once itself
        first = await app.deliverer.deliver_due(program, lambda: now)
        second = await app.deliverer.deliver_due(program, lambda: now + timedelta(minutes=1))
    assert (first.retrying, second.sent) == (1, 1)
    assert _value("reinforce_deliveries_total", kind="digest", status="sent") == before[0] + 1
    assert _value("reinforce_delivery_retries_total", platform="slack", reason="rate_limited") == before[1] + 1
    assert _value("reinforce_rate_limited_total", platform="slack") == before[2] + 1


async def test_a_delivery_that_crashes_is_counted_as_an_error_and_retried(db_url: str) -> None:
    before = _value("reinforce_errors_total", where="delivery")

    async def broken(_row: Claimed, _now: datetime) -> Any:
        raise RuntimeError("a bug in a renderer")

    async with running_fake_slack() as fake, _app(db_url, fake) as app:
        app.deliverer.renderers["digest"] = broken
        program = await app.programs.get()
        now = datetime.now(UTC)
        await queue_digest(app.db, program, "pilot-a", WEEK, now)
        report = await app.deliverer.deliver_due(program, lambda: now)
    assert report.retrying == 1
    assert _value("reinforce_errors_total", where="delivery") == before + 1


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


async def _poll_metrics(url: str, condition: Any, timeout: float = 30.0) -> dict[Any, float]:
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        try:
            status, samples = await _scrape(url)
            if status == 200 and condition(samples):
                return samples
        except aiohttp.ClientConnectionError:
            pass  # not listening yet
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError("the worker's /metrics never showed the delivery")
        await asyncio.sleep(0.1)


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
async def test_the_worker_serves_its_own_metrics_with_the_deliveries_it_made(db_url: str) -> None:
    async with running_fake_slack() as fake, _app(db_url, fake) as app:
        program = await app.programs.get()
        await queue_digest(app.db, program, "pilot-a", WEEK, datetime.now(UTC))
        env = {k: v for k, v in os.environ.items() if not k.startswith(("SLACK_", "MICROSOFT_", "OPENAI_", "REINFORCE_"))}
        env.update(DATABASE_URL=db_url, SLACK_BOT_TOKEN="xoxb-t", SLACK_SIGNING_SECRET="s", SLACK_API_URL=fake.url)
        port = _free_port()
        worker = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "bot", "worker", "--metrics-port", str(port), cwd=ROOT, env=env,
            stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE,
        )  # fmt: skip
        try:
            sent = ("reinforce_deliveries_total", (("kind", "digest"), ("status", "sent")))
            # Counted once sent; the outbox shows it sent once its outcome is committed (within a second).
            done = await _poll_metrics(f"http://127.0.0.1:{port}/metrics", lambda s: s.get(("reinforce_outbox_pending", ())) == 0)
        finally:
            worker.terminate()
            await worker.wait()
    assert done[sent] == 1.0
    async with app.db.session() as session:  # the worker's tick said it was alive
        assert await heartbeats.newest(session, "worker") is not None
    assert len(fake.called("chat.postMessage")) == 1
