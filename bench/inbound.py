"""Inbound benchmark: signed checklist clicks per second and acknowledgement latency.

Runs `reinforce serve` (slack-bolt + storage) and, as the floor, a bare slack-bolt app that
only acks, each in its own process, against the same signed `block_actions` requests sent
at a fixed concurrency from this process. A fake Slack Web API runs in a third process.

    .venv/bin/python bench/inbound.py [--database sqlite|postgresql|both] [--clicks N] [--concurrency C] [--rounds R]

Prints clicks/s (median of alternating rounds, N clicks shared among them) and p50/p99 ack latency for
both apps and their throughput ratio.
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
from bot.checkins import checklist_key, deliver_outbox  # noqa: E402
from nudges.program import load_program, parse_program  # noqa: E402
from nudges.weeks import IsoWeek  # noqa: E402
from storage import outbox, people  # noqa: E402
from storage.db import Database, upgrade  # noqa: E402
from storage.models import Cohort, Delivery, Person  # noqa: E402
from storage.programs import save_program  # noqa: E402
from tests.fakes.slack import block_action, interaction_body, sign  # noqa: E402

SECRET = "bench-signing-secret"
TEAM = "T0001"
PG = os.environ.get("TEST_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/test")
BARE_APP = """
import sys
from aiohttp import web
from slack_bolt.async_app import AsyncApp
from slack_bolt.adapter.aiohttp import to_bolt_request, to_aiohttp_response
from slack_sdk.web.async_client import AsyncWebClient
import re
app = AsyncApp(signing_secret=sys.argv[2], client=AsyncWebClient(token="xoxb-bench", base_url=sys.argv[3]))
@app.action(re.compile("^reinforce:"))
async def on_click(ack):
    await ack()
async def handle(request):
    return await to_aiohttp_response(await app.async_dispatch(await to_bolt_request(request)))
web_app = web.Application()
web_app.router.add_post("/slack/events", handle)
import gc  # settled at start-up as reinforce serve is, so neither side gains on the other there
gc.collect()
gc.freeze()
web.run_app(web_app, host="127.0.0.1", port=int(sys.argv[1]), access_log=None, print=None)
"""


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
    """A migrated database with ``members`` consenting Slack members and their checklists sent;
    returns one signed-ready click body per (member, question)."""
    await asyncio.to_thread(upgrade, url)
    data = load_program(str(ROOT / "examples" / "program.yaml")).model_dump(mode="json")
    data["cohorts"][0]["members"] = [{"email": f"m{i}@bench.example", "platform": "slack", "timezone": "UTC"} for i in range(members)]
    data["cohorts"][1]["members"] = []
    program = parse_program(data, "bench")
    cohort = program.cohorts[0]
    week = IsoWeek.of(cohort.starts)
    now = datetime.combine(cohort.starts, datetime.min.time(), UTC).replace(hour=9)
    db = Database(url)
    async with db.session() as session:
        await save_program(session, program, "bench", now)
        cohort_id = await session.scalar(select(Cohort.id).where(Cohort.key == cohort.key))
        for i, person in enumerate((await session.scalars(select(Person).order_by(Person.id))).all()):
            await people.set_consent(session, person.id, "accepted", now)
            person.platform_user_id = f"{TEAM}:U{i:05d}"
            await outbox.enqueue(
                session,
                key=checklist_key(person.id, cohort.key, week),
                kind="checklist",
                period=str(week),
                due_at=now,
                person_id=person.id,
                cohort_id=cohort_id,
                platform="slack",
                payload={"cohort": cohort.key, "week": str(week)},
            )
    chat = SlackChat(make_client(fake_url, "xoxb-bench"), SingleWorkspace("xoxb-bench"))
    await deliver_outbox(db, program, {"slack": chat}, now)
    async with db.session() as session:
        refs = (await session.scalars(select(Delivery.message_ref).where(Delivery.kind == "checklist"))).all()
    if db.engine.dialect.name == "postgresql":
        # A live database has statistics: autovacuum analyzes tables after bulk changes. This
        # one is seconds old, and without them PostgreSQL plans the member lookup for empty
        # tables (scanning every stored answer for each member clicking), until autovacuum
        # happens to run in the middle of some round. SQLite keeps no statistics unless asked.
        async with db.engine.connect() as conn:
            await conn.exec_driver_sql("ANALYZE")
    await db.close()
    bodies = []
    answers = ("yes", "partly", "no")
    for n, ref in enumerate(refs):
        channel, ts = ref["channel"], ref["ts"]
        user = channel.removeprefix("D")
        for q, behavior in enumerate(cohort.checklist):
            value = f"answer|{cohort.key}|{week}|{behavior}|{answers[(n + q) % 3]}"
            payload = block_action(
                TEAM,
                user,
                channel,
                ts,
                value,
                action_ts=f"{now.timestamp() + n + q / 10:.6f}",
                block_id=f"q:{behavior}",
                action_id="reinforce:0",
            )
            bodies.append(interaction_body(payload))
    return bodies


async def load(port: int, bodies: list[str], concurrency: int) -> tuple[float, list[float], int]:
    """Send every body once, ``concurrency`` at a time; returns (seconds, latencies, errors)."""
    queue = list(reversed(bodies))
    latencies: list[float] = []
    errors = 0
    url = f"http://127.0.0.1:{port}/slack/events"

    async def worker(http: aiohttp.ClientSession) -> None:
        nonlocal errors
        while queue:
            body = queue.pop()
            headers = {"Content-Type": "application/x-www-form-urlencoded", **sign(SECRET, body)}
            start = time.perf_counter()
            async with http.post(url, data=body.encode(), headers=headers) as response:
                await response.read()
                if response.status != 200:
                    errors += 1
            latencies.append(time.perf_counter() - start)

    connector = aiohttp.TCPConnector(limit=concurrency)
    async with aiohttp.ClientSession(connector=connector) as http:
        # Warm up connections and code paths on a few requests that are not counted.
        warm = [queue.pop() for _ in range(min(concurrency, len(queue) // 10))]
        await asyncio.gather(
            *(
                http.post(url, data=b.encode(), headers={"Content-Type": "application/x-www-form-urlencoded", **sign(SECRET, b)})
                for b in warm
            )
        )
        start = time.perf_counter()
        await asyncio.gather(*(worker(http) for _ in range(concurrency)))
        elapsed = time.perf_counter() - start
    return elapsed, latencies, errors


def cpu_seconds(pid: int) -> float:
    """CPU time (user + system) a process has used so far, from /proc (this bench runs on Linux)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def percentile(values: list[float], p: float) -> float:
    return statistics.quantiles(values, n=100, method="inclusive")[int(p) - 1] if len(values) > 1 else values[0]


async def run(database: str, clicks: int, concurrency: int, rounds: int) -> None:
    members = max(1, clicks // 3)  # the clicks are shared out among the rounds: each is sent once to each app
    fake_port, app_port, bare_port = free_port(), free_port(), free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SLACK_", "MICROSOFT_", "OPENAI_"))}
    procs = [subprocess.Popen([sys.executable, "-m", "tests.fakes.slack", str(fake_port)], cwd=ROOT, env=env, stdout=subprocess.DEVNULL)]
    schema = None
    tmp = tempfile.mkdtemp(prefix="reinforce-bench-")
    if database == "sqlite":
        url = f"sqlite:///{tmp}/bench.db"
    else:
        schema = f"bench_{uuid.uuid4().hex[:8]}"
        with psycopg.connect(PG, autocommit=True) as conn:
            conn.execute(f'CREATE SCHEMA "{schema}"')
        url = f"{PG}?options=-csearch_path%3D{schema}"
    try:
        await wait_listening(fake_port)
        fake_url = f"http://127.0.0.1:{fake_port}/api/"
        bodies = await prepare(url, members, fake_url)
        app_env = {**env, "DATABASE_URL": url, "SLACK_BOT_TOKEN": "xoxb-bench", "SLACK_SIGNING_SECRET": SECRET, "SLACK_API_URL": fake_url}
        procs.append(
            subprocess.Popen(
                [sys.executable, "-m", "bot", "serve", "--host", "127.0.0.1", "--port", str(app_port)],
                cwd=ROOT,
                env=app_env,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
        )
        procs.append(
            subprocess.Popen(
                [sys.executable, "-c", BARE_APP, str(bare_port), SECRET, fake_url],
                cwd=ROOT,
                env=env,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
        )
        await wait_listening(app_port)
        await wait_listening(bare_port)
        # This machine's speed drifts from minute to minute: the two apps alternate, each
        # round on clicks not sent before, and the medians are compared.
        names = ("bare slack-bolt (ack only)", "reinforce serve")
        rates: dict[str, list[float]] = {name: [] for name in names}
        latencies: dict[str, list[float]] = {name: [] for name in names}
        per_round = len(bodies) // rounds
        cpu: dict[str, list[float]] = {name: [] for name in names}
        for r in range(rounds):
            chunk = bodies[r * per_round : (r + 1) * per_round]
            line = []
            for name, port, proc in zip(names, (bare_port, app_port), (procs[2], procs[1]), strict=True):
                before = cpu_seconds(proc.pid)
                elapsed, seen, errors = await load(port, chunk, concurrency)
                if errors:
                    raise SystemExit(f"{name}: {errors} requests failed")
                cpu[name].append((cpu_seconds(proc.pid) - before) / len(seen) * 1000)
                rates[name].append(len(seen) / elapsed)
                latencies[name] += seen
                line.append(f"{name.split()[0]} {rates[name][-1]:.0f}")
            print(f"  round {r + 1}: {', '.join(line)} clicks/s, ratio {rates[names[1]][-1] / rates[names[0]][-1]:.2f}", flush=True)
        for name in names:
            print(
                f"  {name:28s} {statistics.median(rates[name]):8.0f} clicks/s   p50 {percentile(latencies[name], 50) * 1000:6.1f} ms   "
                f"p99 {percentile(latencies[name], 99) * 1000:6.1f} ms   {statistics.median(cpu[name]):.2f} ms CPU per click   (medians of {rounds} rounds; latencies over all)"
            )
        ratios = sorted(ours / bare for bare, ours in zip(*rates.values(), strict=True))
        print(
            f"  throughput ratio (reinforce / bare): {statistics.median(ratios):.2f} (median of the rounds' ratios; they ranged {ratios[0]:.2f}-{ratios[-1]:.2f})"
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
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--database", choices=["sqlite", "postgresql", "both"], default="both")
    parser.add_argument("--clicks", type=int, default=3000)
    parser.add_argument("--concurrency", type=int, default=50)
    parser.add_argument("--rounds", type=int, default=5, help="alternating runs of both apps, each on fresh clicks; medians are reported")
    args = parser.parse_args()
    for database in ["sqlite", "postgresql"] if args.database == "both" else [args.database]:
        print(f"{database}: {args.clicks} signed checklist clicks at concurrency {args.concurrency}, in {args.rounds} rounds")
        asyncio.run(run(database, args.clicks, args.concurrency, args.rounds))


if __name__ == "__main__":
    main()
