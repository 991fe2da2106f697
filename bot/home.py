"""A member's own page (Slack App Home, Teams personal card): each cohort they are in and its week; their check-ins in their own."""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

from sqlalchemy.ext.asyncio import AsyncSession

from nudges.checklist import ANSWERS
from nudges.messages import Block, Choice, Context, Header, Message, Section
from nudges.program import Cohort, Program
from nudges.weeks import IsoWeek
from storage import checkins, people
from storage.db import Database
from storage.models import Cohort as CohortRow
from storage.models import Person

HISTORY_WEEKS = 8
MARKS = {"yes": "●", "partly": "◐", "no": "○"}


def week_label(cohort: Cohort, week: IsoWeek) -> str:
    """Where ``week`` falls in the cohort: "Week 3 of 12", or before its start, or after its end."""
    number = cohort.week_number(week)
    if number < 1:
        return f"Starts {cohort.starts:%-d %B %Y}"
    if number > cohort.weeks:
        return f"Ended after {cohort.weeks} weeks"
    return f"Week {number} of {cohort.weeks}"


async def home_view(db: Database, program: Program, platform: str, user_id: str, now: datetime) -> Message:
    """What a member sees on their own page; only their own data, never anyone else's. A
    participant's cohort shows their check-ins; a cohort they coach or sponsor, its week."""
    async with db.session() as session:
        person = await people.by_platform_id(session, platform, user_id)
        cohorts = await people.participations(session, person.id) if person else []
        roles = await _roles(session, person.id) if person else {}
        if person is None or not (cohorts or roles):
            return Message(
                "Reinforce", (Header("Reinforce"), Section("You are not part of a Reinforce cohort. Ask your program owner to add you."))
            )
        week = IsoWeek.of(now.astimezone(ZoneInfo(person.timezone)))
        blocks: list[Block] = []
        if person.paused_at is not None:
            blocks.append(Context("Paused: type `resume` to continue."))
        if cohorts and await people.consent_status(session, person.id) != "accepted":
            blocks.append(Context("You have not accepted the consent message, so nothing is recorded."))
        for cohort in cohorts:
            blocks += await _cohort_blocks(session, program, person, cohort, week)
    for key, held in roles.items():
        spec = program.cohort(key)
        blocks += [Header(f"{spec.name} · {week_label(spec, week)}"), Context(f"You are its {' and '.join(held)}.")]
    if cohorts:
        blocks.append(Context("Last weeks, oldest first: ● yes ◐ partly ○ no · a number is your answer · – no answer"))
        blocks.append(
            Section("", (Choice("Open this week's checklist", "cmd|checkin"), Choice("Start a rehearsal", "cmd|rehearse")), block_id="home")
        )
    return Message("Reinforce: your check-ins", tuple(blocks))


async def _roles(session: AsyncSession, person_id: int) -> dict[str, list[str]]:
    """Cohort key -> the roles the person holds in it (coach, sponsor)."""
    held: dict[str, list[str]] = {}
    for role in ("coach", "sponsor"):
        for key in await people.cohorts_with_role(session, person_id, role):
            held.setdefault(key, []).append(role)
    return held


async def _cohort_blocks(session: AsyncSession, program: Program, person: Person, cohort: CohortRow, week: IsoWeek) -> list[Block]:
    """One cohort on the page: its week label, streak, this week, and the member's recent answers."""
    spec = program.cohort(cohort.key)
    weeks = [week + offset for offset in range(-HISTORY_WEEKS + 1, 1) if spec.is_running(week + offset)]
    history = await checkins.recent_weeks(session, person.id, cohort.id, weeks)
    streak = await checkins.streak(session, person.id, cohort.id, week)
    choice = await checkins.week_choice(session, person.id, cohort.id, week)
    answered_now = sum(1 for key in spec.checklist if (key, week) in history)
    if not spec.is_running(week):
        this_week = "No check-in this week."
    elif choice is not None and choice.skipped_at is not None:
        this_week = "You skipped this week."
    else:
        this_week = f"{answered_now} of {len(spec.checklist)} questions answered this week."
    blocks: list[Block] = [
        Header(f"{spec.name} · {week_label(spec, week)}"),
        Section(f"Streak: {streak} week{'s' if streak != 1 else ''} in a row. {this_week}"),
    ]
    for key in spec.checklist:
        behavior = program.behavior(key)
        marks = " ".join(_mark(behavior.answer, history.get((key, w))) for w in weeks)
        blocks.append(Section(f"{behavior.question}\n{marks or 'no weeks yet'}"))
    return blocks


def _mark(kind: str, value: str | None) -> str:
    if value is None:
        return "–"
    if kind == "yes_partly_no":
        return MARKS.get(value, "?")
    return value if any(stored == value for _l, stored, _n in ANSWERS[kind]) else "?"
