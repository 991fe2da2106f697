"""Typed messages in the Slack DM through the running web app: stored before Slack gets its
answer, once per event however often Slack delivers it, and a 500 that Slack retries when the
database cannot be reached (Teams alike)."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import pytest
from sqlalchemy import func, make_url, select

from bot.checkins import deliver_outbox
from storage import people
from storage.db import Database
from storage.models import AuditEntry, Delivery, RehearsalSession
from tests.fakes.bot_connector import personal_conversation, text_message
from tests.fakes.openai_server import FakeOpenAI, fake_openai
from tests.fakes.slack import sign
from tests.rig import BOT, MONDAY, SECRET, TEAM, TENANT, Rig, running_rig, slack_user_of, wait_for

ANA = "ana@example.com"
AT = MONDAY.replace(hour=11)  # in Pilot A's first week


def dm_event(email: str, text: str, event_id: str, at: datetime = AT) -> str:
    """A message event in the member's DM with the app, as Slack's Events API sends it."""
    user = slack_user_of(email)
    event = {"type": "message", "channel_type": "im", "channel": f"D{user}", "user": user, "text": text, "ts": f"{at.timestamp():.6f}"}
    body = {"token": "x", "team_id": TEAM, "api_app_id": "A0001", "type": "event_callback", "event_id": event_id, "event_time": 1}
    return json.dumps({**body, "event": event})


async def deliver(rig: Rig, body: str, retry: int = 0) -> int:
    """POST an event as Slack does, its ``retry``-th time (Slack numbers its retries 1 and 2)."""
    headers = {"Content-Type": "application/json", **sign(SECRET, body)}
    if retry:
        headers |= {"X-Slack-Retry-Num": str(retry), "X-Slack-Retry-Reason": "http_timeout"}
    async with rig.http.post(f"{rig.url}/slack/events", data=body.encode(), headers=headers) as response:
        await response.read()
        return response.status


def replies(rig: Rig, email: str, containing: str) -> list[str]:
    """The lines posted to the member's DM that contain ``containing``."""
    user = slack_user_of(email)  # a user id as the channel is the app's DM with them
    posts = [c.params["text"] for c in rig.slack.called("chat.postMessage") if c.params["channel"] in (user, f"D{user}")]
    return [text for text in posts if containing in text]


def checklists_in_dm(rig: Rig, email: str) -> int:
    return sum(1 for (channel, _ts), m in rig.slack.messages.items() if channel == f"D{slack_user_of(email)}" and "check-in" in m["text"])


async def count(rig: Rig, *where: Any) -> int:
    async with rig.db.session() as session:
        return await session.scalar(select(func.count()).select_from(Delivery).where(*where)) or 0


@pytest.fixture
async def rig(db: Database, db_url: str) -> AsyncIterator[Rig]:
    async with running_rig(db_url) as rig:
        await rig.consent_all()
        await rig.deliver_checklists()
        yield rig


async def test_a_typed_checkin_delivered_three_times_queues_and_sends_one_checklist(rig: Rig) -> None:
    body = dm_event(ANA, "checkin", "Ev0CHECKIN")
    before = checklists_in_dm(rig, ANA)
    assert [await deliver(rig, body, retry) for retry in (0, 1, 2)] == [200, 200, 200]
    # Queued before Slack got its answer, once; nothing is sent inline.
    assert await count(rig, Delivery.kind == "checklist", Delivery.idempotency_key.contains(":again:")) == 1
    await rig.app.slack.drain()  # the replies are posted after Slack's answer
    assert replies(rig, ANA, "on its way") == ["This week's checklist is on its way to our direct messages."]
    await deliver_outbox(rig.db, await rig.app.programs.get(), rig.app.chats, AT)
    assert checklists_in_dm(rig, ANA) == before + 1


async def test_a_typed_optout_delivered_three_times_withdraws_consent_once(rig: Rig) -> None:
    body = dm_event(ANA, "optout", "Ev0OPTOUT")
    assert [await deliver(rig, body, retry) for retry in (0, 1, 2)] == [200, 200, 200]
    async with rig.db.session() as session:
        person = await people.by_email(session, ANA)
        assert await people.consent_status(session, person.id) == "withdrawn"
        withdrawn = await session.scalar(select(func.count()).select_from(AuditEntry).where(AuditEntry.action == "consent.withdrawn"))
    assert withdrawn == 1
    await rig.app.slack.drain()
    assert len(replies(rig, ANA, "opted out")) == 1


async def test_two_messages_with_the_same_words_are_two_commands(rig: Rig) -> None:
    assert await deliver(rig, dm_event(ANA, "checkin", "Ev0FIRST")) == 200
    assert await deliver(rig, dm_event(ANA, "checkin", "Ev0SECOND")) == 200
    assert await count(rig, Delivery.idempotency_key.contains(":again:")) == 2


# --- a rehearsal turn -------------------------------------------------------------------------


@pytest.fixture
async def llm() -> AsyncIterator[FakeOpenAI]:
    async with fake_openai() as fake:
        yield fake


async def test_a_rehearsal_line_is_stored_before_slack_gets_its_answer_and_the_stakeholder_answers_after(
    db: Database, db_url: str, llm: FakeOpenAI
) -> None:
    settings = {"openai_base_url": llm.base_url, "openai_api_key": "sk-test", "reinforce_llm_timeout": 5.0, "reinforce_llm_max_retries": 0}
    async with running_rig(db_url, **settings) as rig:
        await rig.consent_all()
        assert "Rehearsal started" in await rig.slack_command(ANA, "rehearse vp-decision-huddles")
        llm.hang()  # the model has not answered when Slack gets its answer
        now = datetime.now(UTC)
        line = "Can we trial a weekly 15-minute decision huddle for six weeks?"
        body = dm_event(ANA, line, "Ev0TURN", now)
        assert [await deliver(rig, body, retry) for retry in (0, 1, 2)] == [200, 200, 200]
        async with rig.db.session() as session:
            transcript = await session.scalar(select(RehearsalSession.transcript))
        assert [(t["speaker"], t["text"]) for t in transcript] == [("leader", line)]
        await wait_for(lambda: llm.requests)
        llm.release()  # the hanging answer fails: the line is dropped, to be sent again
        await rig.app.rehearsals.drain()
        assert len(llm.requests) == 1  # one answer asked for, however often Slack delivered the line
        llm.answer("Why would my team give up more time?")
        again = dm_event(ANA, line, "Ev0TURN2", datetime.now(UTC))
        assert await deliver(rig, again) == 200
        await rig.app.rehearsals.drain()
        async with rig.db.session() as session:
            transcript = await session.scalar(select(RehearsalSession.transcript))
        assert [(t["speaker"], t["text"]) for t in transcript] == [
            ("leader", line),
            ("stakeholder", "Why would my team give up more time?"),
        ]


# --- the database unreachable -----------------------------------------------------------------


class Cable:
    """A TCP link between the app and PostgreSQL that the test can cut: while cut, the open
    connections are closed and new ones refused, as when the database server is down."""

    def __init__(self, host: str, port: int) -> None:
        self.upstream = (host, port)
        self.port = 0
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()

    async def mend(self) -> None:
        self._server = await asyncio.start_server(self._link, "127.0.0.1", self.port)
        self.port = self._server.sockets[0].getsockname()[1]

    async def cut(self) -> None:
        assert self._server is not None
        self._server.close()
        for writer in list(self._writers):
            writer.close()
        await self._server.wait_closed()

    async def _link(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        up_reader, up_writer = await asyncio.open_connection(*self.upstream)
        self._writers |= {writer, up_writer}
        await asyncio.gather(self._pipe(reader, up_writer), self._pipe(up_reader, writer))

    async def _pipe(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while data := await reader.read(65536):
                writer.write(data)
                await writer.drain()
        except ConnectionError:
            pass
        finally:
            self._writers.discard(writer)
            writer.close()


@pytest.fixture
async def cut_off(pg: tuple[Database, str]) -> AsyncIterator[tuple[Rig, Cable]]:
    """The rig on PostgreSQL reached through a Cable."""
    _db, url = pg
    parsed = make_url(url)
    cable = Cable(parsed.host or "127.0.0.1", parsed.port or 5432)
    await cable.mend()
    async with running_rig(parsed.set(port=cable.port).render_as_string(hide_password=False)) as rig:
        await rig.consent_all()
        yield rig, cable
    await cable.cut()


async def paused(rig: Rig, email: str) -> bool:
    async with rig.db.session() as session:
        return (await people.by_email(session, email)).paused_at is not None


async def test_a_typed_command_while_the_database_is_unreachable_gets_a_500_and_slacks_retry_runs_it(
    cut_off: tuple[Rig, Cable],
) -> None:
    rig, cable = cut_off
    body = dm_event(ANA, "pause", "Ev0PAUSE", datetime.fromtimestamp(time.time(), UTC))
    await cable.cut()
    assert await deliver(rig, body) == 500  # not acknowledged: Slack delivers it again
    await cable.mend()
    assert not await paused(rig, ANA)
    assert await deliver(rig, body, retry=1) == 200
    assert await paused(rig, ANA)
    assert await deliver(rig, body, retry=2) == 200  # a retry after success does nothing
    await rig.app.slack.drain()
    assert replies(rig, ANA, "Paused") == ["Paused: no check-ins or nudges until you type `resume`."]


async def test_a_teams_command_while_the_database_is_unreachable_gets_a_500_and_the_redelivery_runs_it(
    cut_off: tuple[Rig, Cable],
) -> None:
    rig, cable = cut_off
    account = await rig.teams_install("carla@example.com")
    activity = text_message(rig.teams.url, TENANT, BOT, account, "pause", activity_id="f:pause-1")
    await cable.cut()
    assert await rig.teams_post(activity) == 500
    await cable.mend()
    assert await rig.teams_post(activity) == 201
    assert await rig.teams_post(activity) == 201  # delivered again after success: nothing more
    assert await paused(rig, "carla@example.com")
    assert [t for t in rig.teams.texts(personal_conversation(account)) if "Paused" in t] == [
        "Paused: no check-ins or nudges until you type `resume`."
    ]
