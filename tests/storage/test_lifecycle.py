"""Forgetting a person leaves no row naming them in any table; the retention purge drops old
free text only. Both idempotent, on SQLite and PostgreSQL."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import JSON, func, insert, select, update

from bot.files import load_program
from nudges.program import parse_program
from nudges.weeks import IsoWeek
from storage import accounts, audit, checkins, lifecycle, outbox, people, rehearsals
from storage.addresses import save as save_reference
from storage.db import Database
from storage.lifecycle import Subject
from storage.models import (
    AuditEntry,
    Base,
    BehaviorSignal,
    CheckinNote,
    Cohort,
    ConversationRef,
    DigestRecord,
    FeedbackReview,
    InboundEvent,
    ProgramVersion,
    RehearsalSession,
    workspace_installations,
)
from storage.programs import save_program

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "program.yaml"
T0 = datetime(2026, 1, 5, 9, 0, tzinfo=UTC)
WEEK = IsoWeek.of(T0)
TEAM, TENANT = "T0001", "tenant-0001"
# Slack members by raw user id, the Teams member by AAD object id.
SLACK_IDS = {"ana@example.com": "UANA", "bruno@example.com": "UBRUNO"}
CARLA_AAD = "6f1c2a3e-0000-4000-8000-00000000ca71"


def member_id_of(email: str) -> str:
    return f"{TENANT}:{CARLA_AAD}" if email == "carla@example.com" else f"{TEAM}:{SLACK_IDS[email]}"


async def seed(
    db: Database, emails: tuple[str, ...] = ("ana@example.com", "bruno@example.com", "carla@example.com"), at: datetime = T0
) -> dict[str, int]:
    """The example program, and for each of ``emails`` a row in every table that can hold
    something about a person, made through the storage functions the application uses.
    Returns email -> person id."""
    program = load_program(str(EXAMPLE))
    ids: dict[str, int] = {}
    async with db.session() as session:
        await save_program(session, program, "examples/program.yaml", at)
        cohort_id = await session.scalar(select(Cohort.id).where(Cohort.key == "pilot-a"))
        for email in emails:
            person = await people.by_email(session, email)
            assert person is not None
            ids[email] = person.id
            member = member_id_of(email)
            await accounts.link(session, person.id, person.platform or "", member, at)
            raw = member.partition(":")[2]
            await people.set_consent(session, person.id, "accepted", at)
            events = [f"{raw}:{at.timestamp() + i:.6f}:q:{b}:reinforce:0" for i, b in enumerate(("decision_huddle", "escalate_24h"))]
            await checkins.claim_events(session, person.platform or "", events, at)
            await checkins.save_answers(
                session,
                [
                    checkins.Answer(person.id, cohort_id, WEEK, behavior, "yes", 1.0, at, event)
                    for behavior, event in zip(("decision_huddle", "escalate_24h"), events, strict=True)
                ],
            )
            await checkins.save_note(session, person.id, cohort_id, WEEK, f"private note of {email}", at)
            await checkins.set_week_choice(session, person.id, cohort_id, WEEK + 1, skipped_at=at)
            await people.save_nudge_feedback(session, person.id, "decision_huddle:0", str(WEEK), "useful", at)
            await outbox.enqueue(
                session,
                key=f"checklist:{person.id}:pilot-a:{WEEK}",
                kind="checklist",
                period=str(WEEK),
                due_at=at,
                person_id=person.id,
                cohort_id=cohort_id,
                platform=person.platform,
                payload={"cohort": "pilot-a", "week": str(WEEK)},
            )
            rehearsal = await rehearsals.start_session(session, person.id, "vp-decision-huddles", at)
            await rehearsals.save_progress(session, rehearsal, [{"speaker": "leader", "text": f"my pitch, says {email}"}], 10, 5, at)
            review = await rehearsals.add_review(
                session, rehearsal, "rubric", _feedback(email), "awaiting_review", [{"code": "pay", "text": "mentions pay"}], at
            )
            await rehearsals.decide(session, review, "approved", "coach@example.com", at, "well argued")
            await outbox.enqueue(
                session,
                key=f"review:{review}",
                kind="review",
                period="once",
                due_at=at,
                cohort_id=cohort_id,
                platform="slack",
                target="C0REVIEW",
                payload={"review": review},
            )
            audit.record(session, at, email, "consent.accepted", subject=email)
            audit.record(session, at, f"{person.platform}:{member}", "command.status", outcome="refused")
            audit.record(
                session, at, email, "delivery.paused", subject=email, reason="the member removed the app", platform=person.platform
            )
            if person.platform == "teams":
                user = {"id": f"29:{CARLA_AAD}", "name": "Carla", "aadObjectId": CARLA_AAD}
                await save_reference(session, "teams", TENANT, member, "personal", _reference(f"a:personal-{CARLA_AAD}", user), at)
                # Teams puts whoever wrote to the bot in a channel into that channel's reference.
                await save_reference(
                    session, "teams", TENANT, "19:sponsors@thread.tacv2", "channel", _reference("19:sponsors@thread.tacv2", user), at
                )
            else:
                await session.execute(
                    insert(workspace_installations).values(
                        client_id="111.222",
                        app_id="A0001",
                        team_id=TEAM,
                        team_name="Fake",
                        bot_token="xoxb-installed",
                        bot_id="B1",
                        bot_user_id="UBOT",
                        bot_scopes="chat:write",
                        is_enterprise_install=False,
                        user_id=raw,
                        installed_at=at.replace(tzinfo=None),
                    )
                )
        session.add(
            DigestRecord(
                cohort_id=cohort_id, week=str(WEEK), plan_version=None, figures={"participation": {"n": 18, "value": 0.5}}, created_at=at
            )
        )
    return ids


def _feedback(email: str) -> dict[str, Any]:
    return {
        "source": "rubric",
        "confidence": "high",
        "next_step": f"ask for the decision, {email}",
        "criteria": [{"criterion": "clear_ask", "score": 4, "quote": f"words of {email}", "suggestion": "name the date"}],
    }


def _reference(conversation: str, user: dict[str, Any]) -> dict[str, Any]:
    return {
        "serviceUrl": "https://smba.example/",
        "channelId": "msteams",
        "conversation": {"id": conversation},
        "bot": {"id": "28:bot", "name": "Reinforce"},
        "user": user,
    }


async def rows_naming(db: Database, person_id: int | None, strings: set[str], names: set[str] = frozenset()) -> list[str]:  # type: ignore[assignment]
    """Every value, in every table of the schema, that names the person: a reference to their
    id, one of ``strings`` (email, platform ids) anywhere in a text or JSON value, or one of
    ``names`` as a whole value. Tables added later are scanned too."""
    pattern = re.compile(r"(?<![A-Za-z0-9])(" + "|".join(map(re.escape, sorted(strings, key=len, reverse=True))) + r")(?![A-Za-z0-9])")
    found = []
    async with db.session() as session:
        for table in Base.metadata.sorted_tables:
            person_columns = {c.name for c in table.columns for fk in c.foreign_keys if fk.column.table.name == "people"}
            for row in (await session.execute(select(table))).mappings():
                for column, value in row.items():
                    where = f"{table.name}.{column}={value!r:.120}"
                    if (person_id is not None and column in person_columns and value == person_id) or (
                        person_id is not None
                        and table.name == "deliveries"
                        and column == "idempotency_key"
                        and re.match(rf"(?!review|digest)[a-z_]+:{person_id}(:|$)", value)
                    ):
                        found.append(where)
                    elif isinstance(table.c[column].type, JSON) or isinstance(value, (dict, list)):
                        text = json.dumps(value, ensure_ascii=False)
                        if pattern.search(text) or names & set(_leaves(value)):
                            found.append(where)
                    elif isinstance(value, str) and (pattern.search(value) or value in names):
                        found.append(where)
    return found


def _leaves(value: Any) -> list[Any]:
    if isinstance(value, dict):
        return [leaf for v in value.values() for leaf in _leaves(v)]
    if isinstance(value, list):
        return [leaf for v in value for leaf in _leaves(v)]
    return [value]


def needles(email: str) -> set[str]:
    member = member_id_of(email)
    return {email, member, member.partition(":")[2]}


async def _forget(db: Database, who: str, events: tuple[tuple[str, str], ...] = ()) -> tuple[lifecycle.Forgotten, str]:
    """Forget ``who``; ``events`` are the (platform, prefix) of event ids that name them, as
    bot.lifecycle gets them from the adapters (here: Slack click ids start with the user id)."""
    async with db.session() as session:
        subject = await lifecycle.find_subject(session, who)
        receipt = lifecycle.make_receipt(subject.identifier)
        token = lifecycle.receipt_token(receipt)
        return await lifecycle.forget(session, subject, token, events), token


async def test_the_seed_puts_the_person_in_every_table_that_can_hold_them(db: Database) -> None:
    ids = await seed(db)
    naming = await rows_naming(db, ids["ana@example.com"], needles("ana@example.com"), {"Ana"})
    tables = {where.split(".")[0] for where in naming}
    # Every table with a person column, and those that name people by string, are exercised:
    # a new table that can hold a person fails here until forget (and this seed) handle it.
    person_tables = {
        t.name for t in Base.metadata.sorted_tables if any(fk.column.table.name == "people" for c in t.columns for fk in c.foreign_keys)
    }
    assert person_tables | {"audit_log", "program_versions", "inbound_events", "workspace_installations", "feedback_reviews"} <= tables


async def test_forgetting_a_slack_member_by_email_leaves_no_row_naming_them_and_others_untouched(db: Database) -> None:
    ids = await seed(db)
    before = await rows_naming(db, ids["bruno@example.com"], needles("bruno@example.com"), {"Bruno"})
    done, token = await _forget(db, "Ana@Example.com ")
    assert await rows_naming(db, ids["ana@example.com"], needles("ana@example.com"), {"Ana"}) == []
    assert await rows_naming(db, ids["bruno@example.com"], needles("bruno@example.com"), {"Bruno"}) == before
    assert done.deleted == {
        "feedback_reviews": 1,
        "deliveries": 2,
        "rehearsal_sessions": 1,
        "inbound_events": 2,
        "checkin_answers": 2,
        "behavior_signals": 2,
        "checkin_notes": 1,
        "member_weeks": 1,
        "nudge_feedback": 1,
        "consents": 1,
        "memberships": 1,
        "people": 1,
    }
    assert done.redacted == {"program_versions": 1, "audit_log": 3, "workspace_installations": 1}
    assert done.listed_in_program
    async with db.session() as session:
        kept = (
            await session.execute(
                select(AuditEntry.actor, AuditEntry.action, AuditEntry.subject).where(AuditEntry.actor.startswith("forgotten:"))
            )
        ).all()
        digest = await session.scalar(select(DigestRecord.figures))
        version = await session.scalar(select(ProgramVersion))
    # Their audit trail stays, under the token: what happened and when, not to whom.
    assert sorted(kept) == [(token, "consent.accepted", token), (token, "delivery.paused", token)]
    assert digest == {"participation": {"n": 18, "value": 0.5}}  # posted aggregates stay as they are
    # The stored program no longer lists them, and its hash is that of what it now holds.
    assert "ana@example.com" not in json.dumps(version.content)
    assert version.content_hash == parse_program(version.content).content_hash() != load_program(str(EXAMPLE)).content_hash()


async def test_forgetting_a_teams_member_by_platform_id_drops_them_from_channel_references_too(db: Database) -> None:
    ids = await seed(db)
    done, _token = await _forget(db, member_id_of("carla@example.com"))
    assert await rows_naming(db, ids["carla@example.com"], needles("carla@example.com") | {f"29:{CARLA_AAD}"}, {"Carla"}) == []
    assert done.deleted["conversation_refs"] == 1 and done.redacted["conversation_refs"] == 1
    async with db.session() as session:
        channel = await session.scalar(select(ConversationRef))
    # The channel stays reachable: only the sender who happened to be stored with it goes.
    assert (channel.scope, channel.reference["conversation"]["id"], channel.reference["user"]) == (
        "channel",
        "19:sponsors@thread.tacv2",
        None,
    )


async def test_forgetting_a_coach_keeps_their_decisions_but_not_their_name(db: Database) -> None:
    await seed(db)
    done, token = await _forget(db, "coach@example.com")
    assert await rows_naming(db, None, {"coach@example.com"}) == []
    async with db.session() as session:
        decisions = (await session.execute(select(FeedbackReview.status, FeedbackReview.reviewer))).all()
    assert decisions == [("approved", token)] * 3
    assert done.redacted["feedback_reviews"] == 3 and done.deleted == {"memberships": 2, "people": 1}


async def test_forgetting_twice_or_someone_unknown_finds_nothing_held(db: Database) -> None:
    await seed(db, ("ana@example.com",))
    first, _ = await _forget(db, "ana@example.com")
    second, _ = await _forget(db, "ana@example.com")
    unknown, _ = await _forget(db, "T0009:UNOBODY")
    assert first.held and not second.held and not unknown.held
    assert (second.deleted, second.redacted, unknown.deleted) == ({}, {}, {})


async def test_an_unknown_platform_id_is_still_removed_from_what_names_it(db: Database) -> None:
    """A stranger who wrote to the bot left a refused-command audit entry and Slack event ids."""
    async with db.session() as session:
        audit.record(session, T0, "slack:T0001:USTRANGER", "command.digest", outcome="refused")
        audit.record(session, T0, "slack:T0001:USTRANGER2", "command.digest", outcome="refused")
        await checkins.claim_events(session, "slack", ["USTRANGER:1.0:q:a", "USTRANGER2:1.0:q:a"], T0)
    done, token = await _forget(db, "slack:T0001:USTRANGER", events=(("slack", "USTRANGER:"),))
    assert (done.deleted, done.redacted) == ({"inbound_events": 1}, {"audit_log": 1})
    async with db.session() as session:
        actors = sorted((await session.scalars(select(AuditEntry.actor))).all())
        events = (await session.scalars(select(InboundEvent.event_id))).all()
    assert actors == ["slack:T0001:USTRANGER2", f"slack:{token}"] and events == ["USTRANGER2:1.0:q:a"]


@pytest.mark.parametrize("who", ["", "nobody", "slack:", ":U1", "T1:"])
async def test_what_is_neither_an_email_nor_a_platform_id_is_refused(db: Database, who: str) -> None:
    async with db.session() as session:
        with pytest.raises(lifecycle.LifecycleError, match="neither an email nor a platform id"):
            await lifecycle.find_subject(session, who)


def test_a_receipt_confirms_the_identifier_and_hides_it() -> None:
    receipt = lifecycle.make_receipt("ana@example.com")
    assert lifecycle.receipt_matches(receipt, " ANA@example.com")
    assert not lifecycle.receipt_matches(receipt, "bruno@example.com")
    assert "ana" not in json.dumps(receipt)
    assert lifecycle.make_receipt("ana@example.com")["hash"] != receipt["hash"]  # salted: equal emails, unequal receipts


def test_the_subject_identifier_is_the_email_when_known() -> None:
    assert Subject(None, "ana@example.com", ((None, "T1:U1"),)).identifier == "ana@example.com"
    assert Subject(None, None, (("slack", "T1:U1"),)).identifier == "T1:U1"


# --- retention ------------------------------------------------------------------------------


async def test_purge_drops_old_notes_transcripts_and_feedback_words_and_keeps_the_rest(db: Database) -> None:
    old, recent = T0 - timedelta(days=500), T0 - timedelta(days=10)
    await seed(db, ("ana@example.com",), at=old)
    async with db.session() as session:
        ana = await people.by_email(session, "ana@example.com")
        cohort_id = await session.scalar(select(CheckinNote.cohort_id))
        await checkins.save_note(session, ana.id, cohort_id, WEEK + 3, "a recent note", recent)
        fresh = await rehearsals.start_session(session, ana.id, "vp-decision-huddles", recent)
        await rehearsals.save_progress(session, fresh, [{"speaker": "leader", "text": "recent pitch"}], 1, 1, recent)
        await rehearsals.add_review(session, fresh, "rubric", _feedback("ana@example.com"), "not_reviewed", [], recent)
    cutoff = T0 - timedelta(days=400)
    async with db.session() as session:
        first = await lifecycle.purge_before(session, cutoff)
    async with db.session() as session:
        again = await lifecycle.purge_before(session, cutoff)
        notes = (await session.scalars(select(CheckinNote.text))).all()
        sessions = (
            await session.execute(select(RehearsalSession.transcript, RehearsalSession.prompt_tokens).order_by(RehearsalSession.id))
        ).all()
        feedback = (await session.scalars(select(FeedbackReview.feedback).order_by(FeedbackReview.id))).all()
        answers = await session.scalar(select(func.count()).select_from(BehaviorSignal))
    assert first == {"checkin_notes": 1, "transcripts": 1, "feedback": 1}
    assert again == {"checkin_notes": 0, "transcripts": 0, "feedback": 0}
    assert notes == ["a recent note"]
    assert sessions == [([], 10), ([{"speaker": "leader", "text": "recent pitch"}], 1)]  # counts stay; only the words go
    assert feedback[0] == {"source": "rubric", "confidence": "high", "criteria": [{"criterion": "clear_ask", "score": 4}], "purged": True}
    assert feedback[1]["next_step"].startswith("ask for the decision")
    assert answers == 2  # signals are not free text: the retention purge leaves them


async def test_a_rehearsal_that_started_long_ago_but_ended_recently_is_kept(db: Database) -> None:
    await seed(db, ("ana@example.com",), at=T0 - timedelta(days=500))
    async with db.session() as session:
        await session.execute(update(RehearsalSession).values(ended_at=T0 - timedelta(days=1)))
        assert (await lifecycle.purge_before(session, T0 - timedelta(days=400)))["transcripts"] == 0
