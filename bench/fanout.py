"""Fan-out benchmark: the weekly checklist to N members through the delivery engine.

A fake Slack Web API runs in its own process. The engine (outbox claims, rendering, the
real slack_sdk client, recording outcomes) is compared with the floor: the same number of
bare ``chat_postMessage`` calls with the same payload, client and concurrency. Then the
fake enforces a workspace rate limit and the total time is compared with the theoretical
minimum (messages / limit), once with the engine paced to the limit and once relying on
429 Retry-After alone.

The guards (issue 21): paced to a 1,000/s limit, 10,000 members within 10% of the minimum
with no 429; unpaced, engine CPU per message at most twice the bare loop's.

    .venv/bin/python bench/fanout.py [--members 10000] [--concurrency 32] [--limit 1000] [--database sqlite|postgresql] [--rounds 5]
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import TypeVar

import aiohttp
import psycopg

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.chdir(ROOT)

from adapters.slack.blocks import blocks_json, fallback_text  # noqa: E402
from adapters.slack.chat import SingleWorkspace, SlackChat, make_client  # noqa: E402
from bot.cli import settle  # noqa: E402
from bot.delivery import Deliverer  # noqa: E402
from bot.jobs import tick  # noqa: E402
from bot.ratelimit import Limits, RateLimiter  # noqa: E402
from nudges.checklist import build_checklist, checklist_message  # noqa: E402
from nudges.weeks import IsoWeek  # noqa: E402
from storage.db import Database, upgrade  # noqa: E402
from tests.seed import seed_slack_members  # noqa: E402

MONDAY = datetime(2026, 1, 5, 9, 0, tzinfo=UTC)
T = TypeVar("T")
PG = os.environ.get("TEST_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/test")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def start_fake(rate: int | None) -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    args = [sys.executable, "-m", "tests.fakes.slack", str(port), *([str(rate)] if rate else [])]
    proc = subprocess.Popen(args, cwd=ROOT, stdout=subprocess.DEVNULL)
    for _ in range(300):
        try:
            _r, w = await asyncio.open_connection("127.0.0.1", port)
            w.close()
            return proc, f"http://127.0.0.1:{port}/api/"
        except OSError:
            await asyncio.sleep(0.05)
    raise RuntimeError("the fake Slack did not start")


async def fresh_database(kind: str) -> tuple[str, object]:
    if kind == "sqlite":
        return f"sqlite:///{tempfile.mkdtemp(prefix='reinforce-fanout-')}/fanout.db", None
    schema = f"fanout_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(PG, autocommit=True) as conn:
        conn.execute(f'CREATE SCHEMA "{schema}"')
    return f"{PG}?options=-csearch_path%3D{schema}", schema


def drop(schema: object) -> None:
    if schema:
        with psycopg.connect(PG, autocommit=True) as conn:
            conn.execute(f'DROP SCHEMA "{schema}" CASCADE')


def counting_429s() -> tuple[aiohttp.TraceConfig, list[int]]:
    """A client trace that counts the 429 answers, including those slack_sdk retries by itself."""
    seen: list[int] = []

    async def on_request_end(_session: object, _context: object, params: aiohttp.TraceRequestEndParams) -> None:
        if params.response.status == 429:
            seen.append(1)

    trace = aiohttp.TraceConfig()
    trace.on_request_end.append(on_request_end)
    return trace, seen


async def engine_run(
    kind: str, members: int, concurrency: int, api_url: str, limits: Limits, count_429s: bool = False
) -> tuple[float, float, int, int]:
    """Seconds and CPU seconds for the engine to deliver ``members`` checklists; messages sent; 429s drawn
    (counted only when asked: the client trace costs CPU that the bare loop does not pay)."""
    url, schema = await fresh_database(kind)
    try:
        await asyncio.to_thread(upgrade, url)
        db = Database(url)
        program = await seed_slack_members(db, members)
        await tick(db, program, MONDAY)
        chat = SlackChat(make_client(api_url, "xoxb-bench"), SingleWorkspace("xoxb-bench"))
        trace, limited = counting_429s()
        connector = aiohttp.TCPConnector(limit=concurrency)
        chat.client.session = aiohttp.ClientSession(connector=connector, trace_configs=[trace] if count_429s else None)
        deliverer = Deliverer(db, {"slack": chat}, limiter=RateLimiter(limits), concurrency=concurrency)
        settle()  # as `reinforce worker` does after start-up: the seeding's objects are not the engine's to collect
        wall, cpu = time.perf_counter(), time.process_time()
        report = await deliverer.drain(program)
        wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
        await chat.client.session.close()
        await db.close()
        return wall, cpu, report.sent, len(limited)
    finally:
        drop(schema)


async def bare_run(members: int, concurrency: int, api_url: str) -> tuple[float, float]:
    """The floor: the same chat_postMessage calls, same payload, client and concurrency."""
    from bot.files import load_program

    program = load_program("examples/program.yaml")
    message = checklist_message(build_checklist(program, program.cohort("pilot-a"), IsoWeek.of(MONDAY)))
    text, blocks = fallback_text(message), blocks_json(message)  # as SlackChat.send passes them
    client = make_client(api_url, "xoxb-bench")
    client.session = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=concurrency))
    gate = asyncio.Semaphore(concurrency)

    async def post(i: int) -> None:
        async with gate:
            await client.chat_postMessage(channel=f"U{i}", text=text, blocks=blocks)

    settle()  # as for the engine: neither side pays for what came before it
    wall, cpu = time.perf_counter(), time.process_time()
    await asyncio.gather(*(post(i) for i in range(members)))
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    await client.session.close()
    return wall, cpu


async def on_fresh_fake(rate: int | None, run: Callable[[str], Awaitable[T]]) -> T:
    """Each run gets its own fake, so none pays for the messages an earlier run left in it."""
    fake, api = await start_fake(rate)
    try:
        return await run(api)
    finally:
        fake.terminate()


async def main(members: int, concurrency: int, limit: int, database: str, rounds: int) -> None:
    unpaced = Limits(per_conversation={"slack": 1.0}, per_tenant={})
    print(f"{members} members, concurrency {concurrency}, {database}, {rounds} rounds (bare and engine alternate; medians)")
    bare_rates, rates, bare_cpus, cpus = [], [], [], []
    for _ in range(rounds):
        # This machine's speed drifts from minute to minute: alternating the two sides and
        # taking medians keeps that drift out of the ratio.
        bare_wall, bare_cpu = await on_fresh_fake(None, lambda api: bare_run(members, concurrency, api))
        wall, cpu, sent, _limited = await on_fresh_fake(None, lambda api: engine_run(database, members, concurrency, api, unpaced))
        bare_rates.append(members / bare_wall)
        rates.append(sent / wall)
        bare_cpus.append(bare_cpu / members * 1000)
        cpus.append(cpu / sent * 1000)
        print(f"  round: bare {bare_rates[-1]:.0f} msg/s, engine {rates[-1]:.0f} msg/s, ratio {rates[-1] / bare_rates[-1]:.2f}", flush=True)
    bare_cpu, cpu = statistics.median(bare_cpus), statistics.median(cpus)
    print(f"  bare chat_postMessage   {statistics.median(bare_rates):8.0f} msg/s   {bare_cpu:6.2f} CPU s per 1,000   (medians)")
    print(f"  delivery engine         {statistics.median(rates):8.0f} msg/s   {cpu:6.2f} CPU s per 1,000")
    print(
        f"  guard: engine CPU per message {cpu / bare_cpu:.2f}x the bare loop's (at most 2x): {'holds' if cpu <= 2 * bare_cpu else 'FAILS'}"
    )
    # Each round's two runs are minutes apart at most: the ratio within a round is the figure.
    ratios = sorted(r / b for r, b in zip(rates, bare_rates, strict=True))
    spread = f"{ratios[0]:.2f}-{ratios[-1]:.2f}"
    print(f"  ratio engine / bare msg/s: {statistics.median(ratios):.2f} (median of the rounds' ratios; they ranged {spread})")

    floor = members / limit
    for name, limits in (
        ("paced to the limit", Limits(per_conversation={"slack": 1.0}, per_tenant={"slack": float(limit)})),
        ("429 Retry-After only", unpaced),
    ):
        run = functools.partial(engine_run, database, members, concurrency, limits=limits, count_429s=True)
        wall, _cpu, sent, limited = await on_fresh_fake(limit, run)
        over = f"minimum {floor:.1f} s, {wall / floor - 1:+.0%}"
        print(f"  fake limit {limit}/s, {name:22s} {wall:6.1f} s for {sent} ({over}), {limited} 429s")
        if name == "paced to the limit":
            holds = wall <= floor * 1.1 and limited == 0 and sent == members
            print(f"  guard: paced within 10% of the minimum with no 429: {'holds' if holds else 'FAILS'}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--members", type=int, default=10_000)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--limit", type=int, default=1000, help="the fake's workspace limit, messages per second")
    parser.add_argument("--database", choices=["sqlite", "postgresql"], default="sqlite")
    parser.add_argument("--rounds", type=int, default=5, help="bare and engine runs, alternating; medians are reported")
    args = parser.parse_args()
    asyncio.run(main(args.members, args.concurrency, args.limit, args.database, args.rounds))
