"""Saving a program file: versions, people, roles; reloading a changed file."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy import select

from bot.files import load_program
from nudges.program import parse_program
from storage import accounts
from storage.db import Database
from storage.models import Cohort, Membership, Person, ProgramVersion
from storage.programs import current_program, save_program

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "program.yaml"
T0 = datetime(2026, 1, 1, tzinfo=UTC)


async def test_saving_the_example_creates_cohorts_people_and_roles(db: Database) -> None:
    program = load_program(str(EXAMPLE))
    async with db.session() as session:
        saved = await save_program(session, program, "examples/program.yaml", T0)
    members = sum(len(c.members) for c in program.cohorts)
    assert (saved.changed, saved.cohorts, saved.participants) == (True, 2, members)
    async with db.session() as session:
        assert set(await session.scalars(select(Cohort.key))) == {"pilot-a", "wave-b"}
        roles = (await session.execute(select(Person.email, Membership.role).join(Membership))).all()
        loaded, version = await current_program(session)
    assert ("owner@example.com", "admin") in roles
    assert ("vp.product@example.com", "sponsor") in roles
    assert ("coach@example.com", "coach") in roles
    assert sum(1 for _e, role in roles if role == "participant") == members
    assert loaded == program and version.content_hash == program.content_hash()


async def test_loading_the_same_content_again_adds_no_version(db: Database) -> None:
    program = load_program(str(EXAMPLE))
    async with db.session() as session:
        first = await save_program(session, program, "a.yaml", T0)
    async with db.session() as session:
        again = await save_program(session, program, "a.yaml", T0)
        versions = (await session.scalars(select(ProgramVersion))).all()
    assert again.changed is False and again.version_id == first.version_id and len(versions) == 1


async def test_a_member_removed_from_the_file_is_deactivated_and_readding_revives(db: Database) -> None:
    program = load_program(str(EXAMPLE))
    data = program.model_dump(mode="json")
    removed = data["cohorts"][0]["members"].pop(0)["email"]
    smaller = parse_program(data, "smaller.yaml")
    async with db.session() as session:
        await save_program(session, program, "a.yaml", T0)
    async with db.session() as session:
        saved = await save_program(session, smaller, "b.yaml", T0)
    assert saved.changed and saved.deactivated == 1
    active = select(Membership.active).join(Person).where(Person.email == removed, Membership.role == "participant")
    async with db.session() as session:
        assert await session.scalar(active) is False
        await save_program(session, program, "a.yaml", T0)
    async with db.session() as session:
        assert await session.scalar(active) is True
        assert len((await session.scalars(select(ProgramVersion))).all()) == 3


async def test_a_member_moving_platform_must_be_linked_on_the_new_one(db: Database) -> None:
    program = load_program(str(EXAMPLE))
    member = program.cohorts[0].members[0]
    moved_to = "teams" if member.platform == "slack" else "slack"
    async with db.session() as session:
        await save_program(session, program, "a.yaml", T0)
        person = await session.scalar(select(Person).where(Person.email == member.email))
        await accounts.link(session, person.id, member.platform, "T1:U123", T0)
        assert member.email not in {p.email for p, _roles, _missing in await accounts.needing_link(session, ["slack", "teams"])}
    data = program.model_dump(mode="json")
    data["cohorts"][0]["members"][0]["platform"] = moved_to
    async with db.session() as session:
        await save_program(session, parse_program(data, "moved.yaml"), "moved.yaml", T0)
    async with db.session() as session:
        needing = {p.email: missing for p, _roles, missing in await accounts.needing_link(session, ["slack", "teams"])}
        kept = await accounts.linked(session, [person.id])
    assert needing[member.email] == {moved_to} and kept[person.id] == {member.platform: "T1:U123"}
