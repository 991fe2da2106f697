"""Slack end to end: the real web server and slack-bolt receive signed requests exactly as
Slack sends them; the real slack_sdk client talks to a fake Slack Web API on 127.0.0.1."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import urlencode

import aiohttp
import pytest
from aiohttp.test_utils import TestServer
from sqlalchemy import func, select

from bot.app import App, build
from bot.checkins import deliver_outbox
from bot.files import load_program
from bot.identity import Identities
from bot.programs import store_program
from bot.settings import Settings
from bot.web import make_web_app
from nudges.consent import ACCEPT
from nudges.messages import Message
from nudges.weeks import IsoWeek
from storage import people
from storage.db import Database, upgrade
from storage.models import AuditEntry, BehaviorSignal, CheckinAnswer, CheckinNote
from tests.fakes.slack import FakeSlack, block_action, interaction_body, running_fake_slack, sign
from tests.rig import tick_monday_mornings

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "program.yaml"
SECRET = "test-signing-secret"
TEAM = "T0001"


@dataclass
class Rig:
    app: App
    fake: FakeSlack
    url: str
    http: aiohttp.ClientSession
    db: Database

    async def post(
        self, body: str, content_type: str = "application/x-www-form-urlencoded", headers: dict[str, str] | None = None
    ) -> aiohttp.ClientResponse:
        signed = sign(SECRET, body) if headers is None else headers
        async with self.http.post(
            f"{self.url}/slack/events", data=body.encode(), headers={"Content-Type": content_type, **signed}
        ) as response:
            await response.read()
            return response

    async def count(self, model: type) -> int:
        async with self.db.session() as session:
            return await session.scalar(select(func.count()).select_from(model)) or 0


@pytest.fixture
async def rig(db: Database, db_url: str) -> AsyncIterator[Rig]:
    program = load_program(str(EXAMPLE))
    async with running_fake_slack() as fake:
        for i, member in enumerate(m for c in program.cohorts for m in c.members if m.platform == "slack"):
            fake.add_user(member.email, TEAM, f"U{i:04d}")
        for email in ("vp.product@example.com", "owner@example.com"):
            fake.add_user(email, TEAM, "U" + email.split("@")[0].upper().replace(".", ""))
        settings = Settings(database_url=db_url, slack_bot_token="xoxb-test", slack_signing_secret=SECRET, slack_api_url=fake.url)
        app = build(settings)
        server = TestServer(make_web_app(app), host="127.0.0.1")
        await server.start_server()
        # `reinforce program load`: the program stored, its people linked by email in the workspace.
        await store_program(app.db, program, "examples/program.yaml", datetime(2026, 1, 5, tzinfo=UTC))
        await Identities(app.db, app.chats).link_program(datetime(2026, 1, 5, tzinfo=UTC))
        async with aiohttp.ClientSession() as http:
            yield Rig(app, fake, str(server.make_url("")).rstrip("/"), http, db)
        await server.close()


MONDAY = datetime(2026, 1, 5, 9, 0, tzinfo=UTC)
WEEK = IsoWeek.of(MONDAY)


async def _first_slack_member(rig: Rig) -> tuple[str, str]:
    program = await rig.app.programs.get()
    member = next(m for m in program.cohorts[0].members if m.platform == "slack")
    return member.email, rig.fake.users[member.email][1]


async def _deliver_checklists(rig: Rig, consent: bool = True) -> None:
    """The first Monday: consent requests go out; with ``consent`` every member presses Accept
    on theirs, which queues their checklist; what is queued is delivered."""
    program = await rig.app.programs.get()
    at = await tick_monday_mornings(rig.db, program, MONDAY)
    await deliver_outbox(rig.db, program, rig.app.chats, at)
    if consent:
        requests = [key for key, params in rig.fake.messages.items() if ACCEPT in json.dumps(params.get("blocks") or [])]
        for channel, ts in requests:
            accept = block_action(TEAM, channel.removeprefix("D"), channel, ts, ACCEPT, action_ts=f"{at.timestamp():.6f}")
            assert (await rig.post(interaction_body(accept))).status == 200
        await deliver_outbox(rig.db, program, rig.app.chats, at)
        await _wait_for(lambda: len(rig.fake.called("chat.update")) >= len(requests))  # each accepted request updated
        rig.fake.calls[:] = [c for c in rig.fake.calls if c.method != "chat.update"]  # the updates to look at are the test's


def _dm_of(rig: Rig, user: str) -> tuple[str, str, dict]:
    # The first check-in in the DM (the consent request, accepted, came before it).
    (channel, ts), params = next(
        (k, v) for k, v in rig.fake.messages.items() if k[0] == f"D{user}" and '"q:' in json.dumps(v.get("blocks"))
    )
    return channel, ts, params


def _button(blocks: list[dict], block_id: str, label: str) -> dict:
    actions = next(b for b in blocks if b.get("block_id") == block_id)
    return next(e for e in actions["elements"] if e["text"]["text"].endswith(label))


def _click_body(rig: Rig, user: str, block_id: str, label: str, action_ts: str = "1767603000.000200") -> str:
    """A press of the button ``label`` in block ``block_id`` of the newest message in the DM that has that block."""
    (channel, ts), params = next(
        (k, v)
        for k, v in reversed(rig.fake.messages.items())
        if k[0] == f"D{user}" and any(b.get("block_id") == block_id for b in v.get("blocks") or [])
    )
    button = _button(params["blocks"], block_id, label)
    payload = block_action(TEAM, user, channel, ts, button["value"], action_ts=action_ts, block_id=block_id, action_id=button["action_id"])
    return interaction_body(payload)


async def test_checklist_dm_is_block_kit_with_week_and_buttons(rig: Rig) -> None:
    await _deliver_checklists(rig)
    _email, user = await _first_slack_member(rig)
    _channel, _ts, params = _dm_of(rig, user)
    header = params["blocks"][0]
    assert header["type"] == "header" and "Week 1 of 12" in header["text"]["text"]
    assert "3 questions, about a minute" in json.dumps(params["blocks"])
    labels = [e["text"]["text"] for b in params["blocks"] if b["type"] == "actions" for e in b["elements"]]
    assert labels[-4:] == ["Add a note", "Snooze 2 h", "Tomorrow", "Skip this week"]
    # Posted to the user id (the app's DM with them): no conversations.open per member.
    assert rig.fake.called("conversations.open") == []
    assert [c.params["channel"] for c in rig.fake.called("chat.postMessage")].count(user) == 2  # the consent request, the checklist


async def test_a_click_is_stored_and_the_message_updated_in_place(rig: Rig) -> None:
    await _deliver_checklists(rig)
    _email, user = await _first_slack_member(rig)
    response = await rig.post(_click_body(rig, user, "q:decision_huddle", "Yes"))
    assert response.status == 200
    async with rig.db.session() as session:
        assert (await session.execute(select(CheckinAnswer.behavior_key, CheckinAnswer.value))).all() == [("decision_huddle", "yes")]
    update = await _wait_for(lambda: rig.fake.called("chat.update"))
    blocks = update[-1].params["blocks"]
    assert _button(blocks, "q:decision_huddle", "Yes")["text"]["text"] == "✓ Yes"
    assert "1 of 3 answered." in json.dumps(blocks)


async def test_same_click_delivered_three_times_records_one_answer(rig: Rig) -> None:
    await _deliver_checklists(rig)
    _email, user = await _first_slack_member(rig)
    body = _click_body(rig, user, "q:escalate_24h", "No")
    statuses = [(await rig.post(body)).status for _ in range(3)]
    assert statuses == [200, 200, 200]
    assert (await rig.count(CheckinAnswer), await rig.count(BehaviorSignal)) == (1, 1)


async def test_all_three_answers_thank_the_member_with_their_streak(rig: Rig) -> None:
    await _deliver_checklists(rig)
    _email, user = await _first_slack_member(rig)
    for i, block in enumerate(("q:decision_huddle", "q:escalate_24h", "q:specific_feedback")):
        await rig.post(_click_body(rig, user, block, "Yes", action_ts=f"176760300{i}.000100"))
    await _wait_for(lambda: len(rig.fake.called("chat.update")) == 3)
    assert "Thank you, all three answered. That is 1 week in a row." in json.dumps(rig.fake.called("chat.update")[-1].params["blocks"])


async def test_updates_of_one_message_ready_together_send_only_the_newest(rig: Rig) -> None:
    """Updates that become ready together (clicks stored in one transaction) update the
    message once, with the newest state, not first with a state already out of date."""
    await _deliver_checklists(rig)
    _email, user = await _first_slack_member(rig)
    channel, ts, _params = _dm_of(rig, user)
    chat, ref = rig.app.slack.chat, {"team": TEAM, "channel": channel, "ts": ts}
    states = [Message(f"{n} of 3 answered") for n in (1, 2, 3)]
    await asyncio.gather(*(chat.update(ref, state) for state in states))
    assert [c.params["text"] for c in rig.fake.called("chat.update")] == ["3 of 3 answered"]
    # One arriving while that update is in flight is sent after it: the last state wins.
    rig.fake.fail("chat.update", hang=0.3)  # answered (ok) 0.3 s after it arrives
    first = asyncio.ensure_future(chat.update(ref, states[0]))
    await _wait_for(lambda: rig.fake.called("chat.update")[1:])  # in flight
    await chat.update(ref, states[1])  # returns at once: the update in flight sends it next
    await first
    assert [c.params["text"] for c in rig.fake.called("chat.update")][1:] == ["1 of 3 answered", "2 of 3 answered"]
    # Never two updates of one message at once: they could land out of order.
    assert rig.fake.most_in_flight["chat.update"] == 1


@pytest.mark.parametrize(
    "headers",
    [
        {"X-Slack-Request-Timestamp": str(int(time.time())), "X-Slack-Signature": "v0=" + "0" * 64},
        sign("another-secret", "x"),
        "stale",
        {},
    ],
    ids=["bad-signature", "wrong-secret", "older-than-5-minutes", "unsigned"],
)
async def test_unverified_requests_get_401_and_store_nothing(rig: Rig, headers: object) -> None:
    await _deliver_checklists(rig)
    _email, user = await _first_slack_member(rig)
    body = _click_body(rig, user, "q:decision_huddle", "Yes")
    if headers == "stale":
        headers = sign(SECRET, body, timestamp=int(time.time()) - 6 * 60)
    response = await rig.post(body, headers=headers)  # type: ignore[arg-type]
    assert response.status == 401
    assert (await rig.count(CheckinAnswer), await rig.count(BehaviorSignal)) == (0, 0)


@pytest.mark.parametrize(
    ("body", "content_type"),
    [
        ("payload=not-json", "application/x-www-form-urlencoded"),
        ("payload=%5B1%2C2%5D", "application/x-www-form-urlencoded"),
        ("{not json", "application/json"),
        ('"a string"', "application/json"),
    ],
)
async def test_a_malformed_signed_payload_gets_400_and_the_server_keeps_serving(rig: Rig, body: str, content_type: str) -> None:
    await _deliver_checklists(rig)
    assert (await rig.post(body, content_type)).status == 400
    async with rig.http.post(f"{rig.url}/slack/events", data=body.encode(), headers={"Content-Type": content_type}) as unsigned:
        assert unsigned.status == 401
    _email, user = await _first_slack_member(rig)
    assert (await rig.post(_click_body(rig, user, "q:decision_huddle", "Yes"))).status == 200
    assert await rig.count(CheckinAnswer) == 1


async def test_a_hostile_note_comes_back_escaped_everywhere_it_is_shown(rig: Rig) -> None:
    await _deliver_checklists(rig)
    _email, user = await _first_slack_member(rig)
    response = await rig.post(_click_body(rig, user, "actions", "Add a note"))
    assert response.status == 200
    modal = (await _wait_for(lambda: rig.fake.called("views.open")))[-1].params["view"]
    hostile = "<!channel> <https://evil.example|click> & more"
    submission = {
        "type": "view_submission",
        "team": {"id": TEAM},
        "user": {"id": user, "team_id": TEAM},
        "view": {
            **modal,
            "id": "V1",
            "hash": "h1",
            "state": {"values": {"note": {"text": {"type": "plain_text_input", "value": hostile}}}},
        },
    }
    response = await rig.post(interaction_body(submission))
    assert response.status == 200
    async with rig.db.session() as session:
        assert await session.scalar(select(CheckinNote.text)) == hostile  # stored as written
    shown = json.dumps((await _wait_for(lambda: rig.fake.called("chat.update")))[-1].params)
    assert "&lt;!channel&gt; &lt;https://evil.example|click&gt; &amp; more" in shown
    assert "<!channel>" not in shown and "<https://evil" not in shown


async def test_snooze_and_skip_are_recorded_and_shown(rig: Rig) -> None:
    await _deliver_checklists(rig)
    _email, user = await _first_slack_member(rig)
    await rig.post(_click_body(rig, user, "actions", "Skip this week"))
    update = (await _wait_for(lambda: rig.fake.called("chat.update")))[-1]
    assert "Skipped this week." in json.dumps(update.params["blocks"])


async def test_consent_comes_first_and_accepting_queues_the_checklist(rig: Rig) -> None:
    await _deliver_checklists(rig, consent=False)
    _email, user = await _first_slack_member(rig)
    consent = [m for (ch, _t), m in rig.fake.messages.items() if ch == f"D{user}"]
    assert len(consent) == 1 and "Who sees what" in json.dumps(consent[0]["blocks"])
    assert await rig.count(CheckinAnswer) == 0
    response = await rig.post(_click_body(rig, user, "consent", "Accept"))
    assert response.status == 200
    async with rig.db.session() as session:
        person = await people.by_platform_id(session, "slack", f"{TEAM}:{user}")
        assert await people.consent_status(session, person.id) == "accepted"
    program = await rig.app.programs.get()
    await deliver_outbox(rig.db, program, rig.app.chats, datetime.now(UTC))
    assert any("check-in: 3 questions" in m.get("text", "") for (ch, _t), m in rig.fake.messages.items() if ch == f"D{user}")


def _command_body(user: str, text: str) -> str:
    return urlencode(
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


async def _command(rig: Rig, user: str, text: str) -> str:
    body = _command_body(user, text)
    async with rig.http.post(
        f"{rig.url}/slack/events", data=body.encode(), headers={"Content-Type": "application/x-www-form-urlencoded", **sign(SECRET, body)}
    ) as response:
        assert response.status == 200
        return await response.text()


async def test_slash_commands_help_pause_resume_and_optout(rig: Rig) -> None:
    await _deliver_checklists(rig)
    email, user = await _first_slack_member(rig)
    assert "`checkin`" in await _command(rig, user, "help")
    assert "Paused" in await _command(rig, user, "pause")
    async with rig.db.session() as session:
        assert (await people.by_email(session, email)).paused_at is not None
    assert "Resumed" in await _command(rig, user, "resume")
    assert "opted out" in await _command(rig, user, "optout")
    async with rig.db.session() as session:
        person = await people.by_email(session, email)
        assert await people.consent_status(session, person.id) == "withdrawn"


async def test_slash_command_text_is_decoded_once_and_escaped_once(rig: Rig) -> None:
    _email, user = await _first_slack_member(rig)
    reply = await _command(rig, user, "R&amp;D&lt;")  # what Slack sends for "R&D<"
    assert reply.startswith("I don't know “r&amp;d&lt;”")  # shown as typed, not as "r&amp;amp;d"


async def test_checkin_command_sends_this_weeks_checklist_again(rig: Rig) -> None:
    await _deliver_checklists(rig)
    _email, user = await _first_slack_member(rig)
    before = len(rig.fake.called("chat.postMessage"))
    reply = await _command(rig, user, "checkin")
    assert "sent this week's checklist" in reply or "no check-in this week" in reply
    if "sent" in reply:
        assert len(rig.fake.called("chat.postMessage")) == before + 1


async def test_sponsor_and_admin_commands_are_refused_to_others_and_audited(rig: Rig) -> None:
    await _deliver_checklists(rig)
    _email, user = await _first_slack_member(rig)
    assert "Only sponsors" in await _command(rig, user, "digest pilot-a")
    assert "Only admins" in await _command(rig, user, "status")
    async with rig.db.session() as session:
        refused = (await session.execute(select(AuditEntry.action, AuditEntry.outcome).where(AuditEntry.outcome == "refused"))).all()
    assert sorted(refused) == [("command.digest", "refused"), ("command.status", "refused")]
    # The sponsor and the owner were linked by `program load`, by their program emails.
    assert "Pilot A, week" in await _command(rig, "UVPPRODUCT", "digest pilot-a")
    assert "cohorts," in await _command(rig, "UOWNER", "status")


async def test_app_home_shows_the_members_own_streak(rig: Rig) -> None:
    await _deliver_checklists(rig)
    _email, user = await _first_slack_member(rig)
    event = {
        "token": "x",
        "team_id": TEAM,
        "api_app_id": "A0001",
        "type": "event_callback",
        "event_id": "Ev1",
        "event_time": 1,
        "event": {"type": "app_home_opened", "user": user, "channel": f"D{user}", "tab": "home"},
    }
    assert (await rig.post(json.dumps(event), "application/json")).status == 200
    view = (await _wait_for(lambda: rig.fake.called("views.publish")))[-1].params["view"]
    assert view["type"] == "home" and "Streak: 0 weeks in a row" in json.dumps(view)
    assert "Open this week" in json.dumps(view)


async def test_members_nobody_has_are_reported_not_dropped(db_url: str) -> None:
    program = load_program(str(EXAMPLE))
    async with running_fake_slack() as fake:
        for member in (m for c in program.cohorts for m in c.members if m.platform == "slack"):
            fake.add_user(member.email, TEAM, "U" + member.email.split("@")[0].upper())
        lost = next(iter(fake.users))
        del fake.users[lost]
        app = build(Settings(database_url=db_url, slack_bot_token="xoxb-test", slack_signing_secret=SECRET, slack_api_url=fake.url))
        try:
            await asyncio.to_thread(upgrade, db_url)
            await store_program(app.db, program, "examples/program.yaml", MONDAY)
            unlinked = {u.email: u.reason for u in await Identities(app.db, app.chats).link_program(MONDAY)}
        finally:
            await app.close()
    assert unlinked[lost] == "no member of the Slack workspace(s) has this email"
    assert unlinked["olga@example.com"] == "Teams is not configured here"


async def _wait_for(condition, timeout: float = 5.0):
    """Poll until ``condition()`` is truthy (work after the ack runs in the background)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        result = condition()
        if result:
            return result
        await asyncio.sleep(0.01)
    raise AssertionError("condition not met in time")


async def test_the_scheduled_digest_is_posted_to_the_sponsor_channel_once_with_its_chart(rig: Rig) -> None:
    from bot.jobs import tick

    program = await rig.app.programs.get()
    friday = datetime(2026, 1, 16, 16, 5, tzinfo=UTC)  # 16:05 in Lisbon, the digest slot; the first week has closed
    await tick(rig.db, program, friday)
    await tick(rig.db, program, friday + timedelta(minutes=5))
    await rig.app.deliverer.deliver_due(program, lambda: friday + timedelta(minutes=6))
    posts = [c for c in rig.fake.called("chat.postMessage") if c.params["channel"] == "C0SPONSOR"]
    assert len(posts) == 1 and "Pilot A" in json.dumps(posts[0].params["blocks"])
    (upload,) = [f for f in rig.fake.files.values() if f.get("channel") == "C0SPONSOR"]
    assert upload["data"].startswith(b"\x89PNG") and upload["thread_ts"] is not None


async def test_metrics_count_deliveries_by_kind_and_status(rig: Rig) -> None:
    await _deliver_checklists(rig)
    async with rig.http.get(f"{rig.url}/metrics") as response:
        text = await response.text()
    sent = [line for line in text.splitlines() if line.startswith('reinforce_deliveries_total{kind="checklist",status="sent"}')]
    assert sent and float(sent[0].split()[-1]) >= 1
    assert "reinforce_outbox_lag_seconds" in text
