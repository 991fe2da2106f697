"""Role refusals through the real Slack and Teams entry points: each is refused with a reply,
stores nothing, and leaves one audit entry saying who tried what."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlencode

import pytest
from sqlalchemy import select

from adapters.base import Recipient
from bot.files import load_program
from bot.jobs import tick
from bot.programs import store_program
from nudges.checklist import ChoiceRef
from nudges.program import parse_program
from storage import people
from storage.db import Database
from storage.models import FeedbackReview
from tests.fakes.bot_connector import card_submit, personal_conversation
from tests.rig import BOT, EXAMPLE, MONDAY, TEAM, TENANT, Rig, running_rig, slack_user_of, wait_for


@pytest.fixture
async def rig(db: Database, db_url: str) -> AsyncIterator[Rig]:
    async with running_rig(db_url) as rig:
        await rig.consent_all()
        yield rig


def _stored_besides_audit(before: dict[str, int], after: dict[str, int]) -> dict[str, int]:
    """Tables whose row count changed, other than the audit log."""
    return {table: after[table] - before[table] for table in after if table != "audit_log" and after[table] != before[table]}


# --- commands -------------------------------------------------------------------------------

COMMANDS = [
    # (who types it, what, the reply, the audit entry's action and subject)
    ("ana@example.com", "digest pilot-a", "Only sponsors can use `digest`.", "command.digest", "pilot-a"),
    ("coach@example.com", "digest pilot-a", "Only sponsors can use `digest`.", "command.digest", "pilot-a"),
    ("ana@example.com", "status", "Only admins can use `status`.", "command.status", None),
    ("vp.product@example.com", "status", "Only admins can use `status`.", "command.status", None),
]


@pytest.mark.parametrize(
    ("email", "text", "reply", "action", "subject"), COMMANDS, ids=[f"{e.split('@')[0]}-{t.split()[0]}" for e, t, *_ in COMMANDS]
)
async def test_a_slash_command_without_the_role_is_refused_stores_nothing_and_is_audited(
    rig: Rig, email: str, text: str, reply: str, action: str, subject: str | None
) -> None:
    before = await rig.counts()
    assert await rig.slack_command(email, text) == reply
    after = await rig.counts()
    assert _stored_besides_audit(before, after) == {}
    assert after["audit_log"] == before["audit_log"] + 1
    assert (await rig.audit())[-1] == (email, action, subject, "refused")


async def test_a_slash_command_from_someone_outside_the_program_is_refused_and_audited_by_platform_id(rig: Rig) -> None:
    before = await rig.counts()
    assert await rig.slack_command("nobody@example.com", "digest pilot-a") == "Only sponsors can use `digest`."
    assert _stored_besides_audit(before, await rig.counts()) == {}
    assert (await rig.audit())[-1] == (f"slack:{TEAM}:{slack_user_of('nobody@example.com')}", "command.digest", "pilot-a", "refused")


async def test_a_refusal_with_an_overlong_user_id_and_cohort_is_still_audited_clipped(rig: Rig) -> None:
    """PostgreSQL enforces the audit columns' lengths: the entry is clipped, not the request failed."""
    body = urlencode(
        {
            "command": "/reinforce",
            "text": "digest " + "p" * 400,
            "team_id": TEAM,
            "user_id": "U" + "X" * 400,
            "channel_id": "D1",
            "trigger_id": "t1",
        }
    )
    assert await rig.slack_post(body) == (200, "Only sponsors can use `digest`.")
    actor, action, subject, outcome = (await rig.audit())[-1]
    assert (action, outcome, len(actor), len(subject or "")) == ("command.digest", "refused", 320, 320)
    assert actor.startswith(f"slack:{TEAM}:UXXX") and actor.endswith("…")


@pytest.mark.parametrize(
    ("email", "text", "reply", "action", "subject"),
    [
        ("carla@example.com", "digest pilot-a", "Only sponsors can use `digest`.", "command.digest", "pilot-a"),
        ("carla@example.com", "status", "Only admins can use `status`.", "command.status", None),
    ],
    ids=["digest", "status"],
)
async def test_a_command_typed_in_the_teams_personal_chat_without_the_role_is_refused_stores_nothing_and_is_audited(
    rig: Rig, email: str, text: str, reply: str, action: str, subject: str | None
) -> None:
    await rig.teams_install(email)
    before = await rig.counts()
    assert await rig.teams_say(email, text) == reply
    after = await rig.counts()
    assert _stored_besides_audit(before, after) == {}  # the chat's reference is refreshed, not added
    assert (after["audit_log"] - before["audit_log"], (await rig.audit())[-1]) == (1, (email, action, subject, "refused"))


# --- a button on a checklist that is not the member's ----------------------------------------


async def _click_on_anas_checklist_by_sami(rig: Rig, block_id: str, label: str) -> dict[str, int]:
    """Sami (Wave B) presses a button of Ana's (Pilot A) checklist; returns what changed in storage."""
    await rig.deliver_checklists()
    channel, ts, value = rig.slack_button("ana@example.com", block_id, label)
    assert ChoiceRef.decode(value).cohort == "pilot-a"
    before = await rig.counts()
    assert await rig.slack_click("sami@example.com", value, channel=channel, ts=ts) == 200
    await wait_for(lambda: rig.slack.called("chat.postEphemeral"))
    return _stored_besides_audit(before, await rig.counts())


@pytest.mark.parametrize(
    ("block_id", "label", "reply"),
    [
        ("q:decision_huddle", "Yes", "This checklist belongs to a cohort you are not part of."),
        ("actions", "Skip this week", "This checklist is not yours."),
    ],
    ids=["answer", "skip"],
)
async def test_a_button_on_another_cohorts_checklist_is_refused_and_stores_nothing(rig: Rig, block_id: str, label: str, reply: str) -> None:
    assert await _click_on_anas_checklist_by_sami(rig, block_id, label) == {}
    ephemeral = rig.slack.called("chat.postEphemeral")[-1].params
    assert (ephemeral["user"], ephemeral["text"]) == (slack_user_of("sami@example.com"), reply)
    assert rig.slack.called("chat.update") == []  # Ana's message is left as it was


@pytest.mark.parametrize(
    ("block_id", "label", "action"),
    [
        ("q:decision_huddle", "Yes", "checkin.answer"),
        ("actions", "Skip this week", "checkin.skip"),
    ],
    ids=["answer", "skip"],
)
async def test_a_button_on_another_cohorts_checklist_is_audited_as_refused(rig: Rig, block_id: str, label: str, action: str) -> None:
    await _click_on_anas_checklist_by_sami(rig, block_id, label)
    refused = [entry for entry in await rig.audit() if entry[3] == "refused"]
    assert [(action_, subject) for _actor, action_, subject, _o in refused] == [(action, "pilot-a")]
    assert refused[0][0] in ("sami@example.com", f"slack:{TEAM}:{slack_user_of('sami@example.com')}")


async def _teams_submit_of_carlas_checklist_by_umar(rig: Rig) -> tuple[dict[str, Any], dict[str, int]]:
    """Umar (Wave B) sends the answers of Carla's (Pilot A) checklist card from his own chat."""
    carla, umar = await rig.teams_install("carla@example.com"), await rig.teams_install("umar@example.com")
    await rig.deliver_checklists()
    card = rig.teams.cards(personal_conversation(carla))[-1]
    submit = next(a for a in card["actions"] if a["title"] == "Submit")
    value = {**submit["data"], "note": "not my note"}
    for element in (e for e in card["body"] if e["type"] == "Input.ChoiceSet"):
        value[element["id"]] = element["choices"][0]["value"]
    assert all(ChoiceRef.decode(v).cohort == "pilot-a" for k, v in value.items() if k.startswith("q:"))
    before = await rig.counts()
    umars_card = [k for k, v in rig.teams.messages.items() if k[0] == personal_conversation(umar) and v.get("attachments")][-1][1]
    assert await rig.teams_post(card_submit(rig.teams.url, TENANT, BOT, umar, umars_card, value)) == 201
    return umar, _stored_besides_audit(before, await rig.counts())


async def test_a_teams_submit_of_another_cohorts_checklist_is_refused_and_stores_nothing(rig: Rig) -> None:
    umar, changed = await _teams_submit_of_carlas_checklist_by_umar(rig)
    assert changed == {}
    assert rig.teams.texts(personal_conversation(umar))[-1] == "This checklist belongs to a cohort you are not part of."
    assert rig.teams.called("update") == []


async def test_a_teams_submit_of_another_cohorts_checklist_is_audited_as_refused(rig: Rig) -> None:
    umar, _changed = await _teams_submit_of_carlas_checklist_by_umar(rig)
    refused = [entry for entry in await rig.audit() if entry[3] == "refused"]
    assert [(action, subject) for _actor, action, subject, _o in refused] == [("checkin.answer", "pilot-a")] * 3  # one per answer sent
    assert refused[0][0] in ("umar@example.com", f"teams:{TENANT}:{umar['aadObjectId']}")


# --- reviews --------------------------------------------------------------------------------


def _dm_event(email: str, text: str, n: int) -> str:
    user = slack_user_of(email)
    return json.dumps(
        {
            "token": "x",
            "team_id": TEAM,
            "api_app_id": "A0001",
            "type": "event_callback",
            "event_id": f"Ev{n}",
            "event_time": 1,
            "event": {
                "type": "message",
                "channel_type": "im",
                "channel": f"D{user}",
                "user": user,
                "text": text,
                "ts": f"176770000{n}.000100",
            },
        }
    )


async def _flagged_review(rig: Rig) -> int:
    """A rehearsal of Ana's (Pilot A) whose feedback the policy flags; its review item's id."""
    leader = "ana@example.com"
    assert "Rehearsal started" in await rig.slack_command(leader, "rehearse vp-decision-huddles")
    for n, text in enumerate(("Otherwise I will put Sam on a PIP.", "done")):
        assert (await rig.slack_post(_dm_event(leader, text, n), "application/json"))[0] == 200
        await wait_for(lambda n=n: len(rig.slack.called("chat.update")) > n)  # the turn runs after the ack
        await rig.app.rehearsals.drain()
    async with rig.db.session() as session:
        review = await session.scalar(select(FeedbackReview))
    assert review is not None and review.status == "awaiting_review"
    return review.id


async def _review_status(rig: Rig) -> str:
    async with rig.db.session() as session:
        return (await session.scalar(select(FeedbackReview))).status


async def test_a_review_decision_from_someone_who_is_not_a_coach_is_refused_stores_nothing_and_is_audited(rig: Rig) -> None:
    review_id = await _flagged_review(rig)
    before = await rig.counts()
    assert await rig.slack_click("sami@example.com", f"review|{review_id}|approve", channel="C0REVIEW", ts="1767700009.000100") == 200
    ephemeral = (await wait_for(lambda: rig.slack.called("chat.postEphemeral")))[-1].params
    assert (ephemeral["user"], ephemeral["text"]) == (
        slack_user_of("sami@example.com"),
        "Only the cohort's coaches can review this feedback.",
    )
    assert _stored_besides_audit(before, await rig.counts()) == {}
    assert await _review_status(rig) == "awaiting_review"
    assert (await rig.audit())[-1] == ("sami@example.com", "review.approve", f"review {review_id}", "refused")


async def test_a_review_decision_sent_from_teams_by_someone_who_is_not_a_coach_is_refused_and_audited(rig: Rig) -> None:
    review_id = await _flagged_review(rig)
    carla = await rig.teams_install("carla@example.com")
    before = await rig.counts()
    submit = card_submit(rig.teams.url, TENANT, BOT, carla, "card-1", {"reinforce": "click", "value": f"review|{review_id}|reject"})
    assert await rig.teams_post(submit) == 201
    assert rig.teams.texts(personal_conversation(carla))[-1] == "Only the cohort's coaches can review this feedback."
    assert _stored_besides_audit(before, await rig.counts()) == {}
    assert await _review_status(rig) == "awaiting_review"
    assert (await rig.audit())[-1] == ("carla@example.com", "review.reject", f"review {review_id}", "refused")


async def test_a_coach_in_teams_edits_flagged_feedback_in_the_cards_text_box(rig: Rig) -> None:
    review_id = await _flagged_review(rig)
    # The coach, linked in Slack by `program load`, also works in Teams: installing the app links that account too.
    rig.teams.add_member(TENANT, "coach@example.com", "Coach")
    coach = await rig.teams_install("coach@example.com")
    # The review card, as the worker would post it, in the coach's chat.
    sent = await rig.app.chats["teams"].send(
        Recipient("teams", user_id=f"{TENANT}:{coach['aadObjectId']}"), await rig.app.rehearsals.render_review(review_id)
    )
    review_card = rig.teams.cards(personal_conversation(coach))[-1]
    edit = next(a for e in review_card["body"] if e["type"] == "ActionSet" for a in e["actions"] if a["title"] == "Edit")
    assert edit["type"] == "Action.ShowCard" and edit["card"]["body"][0]["type"] == "Input.Text"
    data = {**edit["card"]["actions"][0]["data"], "note": "Ask for the trial; leave Sam out of it."}
    assert await rig.teams_post(card_submit(rig.teams.url, TENANT, BOT, coach, sent["activity"], data)) == 201
    assert "Edited by coach@example.com" in json.dumps(rig.teams.cards(personal_conversation(coach))[-1])  # updated in place
    async with rig.db.session() as session:
        review = await session.get(FeedbackReview, review_id)
    assert (review.status, review.reviewer, review.feedback.get("coach_note")) == (
        "edited",
        "coach@example.com",
        "Ask for the trial; leave Sam out of it.",
    )


# --- consent --------------------------------------------------------------------------------


async def test_opting_out_stops_the_next_ticks_checklist_for_that_member_only(rig: Rig) -> None:
    assert "opted out" in await rig.slack_command("ana@example.com", "optout")
    program = await rig.app.programs.get()
    at = MONDAY.replace(minute=5)
    await tick(rig.db, program, at)
    await rig.app.deliverer.deliver_due(program, lambda: at)
    checklists = {p["channel"] for (_c, _ts), p in rig.slack.messages.items() if "check-in" in p.get("text", "")}
    assert slack_user_of("sami@example.com") in checklists  # the same tick reached Sami, in Ana's time zone
    assert slack_user_of("ana@example.com") not in checklists


# --- roles that work: linked by `program load` or on first contact, never by hand -------------


async def test_the_sponsor_gets_the_digest_and_the_owner_the_status_by_slash_command(rig: Rig) -> None:
    before = len(await rig.audit())
    assert "Pilot A" in await rig.slack_command("vp.product@example.com", "digest pilot-a")
    assert "cohorts," in await rig.slack_command("owner@example.com", "status")
    assert [entry for entry in (await rig.audit())[before:] if entry[1].startswith("command.")] == [
        ("vp.product@example.com", "command.digest", "pilot-a", "ok"),
        ("owner@example.com", "command.status", None, "ok"),
    ]


async def test_someone_joining_the_workspace_after_program_load_is_linked_on_first_contact_a_stranger_never(rig: Rig) -> None:
    rig.slack.users["vp.product@example.com"] = (TEAM, "UVPNEW")  # the sponsor's new account, never looked up
    assert "Pilot A" in await rig.slack_command_as("UVPNEW", "digest pilot-a")
    rig.slack.add_user("someone@elsewhere.example", TEAM, "USOMEONE")
    assert await rig.slack_command_as("USOMEONE", "digest pilot-a") == "Only sponsors can use `digest`."
    assert (await rig.audit())[-1] == (f"slack:{TEAM}:USOMEONE", "command.digest", "pilot-a", "refused")


@pytest.mark.parametrize("decision", ["approve", "reject"])
async def test_a_coach_decides_flagged_feedback_by_button_in_slack_and_the_learner_is_told(rig: Rig, decision: str) -> None:
    await _flagged_review(rig)
    program = await rig.app.programs.get()
    await rig.app.deliverer.deliver_due(program, lambda: datetime.now(UTC))  # the review item goes to the review channel
    (channel, ts), posted = next((k, m) for k, m in rig.slack.messages.items() if k[0] == "C0REVIEW")
    button = next(
        e["value"] for b in posted["blocks"] if b.get("block_id") == "review" for e in b["elements"] if e["value"].endswith(decision)
    )
    assert await rig.slack_click("coach@example.com", button, channel=channel, ts=ts) == 200
    status = {"approve": "approved", "reject": "rejected"}[decision]
    assert await _review_status(rig) == status
    await rig.app.deliverer.deliver_due(program, lambda: datetime.now(UTC))
    told = [m for (c, _ts), m in rig.slack.messages.items() if c == f"D{slack_user_of('ana@example.com')}"]
    assert f"{status} by a coach" in told[-1]["text"]
    assert (await rig.audit())[-1][:2] == ("coach@example.com", f"review.{decision}")


@pytest.mark.parametrize("decision", ["approve", "reject"])
async def test_a_coach_in_teams_decides_flagged_feedback_and_the_learner_is_told(rig: Rig, decision: str) -> None:
    review_id = await _flagged_review(rig)
    rig.teams.add_member(TENANT, "coach@example.com", "Coach")
    coach = await rig.teams_install("coach@example.com")  # linked by her program email
    press = card_submit(rig.teams.url, TENANT, BOT, coach, "card-9", {"reinforce": "click", "value": f"review|{review_id}|{decision}"})
    assert await rig.teams_post(press) == 201
    status = {"approve": "approved", "reject": "rejected"}[decision]
    assert await _review_status(rig) == status
    await rig.app.deliverer.deliver_due(await rig.app.programs.get(), lambda: datetime.now(UTC))
    told = [m for (c, _ts), m in rig.slack.messages.items() if c == f"D{slack_user_of('ana@example.com')}"]
    assert f"{status} by a coach" in told[-1]["text"]


# --- leaving the program ------------------------------------------------------------------------


async def test_a_member_deactivated_in_slack_is_unlinked_paused_and_audited(rig: Rig) -> None:
    user = rig.slack.deactivate("ana@example.com")
    event = {"token": "x", "team_id": TEAM, "api_app_id": "A0001", "type": "event_callback", "event_id": "EvGone", "event_time": 1}
    status, _ = await rig.slack_post(json.dumps({**event, "event": {"type": "user_change", "user": user}}), "application/json")
    assert status == 200
    async with rig.db.session() as session:
        ana = await people.by_email(session, "ana@example.com")
        assert ana is not None and ana.paused_at is not None
        assert await people.by_platform_id(session, "slack", f"{TEAM}:{slack_user_of('ana@example.com')}") is None
    assert (await rig.audit())[-1] == ("ana@example.com", "account.closed", "ana@example.com", "ok")
    # Her commands are a stranger's now: the deactivated account is not linked again.
    assert await rig.slack_command("ana@example.com", "pause") == "You are not a member of a Reinforce program."


async def test_a_coach_removed_from_the_program_file_loses_the_role_at_the_next_load(rig: Rig) -> None:
    review_id = await _flagged_review(rig)
    data = load_program(str(EXAMPLE)).model_dump(mode="json")
    for cohort in data["cohorts"]:
        cohort["coaches"] = []
    saved = await store_program(rig.db, parse_program(data, "no-coach.yaml"), "no-coach.yaml", MONDAY)
    assert ("coach@example.com", "coach", "pilot-a") in saved.removed
    assert ("cli", "role.removed", "coach@example.com", "ok") in await rig.audit()
    assert await rig.slack_click("coach@example.com", f"review|{review_id}|approve", channel="C0REVIEW", ts="1767700009.000100") == 200
    assert await _review_status(rig) == "awaiting_review"
    assert (await rig.audit())[-1] == ("coach@example.com", "review.approve", f"review {review_id}", "refused")
