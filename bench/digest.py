"""Digest benchmark: how long one cohort digest takes as the signals grow, on SQLite and PostgreSQL.

Builds a program of two cohorts (a pilot and its comparison wave, half the members each),
every member answering all three questions every week, with one sent checklist delivery
per member-week, in a temporary SQLite file and a temporary PostgreSQL schema (both
removed at the end). Then times ``bot.digests.cohort_digest`` for the pilot's last week,
read when that week has closed, which reads both cohorts: plan lock, figures, stored
record. Three cases: the first digest with nothing stored yet (every week's figures are
computed and stored: once, after an upgrade), the first digest after a week closed (only
that week's figures are computed: once a week in production), and a digest whose figures
are all stored (every later one). The chart is timed apart.

    .venv/bin/python bench/digest.py [--database sqlite|postgresql|both] [--members N] [--weeks W] [--runs R] [--index]

By default it runs 20,000 members x 52 weeks x 3 behaviors (3.1 million signals) and a
tenth of the members, to show how the cost grows. ``--index`` adds the candidate indexes
(CANDIDATE_INDEXES) after the load and times again.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sqlite3
import statistics
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import psycopg

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from sqlalchemy import delete  # noqa: E402

from bot.chart import chart_png  # noqa: E402
from bot.digests import cohort_digest  # noqa: E402
from bot.files import load_program  # noqa: E402
from nudges.program import Program  # noqa: E402
from nudges.weeks import IsoWeek  # noqa: E402
from storage.db import Database, upgrade  # noqa: E402
from storage.models import WeekFigure  # noqa: E402
from storage.programs import save_program  # noqa: E402

PG = os.environ.get("TEST_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/test").replace("postgresql+psycopg://", "postgresql://")
START = date(2024, 12, 30)  # Monday of 2025-W01
BEHAVIORS = ("decision_huddle", "escalate_24h", "specific_feedback")
LOADED = datetime(2024, 12, 20, 9, tzinfo=UTC)

# Indexes that the digest queries could use, measured with and without (--index).
CANDIDATE_INDEXES = (
    # The primary behavior's weekly series and the exposure count read one behavior of a
    # cohort over all weeks: with this index, from the index alone.
    "CREATE INDEX ix_behavior_signals_cohort_behavior_week ON behavior_signals (cohort_id, behavior_key, source, week, person_id, value)",
    # Participation counts a cohort's sent checklists per week.
    "CREATE INDEX ix_deliveries_cohort_kind_period ON deliveries (cohort_id, kind, period, status)",
)


def bench_program(weeks: int) -> Program:
    """The example program's behaviors, with a pilot and its comparison wave of ``weeks`` weeks."""
    data = load_program(str(ROOT / "examples" / "program.yaml")).model_dump(mode="json")
    pilot = {
        **data["cohorts"][0],
        "key": "pilot",
        "name": "Pilot",
        "starts": START.isoformat(),
        "weeks": weeks,
        "comparison": "wave",
        "members": [],
    }
    pilot["plan"] = {**pilot["plan"], "first_analysis": (START + timedelta(weeks=10)).isoformat()}
    wave = {**data["cohorts"][1], "key": "wave", "name": "Wave", "starts": START.isoformat(), "weeks": weeks, "members": []}
    for cohort in (pilot, wave):
        cohort.update(sponsors=[], coaches=[])  # people are all generated in SQL, ids 1..members
    data["cohorts"] = [pilot, wave]
    data["admins"] = []
    return Program.model_validate(data)


def _load_sql(members: int, weeks: int, numbers: str, timestamp: str) -> list[str]:
    """INSERT ... SELECT statements generating everything in the database (no rows cross the wire).

    Rows go in week after week, as answers arrive in production: a week's signals sit
    together on disk, which is what makes a one-week query cheap in real life too.

    ``numbers`` is a common table expression p(n) yielding 1..members on this database.
    """
    week_rows = ", ".join(f"({i}, '{IsoWeek.of(START) + i}')" for i in range(weeks))
    behavior_rows = ", ".join(f"({i}, '{key}')" for i, key in enumerate(BEHAVIORS))
    tables = f"WITH RECURSIVE {numbers}, w(i, name) AS (VALUES {week_rows}), b(i, key) AS (VALUES {behavior_rows})"
    cohort = "JOIN cohorts c ON c.key = CASE WHEN p.n % 2 = 0 THEN 'pilot' ELSE 'wave' END"
    # Deterministic answers: about 40% yes, 40% partly, 20% no, the pilot gaining over the weeks.
    value = (
        "CASE WHEN (p.n * 7 + w.i * 13 + b.i * 5) % 10 < (CASE WHEN p.n % 2 = 0 THEN 3 + w.i / 10 ELSE 4 END) THEN 1.0 "
        "WHEN (p.n * 7 + w.i * 13 + b.i * 5) % 10 < 8 THEN 0.5 ELSE 0.0 END"
    )
    return [
        f"""{tables} INSERT INTO people (id, email, timezone, created_at)
            SELECT p.n, 'm' || p.n || '@bench.example', 'UTC', {timestamp} FROM p""",
        f"""{tables} INSERT INTO memberships (person_id, cohort_id, role, active, joined_at)
            SELECT p.n, c.id, 'participant', true, {timestamp} FROM p {cohort}""",
        f"""{tables} INSERT INTO behavior_signals (person_id, cohort_id, behavior_key, week, value, source, recorded_at)
            SELECT p.n, c.id, b.key, w.name, {value}, 'checkin', {timestamp} FROM p {cohort} CROSS JOIN w CROSS JOIN b
            ORDER BY w.i, p.n, b.i""",
        f"""{tables} INSERT INTO deliveries
                (idempotency_key, kind, period, person_id, cohort_id, platform, payload, status, attempts, due_at, next_attempt_at, sent_at)
            SELECT 'checklist:' || p.n || ':' || w.name, 'checklist', w.name, p.n, c.id, 'slack', '{{}}', 'sent', 1,
                {timestamp}, {timestamp}, {timestamp}
            FROM p {cohort} CROSS JOIN w
            ORDER BY w.i, p.n""",
    ]


async def _create(url: str, program: Program) -> None:
    await asyncio.to_thread(upgrade, url)
    db = Database(url)
    try:
        async with db.session() as session:
            await save_program(session, program, "bench", LOADED)
    finally:
        await db.close()


def load_sqlite(path: Path, members: int, weeks: int) -> None:
    with sqlite3.connect(path) as conn:
        conn.execute("PRAGMA synchronous=OFF")
        numbers = f"p(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM p WHERE n < {members})"
        for statement in _load_sql(members, weeks, numbers, f"'{LOADED:%Y-%m-%d %H:%M:%S.%f}'"):
            conn.execute(statement)
        conn.execute("ANALYZE")


def load_postgres(url: str, members: int, weeks: int) -> None:
    with psycopg.connect(url, autocommit=True) as conn:
        for statement in _load_sql(
            members, weeks, f"p(n) AS (SELECT generate_series(1, {members}))", "'2024-12-20 09:00:00+00'::timestamptz"
        ):
            conn.execute(statement)
        conn.execute("SELECT setval(pg_get_serial_sequence('people', 'id'), (SELECT max(id) FROM people))")
        conn.execute("VACUUM ANALYZE")


def add_indexes(url: str, sqlite_path: Path | None) -> None:
    if sqlite_path is not None:
        with sqlite3.connect(sqlite_path) as conn:
            for statement in CANDIDATE_INDEXES:
                conn.execute(statement)
            conn.execute("ANALYZE")
        return
    with psycopg.connect(url, autocommit=True) as conn:
        for statement in CANDIDATE_INDEXES:
            conn.execute(statement)
        conn.execute("VACUUM ANALYZE")


@dataclass(frozen=True)
class Timing:
    backlog: float  # the first digest once every week has closed, nothing stored: freezes them all
    new_week: float  # median: the first digest after the last week closed, earlier weeks stored
    stored: float  # median: a digest whose figures are all stored already
    best_stored: float
    chart: float


async def time_digest(url: str, program: Program, weeks: int, runs: int) -> Timing:
    """Seconds for the pilot's digest of its last week, read when that week has closed."""
    db = Database(url)
    week = IsoWeek.of(START) + (weeks - 1)
    now = program.cohort("pilot").closes_at(week)
    try:
        started = time.perf_counter()
        digest = await cohort_digest(db, program, "pilot", week, now)
        backlog = time.perf_counter() - started
        new_week = []
        for _ in range(runs):
            await _unfreeze(db, week)
            started = time.perf_counter()
            await cohort_digest(db, program, "pilot", week, now)
            new_week.append(time.perf_counter() - started)
        stored = []
        for _ in range(runs):
            started = time.perf_counter()
            digest = await cohort_digest(db, program, "pilot", week, now)
            stored.append(time.perf_counter() - started)
        started = time.perf_counter()
        await chart_png(digest)
        chart = time.perf_counter() - started
        assert digest.primary is not None and digest.primary.status == "shown", digest.primary
    finally:
        await db.close()
    return Timing(backlog, statistics.median(new_week), statistics.median(stored), min(stored), chart)


async def _unfreeze_all(url: str) -> None:
    db = Database(url)
    try:
        async with db.session() as session:
            await session.execute(delete(WeekFigure))
    finally:
        await db.close()


async def _unfreeze(db: Database, week: IsoWeek) -> None:
    """Forget the stored figures of ``week`` (both cohorts), as if it had only just closed."""
    async with db.session() as session:
        await session.execute(delete(WeekFigure).where(WeekFigure.week == str(week)))


async def run(database: str, members: int, weeks: int, runs: int, index: bool) -> list[tuple[str, int, int, str, Timing]]:
    program = bench_program(weeks)
    signals = members * weeks * len(BEHAVIORS)
    results = []
    with tempfile.TemporaryDirectory(prefix="reinforce-bench-") as tmp:
        sqlite_path: Path | None = None
        schema = None
        if database == "sqlite":
            sqlite_path = Path(tmp) / "bench.db"
            url = f"sqlite:///{sqlite_path}"
        else:
            schema = f"bench_{uuid.uuid4().hex[:10]}"
            with psycopg.connect(PG, autocommit=True) as conn:
                conn.execute(f'CREATE SCHEMA "{schema}"')
            url = f"{PG}{'&' if '?' in PG else '?'}options=-csearch_path%3D{schema}"
        try:
            started = time.perf_counter()
            await _create(url, program)
            if sqlite_path is not None:
                await asyncio.to_thread(load_sqlite, sqlite_path, members, weeks)
            else:
                await asyncio.to_thread(load_postgres, url, members, weeks)
            print(f"  {database}: loaded {signals:,} signals in {time.perf_counter() - started:.1f} s", flush=True)
            results.append((database, members, signals, "schema indexes", await time_digest(url, program, weeks, runs)))
            if index:
                await asyncio.to_thread(add_indexes, url, sqlite_path)
                await _unfreeze_all(url)
                results.append((database, members, signals, "+ candidate indexes", await time_digest(url, program, weeks, runs)))
        finally:
            if schema is not None:
                with psycopg.connect(PG, autocommit=True) as conn:
                    conn.execute(f'DROP SCHEMA "{schema}" CASCADE')
    return results


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--database", choices=["sqlite", "postgresql", "both"], default="both")
    parser.add_argument("--members", type=int, default=20_000, help="members at full size (a tenth is run too)")
    parser.add_argument("--weeks", type=int, default=52)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--index", action="store_true", help="also time with the candidate indexes")
    args = parser.parse_args()
    databases = ["sqlite", "postgresql"] if args.database == "both" else [args.database]
    rows = []
    for database in databases:
        for members in (args.members // 10, args.members):
            rows += await run(database, members, args.weeks, args.runs, args.index)
    print()
    columns = ("first digest, every week to store", "a week just closed (median)", "stored (median)", "best", "chart")
    print(f"| database | members | signals | indexes | {' | '.join(columns)} |")
    print("|---|---|---|---|---|---|---|---|---|")
    for database, members, signals, indexes, t in rows:
        ms = [f"{x * 1000:,.0f} ms" for x in (t.backlog, t.new_week, t.stored, t.best_stored, t.chart)]
        print(f"| {database} | {members:,} | {signals:,} | {indexes} | {' | '.join(ms)} |")


if __name__ == "__main__":
    asyncio.run(main())
