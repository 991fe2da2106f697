"""Fast seeding of large populations for process and fan-out tests (bulk inserts, not
one program-file upsert per member)."""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import insert, select

from bot.files import load_program
from nudges.program import Program, parse_program
from storage.db import Database
from storage.models import Cohort, Consent, Membership, Person
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
            [
                {
                    "email": f"m{i}@example.com",
                    "timezone": "UTC",
                    "platform": "slack",
                    "platform_user_id": f"{team}:U{i}",
                    "created_at": LOADED,
                }
                for i in range(members)
            ],
        )
        ids = (await session.scalars(select(Person.id).where(Person.email.like("m%@example.com")))).all()
        await session.execute(
            insert(Membership),
            [{"person_id": i, "cohort_id": cohort_id, "role": "participant", "active": True, "joined_at": LOADED} for i in ids],
        )
        await session.execute(insert(Consent), [{"person_id": i, "status": "accepted", "changed_at": LOADED} for i in ids])
    return program
