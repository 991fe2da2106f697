"""Teams end to end: the real web server and botbuilder's CloudAdapter receive Bot Framework
activities over HTTP exactly as Teams sends them; every outbound call goes to a fake Bot
Connector on 127.0.0.1 named by the activities' serviceUrl."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp.test_utils import TestServer
from sqlalchemy import func, select

from adapters.base import DeliveryError, Recipient
from adapters.teams.app import TeamsAdapter
from bot.app import App, build
from bot.checkins import deliver_outbox
from bot.files import load_program
from bot.identity import Identities
from bot.programs import store_program
from bot.settings import Settings
from bot.web import make_web_app
from nudges.checklist import ChoiceRef
from nudges.consent import ACCEPT
from nudges.messages import Context, Header, Image, Message, Section
from nudges.program import parse_program
from nudges.weeks import IsoWeek
from storage import accounts, people
from storage.addresses import AddressBook
from storage.db import Database
from storage.models import (
    Account,
    AuditEntry,
    BehaviorSignal,
    CheckinAnswer,
    CheckinNote,
    ConversationRef,
    Delivery,
    Person,
    RehearsalSession,
)
from storage.programs import save_program
from tests.fakes.bot_connector import (
    FakeBotConnector,
    card_submit,
    channel_message,
    personal_conversation,
    personal_install,
    running_fake_connector,
    team_install,
    text_message,
)
from tests.rig import tick_monday_mornings

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "program.yaml"
TENANT = "tenant-0001"
BOT = "28:reinforce-dev"
SPONSOR_CHANNEL = "19:wave-b-sponsors@thread.tacv2"
MONDAY = datetime(2026, 1, 5, 9, 0, tzinfo=UTC)
WEEK = IsoWeek.of(MONDAY)


@dataclass
class Rig:
    app: App
    fake: FakeBotConnector
    url: str
    http: aiohttp.ClientSession
    db: Database

    async def post(self, activity: dict[str, Any], headers: dict[str, str] | None = None) -> int:
        async with self.http.post(f"{self.url}/api/messages", json=activity, headers=headers or {}) as response:
            await response.read()
            return response.status

    async def count(self, model: type) -> int:
        async with self.db.session() as session:
            return await session.scalar(select(func.count()).select_from(model)) or 0

    def member(self, email: str) -> dict[str, Any]:
        return next(m for m in self.fake.members.values() if m["email"] == email)

    async def install(self, email: str, **kwargs: Any) -> dict[str, Any]:
        account = self.member(email)
        assert await self.post(personal_install(self.fake.url, TENANT, BOT, account, **kwargs)) == 201
        return account

    async def person(self, email: str) -> Person:
        async with self.db.session() as session:
            found = await people.by_email(session, email)
            assert found is not None
            return found


@pytest.fixture
async def rig(db: Database, db_url: str) -> AsyncIterator[Rig]:
    program = load_program(str(EXAMPLE))
    async with running_fake_connector() as fake:
        for member in (m for c in program.cohorts for m in c.members if m.platform == "teams"):
            fake.add_member(TENANT, member.email, member.name or member.email, team=SPONSOR_CHANNEL)
        # Built as bot/app.py builds it with REINFORCE_TEAMS_DEV (no app id: local development).
        app = build(Settings(database_url=db_url))
        app.teams = TeamsAdapter(app.inbound, AddressBook(app.db, "teams"))
        app.chats["teams"] = app.teams.chat
        async with db.session() as session:
            await save_program(session, program, "examples/program.yaml", MONDAY)
        server = TestServer(make_web_app(app), host="127.0.0.1")
        await server.start_server()
        async with aiohttp.ClientSession() as http:
            yield Rig(app, fake, str(server.make_url("")).rstrip("/"), http, db)
        await server.close()


async def _deliver(rig: Rig, now: datetime = MONDAY) -> datetime:
    """The week's consent requests and checklists, queued by the scheduler and sent; returns when they were sent."""
    program = await rig.app.programs.get()
    sent_at = max(now, await tick_monday_mornings(rig.db, program, now))
    await deliver_outbox(rig.db, program, rig.app.chats, sent_at)
    return sent_at


async def _consented_checklist(rig: Rig, email: str = "carla@example.com") -> tuple[dict[str, Any], str, dict[str, Any]]:
    """Install, consent through the card, receive the checklist; returns (account, card id, card)."""
    account = await rig.install(email)
    await _deliver(rig)
    conversation = personal_conversation(account)
    consent_id, consent = _last_card(rig, conversation)
    accept = _button(consent, "Accept")
    assert (
        await rig.post(card_submit(rig.fake.url, TENANT, BOT, account, consent_id, accept["data"], timestamp="2026-01-05T10:00:00Z")) == 201
    )
    await deliver_outbox(rig.db, await rig.app.programs.get(), rig.app.chats, MONDAY + timedelta(hours=2))
    card_id, card = _last_card(rig, conversation)
    return account, card_id, card


def _last_card(rig: Rig, conversation: str) -> tuple[str, dict[str, Any]]:
    (_conversation, activity_id), activity = [
        (k, v) for k, v in rig.fake.messages.items() if k[0] == conversation and v.get("attachments")
    ][-1]
    return activity_id, activity["attachments"][0]["content"]


def _button(card: dict[str, Any], title: str) -> dict[str, Any]:
    actions = list(card.get("actions", [])) + [a for e in card["body"] if e["type"] == "ActionSet" for a in e["actions"]]
    return next(a for a in actions if a["title"].endswith(title))


def _choices(card: dict[str, Any]) -> dict[str, dict[str, str]]:
    """ChoiceSet id -> choice title -> value."""
    return {e["id"]: {c["title"]: c["value"] for c in e["choices"]} for e in card["body"] if e["type"] == "Input.ChoiceSet"}


def _checklist_submit(card: dict[str, Any], answers: dict[str, str], note: str = "") -> dict[str, Any]:
    """What Teams sends for the Submit button: its data plus every input's value."""
    choices = _choices(card)
    value = dict(_button(card, "Submit")["data"])
    value.update({question: choices[question][label] for question, label in answers.items()})
    value["note"] = note
    return value


async def test_without_an_app_id_the_endpoint_warns_at_start_that_it_is_unauthenticated(caplog: pytest.LogCaptureFixture) -> None:
    unauthenticated = TeamsAdapter(None, None)  # type: ignore[arg-type] - nothing is handled here
    authenticated = TeamsAdapter(None, None, app_id="app", app_password="secret")  # type: ignore[arg-type]
    with caplog.at_level("WARNING", logger="adapters.teams.app"):
        await authenticated.start()
        assert not caplog.records
        await unauthenticated.start()
    assert "WITHOUT authentication" in caplog.text and "/api/messages" in caplog.text


async def test_personal_install_stores_the_reference_and_links_the_member_by_email(rig: Rig) -> None:
    account = await rig.install("carla@example.com")
    async with rig.db.session() as session:
        ref = await session.scalar(select(ConversationRef))
    assert (ref.platform, ref.tenant_id, ref.target, ref.scope) == ("teams", TENANT, f"{TENANT}:{account['aadObjectId']}", "personal")
    assert ref.reference["serviceUrl"] == rig.fake.url
    assert ref.reference["conversation"]["id"] == personal_conversation(account)
    async with rig.db.session() as session:
        carla = await people.by_email(session, "carla@example.com")
        assert carla is not None and await accounts.user_id_of(session, carla.id, "teams") == f"{TENANT}:{account['aadObjectId']}"
    assert [c.conversation for c in rig.fake.called("member")] == [personal_conversation(account)]


async def test_installation_update_is_an_install_too_and_people_outside_the_program_are_linked_to_nobody(rig: Rig) -> None:
    await rig.install("farid@example.com", kind="installationUpdate")
    await rig.install("farid@example.com")  # Teams sends conversationUpdate as well
    stranger = rig.fake.add_member(TENANT, "stranger@example.com", "Stranger")
    assert await rig.post(personal_install(rig.fake.url, TENANT, BOT, stranger)) == 201
    assert await rig.count(ConversationRef) == 2
    async with rig.db.session() as session:
        linked = (await session.scalars(select(Person.email).join(Account, Account.person_id == Person.id))).all()
    assert linked == ["farid@example.com"]


async def test_team_install_stores_the_channel_reference(rig: Rig) -> None:
    installer = rig.member("carla@example.com")
    assert await rig.post(team_install(rig.fake.url, TENANT, BOT, installer, SPONSOR_CHANNEL)) == 201
    async with rig.db.session() as session:
        ref = await session.scalar(select(ConversationRef))
    assert (ref.target, ref.scope, ref.reference["conversation"]["id"]) == (SPONSOR_CHANNEL, "channel", SPONSOR_CHANNEL)


async def test_a_mention_in_another_channel_is_answered_there_and_makes_that_channel_reachable(rig: Rig) -> None:
    other = "19:sponsors-general@thread.tacv2"
    carla = rig.member("carla@example.com")
    assert await rig.post(channel_message(rig.fake.url, TENANT, BOT, carla, other, "help")) == 201
    reply = rig.fake.called("reply")[-1]
    assert reply.conversation == f"{other};messageid=1767607200000" and "`checkin`" in reply.body["text"]  # the mention was stripped
    async with rig.db.session() as session:
        ref = await session.scalar(select(ConversationRef))
    assert (ref.target, ref.scope, ref.reference["conversation"]["id"]) == (other, "channel", other)


async def test_consent_card_then_checklist_card_are_sent_proactively_and_accepting_updates_the_consent_card(rig: Rig) -> None:
    account, _card_id, card = await _consented_checklist(rig)
    conversation = personal_conversation(account)
    sends = [c for c in rig.fake.called("send") if c.conversation == conversation]
    assert len(sends) == 2  # consent, then the checklist
    assert all(c.body["attachments"][0]["contentType"] == "application/vnd.microsoft.card.adaptive" for c in sends)
    assert "check-in" in sends[-1].body["summary"]
    assert card["version"] == "1.5"
    assert "Week 1 of 12" in json.dumps(card)
    assert list(_choices(card)) == ["q:decision_huddle", "q:escalate_24h", "q:specific_feedback"]
    assert all(e["style"] == "expanded" for e in card["body"] if e["type"] == "Input.ChoiceSet")
    note = next(e for e in card["body"] if e["type"] == "Input.Text")
    assert (note["id"], note["maxLength"]) == ("note", 2000)
    assert [a["title"] for a in card["actions"]] == ["Submit", "Snooze 2 h", "Tomorrow", "Skip this week"]
    assert ChoiceRef.decode(_button(card, "Submit")["data"]["context"]).action == "note"
    async with rig.db.session() as session:
        delivery = await session.scalar(select(Delivery).where(Delivery.kind == "checklist"))
    assert (delivery.status, delivery.message_ref["conversation"], delivery.message_ref["service_url"]) == (
        "sent",
        conversation,
        rig.fake.url,
    )
    accepted = rig.fake.called("update")[0]  # the consent card, updated in place when Accept was pressed
    assert accepted.conversation == conversation and "Thank you" in json.dumps(accepted.body["attachments"][0]["content"])


async def test_same_card_submit_delivered_twice_stores_the_answers_once_and_updates_the_card(rig: Rig) -> None:
    account, card_id, card = await _consented_checklist(rig)
    value = _checklist_submit(card, {"q:decision_huddle": "Yes", "q:escalate_24h": "No"})
    submit = card_submit(rig.fake.url, TENANT, BOT, account, card_id, value, activity_id="f:submit-1", timestamp="2026-01-05T11:00:00Z")
    assert [await rig.post(submit), await rig.post(submit)] == [201, 201]
    async with rig.db.session() as session:
        answers = sorted((await session.execute(select(CheckinAnswer.behavior_key, CheckinAnswer.value))).all())
    assert answers == [("decision_huddle", "yes"), ("escalate_24h", "no")]
    assert await rig.count(BehaviorSignal) == 2  # one per answer, however often the submit arrives
    updated = rig.fake.messages[(personal_conversation(account), card_id)]["attachments"][0]["content"]
    chosen = {e["id"]: e.get("value") for e in updated["body"] if e["type"] == "Input.ChoiceSet"}
    assert chosen == {
        "q:decision_huddle": value["q:decision_huddle"],
        "q:escalate_24h": value["q:escalate_24h"],
        "q:specific_feedback": None,
    }
    assert "2 of 3 answered." in json.dumps(updated)


async def test_answers_sent_from_a_card_that_can_no_longer_be_updated_are_stored_and_acknowledged(rig: Rig) -> None:
    account, _card_id, card = await _consented_checklist(rig)
    value = _checklist_submit(card, {"q:decision_huddle": "Yes"})
    assert await rig.post(card_submit(rig.fake.url, TENANT, BOT, account, "deleted-card", value)) == 201  # not a 500 that Teams retries
    async with rig.db.session() as session:
        assert (await session.execute(select(CheckinAnswer.behavior_key, CheckinAnswer.value))).all() == [("decision_huddle", "yes")]


async def test_an_empty_submit_is_refused_a_later_changed_answer_wins_and_a_note_is_kept(rig: Rig) -> None:
    account, card_id, card = await _consented_checklist(rig)
    assert await rig.post(card_submit(rig.fake.url, TENANT, BOT, account, card_id, _checklist_submit(card, {}))) == 201
    assert await rig.count(CheckinAnswer) == 0  # an empty submit stores nothing and says what to do
    assert any("Choose an answer" in t for t in rig.fake.texts(personal_conversation(account)))
    first = _checklist_submit(card, {"q:decision_huddle": "No"})
    second = _checklist_submit(
        card, {"q:decision_huddle": "Partly", "q:escalate_24h": "Yes", "q:specific_feedback": "Yes"}, note="Huddle on Tuesday"
    )
    for i, value in enumerate((first, second)):
        assert await rig.post(card_submit(rig.fake.url, TENANT, BOT, account, card_id, value, timestamp=f"2026-01-05T11:0{i}:00Z")) == 201
    async with rig.db.session() as session:
        assert await session.scalar(select(CheckinAnswer.value).where(CheckinAnswer.behavior_key == "decision_huddle")) == "partly"
        assert await session.scalar(select(CheckinNote.text)) == "Huddle on Tuesday"
    updated = json.dumps(rig.fake.messages[(personal_conversation(account), card_id)])
    assert "Your note (only you see it): Huddle on Tuesday" in updated


async def test_skip_is_shown_on_the_card_and_checkin_sends_the_checklist_again(rig: Rig) -> None:
    account, card_id, card = await _consented_checklist(rig)
    conversation = personal_conversation(account)
    skip = _button(card, "Skip this week")
    assert skip["associatedInputs"] == "none"
    assert await rig.post(card_submit(rig.fake.url, TENANT, BOT, account, card_id, skip["data"], timestamp="2026-01-05T11:00:00Z")) == 201
    assert "Skipped this week." in json.dumps(rig.fake.messages[(conversation, card_id)])
    sends = len(rig.fake.called("send"))
    assert await rig.post(text_message(rig.fake.url, TENANT, BOT, account, "checkin", timestamp="2026-01-05T12:00:00Z")) == 201
    assert "checklist is on its way" in rig.fake.texts(conversation)[-1]
    assert len(rig.fake.called("send")) == sends  # queued, not sent inline: the worker delivers it
    await deliver_outbox(rig.db, await rig.app.programs.get(), rig.app.chats, datetime(2026, 1, 5, 12, 0, 1, tzinfo=UTC))
    assert len(rig.fake.called("send")) == sends + 1 and len(_choices(rig.fake.cards(conversation)[-1])) == 3


async def test_text_commands_help_pause_resume_optout_and_unknown_ones_answer_in_plain_text(rig: Rig) -> None:
    account = await rig.install("ines@example.com")
    conversation = personal_conversation(account)

    async def say(text: str) -> str:
        assert await rig.post(text_message(rig.fake.url, TENANT, BOT, account, text)) == 201
        return rig.fake.texts(conversation)[-1]

    assert "`checkin`" in await say("help")
    assert "Paused" in await say("pause")
    assert (await rig.person("ines@example.com")).paused_at is not None
    assert "Resumed" in await say("resume")
    assert "opted out" in await say("optout")
    assert "I don't know “[click](https://evil.example)”" in await say("[click](https://evil.example)")
    replies = [c for c in rig.fake.called("reply") if c.conversation == conversation]
    # Plain text, and no mention entities: echoed member text cannot become a link or a ping.
    assert all(c.body["textFormat"] == "plain" and not c.body.get("entities") for c in replies)


async def test_uninstall_forgets_the_reference_pauses_with_a_reason_and_reinstall_resumes_only_that_pause(rig: Rig) -> None:
    liam, olga = await rig.install("liam@example.com"), await rig.install("olga@example.com")
    assert await rig.post(text_message(rig.fake.url, TENANT, BOT, olga, "pause")) == 201  # olga pauses herself first
    assert await rig.post(personal_install(rig.fake.url, TENANT, BOT, liam, kind="installationUpdate", remove=True)) == 201
    assert await rig.post(personal_install(rig.fake.url, TENANT, BOT, olga, remove=True)) == 201
    assert await rig.count(ConversationRef) == 0
    assert (await rig.person("liam@example.com")).paused_at is not None
    async with rig.db.session() as session:
        entry = await session.scalar(select(AuditEntry).where(AuditEntry.action == "delivery.paused"))
    assert (entry.subject, entry.detail["reason"]) == ("liam@example.com", "the member removed the Reinforce app in Teams")
    await rig.install("liam@example.com")
    await rig.install("olga@example.com")
    assert (await rig.person("liam@example.com")).paused_at is None
    assert (await rig.person("olga@example.com")).paused_at is not None  # her own pause stands


async def test_digest_card_with_its_chart_is_posted_to_the_sponsor_channel(rig: Rig) -> None:
    installer = rig.member("umar@example.com")
    assert await rig.post(team_install(rig.fake.url, TENANT, BOT, installer, SPONSOR_CHANNEL)) == 201
    chart = _small_png()
    digest = Message(
        "Wave B, week 1: participation 80%",
        (
            Header("Wave B — week 1"),
            Section("Participation: 8 of 10 members answered."),
            Image("Adoption by week", data=chart),
            Context("Figures from fewer than 5 people are not shown."),
        ),
    )
    ref = await rig.app.chats["teams"].send(Recipient("teams", channel_id=SPONSOR_CHANNEL), digest)
    assert (ref["conversation"], ref["service_url"]) == (SPONSOR_CHANNEL, rig.fake.url)
    card = rig.fake.cards(SPONSOR_CHANNEL)[-1]
    image = next(e for e in card["body"] if e["type"] == "Image")
    assert image["url"].startswith("data:image/png;base64,") and image["altText"] == "Adoption by week"
    await rig.app.chats["teams"].update(ref, Message("updated", (Section("Participation: 9 of 10."),)))
    assert "9 of 10" in json.dumps(rig.fake.cards(SPONSOR_CHANNEL)[-1])


async def test_the_scheduled_digest_is_posted_once_to_the_cohorts_teams_sponsor_channel_with_its_chart(rig: Rig) -> None:
    from bot.jobs import tick

    installer = rig.member("umar@example.com")
    assert await rig.post(team_install(rig.fake.url, TENANT, BOT, installer, SPONSOR_CHANNEL)) == 201
    program = await rig.app.programs.get()
    friday = datetime(2026, 1, 16, 16, 5, tzinfo=UTC)  # Wave B's digest slot (its channel keeps UTC); its first week has closed
    await tick(rig.db, program, friday)
    await tick(rig.db, program, friday + timedelta(minutes=5))  # a second tick queues nothing new
    await rig.app.deliverer.deliver_due(program, lambda: friday + timedelta(minutes=6))
    (card,) = rig.fake.cards(SPONSOR_CHANNEL)
    assert "Wave B" in json.dumps(card)
    image = next(e for e in card["body"] if e["type"] == "Image")  # the chart fits in the card
    assert image["url"].startswith("data:image/png;base64,") and "decision huddle" in image["altText"]


async def test_a_rehearsal_in_the_personal_chat_takes_each_line_as_one_turn_even_a_line_that_starts_with_a_command(rig: Rig) -> None:
    account = await rig.install("ines@example.com")
    assert await rig.post(card_submit(rig.fake.url, TENANT, BOT, account, "consent-card", {"value": ACCEPT})) == 201  # she accepts
    conversation = personal_conversation(account)
    assert await rig.post(text_message(rig.fake.url, TENANT, BOT, account, "rehearse vp-decision-huddles")) == 201
    assert "Rehearsal started" in json.dumps([m for (c, _id), m in rig.fake.messages.items() if c == conversation])
    line = text_message(rig.fake.url, TENANT, BOT, account, "Help me show you why a weekly huddle pays off", activity_id="turn-1")
    assert await rig.post(line) == 201
    assert await rig.post(line) == 201  # Teams delivering the same activity again
    await rig.app.rehearsals.drain()
    async with rig.db.session() as session:
        (transcript,) = (await session.scalars(select(RehearsalSession.transcript))).all()
    assert [t["text"] for t in transcript if t["speaker"] == "leader"] == ["Help me show you why a weekly huddle pays off"]
    assert not any("`checkin`" in t for t in rig.fake.texts(conversation))  # not answered with the help text


def _small_png() -> bytes:
    import io

    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot

    figure, axes = pyplot.subplots(figsize=(3, 1.5), dpi=50)
    axes.plot([1, 2, 3], [0.2, 0.4, 0.5])
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png")
    pyplot.close(figure)
    return buffer.getvalue()


async def test_connector_errors_become_permanent_rate_limited_or_transient_delivery_errors(rig: Rig) -> None:
    account = await rig.install("rosa@example.com")
    to = Recipient("teams", user_id=f"{TENANT}:{account['aadObjectId']}")
    expected = {429: (False, 7.0), 503: (False, None), 500: (False, None), 403: (True, None), 404: (True, None), 413: (True, None)}
    seen = {}
    for status, (_permanent, retry_after) in expected.items():
        rig.fake.fail("send", status, retry_after=int(retry_after) if retry_after else None)
        with pytest.raises(DeliveryError) as raised:
            await rig.app.chats["teams"].send(to, Message("hello"))
        seen[status] = (raised.value.permanent, raised.value.retry_after)
    assert seen == expected
    assert len(rig.fake.called("send")) == len(expected)  # no retries inside a send: the outbox retries, with backoff


async def test_a_throttled_delivery_is_retried_after_retry_after(rig: Rig) -> None:
    await rig.install("rosa@example.com")
    rig.fake.fail("send", 429, retry_after=30)
    sent_at = await _deliver(rig)
    async with rig.db.session() as session:
        delivery = await session.scalar(
            select(Delivery).where(
                Delivery.kind == "consent", Delivery.person_id == (await people.by_email(session, "rosa@example.com")).id
            )
        )
    assert delivery.status == "pending" and delivery.next_attempt_at == sent_at + timedelta(seconds=30)


async def test_a_member_who_never_installed_the_app_is_not_found(rig: Rig) -> None:
    rig.fake.rosters.clear()  # and is in no team where the app is installed
    assert await rig.app.chats["teams"].resolve("gita@example.com") is None
    await _deliver(rig)
    async with rig.db.session() as session:
        person = await people.by_email(session, "gita@example.com")
        delivery = await session.scalar(select(Delivery).where(Delivery.person_id == person.id))
    assert delivery.status == "failed" and "not found on teams" in delivery.last_error


async def test_a_member_of_a_team_with_the_app_is_found_through_the_roster_and_gets_a_personal_chat(rig: Rig) -> None:
    installer = rig.member("umar@example.com")
    assert await rig.post(team_install(rig.fake.url, TENANT, BOT, installer, SPONSOR_CHANNEL)) == 201
    gita = rig.member("gita@example.com")
    member = await rig.app.chats["teams"].resolve("Gita@Example.com")
    assert member == f"{TENANT}:{gita['aadObjectId']}"
    created = rig.fake.called("create")[-1].body
    assert created["members"] == [{"id": gita["id"]}] and created["isGroup"] is False
    await rig.app.chats["teams"].send(Recipient("teams", user_id=member), Message("hello"))
    assert rig.fake.called("send")[-1].conversation == f"a:personal-{gita['aadObjectId']}"


async def test_an_install_before_the_program_listed_the_member_is_linked_at_the_next_load(rig: Rig) -> None:
    dora = rig.fake.add_member(TENANT, "dora@example.com", "Dora", team=SPONSOR_CHANNEL)
    assert await rig.post(personal_install(rig.fake.url, TENANT, BOT, dora)) == 201  # nobody of the program yet
    program = load_program(str(EXAMPLE))
    data = program.model_dump(mode="json")
    data["cohorts"][0]["members"].append({"email": "dora@example.com", "platform": "teams", "timezone": "Europe/Lisbon"})
    await store_program(rig.db, parse_program(data, "added.yaml"), "added.yaml", MONDAY)
    unlinked = await Identities(rig.db, rig.app.chats).link_program(MONDAY)
    assert "dora@example.com" not in {u.email for u in unlinked}
    async with rig.db.session() as session:
        person = await people.by_email(session, "dora@example.com")
        assert person is not None and await accounts.user_id_of(session, person.id, "teams") == f"{TENANT}:{dora['aadObjectId']}"
