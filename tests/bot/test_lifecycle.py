"""`reinforce forget` and the retention purge as use cases: what they report, what they audit
(counts and a salted receipt, never the email or the deleted words), and that a member who
used Reinforce through Slack or Teams for real leaves no row naming them once forgotten."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select

from adapters.slack.chat import click_event_id
from bot.app import build
from bot.lifecycle import (
    FORGET_ACTION,
    PURGE_ACTION,
    LifecycleError,
    forget_lines,
    forget_person,
    forget_warning,
    purge_expired,
    when_forgotten,
)
from bot.settings import Settings
from bot.worker import tick_job
from nudges.consent import ACCEPT
from storage import checkins, people
from storage.db import Database
from storage.models import AuditEntry, CheckinNote, Cohort, InboundEvent
from tests.bot.test_cli import EXAMPLE, reinforce
from tests.fakes.bot_connector import card_submit, personal_conversation
from tests.fakes.slack import interaction_body
from tests.rig import BOT, TEAM, TENANT, WEEK, Rig, running_rig, slack_user_of, wait_for
from tests.storage.test_lifecycle import rows_naming, seed

NOW = datetime(2026, 3, 2, 12, 0, tzinfo=UTC)


async def _audit(db: Database, action: str) -> list[AuditEntry]:
    async with db.session() as session:
        return list(await session.scalars(select(AuditEntry).where(AuditEntry.action == action).order_by(AuditEntry.id)))


async def test_forget_reports_what_went_and_audits_a_receipt_instead_of_the_email(db: Database) -> None:
    await seed(db)
    report = await forget_person(db, "ana@example.com", "owner@example.com", NOW)
    assert report.held and report.deleted["checkin_answers"] == 2 and report.deleted["people"] == 1
    (entry,) = await _audit(db, FORGET_ACTION)
    assert (entry.actor, entry.subject, entry.outcome, entry.at) == ("owner@example.com", report.receipt, "ok", NOW)
    assert entry.detail["deleted"] == report.deleted and entry.detail["held"] is True
    dumped = json.dumps([entry.actor, entry.subject, entry.detail])
    assert "ana" not in dumped.lower() and "UANA" not in dumped and "private note" not in dumped
    # Given the email, the receipt confirms the deletion; without it, it names nobody.
    assert await when_forgotten(db, "ana@example.com") == [NOW]
    assert await when_forgotten(db, "bruno@example.com") == []


async def test_forgetting_a_slack_stranger_drops_the_ids_of_their_clicks_and_no_one_elses(db: Database) -> None:
    """Someone not in the program clicked: only their click ids name them (no answer was
    recorded), and the Slack adapter is what says which ids those are."""
    ids = [click_event_id(user, "1767600000.000100", "q:x", "reinforce:0") for user in ("USTRANGER", "USTRANGER2")]
    async with db.session() as session:
        await checkins.claim_events(session, "slack", ids, NOW)
        await checkins.claim_events(session, "teams", ["USTRANGER:not-a-slack-id"], NOW)
    report = await forget_person(db, "T0001:USTRANGER", "cli", NOW)
    assert report.deleted == {"inbound_events": 1}
    async with db.session() as session:
        left = sorted(tuple(row) for row in await session.execute(select(InboundEvent.platform, InboundEvent.event_id)))
    assert left == [("slack", ids[1]), ("teams", "USTRANGER:not-a-slack-id")]


async def test_forget_by_platform_id_finds_the_same_person(db: Database) -> None:
    await seed(db)
    report = await forget_person(db, f"{TEAM}:UANA", "cli", NOW)
    assert report.held and report.deleted["people"] == 1
    assert await when_forgotten(db, "ana@example.com") == [NOW]  # the receipt is of the email, however they were named


async def test_forgetting_twice_or_an_unknown_person_says_nothing_held_and_still_audits(db: Database) -> None:
    await seed(db, ("ana@example.com",))
    first = await forget_person(db, "ana@example.com", "cli", NOW)
    again = await forget_person(db, "ana@example.com", "cli", NOW + timedelta(minutes=1))
    unknown = await forget_person(db, "teams:tenant-9:0000-aad", "cli", NOW + timedelta(minutes=2))
    assert first.held and not again.held and not unknown.held
    assert forget_lines(again) == [f"nothing held about ana@example.com (audited as {again.receipt})"]
    entries = await _audit(db, FORGET_ACTION)
    assert [(e.detail["held"], e.detail["deleted"]) for e in entries] == [(True, first.deleted), (False, {}), (False, {})]
    assert await when_forgotten(db, "ana@example.com") == [NOW, NOW + timedelta(minutes=1)]
    assert await when_forgotten(db, "tenant-9:0000-aad") == [NOW + timedelta(minutes=2)]


async def test_forget_lines_name_what_went_and_warn_when_the_program_file_still_lists_them(db: Database) -> None:
    await seed(db, ("ana@example.com",))
    report = await forget_person(db, "ana@example.com", "cli", NOW)
    lines = forget_lines(report)
    assert lines[0].startswith(
        "forgot ana@example.com: deleted 2 answers, 2 signals, 1 notes, 1 skipped or snoozed weeks, 1 nudge ratings, 1 rehearsals"
    )
    assert lines[0].endswith("1 person record")
    assert (
        lines[1]
        == f"replaced their name or id with {report.receipt} in 3 audit entries, 1 stored program versions, 1 Slack install records"
    )
    assert "stay there" in lines[2]
    assert "remove them from the program file" in (forget_warning(report) or "")


async def test_forgetting_a_person_who_is_not_in_the_program_file_gives_no_warning(db: Database) -> None:
    await seed(db, ("ana@example.com",))
    async with db.session() as session:
        session.add(AuditEntry(at=NOW, actor="slack:T0001:USOMEONE", action="command.status", outcome="refused", detail={}))
    report = await forget_person(db, "T0001:USOMEONE", "cli", NOW)
    assert report.held and report.redacted == {"audit_log": 1} and forget_warning(report) is None


@pytest.mark.parametrize("who", ["", "someone", "slack:"])
async def test_forget_refuses_what_is_neither_an_email_nor_a_platform_id(db: Database, who: str) -> None:
    with pytest.raises(LifecycleError, match="neither an email nor a platform id"):
        await forget_person(db, who, "cli", NOW)
    assert await _audit(db, FORGET_ACTION) == []


# --- retention ------------------------------------------------------------------------------


async def test_purge_expired_audits_counts_only_and_only_when_something_went(db: Database) -> None:
    await seed(db, ("ana@example.com",), at=NOW - timedelta(days=401))
    first = await purge_expired(db, 400, NOW)
    second = await purge_expired(db, 400, NOW + timedelta(minutes=1))
    assert (first.notes, first.transcripts, first.feedback, second.total()) == (1, 1, 1, 0)
    (entry,) = await _audit(db, PURGE_ACTION)
    assert (entry.actor, entry.subject) == ("retention", "older than 400 days")
    assert {k: entry.detail[k] for k in ("notes", "transcripts", "feedback")} == {"notes": 1, "transcripts": 1, "feedback": 1}
    assert "private note" not in json.dumps(entry.detail) and "pitch" not in json.dumps(entry.detail)


async def test_nothing_younger_than_the_retention_is_purged(db: Database) -> None:
    await seed(db, ("ana@example.com",), at=NOW - timedelta(days=399))
    assert (await purge_expired(db, 400, NOW)).total() == 0
    assert await _audit(db, PURGE_ACTION) == []


async def test_the_worker_tick_purges_with_the_configured_retention(db: Database, db_url: str) -> None:
    now = datetime.now(UTC)
    await seed(db, ("ana@example.com",), at=now - timedelta(days=40))
    async with db.session() as session:
        ana = await people.by_email(session, "ana@example.com")
        cohort_id = await session.scalar(select(Cohort.id).where(Cohort.key == "pilot-a"))
        await checkins.save_note(session, ana.id, cohort_id, WEEK + 5, "a note from yesterday", now - timedelta(days=1))
    app = build(Settings(database_url=db_url, reinforce_retention_days=30))
    try:
        await tick_job(app)
    finally:
        await app.close()
    async with db.session() as session:
        assert (await session.scalars(select(CheckinNote.text))).all() == ["a note from yesterday"]
    assert len(await _audit(db, PURGE_ACTION)) == 1


async def test_reinforce_tick_purges_too_and_says_so(db: Database, db_url: str) -> None:
    await seed(db, ("ana@example.com",), at=NOW - timedelta(days=401))
    assert (await asyncio.to_thread(reinforce, "program", "load", str(EXAMPLE), DATABASE_URL=db_url)).returncode == 0
    result = await asyncio.to_thread(reinforce, "tick", "--at", NOW.isoformat(), DATABASE_URL=db_url)
    assert result.returncode == 0, result.stderr
    assert "purged what is older than 400 days: 1 notes, 1 rehearsal transcripts, 1 feedback texts" in result.stdout


async def test_a_tick_at_a_future_instant_does_not_purge_ahead_of_the_real_clock(db: Database, db_url: str) -> None:
    now = datetime.now(UTC)
    await seed(db, ("ana@example.com",), at=now - timedelta(days=380))
    assert (await asyncio.to_thread(reinforce, "program", "load", str(EXAMPLE), DATABASE_URL=db_url)).returncode == 0
    result = await asyncio.to_thread(reinforce, "tick", "--at", (now + timedelta(days=30)).isoformat(), DATABASE_URL=db_url)
    assert result.returncode == 0, result.stderr
    assert "purged" not in result.stdout
    async with db.session() as session:
        assert len((await session.scalars(select(CheckinNote.text))).all()) == 1


# --- end to end: a member who used Reinforce, then forgotten ----------------------------------


@pytest.fixture
async def rig(db: Database, db_url: str) -> AsyncIterator[Rig]:
    async with running_rig(db_url) as rig:
        yield rig


async def test_a_slack_member_who_consented_answered_noted_rehearsed_and_was_refused_leaves_no_row_once_forgotten(rig: Rig) -> None:
    email, user = "ana@example.com", slack_user_of("ana@example.com")
    async with rig.db.session() as session:
        person_id = (await people.by_email(session, email)).id
    await rig.deliver_checklists()  # the consent request
    channel, ts, accept = rig.slack_button(email, "consent", "Accept", kind="")
    assert accept == ACCEPT and await rig.slack_click(email, accept, channel=channel, ts=ts) == 200
    await rig.deliver_checklists(datetime.now(UTC))  # what accepting queued
    channel, ts, yes = rig.slack_button(email, "q:decision_huddle", "Yes")
    assert await rig.slack_click(email, yes, channel=channel, ts=ts) == 200
    _channel, _ts, add_note = rig.slack_button(email, "actions", "Add a note")
    assert await rig.slack_click(email, add_note, channel=channel, ts=ts, action_ts="1767610001.000100") == 200
    modal = (await wait_for(lambda: rig.slack.called("views.open")))[-1].params["view"]
    note = {
        "type": "view_submission",
        "team": {"id": TEAM},
        "user": {"id": user, "team_id": TEAM},
        "view": {
            **modal,
            "id": "V1",
            "hash": "h1",
            "state": {"values": {"note": {"text": {"type": "plain_text_input", "value": "my private note"}}}},
        },
    }
    assert (await rig.slack_post(interaction_body(note)))[0] == 200
    assert "Only sponsors" in await rig.slack_command(email, "digest pilot-a")
    assert "Rehearsal started" in await rig.slack_command(email, "rehearse vp-decision-huddles")
    for i, text in enumerate(("Can we trial a weekly decision huddle?", "done")):
        event = {
            "token": "x",
            "team_id": TEAM,
            "api_app_id": "A0001",
            "type": "event_callback",
            "event_id": f"Ev{i}",
            "event_time": 1,
            "event": {
                "type": "message",
                "channel_type": "im",
                "channel": f"D{user}",
                "user": user,
                "text": text,
                "ts": f"176770000{i}.000100",
            },
        }
        assert (await rig.slack_post(json.dumps(event), "application/json"))[0] == 200
        await rig.app.rehearsals.drain()
    naming = await rows_naming(rig.db, person_id, {email, f"{TEAM}:{user}", user}, {"Ana"})
    assert {w.split(".")[0] for w in naming} >= {"checkin_answers", "checkin_notes", "rehearsal_sessions", "consents", "audit_log"}

    report = await forget_person(rig.db, email, "cli", datetime.now(UTC))
    assert report.held
    assert await rows_naming(rig.db, person_id, {email, f"{TEAM}:{user}", user}, {"Ana"}) == []


async def test_a_teams_member_forgotten_by_platform_id_leaves_no_row_and_is_a_stranger_afterwards(rig: Rig) -> None:
    email = "carla@example.com"
    account = await rig.teams_install(email)
    member = f"{TENANT}:{account['aadObjectId']}"
    async with rig.db.session() as session:
        person_id = (await people.by_email(session, email)).id
    await rig.consent_all()
    await rig.deliver_checklists()
    card = rig.teams.cards(personal_conversation(account))[-1]
    card_id = [k for k, v in rig.teams.messages.items() if k[0] == personal_conversation(account) and v.get("attachments")][-1][1]
    value = {**next(a for a in card["actions"] if a["title"] == "Submit")["data"], "note": "my private note"}
    for element in (e for e in card["body"] if e["type"] == "Input.ChoiceSet"):
        value[element["id"]] = element["choices"][0]["value"]
    assert await rig.teams_post(card_submit(rig.teams.url, TENANT, BOT, account, card_id, value, timestamp="2026-01-05T11:00:00Z")) == 201
    assert "Only admins" in await rig.teams_say(email, "status")
    needles = {email, member, account["aadObjectId"], account["id"]}
    assert {w.split(".")[0] for w in await rows_naming(rig.db, person_id, needles, {"Carla"})} >= {
        "checkin_answers",
        "checkin_notes",
        "conversation_refs",
        "audit_log",
    }

    report = await forget_person(rig.db, f"teams:{member}", "cli", datetime.now(UTC))
    assert report.held and report.deleted["conversation_refs"] == 1
    assert await rows_naming(rig.db, person_id, needles, {"Carla"}) == []
    # Afterwards she is nobody to Reinforce: a command is answered as for any stranger.
    assert "not a member" in await rig.teams_say(email, "pause")
