"""The member's own page (bot/home.py): each cohort they are in, with where its week stands."""

from __future__ import annotations

from datetime import UTC, date, datetime
from pathlib import Path

from bot.files import load_program
from bot.home import home_view, week_label
from nudges.messages import Header
from nudges.program import Program, parse_program
from nudges.weeks import IsoWeek
from storage.db import Database
from storage.programs import save_program
from tests.seed import link

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "program.yaml"
SAMI = "sami@example.com"  # a member of Wave B


def _coaching_another_cohort() -> Program:
    """The example, with Sami (a member of Wave B, which starts later here) also coaching Pilot A."""
    data = load_program(str(EXAMPLE)).model_dump(mode="json")
    data["cohorts"][0]["coaches"].append(SAMI)
    data["cohorts"][1]["starts"] = "2026-01-19"
    return parse_program(data, "coach.yaml")


async def _load(db: Database, program: Program) -> None:
    async with db.session() as session:
        await save_program(session, program, "coach.yaml", datetime(2026, 1, 5, tzinfo=UTC))
        await link(session, SAMI, "slack", "T1:USAMI")  # seeded: this tests the page, not how members are linked


def test_week_labels_say_where_the_week_falls_in_the_cohort() -> None:
    pilot = load_program(str(EXAMPLE)).cohort("pilot-a")
    assert week_label(pilot, IsoWeek(2026, 4)) == "Week 3 of 12"
    assert week_label(pilot, IsoWeek(2026, 1)) == f"Starts {date(2026, 1, 5):%-d %B %Y}"
    assert week_label(pilot, IsoWeek(2026, 14)) == "Ended after 12 weeks"


async def test_a_member_who_coaches_another_cohort_sees_both_with_their_weeks(db: Database) -> None:
    program = _coaching_another_cohort()
    await _load(db, program)
    page = await home_view(db, program, "slack", "T1:USAMI", datetime(2026, 1, 21, 10, tzinfo=UTC))
    headers = [b.text for b in page.blocks if isinstance(b, Header)]
    assert headers == ["Wave B · Week 1 of 20", "Pilot A · Week 3 of 12"]
    assert "Streak: 0 weeks in a row. 0 of 3 questions answered this week." in page.plain()
    assert "You are its coach." in page.plain()


async def test_a_cohort_that_has_not_started_says_when_it_starts(db: Database) -> None:
    program = _coaching_another_cohort()
    await _load(db, program)
    page = await home_view(db, program, "slack", "T1:USAMI", datetime(2026, 1, 7, 10, tzinfo=UTC))
    headers = [b.text for b in page.blocks if isinstance(b, Header)]
    assert headers == ["Wave B · Starts 19 January 2026", "Pilot A · Week 1 of 12"]
    assert "No check-in this week." in page.plain()


async def test_someone_only_coaching_sees_the_cohorts_they_coach(db: Database) -> None:
    program = load_program(str(EXAMPLE))
    async with db.session() as session:
        await save_program(session, program, "example.yaml", datetime(2026, 1, 5, tzinfo=UTC))
        await link(session, "coach@example.com", "slack", "T1:UCOACH")
    page = await home_view(db, program, "slack", "T1:UCOACH", datetime(2026, 1, 21, 10, tzinfo=UTC))
    assert [b.text for b in page.blocks if isinstance(b, Header)] == ["Pilot A · Week 3 of 12", "Wave B · Week 3 of 20"]
    assert "Streak" not in page.plain() and "Open this week's checklist" not in page.plain()
