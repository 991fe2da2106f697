"""Identity against the fake Slack workspace: everyone linked at `program load` by email, the
rest on first contact through their profile, strangers never, deactivated members let go."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy import select

from bot.app import App, build
from bot.files import load_program
from bot.identity import Identities
from bot.programs import load_report, store_program
from bot.settings import Settings
from storage import accounts, people
from storage.db import upgrade
from storage.models import AuditEntry, Person
from tests.fakes.slack import FakeSlack, running_fake_slack

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "program.yaml"
NOW = datetime(2026, 1, 5, 9, 0, tzinfo=UTC)
TEAM = "T0001"


def _user(email: str) -> str:
    return "U" + email.split("@")[0].upper().replace(".", "")


@asynccontextmanager
async def _slack_app(db_url: str) -> AsyncIterator[tuple[App, FakeSlack]]:
    upgrade(db_url)
    async with running_fake_slack() as fake:
        app = build(Settings(database_url=db_url, slack_bot_token="xoxb-t", slack_signing_secret="s", slack_api_url=fake.url))
        await app.start()
        try:
            yield app, fake
        finally:
            await app.close()


async def _accounts(app: App) -> dict[str, dict[str, str]]:
    async with app.db.session() as session:
        everyone = (await session.scalars(select(Person))).all()
        linked = await accounts.linked(session, [p.id for p in everyone])
    return {p.email: linked[p.id] for p in everyone if p.id in linked}


async def test_program_load_links_everyone_in_the_workspace_and_reports_the_rest_by_role(db_url: str) -> None:
    program = load_program(str(EXAMPLE))
    async with _slack_app(db_url) as (app, fake):
        slack_members = [m.email for c in program.cohorts for m in c.members if m.platform == "slack"]
        for email in [*slack_members, "vp.product@example.com", "owner@example.com"]:
            fake.add_user(email, TEAM, _user(email))
        saved = await store_program(app.db, program, "examples/program.yaml", NOW)
        unlinked = await Identities(app.db, app.chats).link_program(NOW)
        linked = await _accounts(app)
        report = load_report("examples/program.yaml", program, saved, unlinked)
    assert {e for e, a in linked.items() if "slack" in a} == {*slack_members, "vp.product@example.com", "owner@example.com"}
    assert linked["owner@example.com"] == {"slack": f"{TEAM}:UOWNER"}
    # The coach is in no workspace yet; the Teams members' platform is not configured here.
    assert [(u.email, u.roles) for u in unlinked if u.roles[0] != "participant"] == [("coach@example.com", ("coach",))]
    assert "coaches:\n    coach@example.com: no member of the Slack workspace(s) has this email" in "\n".join(report)
    teams = next(u for u in unlinked if u.roles == ("participant",))
    assert teams.reason == "Teams is not configured here"


async def test_someone_added_to_the_workspace_later_is_linked_on_first_contact_a_stranger_never(db_url: str) -> None:
    async with _slack_app(db_url) as (app, fake):
        await store_program(app.db, load_program(str(EXAMPLE)), "examples/program.yaml", NOW)
        identities = Identities(app.db, app.chats)
        await identities.link_program(NOW)
        fake.add_user("coach@example.com", TEAM, "UCOACH")
        fake.add_user("stranger@elsewhere.example", TEAM, "USTRANGER")
        coach = await identities.recognise("slack", f"{TEAM}:UCOACH", NOW)
        assert coach is not None and coach.email == "coach@example.com"
        assert await identities.recognise("slack", f"{TEAM}:USTRANGER", NOW) is None
        assert await identities.recognise("slack", f"{TEAM}:UNOBODY", NOW) is None
        assert (await _accounts(app))["coach@example.com"] == {"slack": f"{TEAM}:UCOACH"}
        assert [c.params["user"] for c in fake.called("users.info")] == ["UCOACH", "USTRANGER", "UNOBODY"]
        await identities.recognise("slack", f"{TEAM}:UCOACH", NOW)
        assert len(fake.called("users.info")) == 3  # known now: no second look-up
        async with app.db.session() as session:
            entries = (await session.execute(select(AuditEntry.action, AuditEntry.subject, AuditEntry.detail))).all()
    assert ("account.linked", "coach@example.com", {"platform": "slack", "how": "first contact"}) in entries


async def test_a_deactivated_member_is_not_linked_and_a_closed_account_is_unlinked_and_paused(db_url: str) -> None:
    async with _slack_app(db_url) as (app, fake):
        await store_program(app.db, load_program(str(EXAMPLE)), "examples/program.yaml", NOW)
        fake.add_user("ana@example.com", TEAM, "UANA")
        fake.add_user("coach@example.com", TEAM, "UCOACH")
        fake.deactivate("coach@example.com")
        identities = Identities(app.db, app.chats)
        await identities.link_program(NOW)
        assert "coach@example.com" not in await _accounts(app)  # users.lookupByEmail finds a deactivated user: not linked
        assert await identities.recognise("slack", f"{TEAM}:UCOACH", NOW) is None
        assert await identities.account_closed("slack", f"{TEAM}:UANA", NOW, "deactivated in Slack") == "ana@example.com"
        assert "ana@example.com" not in await _accounts(app)
        async with app.db.session() as session:
            ana = await people.by_email(session, "ana@example.com")
            assert ana is not None and ana.paused_at == NOW
            closed = select(AuditEntry.action).where(AuditEntry.subject == "ana@example.com", AuditEntry.action == "account.closed")
            assert await session.scalar(closed) == "account.closed"


async def test_a_person_with_two_accounts_is_written_to_where_the_program_file_says_else_where_last_seen(db_url: str) -> None:
    async with _slack_app(db_url) as (app, _fake):
        await store_program(app.db, load_program(str(EXAMPLE)), "examples/program.yaml", NOW)
        async with app.db.session() as session:
            olga = await people.by_email(session, "olga@example.com")  # a Teams participant
            coach = await people.by_email(session, "coach@example.com")  # no platform in the file
            assert olga is not None and coach is not None
            await accounts.link(session, olga.id, "slack", "T0001:UOLGA", NOW)
            assert await accounts.reachable_on(session, olga) == "slack"  # not linked on Teams yet
            await accounts.link(session, olga.id, "teams", "tenant:olga", NOW)
            assert await accounts.reachable_on(session, olga) == "teams"
            await accounts.link(session, coach.id, "teams", "tenant:coach", NOW)
            await accounts.link(session, coach.id, "slack", "T0001:UCOACH", datetime(2026, 1, 6, tzinfo=UTC))
            assert await accounts.reachable_on(session, coach) == "slack"
            # A member id belongs to one person: linking it to another lets the first go.
            await accounts.link(session, olga.id, "slack", "T0001:UCOACH", NOW)
            assert (await accounts.linked(session, [coach.id]))[coach.id] == {"teams": "tenant:coach"}
