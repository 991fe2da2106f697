"""Abuse benchmark: signed clicks keep flowing while strangers hold slow connections and forge requests.

Runs `reinforce serve` (the real aiohttp server, slack-bolt, storage) in its own process, and a
fake Slack Web API in another. From this process, for ``--seconds``: signed checklist clicks at
``--rate`` per second; ``--slow`` connections that trickle their headers or their body a byte at
a time (each reopened when the server closes it); ``--forged`` requests spread over the run
(bad signatures, stale and non-numeric timestamps, unsigned, bodies that are not UTF-8).

    .venv/bin/python bench/abuse.py [--database sqlite|postgresql] [--seconds S] [--rate R] [--slow N] [--forged N]

Prints the clicks' p50/p99 acknowledgement with nobody else around, then under the attack
(target: p99 under 300 ms), the answers to the forged requests, and the log lines the server
wrote per forged request (target: at most 1).
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import os
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import aiohttp
import psycopg

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.inbound import PG, SECRET, free_port, percentile, prepare, wait_listening  # noqa: E402
from tests.fakes.slack import sign  # noqa: E402

FORM = {"Content-Type": "application/x-www-form-urlencoded"}


def forged_headers(n: int, body: bytes) -> dict[str, str]:
    """The n-th forged request's signature headers: a rotation of the ways to get one wrong."""
    now = int(time.time())
    kinds = [
        {"X-Slack-Request-Timestamp": str(now), "X-Slack-Signature": "v0=" + "0" * 64},
        sign("not-the-secret", body.decode("utf-8", "replace")),
        sign(SECRET, body.decode("utf-8", "replace"), timestamp=now - 3600),
        {"X-Slack-Request-Timestamp": "soon", "X-Slack-Signature": "v0=" + "0" * 64},
        {},
    ]
    return kinds[n % len(kinds)]


async def click_stream(url: str, bodies: list[str], rate: float, seconds: float) -> tuple[list[float], int]:
    """Signed clicks at ``rate`` per second, each on its own schedule (a slow answer does not
    delay the next click); returns the acknowledgement latencies and the failures."""
    latencies: list[float] = []
    failures = 0

    async def one(http: aiohttp.ClientSession, body: str) -> None:
        nonlocal failures
        start = time.perf_counter()
        async with http.post(url, data=body.encode(), headers={**FORM, **sign(SECRET, body)}) as response:
            await response.read()
            failures += response.status != 200
        latencies.append(time.perf_counter() - start)

    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=100)) as http:
        tasks = []
        start = time.monotonic()
        for n, body in enumerate(bodies[: int(rate * seconds)]):
            await asyncio.sleep(max(0.0, start + n / rate - time.monotonic()))
            tasks.append(asyncio.ensure_future(one(http, body)))
        await asyncio.gather(*tasks)
    return latencies, failures


async def forged_stream(url: str, body: bytes, count: int, seconds: float) -> collections.Counter[int]:
    """``count`` forged requests spread evenly over ``seconds``; returns how many got each status."""
    statuses: collections.Counter[int] = collections.Counter()

    async def one(http: aiohttp.ClientSession, n: int) -> None:
        data = body if n % 7 else b"payload=\xff\xfe" + body  # every seventh is not even UTF-8
        async with http.post(url, data=data, headers={**FORM, **forged_headers(n, data)}) as response:
            await response.read()
            statuses[response.status] += 1

    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=50)) as http:
        start = time.monotonic()
        tasks = []
        for n in range(count):
            await asyncio.sleep(max(0.0, start + n * seconds / count - time.monotonic()))
            tasks.append(asyncio.ensure_future(one(http, n)))
        await asyncio.gather(*tasks)
    return statuses


async def slow_client(port: int, trickle_body: bool, until: float, closed: list[int]) -> None:
    """One slow connection at a time until ``until``: headers (or, once they are in, a body)
    a byte every half second; when the server closes it, the next one opens."""
    head = b"POST /slack/events HTTP/1.1\r\nHost: reinforce\r\nContent-Type: application/x-www-form-urlencoded\r\n"
    if trickle_body:
        head += b"Content-Length: 100000\r\n\r\npayload="
    while time.monotonic() < until:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(head)
        try:
            while time.monotonic() < until:
                await writer.drain()
                try:
                    if await asyncio.wait_for(reader.read(1024), 0.5) == b"":
                        closed[0] += 1
                        break
                except TimeoutError:
                    writer.write(b"a" if trickle_body else b"X")
        except ConnectionError:
            closed[0] += 1
        finally:
            writer.close()


def serve(url: str, fake_url: str, port: int, log: Path) -> subprocess.Popen[bytes]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SLACK_", "MICROSOFT_", "OPENAI_", "REINFORCE_"))}
    env.update(DATABASE_URL=url, SLACK_BOT_TOKEN="xoxb-bench", SLACK_SIGNING_SECRET=SECRET, SLACK_API_URL=fake_url)
    with log.open("wb") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "bot", "serve", "--host", "127.0.0.1", "--port", str(port)], cwd=ROOT, env=env, stderr=out
        )


def database(kind: str, tmp: str) -> tuple[str, str | None]:
    """A URL for a fresh database (and the PostgreSQL schema to drop afterwards)."""
    if kind == "sqlite":
        return f"sqlite:///{tmp}/abuse.db", None
    schema = f"bench_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(PG, autocommit=True) as conn:
        conn.execute(f'CREATE SCHEMA "{schema}"')
    return f"{PG}?options=-csearch_path%3D{schema}", schema


async def attack(port: int, bodies: list[str], args: argparse.Namespace) -> tuple[list[float], int, collections.Counter[int], int]:
    url = f"http://127.0.0.1:{port}/slack/events"
    until = time.monotonic() + args.seconds
    closed = [0]
    slow = [asyncio.ensure_future(slow_client(port, n % 2 == 1, until, closed)) for n in range(args.slow)]
    await asyncio.sleep(1)  # the slow connections are open before the clicks start
    forged_body = bodies[0].encode()  # a real click's body, with the signature wrong
    (latencies, failures), statuses = await asyncio.gather(
        click_stream(url, bodies, args.rate, args.seconds - 2),
        forged_stream(url, forged_body, args.forged, args.seconds - 2),
    )
    await asyncio.gather(*slow)
    return latencies, failures, statuses, closed[0]


async def calm(port: int, bodies: list[str], args: argparse.Namespace) -> list[float]:
    """The same clicks with nobody else around: the figure to read the attack's against, on a
    machine whose speed drifts."""
    latencies, failures = await click_stream(f"http://127.0.0.1:{port}/slack/events", bodies, args.rate, args.seconds - 2)
    if failures:
        raise SystemExit(f"{failures} clicks failed with nobody else around")
    return latencies


def report(
    args: argparse.Namespace, quiet: list[float], result: tuple[list[float], int, collections.Counter[int], int], lines: list[str]
) -> None:
    latencies, failures, statuses, closed = result
    print(f"  calm: {len(quiet)} clicks; ack p50 {percentile(quiet, 50) * 1000:.1f} ms, p99 {percentile(quiet, 99) * 1000:.1f} ms")
    refusals = sum("refused a request" in line for line in lines)
    slow_lines = sum("did not arrive within" in line or "went away" in line for line in lines)
    print(
        f"  under attack: {len(latencies)} clicks, {failures} failed; ack p50 {percentile(latencies, 50) * 1000:.1f} ms, "
        f"p99 {percentile(latencies, 99) * 1000:.1f} ms (target under 300 ms)"
    )
    print(f"  forged: {args.forged} requests, answered {dict(sorted(statuses.items()))}")
    print(f"  slow: {args.slow} connections held open; the server closed {closed} of them (reopened each time)")
    print(
        f"  log: {refusals / max(1, args.forged):.2f} lines per forged request (target at most 1); {len(lines)} lines in all during "
        f"the attack: {refusals} refusals of forged requests, {slow_lines} about slow clients, {len(lines) - refusals - slow_lines} other"
    )
    for line in [line for line in lines if "refused a request" not in line and "did not arrive" not in line][:5]:
        print(f"    other: {line[:160]}")


async def run(args: argparse.Namespace) -> None:
    tmp = tempfile.mkdtemp(prefix="reinforce-abuse-")
    fake_port, app_port = free_port(), free_port()
    fake = subprocess.Popen([sys.executable, "-m", "tests.fakes.slack", str(fake_port)], cwd=ROOT, stdout=subprocess.DEVNULL)
    url, schema = database(args.database, tmp)
    log = Path(tmp) / "serve.log"
    server = None
    try:
        await wait_listening(fake_port)
        fake_url = f"http://127.0.0.1:{fake_port}/api/"
        bodies = await prepare(url, int(2 * args.rate * args.seconds) // 3 + 2, fake_url)
        server = serve(url, fake_url, app_port, log)
        await wait_listening(app_port)
        quiet = await calm(app_port, bodies[: len(bodies) // 2], args)
        start = log.stat().st_size
        result = await attack(app_port, bodies[len(bodies) // 2 :], args)
        with log.open("rb") as written:
            written.seek(start)
            lines = written.read().decode("utf-8", "replace").splitlines()
        report(args, quiet, result, lines)
    finally:
        for proc in (server, fake):
            if proc is not None:
                proc.terminate()
                proc.wait(timeout=30)
        if schema:
            with psycopg.connect(PG, autocommit=True) as conn:
                conn.execute(f'DROP SCHEMA "{schema}" CASCADE')


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--database", choices=["sqlite", "postgresql"], default="sqlite")
    parser.add_argument("--seconds", type=float, default=30, help="length of the attack (default 30)")
    parser.add_argument("--rate", type=float, default=50, help="signed clicks per second (default 50)")
    parser.add_argument("--slow", type=int, default=200, help="slow connections held open (default 200)")
    parser.add_argument("--forged", type=int, default=1000, help="forged requests (default 1000)")
    args = parser.parse_args()
    print(f"{args.database}: {args.rate:g} signed clicks/s for {args.seconds:g} s", end="")
    print(f", {args.slow} slow connections, {args.forged} forged requests")
    asyncio.run(run(args))


if __name__ == "__main__":
    main()
