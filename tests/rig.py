"""Both entry points of the real web app (signed Slack requests, Bot Framework activities in
local-development mode) against the fake Slack Web API and the fake Bot Connector, with the
example program loaded: what the role, fuzz and lifecycle tests drive.

State comes only through the product's own doors, as in a real workspace: the program is
loaded and its people linked by `program load`'s use cases (Slack's users.lookupByEmail),
Teams members link themselves by installing the app, and consent is a press of Accept.
Nothing here writes an id, a role or a consent into the database."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import urlencode
from zoneinfo import ZoneInfo

import aiohttp
from aiohttp.test_utils import TestServer
from sqlalchemy import func, select

from bot.app import App, build
from bot.checkins import deliver_outbox
from bot.files import load_program
from bot.identity import Identities
from bot.jobs import tick
from bot.programs import store_program
from bot.settings import Settings
from bot.web import make_web_app
from nudges.consent import ACCEPT
from nudges.program import Program
from nudges.weeks import IsoWeek
from storage.db import Database
from storage.models import AuditEntry, Base
from tests.fakes.bot_connector import (
    FakeBotConnector,
    card_submit,
    personal_conversation,
    personal_install,
    running_fake_connector,
    text_message,
)
from tests.fakes.slack import FakeSlack, block_action, interaction_body, running_fake_slack, sign

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "program.yaml"
SECRET = "rig-signing-secret"
TEAM, TENANT, BOT = "T0001", "tenant-0001", "28:reinforce-dev"
SPONSOR_CHANNEL = "19:wave-b-sponsors@thread.tacv2"
MONDAY = datetime(2026, 1, 5, 9, 0, tzinfo=UTC)
SUNDAY = datetime(2026, 1, 4, 9, 0, tzinfo=UTC)  # before the cohorts' first week
WEEK = IsoWeek.of(MONDAY)
T = TypeVar("T")


def slack_user_of(email: str) -> str:
    """The fake workspace's user id for a program email: "UANA" for ana@example.com."""
    return "U" + email.split("@")[0].upper().replace(".", "")


@dataclass(repr=False)  # its repr would fill every failure report
class Rig:
    app: App
    slack: FakeSlack
    teams: FakeBotConnector
    url: str
    http: aiohttp.ClientSession

    @property
    def db(self) -> Any:
        return self.app.db

    async def slack_post(
        self, body: str | bytes, content_type: str = "application/x-www-form-urlencoded", signed: bool = True
    ) -> tuple[int, str]:
        data = body.encode() if isinstance(body, str) else body
        headers = {"Content-Type": content_type, **(sign(SECRET, data.decode("utf-8", "surrogateescape")) if signed else {})}
        async with self.http.post(f"{self.url}/slack/events", data=data, headers=headers) as response:
            return response.status, await response.text()

    async def slack_command(self, email: str, text: str) -> str:
        return await self.slack_command_as(slack_user_of(email), text)

    async def slack_command_as(self, user: str, text: str) -> str:
        """`/reinforce TEXT` typed by Slack user ``user`` of the rig's workspace."""
        body = urlencode(
            {
                "command": "/reinforce",
                "text": text,
                "team_id": TEAM,
                "user_id": user,
                "channel_id": f"D{user}",
                "response_url": "http://127.0.0.1:9/unused",
                "trigger_id": "t1",
                "token": "x",
            }
        )
        status, reply = await self.slack_post(body)
        assert status == 200, reply
        return reply

    async def slack_click(
        self, email: str, value: str, *, channel: str | None = None, ts: str = "1767600001.000100", action_ts: str = "1767610000.000100"
    ) -> int:
        user = slack_user_of(email)
        payload = block_action(TEAM, user, channel or f"D{user}", ts, value, action_ts=action_ts, block_id="q:x", action_id="reinforce:0")
        status, _text = await self.slack_post(interaction_body(payload))
        return status

    def slack_button(self, email: str, block_id: str, label: str, kind: str = "check-in") -> tuple[str, str, str]:
        """(channel, ts, value) of a button on the newest message of ``kind`` in the member's DM."""
        channel = f"D{slack_user_of(email)}"
        ts, params = [(ts, p) for (ch, ts), p in self.slack.messages.items() if ch == channel and kind in p.get("text", "")][-1]
        actions = next(b for b in params["blocks"] if b.get("block_id") == block_id)
        return channel, ts, next(e["value"] for e in actions["elements"] if e["text"]["text"].endswith(label))

    async def teams_post(self, activity: Any, content_type: str = "application/json") -> int:
        import json

        data = activity if isinstance(activity, (bytes, str)) else json.dumps(activity)
        async with self.http.post(f"{self.url}/api/messages", data=data, headers={"Content-Type": content_type}) as response:
            await response.read()
            return response.status

    def teams_account(self, email: str) -> dict[str, Any]:
        return next(m for m in self.teams.members.values() if m["email"] == email)

    async def teams_install(self, email: str) -> dict[str, Any]:
        account = self.teams_account(email)
        assert await self.teams_post(personal_install(self.teams.url, TENANT, BOT, account)) == 201
        return account

    async def teams_say(self, email: str, text: str) -> str:
        account = self.teams_account(email)
        assert await self.teams_post(text_message(self.teams.url, TENANT, BOT, account, text)) == 201
        return self.teams.texts(personal_conversation(account))[-1]

    async def counts(self) -> dict[str, int]:
        """Rows in every table of the schema."""
        async with self.db.session() as session:
            return {t.name: await session.scalar(select(func.count()).select_from(t)) or 0 for t in Base.metadata.sorted_tables}

    async def audit(self) -> list[tuple[str, str, str | None, str]]:
        async with self.db.session() as session:
            rows = await session.execute(
                select(AuditEntry.actor, AuditEntry.action, AuditEntry.subject, AuditEntry.outcome).order_by(AuditEntry.id)
            )
            return [tuple(r) for r in rows]  # type: ignore[misc]

    async def consent_all(self) -> None:
        """Every participant accepts the consent request as they would, the day before the
        cohort starts: a Slack member presses Accept; a Teams member installs the app (which
        links them) and presses Accept on its card. The tests look at what comes after: the
        updates of the consent messages are left out of the fakes' call logs."""
        program = await self.app.programs.get()
        slack = 0
        for member in (m for c in program.cohorts for m in c.members):
            if member.platform == "slack":
                assert await self.slack_click(member.email, ACCEPT, action_ts=f"{SUNDAY.timestamp():.6f}") == 200
                slack += 1
                continue
            account = await self.teams_install(member.email)
            accept = card_submit(self.teams.url, TENANT, BOT, account, "consent-card", {"value": ACCEPT}, timestamp=SUNDAY.isoformat())
            assert await self.teams_post(accept) == 201
        await wait_for(lambda: len(self.slack.called("chat.update")) >= slack)
        self.slack.calls[:] = [c for c in self.slack.calls if c.method != "chat.update"]
        self.teams.calls[:] = [c for c in self.teams.calls if c.op != "update"]

    async def deliver_checklists(self, at: datetime = MONDAY) -> None:
        """What the scheduler queues on the Monday morning of ``at``'s week (consent requests,
        checklists), sent."""
        program = await self.app.programs.get()
        await deliver_outbox(self.db, program, self.app.chats, max(at, await tick_monday_mornings(self.db, program, at)))


async def tick_monday_mornings(db: Database, program: Program, at: datetime = MONDAY) -> datetime:
    """Run the scheduler's tick at 09:00 on the Monday of ``at``'s week in each member's time
    zone, when it queues their checklist (or first their consent request); returns the last
    of those instants, by which everything queued is due."""
    monday = IsoWeek.of(at).monday()
    zones = {member.timezone for cohort in program.cohorts for member in cohort.members}
    instants = sorted(datetime(monday.year, monday.month, monday.day, 9, tzinfo=ZoneInfo(zone)).astimezone(UTC) for zone in zones)
    for instant in instants:
        await tick(db, program, instant)
    return instants[-1]


@asynccontextmanager
async def running_rig(db_url: str, **settings: Any) -> AsyncIterator[Rig]:
    """The example program in a migrated database at ``db_url``, served with Slack and Teams
    (Teams in local-development mode, so activities need no token)."""
    program = load_program(str(EXAMPLE))
    async with running_fake_slack() as slack, running_fake_connector() as teams:
        for member in (m for c in program.cohorts for m in c.members):
            if member.platform == "slack":
                slack.add_user(member.email, TEAM, slack_user_of(member.email))
            else:
                teams.add_member(TENANT, member.email, member.name or member.email, team=SPONSOR_CHANNEL)
        for email in ("vp.product@example.com", "owner@example.com", "coach@example.com"):
            slack.add_user(email, TEAM, slack_user_of(email))
        options = {
            "slack_bot_token": "xoxb-rig",
            "slack_signing_secret": SECRET,
            "slack_api_url": slack.url,
            "reinforce_teams_dev": True,
            **settings,
        }
        app = build(Settings(database_url=db_url, **options))
        server = TestServer(make_web_app(app), host="127.0.0.1")
        await server.start_server()
        try:
            # What `reinforce program load` does: store the program, link its people by email.
            await store_program(app.db, program, "examples/program.yaml", MONDAY)
            await Identities(app.db, app.chats).link_program(MONDAY)
            async with aiohttp.ClientSession() as http:
                yield Rig(app, slack, teams, str(server.make_url("")).rstrip("/"), http)
        finally:
            await server.close()


async def wait_for(condition: Callable[[], T], timeout: float = 5.0) -> T:
    """Poll until ``condition()`` is truthy (work after an ack runs in the background)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if result := condition():
            return result
        await asyncio.sleep(0.01)
    raise AssertionError("condition not met in time")
