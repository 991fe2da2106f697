"""Seeding for use-case, storage, process and fan-out tests: linked people without a chat
platform to look them up in (bulk inserts, not one program-file upsert per member).

Chat-flow tests (tests/adapters, tests/rig.py) never use this: they link people through
`program load` and first contact against the fakes, as a real workspace does."""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import insert, select
from sqlalchemy.ext.asyncio import AsyncSession

from bot.files import load_program
from nudges.program import Program, parse_program
from storage import accounts, people
from storage.db import Database
from storage.models import Account, Cohort, Consent, Membership, Person
from storage.programs import save_program

LOADED = datetime(2026, 1, 1, tzinfo=UTC)


async def seed_slack_members(db: Database, members: int, team: str = "T1") -> Program:
    """The example program's pilot cohort with ``members`` consenting Slack members in UTC,
    already resolved to user ids U0..U{n-1} in ``team``. Returns the program (members
    omitted from it: the database is what the tick reads)."""
    data = load_program("examples/program.yaml").model_dump(mode="json")
    for cohort in data["cohorts"]:
        cohort["members"] = []
    program = parse_program(data, "seed")
    async with db.session() as session:
        await save_program(session, program, "seed", LOADED)
        cohort_id = await session.scalar(select(Cohort.id).where(Cohort.key == "pilot-a"))
        await session.execute(
            insert(Person),
            [{"email": f"m{i}@example.com", "timezone": "UTC", "platform": "slack", "created_at": LOADED} for i in range(members)],
        )
        ids = (await session.scalars(select(Person.id).where(Person.email.like("m%@example.com")).order_by(Person.id))).all()
        await session.execute(
            insert(Account),
            [{"person_id": pid, "platform": "slack", "user_id": f"{team}:U{i}", "linked_at": LOADED} for i, pid in enumerate(ids)],
        )
        await session.execute(
            insert(Membership),
            [{"person_id": i, "cohort_id": cohort_id, "role": "participant", "active": True, "joined_at": LOADED} for i in ids],
        )
        await session.execute(insert(Consent), [{"person_id": i, "status": "accepted", "changed_at": LOADED} for i in ids])
    return program


async def link(session: AsyncSession, email: str, platform: str, user_id: str, *, consent: bool = False) -> Person:
    """Link a program person's account (and accept consent for them) as `program load` and the
    consent button would: for use-case tests that have no chat platform to link through."""
    person = await people.by_email(session, email)
    assert person is not None, f"{email} is not in the program"
    await accounts.link(session, person.id, platform, user_id, LOADED)
    if consent:
        await people.set_consent(session, person.id, "accepted", LOADED)
    return person
