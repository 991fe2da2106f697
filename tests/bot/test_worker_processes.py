"""Real worker processes: killed mid fan-out, and two at once on one PostgreSQL outbox."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
import time
from pathlib import Path

from storage.db import Database
from tests.fakes.slack import FakeSlack, running_fake_slack
from tests.seed import seed_slack_members

ROOT = Path(__file__).resolve().parents[2]
MONDAY = "2026-01-05T09:00:00+00:00"
AFTER_LEASE = "2026-01-05T09:06:00+00:00"


def _env(db_url: str, fake: FakeSlack) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SLACK_", "MICROSOFT_", "OPENAI_", "REINFORCE_"))}
    env.update(DATABASE_URL=db_url, SLACK_BOT_TOKEN="xoxb-test", SLACK_SIGNING_SECRET="s", SLACK_API_URL=fake.url)
    return env


async def _tick(env: dict[str, str], at: str) -> asyncio.subprocess.Process:
    return await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "bot",
        "tick",
        "--at",
        at,
        cwd=ROOT,
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )


async def _wait_until(condition, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.01)


async def test_a_worker_killed_mid_fan_out_and_restarted_sends_each_checklist_once(db: Database, db_url: str) -> None:
    await seed_slack_members(db, 2000)
    async with running_fake_slack() as fake:
        env = _env(db_url, fake)
        worker = await _tick(env, MONDAY)
        await _wait_until(lambda: len(fake.messages) >= 600)
        worker.send_signal(signal.SIGKILL)
        await worker.wait()
        assert 600 <= len(fake.messages) < 2000, "the kill should land mid fan-out"
        restarted = await _tick(env, AFTER_LEASE)  # after the dead worker's leases ran out
        _out, err = await restarted.communicate()
        assert restarted.returncode == 0, err.decode()
        delivered = fake.delivered()
        assert len(delivered) == 2000 and set(delivered.values()) == {1}, f"duplicates: {[c for c, n in delivered.items() if n > 1][:5]}"


async def test_two_workers_drain_one_postgresql_outbox_with_no_duplicates_and_no_losses(pg: tuple[Database, str]) -> None:
    db, db_url = pg
    await seed_slack_members(db, 5000)
    async with running_fake_slack() as fake:
        env = _env(db_url, fake)
        fill = await _tick({k: v for k, v in env.items() if not k.startswith("SLACK_")}, MONDAY)  # queue only
        out, err = await fill.communicate()
        assert b"queued 5000 checklist" in out, err.decode()
        workers = [await _tick(env, MONDAY) for _ in range(2)]
        results = [await w.communicate() for w in workers]
        assert [w.returncode for w in workers] == [0, 0], [e.decode()[-500:] for _o, e in results]
        delivered = fake.delivered()
        assert len(delivered) == 5000 and set(delivered.values()) == {1}
        sent_by = [int(o.decode().split("delivered ")[1].split(",")[0]) for o, _e in results]
        assert sum(sent_by) == 5000 and min(sent_by) > 0, f"both workers should have sent some: {[o.decode() for o, _e in results]}"
