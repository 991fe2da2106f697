"""Inbound guard: signed checklist clicks offered at a fixed rate to `reinforce serve`, and how fast each is acknowledged.

`reinforce serve` (slack-bolt + storage) runs in its own process, a fake Slack Web API (which
answers the `chat.update` after each click) in another; this process sends signed
`block_actions` requests exactly as Slack does, three per member (one per question), at
``--rate`` per second for ``--seconds``, whether or not earlier ones were answered (Slack
does not wait either). A click's latency runs from when it was due to be sent to its
response, so a server that falls behind shows it.

    .venv/bin/python bench/inbound.py [--database postgresql|sqlite] [--rate 200] [--seconds 30]

The guard (docs/performance.md): 200 clicks/s for 30 s on PostgreSQL, p99 ack under 300 ms.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path

import aiohttp
import psycopg

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from sqlalchemy import select  # noqa: E402

from adapters.slack.chat import SingleWorkspace, SlackChat, make_client  # noqa: E402
from bot.checkins import deliver_outbox  # noqa: E402
from bot.files import load_program  # noqa: E402
from bot.jobs import tick  # noqa: E402
from nudges.program import parse_program  # noqa: E402
from nudges.weeks import IsoWeek  # noqa: E402
from storage import accounts, people  # noqa: E402
from storage.db import Database, upgrade  # noqa: E402
from storage.models import Delivery, Person  # noqa: E402
from storage.programs import save_program  # noqa: E402
from tests.fakes.slack import block_action, interaction_body, sign  # noqa: E402

SECRET = "bench-signing-secret"
TEAM = "T0001"
PG = os.environ.get("TEST_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/test")
FORM = "application/x-www-form-urlencoded"
WARM_UP = 30  # clicks sent first and not counted, so the first counted ones do not pay for start-up


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


async def wait_listening(port: int, deadline: float = 30) -> None:
    end = time.monotonic() + deadline
    while time.monotonic() < end:
        try:
            _r, w = await asyncio.open_connection("127.0.0.1", port)
            w.close()
            return
        except OSError:
            await asyncio.sleep(0.1)
    raise RuntimeError(f"nothing listens on {port}")


async def prepare(url: str, members: int, fake_url: str) -> list[str]:
    """A migrated database with ``members`` consenting Slack members (UTC) whose checklists the
    scheduler queued and the delivery engine sent; returns one click body per (member, question),
    members in turn."""
    await asyncio.to_thread(upgrade, url)
    data = load_program(str(ROOT / "examples" / "program.yaml")).model_dump(mode="json")
    data["cohorts"][0]["members"] = [{"email": f"m{i}@bench.example", "platform": "slack", "timezone": "UTC"} for i in range(members)]
    data["cohorts"][1]["members"] = []
    program = parse_program(data, "bench")
    cohort = program.cohorts[0]
    week = IsoWeek.of(cohort.starts)
    monday_morning = datetime(week.monday().year, week.monday().month, week.monday().day, 9, tzinfo=UTC)
    db = Database(url)
    async with db.session() as session:
        await save_program(session, program, "bench", monday_morning)
        for i, person in enumerate((await session.scalars(select(Person).order_by(Person.id))).all()):
            await people.set_consent(session, person.id, "accepted", monday_morning)
            await accounts.link(session, person.id, "slack", f"{TEAM}:U{i:05d}", monday_morning)
    await tick(db, program, monday_morning)
    chat = SlackChat(make_client(fake_url, "xoxb-bench"), SingleWorkspace("xoxb-bench"))
    await deliver_outbox(db, program, {"slack": chat}, monday_morning)
    async with db.session() as session:
        refs = (await session.scalars(select(Delivery.message_ref).where(Delivery.kind == "checklist"))).all()
    if db.engine.dialect.name == "postgresql":
        # A live database has statistics (autovacuum analyzes tables after bulk changes); this
        # one is seconds old, and without them PostgreSQL plans the clicker's lookup for empty
        # tables until autovacuum happens to run in the middle of the run.
        async with db.engine.connect() as conn:
            await conn.exec_driver_sql("ANALYZE")
    await db.close()
    answers = ("yes", "partly", "no")
    bodies = []
    for n, ref in enumerate(refs):
        channel, ts = ref["channel"], ref["ts"]
        for q, behavior in enumerate(cohort.checklist):
            value = f"answer|{cohort.key}|{week}|{behavior}|{answers[(n + q) % 3]}"
            at = f"{monday_morning.timestamp() + n + q / 10:.6f}"
            payload = block_action(TEAM, channel.removeprefix("D"), channel, ts, value, action_ts=at, block_id=f"q:{behavior}")
            bodies.append(interaction_body(payload))
    return bodies


async def offer(port: int, bodies: list[str], rate: float) -> tuple[list[float], int, float]:
    """Send ``bodies`` at ``rate`` per second; returns (latencies in seconds, errors, seconds the
    sending took)."""
    url = f"http://127.0.0.1:{port}/slack/events"
    latencies: list[float] = []
    errors = 0

    async def click(http: aiohttp.ClientSession, body: str, due: float) -> None:
        nonlocal errors
        try:
            async with http.post(url, data=body.encode(), headers={"Content-Type": FORM, **sign(SECRET, body)}) as response:
                await response.read()
                errors += response.status != 200
        except (aiohttp.ClientError, TimeoutError):
            errors += 1
        latencies.append(time.perf_counter() - due)

    # No limit on connections: a click waiting for a free one would be the client's delay.
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0), timeout=aiohttp.ClientTimeout(total=10)) as http:
        start = time.perf_counter()
        tasks = []
        for i, body in enumerate(bodies):
            due = start + i / rate
            await asyncio.sleep(max(0.0, due - time.perf_counter()))
            tasks.append(asyncio.create_task(click(http, body, due)))
        sending = time.perf_counter() - start
        await asyncio.gather(*tasks)
    return latencies, errors, sending


def cpu_seconds(pid: int) -> float:
    """CPU time (user + system) a process has used so far, from /proc (this bench runs on Linux)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def percentile(values: list[float], p: int) -> float:
    return statistics.quantiles(values, n=100, method="inclusive")[p - 1] if len(values) > 1 else values[0]


async def run(database: str, rate: float, seconds: float) -> None:
    clicks = int(rate * seconds)
    fake_port, app_port = free_port(), free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SLACK_", "MICROSOFT_", "OPENAI_"))}
    procs = [subprocess.Popen([sys.executable, "-m", "tests.fakes.slack", str(fake_port)], cwd=ROOT, env=env, stdout=subprocess.DEVNULL)]
    schema = None
    if database == "sqlite":
        url = f"sqlite:///{tempfile.mkdtemp(prefix='reinforce-bench-')}/bench.db"
    else:
        schema = f"bench_{uuid.uuid4().hex[:8]}"
        with psycopg.connect(PG, autocommit=True) as conn:
            conn.execute(f'CREATE SCHEMA "{schema}"')
        url = f"{PG}?options=-csearch_path%3D{schema}"
    try:
        await wait_listening(fake_port)
        fake_url = f"http://127.0.0.1:{fake_port}/api/"
        bodies = await prepare(url, -(-(WARM_UP + clicks) // 3), fake_url)
        app_env = {**env, "DATABASE_URL": url, "SLACK_BOT_TOKEN": "xoxb-bench", "SLACK_SIGNING_SECRET": SECRET, "SLACK_API_URL": fake_url}
        serve = subprocess.Popen(
            [sys.executable, "-m", "bot", "serve", "--host", "127.0.0.1", "--port", str(app_port)],
            cwd=ROOT,
            env=app_env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        procs.append(serve)
        await wait_listening(app_port)
        warm, counted = bodies[:WARM_UP], bodies[WARM_UP : WARM_UP + clicks]
        await offer(app_port, warm, rate)
        before = cpu_seconds(serve.pid)
        latencies, errors, sending = await offer(app_port, counted, rate)
        cpu = (cpu_seconds(serve.pid) - before) / len(counted) * 1000
        print(
            f"  offered {len(counted) / sending:.0f} clicks/s for {sending:.1f} s ({len(counted)} clicks): "
            f"p50 {percentile(latencies, 50) * 1000:.1f} ms, p99 {percentile(latencies, 99) * 1000:.1f} ms, "
            f"max {max(latencies) * 1000:.1f} ms, errors {errors}; serve used {cpu:.2f} ms CPU per click"
        )
    finally:
        for proc in procs:
            proc.terminate()
        for proc in procs:
            proc.wait(timeout=30)
        if schema:
            with psycopg.connect(PG, autocommit=True) as conn:
                conn.execute(f'DROP SCHEMA "{schema}" CASCADE')


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--database", choices=["sqlite", "postgresql"], default="postgresql")
    parser.add_argument("--rate", type=float, default=200, help="clicks offered per second")
    parser.add_argument("--seconds", type=float, default=30, help="how long the rate is offered")
    args = parser.parse_args()
    print(f"{args.database}: {args.rate:.0f} signed checklist clicks per second for {args.seconds:.0f} s")
    asyncio.run(run(args.database, args.rate, args.seconds))


if __name__ == "__main__":
    main()
