"""`reinforce demo`: the whole weekly loop on embedded defaults, with simulated managers.

It goes through the same use cases as production (outbox, delivery, record_answer, digest);
only the chat platform (the console adapter) and the people clicking are simulated.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, time, timedelta
from pathlib import Path
from typing import TextIO

from sqlalchemy import func, select

from adapters.console import ConsoleChat
from bot.chart import chart_png
from bot.checkins import deliver_outbox, enqueue_checklists, record_answer
from bot.digests import cohort_digest
from nudges.digest import render_text
from nudges.messages import Section
from nudges.program import Program, load_program, parse_program
from nudges.weeks import IsoWeek
from storage import people
from storage.db import Database, upgrade
from storage.models import BehaviorSignal, CheckinAnswer, Person
from storage.programs import save_program

EXAMPLE_PROGRAM = Path(__file__).resolve().parent.parent / "examples" / "program.yaml"
PILOT, COMPARISON = "pilot-a", "wave-b"
TIMEZONES = ("Europe/Lisbon", "Europe/Berlin", "America/New_York", "Asia/Kolkata", "America/Sao_Paulo")

# How simulated managers behave: a starting propensity per behavior, a weekly gain that is
# larger in the pilot (which gets the training) than in the comparison wave.
WEEKLY_GAIN = {PILOT: 0.06, COMPARISON: 0.01}
ANSWER_RATE = 0.85
CHANGE_OF_MIND = 0.05
DOUBLE_CLICK = 0.05


class DemoError(Exception):
    """The demo cannot run as asked; the message says why."""


@dataclass(frozen=True)
class DemoResult:
    database: Path
    answers: int
    signals: int
    digest_text: str


def simulated_program(program: Program, managers: int) -> Program:
    """The example program with its members replaced by ``managers`` simulated ones."""
    data = program.model_dump(mode="json")
    cohorts = {c["key"]: c for c in data["cohorts"]}
    for cohort in cohorts.values():
        cohort["members"] = []
    for n in range(managers):
        key = PILOT if n % 2 == 0 else COMPARISON
        cohorts[key]["members"].append(
            {"email": f"manager{n + 1:03d}@demo.example", "platform": "slack" if n % 3 else "teams", "timezone": TIMEZONES[n % len(TIMEZONES)]}
        )
    return parse_program(data, "demo program")


async def run_demo(out_dir: Path, weeks: int = 8, managers: int = 40, out: TextIO | None = None, seed: int = 7) -> DemoResult:
    """Run ``weeks`` weeks for ``managers`` simulated managers in ``out_dir``; print progress to ``out``."""

    def say(text: str = "") -> None:
        if out is not None:
            print(text, file=out, flush=True)

    out_dir.mkdir(parents=True, exist_ok=True)
    db_path = out_dir / "reinforce.db"
    if db_path.exists() and not (out_dir / "transcript.txt").exists():
        # Only a database an earlier demo left (with its transcript) is ever replaced.
        raise DemoError(f"{out_dir} already holds a reinforce.db that a demo did not create; choose another --out")
    for stale in (db_path, db_path.with_name("reinforce.db-wal"), db_path.with_name("reinforce.db-shm")):
        stale.unlink(missing_ok=True)
    url = f"sqlite:///{db_path}"
    await asyncio.to_thread(upgrade, url)
    program = simulated_program(load_program(str(EXAMPLE_PROGRAM)), managers)
    pilot = program.cohort(PILOT)
    first_week = IsoWeek.of(pilot.starts)
    rng = random.Random(seed)
    say(f"Reinforce demo: {managers} simulated managers, {weeks} weeks, database {db_path}")

    db = Database(url)
    try:
        start = datetime.combine(pilot.starts, time(9), UTC)
        async with db.session() as session:
            await save_program(session, program, "examples/program.yaml (simulated members)", start)
            for person in (await session.scalars(select(Person))).all():
                await people.set_consent(session, person.id, "accepted", start)
        cohort_of = {m.email: c.key for c in program.cohorts for m in c.members}
        propensity = {(email, b): rng.uniform(0.15, 0.45) for email in cohort_of for b in pilot.checklist}

        with (out_dir / "transcript.txt").open("w") as transcript:
            chat = ConsoleChat(out=transcript)
            chats = {"slack": chat, "teams": chat}
            for i in range(weeks):
                week = first_week + i
                now = start + timedelta(weeks=i)
                await enqueue_checklists(db, program, week, now)
                already = set(chat.posted)
                report = await deliver_outbox(db, program, chats, now)
                if i == 0 and chat.posted:
                    say("\nWhat a manager receives (console rendering of the weekly DM):")
                    say(next(iter(chat.posted.values())).message.plain())
                    say("")
                answered = 0
                for message_id in [m for m in chat.posted if m not in already]:
                    email = chat.posted[message_id].to.user_id.removeprefix("console:")  # type: ignore[union-attr]
                    gain = WEEKLY_GAIN[cohort_of[email]] * i
                    answered += await _simulate_manager(db, program, chat, message_id, now, rng, lambda b, e=email: propensity[(e, b)] + gain)
                say(f"week {i + 1}/{weeks} ({week}): {report.sent} checklists sent, {answered} managers answered")

        # The digest as the sponsor gets it on the Friday of the last simulated week.
        digest = await cohort_digest(db, program, PILOT, first_week + (weeks - 1), start + timedelta(weeks=weeks - 1, days=4))
        text = render_text(digest)
        (out_dir / "digest.txt").write_text(text + "\n")
        chart = await chart_png(digest)
        if chart is not None:
            (out_dir / "digest.png").write_bytes(chart)
        async with db.session() as session:
            answers = await session.scalar(select(func.count()).select_from(CheckinAnswer)) or 0
            signals = await session.scalar(select(func.count()).select_from(BehaviorSignal)) or 0
    finally:
        await db.close()
    say("\nSponsor digest for the pilot:\n")
    say(text)
    say(f"\nStored {answers} answers and {signals} behavior signals in {db_path}")
    chart_note = f" and its chart in {out_dir / 'digest.png'}" if chart is not None else ""
    say(f"Every message sent is in {out_dir / 'transcript.txt'}; the digest in {out_dir / 'digest.txt'}{chart_note}.")
    if digest.primary is not None and digest.primary.status == "not_due":
        due = IsoWeek.of(digest.primary.first_analysis) - first_week + 1
        say(f"The pre-registered comparison is first due on {digest.primary.first_analysis}: run with --weeks {due} to see it.")
    return DemoResult(db_path, answers, signals, text)


async def _simulate_manager(
    db: Database, program: Program, chat: ConsoleChat, message_id: str, now: datetime, rng: random.Random, p_yes: Callable[[str], float]
) -> int:
    """One manager's clicks on one checklist; returns 1 if they answered at all."""
    if rng.random() > ANSWER_RATE:
        return 0
    at = now + timedelta(minutes=rng.randint(1, 600))
    sections = [b for b in chat.posted[message_id].message.blocks if isinstance(b, Section) and (b.block_id or "").startswith("q:")]
    for section in sections:
        behavior = (section.block_id or "").removeprefix("q:")
        labels = [_answer(rng, min(0.95, p_yes(behavior)))]
        if rng.random() < CHANGE_OF_MIND:  # a second thought, later: the last answer wins
            labels.append(_answer(rng, min(0.95, p_yes(behavior))))
        for label in labels:
            at += timedelta(seconds=rng.randint(5, 90))
            click = chat.click(message_id, section.block_id or "", label, at)
            presses = 2 if rng.random() < DOUBLE_CLICK else 1  # a platform retry: same event id
            for _ in range(presses):
                outcome = await record_answer(db, program, click)
                if outcome.message is not None:
                    await chat.update({"message_id": message_id}, outcome.message)
    return 1


def _answer(rng: random.Random, p_yes: float) -> str:
    r = rng.random()
    return "Yes" if r < p_yes else "Partly" if r < p_yes + 0.2 else "No"
