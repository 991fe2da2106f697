"""`reinforce demo`: the whole weekly loop on embedded defaults, with simulated managers.

It goes through the same code as production: the scheduler's tick hour by hour, the
outbox and delivery engine, the inbound handler, the rehearsal and review use cases, the
digest. Only the chat platform (the console adapter) and the people clicking are simulated.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, time, timedelta
from pathlib import Path
from typing import TextIO

from sqlalchemy import distinct, func, select

from adapters.base import TextCommand
from adapters.console import ConsoleChat
from bot.app import App, build
from bot.chart import chart_png
from bot.digests import cohort_digest
from bot.files import load_program
from bot.identity import Identities
from bot.jobs import tick
from bot.ratelimit import Limits, RateLimiter
from bot.settings import Settings
from bot.simulation import COMPARISON, PILOT, Managers
from nudges.digest import render_text
from nudges.program import Program, parse_program
from nudges.weeks import IsoWeek
from storage.db import upgrade
from storage.models import BehaviorSignal, CheckinAnswer, Delivery
from storage.programs import save_program

EXAMPLE_PROGRAM = Path(__file__).resolve().parent.parent / "examples" / "program.yaml"
TICK_HOURS = 2
TIMEZONES = ("Europe/Lisbon", "Europe/Berlin", "America/New_York", "Asia/Kolkata", "America/Sao_Paulo")


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
            {
                "email": f"manager{n + 1:03d}@demo.example",
                "platform": "slack" if n % 3 else "teams",
                "timezone": TIMEZONES[n % len(TIMEZONES)],
            }
        )
    return parse_program(data, "demo program")


async def run_demo(out_dir: Path, weeks: int = 8, managers: int = 40, out: TextIO | None = None, seed: int = 7) -> DemoResult:
    """Run ``weeks`` weeks for ``managers`` simulated managers in ``out_dir``; print progress to ``out``."""

    def say(text: str = "") -> None:
        if out is not None:
            print(text, file=out, flush=True)

    db_path = _fresh_database(out_dir)
    url = f"sqlite:///{db_path}"
    await asyncio.to_thread(upgrade, url)
    program = simulated_program(load_program(str(EXAMPLE_PROGRAM)), managers)
    pilot = program.cohort(PILOT)
    first_week = IsoWeek.of(pilot.starts)
    say(f"Reinforce demo: {managers} simulated managers, {weeks} weeks, database {db_path}")
    app = build(_demo_settings(url))
    try:
        async with app.db.session() as session:
            await save_program(
                session,
                program,
                "examples/program.yaml (simulated members)",
                datetime.combine(pilot.starts, time(0), UTC) - timedelta(days=3),
            )
        with (out_dir / "transcript.txt").open("w") as transcript:
            chat = ConsoleChat(out=transcript)
            app.chats.update(slack=chat, teams=chat)
            # As `reinforce program load` does: everyone is linked to their (console) account by email.
            await Identities(app.db, app.chats).link_program(datetime.combine(pilot.starts, time(0), UTC) - timedelta(days=3))
            # A terminal has no rate limit: pacing the console as if it were Slack would only
            # make the demo wait in real seconds between messages of one simulated instant.
            app.deliverer.limiter = RateLimiter(Limits(per_conversation={}, per_tenant={}))
            cohort_of = {m.email: c.key for c in program.cohorts for m in c.members}
            crowd = Managers(chat, app.inbound, cohort_of, random.Random(seed), list(pilot.checklist))
            for i in range(weeks):
                await _simulate_week(app, program, crowd, first_week + i, i, say, show_sample=i == 0)
            friday = datetime.combine((first_week + (weeks - 1)).monday(), time(17), UTC) + timedelta(days=4)
            say("")
            await _rehearsal(app, program, chat, friday, say)
        # The sponsor's view once the last simulated week has closed (its answers' grace days
        # over): a week's behavior figures exist only from then on.
        last_week = first_week + (weeks - 1)
        digest = await cohort_digest(app.db, program, PILOT, last_week, pilot.closes_at(last_week))
        text = render_text(digest)
        (out_dir / "digest.txt").write_text(text + "\n")
        chart = await chart_png(digest)
        if chart is not None:
            (out_dir / "digest.png").write_bytes(chart)
        async with app.db.session() as session:
            answers = await session.scalar(select(func.count()).select_from(CheckinAnswer)) or 0
            signals = await session.scalar(select(func.count()).select_from(BehaviorSignal)) or 0
    finally:
        await app.close()
    say(f"\nSponsor digest for the pilot, as of {digest.closes_at:%Y-%m-%d %H:%M} UTC when week {weeks} closed:\n")
    say(text)
    say(f"\nStored {answers} answers and {signals} behavior signals in {db_path}")
    chart_note = f" and its chart in {out_dir / 'digest.png'}" if chart is not None else ""
    say(f"Every message sent is in {out_dir / 'transcript.txt'}; the digest in {out_dir / 'digest.txt'}{chart_note}.")
    if digest.primary is not None and digest.primary.status == "not_due":
        due = IsoWeek.of(digest.primary.first_analysis) - first_week + 1
        say(f"The pre-registered comparison is first due on {digest.primary.first_analysis}: run with --weeks {due} to see it.")
    return DemoResult(db_path, answers, signals, text)


def _fresh_database(out_dir: Path) -> Path:
    out_dir.mkdir(parents=True, exist_ok=True)
    db_path = out_dir / "reinforce.db"
    if db_path.exists() and not (out_dir / "transcript.txt").exists():
        # Only a database an earlier demo left (with its transcript) is ever replaced.
        raise DemoError(f"{out_dir} already holds a reinforce.db that a demo did not create; choose another --out")
    for stale in (db_path, db_path.with_name("reinforce.db-wal"), db_path.with_name("reinforce.db-shm")):
        stale.unlink(missing_ok=True)
    return db_path


def _demo_settings(url: str) -> Settings:
    """Embedded defaults: whatever the environment says, no platform, no LLM."""
    return Settings(
        database_url=url,
        slack_bot_token=None,
        slack_client_id=None,
        slack_client_secret=None,
        slack_app_token=None,
        microsoft_app_id=None,
        reinforce_teams_dev=False,
        openai_api_key=None,
        openai_base_url=None,
        reinforce_scenarios=None,
    )


async def _simulate_week(
    app: App, program: Program, crowd: Managers, week: IsoWeek, index: int, say: Callable[[str], None], show_sample: bool
) -> None:
    """Monday 00:00 to Friday 22:00 UTC, every two hours (the worker ticks every minute; two
    hours keep the demo quick and still hit every slot): the managers act, the scheduler
    ticks, the outbox is delivered, and the managers notice what arrived."""
    monday = datetime.combine(week.monday(), time(0), UTC)
    for hour in range(0, 5 * 24, TICK_HOURS):
        now = monday + timedelta(hours=hour)
        await crowd.act(now, index)
        await tick(app.db, program, now)
        await app.deliverer.deliver_due(program, _clock(now))
        crowd.notice(now, index)
        if show_sample and hour == 22:
            sample = next((p for p in crowd.chat.posted.values() if (p.key or "").startswith("checklist:")), None)
            if sample is not None:
                say("\nWhat a manager receives (console rendering of the weekly DM):")
                say(sample.message.plain() + "\n")
    async with app.db.session() as session:
        sent = dict(
            (
                await session.execute(
                    select(Delivery.kind, func.count())
                    .where(Delivery.status == "sent", Delivery.sent_at >= monday, Delivery.sent_at < monday + timedelta(days=7))
                    .group_by(Delivery.kind)
                )
            ).all()
        )
        answered = await session.scalar(select(func.count(distinct(CheckinAnswer.person_id))).where(CheckinAnswer.week == str(week))) or 0
    parts = [
        f"{sent.get(kind, 0)} {label}"
        for kind, label in (
            ("consent", "consent requests"),
            ("checklist", "checklists"),
            ("reminder", "reminders"),
            ("nudge", "nudges"),
            ("digest", "digests"),
        )
    ]
    say(f"week {index + 1} ({week}): sent {', '.join(p for p in parts if not p.startswith('0 '))}; {answered} managers answered")


async def _rehearsal(app: App, program: Program, chat: ConsoleChat, now: datetime, say: Callable[[str], None]) -> None:
    """One offline rehearsal that the review policy flags, a coach's decision, and what the
    leader is told: the human-review loop end to end."""
    leader = program.cohort(PILOT).members[0]
    leader_id = f"console:{leader.email}"
    if "coach@example.com" not in program.cohort(PILOT).coaches:
        raise DemoError("the example program names no coach@example.com to review the rehearsal")
    say(f"A rehearsal by {leader.email} (offline rubric check, no AI):")
    await app.inbound.command(TextCommand(leader.platform, leader_id, "rehearse vp-decision-huddles", now))
    for line in REHEARSAL:
        say(f"  leader: {line}")
        await app.inbound.message(TextCommand(leader.platform, leader_id, line, now))
        await app.rehearsals.drain()
        answer = list(chat.posted.values())[-1].message
        say("  " + answer.plain().replace("\n", "\n  "))
    await app.deliverer.deliver_due(program, lambda: now)
    review = _posted_with_key(chat, "review:")
    if review is None:
        say("\nThe review item did not reach the review channel (see transcript.txt).")
        return
    say(f"\nThe review channel got it (flagged): {chat.posted[review].message.blocks[2].text}")  # type: ignore[union-attr]
    click = chat.click(review, "review", "Approve", now + timedelta(minutes=20), by="console:coach@example.com")
    reply = await app.inbound.click(click)
    if reply.update is not None:
        await chat.update({"message_id": review}, reply.update)
    await app.deliverer.deliver_due(program, lambda: now + timedelta(minutes=21))
    told = _posted_with_key(chat, "review_outcome:")
    say(
        f"A coach approved it; the leader is told: {chat.posted[told].message.text}"
        if told
        else "A coach approved it, but the leader's notice was not sent."
    )


def _clock(at: datetime) -> Callable[[], datetime]:
    """A clock stopped at ``at``: the simulated instant the delivery engine sees."""
    return lambda: at


def _posted_with_key(chat: ConsoleChat, prefix: str) -> str | None:
    """The id of the last message the outbox delivered with a key starting ``prefix``."""
    return next((m for m, p in reversed(chat.posted.items()) if (p.key or "").startswith(prefix)), None)


REHEARSAL = (
    "Dana, can we trial a 15-minute weekly decision huddle for six weeks, starting Tuesday? Last quarter 4 of 9 launches slipped.",
    "It replaces the Thursday sync, so no extra time. If leads skip it, I will raise it at their performance review.",
    "done",
)
