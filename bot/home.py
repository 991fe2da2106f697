"""A member's own page (Slack App Home, Teams personal card): streak, this week, last 8 weeks."""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

from nudges.checklist import ANSWERS
from nudges.messages import Block, Choice, Context, Header, Message, Section
from nudges.program import Program
from nudges.weeks import IsoWeek
from storage import checkins, people
from storage.db import Database

HISTORY_WEEKS = 8
MARKS = {"yes": "●", "partly": "◐", "no": "○"}


async def home_view(db: Database, program: Program, platform: str, user_id: str, now: datetime) -> Message:
    """What a member sees on their own page; only their own data, never anyone else's."""
    async with db.session() as session:
        person = await people.by_platform_id(session, platform, user_id)
        cohorts = await people.participations(session, person.id) if person else []
        if person is None or not cohorts:
            return Message(
                "Reinforce", (Header("Reinforce"), Section("You are not part of a Reinforce cohort. Ask your program owner to add you."))
            )
        cohort = cohorts[0]
        spec = program.cohort(cohort.key)
        week = IsoWeek.of(now.astimezone(ZoneInfo(person.timezone)))
        weeks = [week + offset for offset in range(-HISTORY_WEEKS + 1, 1) if spec.week_number(week + offset) >= 1]
        history = await checkins.recent_weeks(session, person.id, cohort.id, weeks)
        streak = await checkins.streak(session, person.id, cohort.id, week)
        consent = await people.consent_status(session, person.id)
        choice = await checkins.week_choice(session, person.id, cohort.id, week)
    answered_now = sum(1 for key in spec.checklist if (key, week) in history)
    if not spec.is_running(week):
        this_week = "No check-in this week."
    elif choice is not None and choice.skipped_at is not None:
        this_week = "You skipped this week."
    else:
        this_week = f"{answered_now} of {len(spec.checklist)} questions answered this week."
    blocks: list[Block] = [
        Header(f"{spec.name}: your check-ins"),
        Section(f"Streak: {streak} week{'s' if streak != 1 else ''} in a row. {this_week}"),
    ]
    if person.paused_at is not None:
        blocks.append(Context("Paused: type `resume` to continue."))
    if consent != "accepted":
        blocks.append(Context("You have not accepted the consent message, so nothing is recorded."))
    for key in spec.checklist:
        behavior = program.behavior(key)
        marks = " ".join(_mark(behavior.answer, history.get((key, w))) for w in weeks)
        blocks.append(Section(f"{behavior.question}\n{marks or 'no weeks yet'}"))
    blocks.append(Context("Last weeks, oldest first: ● yes ◐ partly ○ no · a number is your answer · – no answer"))
    blocks.append(
        Section("", (Choice("Open this week's checklist", "cmd|checkin"), Choice("Start a rehearsal", "cmd|rehearse")), block_id="home")
    )
    return Message(f"{spec.name}: your check-ins", tuple(blocks))


def _mark(kind: str, value: str | None) -> str:
    if value is None:
        return "–"
    if kind == "yes_partly_no":
        return MARKS.get(value, "?")
    return value if any(stored == value for _l, stored, _n in ANSWERS[kind]) else "?"
