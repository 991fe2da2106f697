"""The checklist card and typed commands through the running web app's Teams endpoint: a closed
week refuses a card's answers, and an activity Teams delivers again is carried out once."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest
from sqlalchemy import func, select

from storage.db import Database
from storage.models import Delivery
from tests.fakes.bot_connector import card_submit, personal_conversation, text_message
from tests.rig import BOT, TENANT, Rig, running_rig

CARLA = "carla@example.com"  # Pilot A, America/New_York, on Teams


@pytest.fixture
async def rig(db: Database, db_url: str) -> AsyncIterator[tuple[Rig, dict[str, Any]]]:
    async with running_rig(db_url) as rig:
        await rig.consent_all()
        account = await rig.teams_install(CARLA)
        await rig.deliver_checklists()
        yield rig, account


def checklist_card(rig: Rig, account: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    """(activity id, card) of the newest checklist card in the member's personal chat."""
    conversation = personal_conversation(account)
    (_c, activity_id), sent = [(k, m) for k, m in rig.teams.messages.items() if k[0] == conversation and m.get("attachments")][-1]
    return activity_id, sent["attachments"][0]["content"]


def submitted(card: dict[str, Any], answers: dict[str, str], note: str) -> dict[str, Any]:
    """What Teams sends for the card's Submit: the button's data and every input's value."""
    choices = {e["id"]: {c["title"]: c["value"] for c in e["choices"]} for e in card["body"] if e["type"] == "Input.ChoiceSet"}
    value = dict(next(a for a in card["actions"] if a["title"] == "Submit")["data"])
    return {**value, **{question: choices[question][label] for question, label in answers.items()}, "note": note}


async def test_a_card_submitted_after_its_week_closed_is_refused_and_stores_nothing(rig: tuple[Rig, dict[str, Any]]) -> None:
    server, account = rig
    card_id, card = checklist_card(server, account)
    value = submitted(card, {"q:decision_huddle": "Yes", "q:escalate_24h": "No"}, "A late note")
    before = await server.counts()
    late = card_submit(server.teams.url, TENANT, BOT, account, card_id, value, timestamp="2026-01-20T15:00:00Z")
    assert await server.teams_post(late) == 201
    assert server.teams.texts(personal_conversation(account))[-1] == (
        "Week 1 of 12 closed for answers on Thu 15 Jan (3 days after it ended), so its figures are final. Nothing was recorded."
    )
    after = await server.counts()
    assert {t: after[t] - before[t] for t in ("checkin_answers", "behavior_signals", "checkin_notes")} == {
        "checkin_answers": 0,
        "behavior_signals": 0,
        "checkin_notes": 0,
    }
    on_time = card_submit(server.teams.url, TENANT, BOT, account, card_id, value, timestamp="2026-01-09T15:00:00Z")
    assert await server.teams_post(on_time) == 201
    assert (await server.counts())["checkin_answers"] == before["checkin_answers"] + 2


async def test_a_typed_checkin_that_teams_delivers_again_queues_one_checklist(rig: tuple[Rig, dict[str, Any]]) -> None:
    server, account = rig
    activity = text_message(server.teams.url, TENANT, BOT, account, "checkin", activity_id="f:checkin-1", timestamp="2026-01-06T15:00:00Z")
    assert [await server.teams_post(activity) for _ in range(3)] == [201, 201, 201]
    async with server.db.session() as session:
        copies = await session.scalar(select(func.count()).select_from(Delivery).where(Delivery.idempotency_key.contains(":again:")))
    assert copies == 1
    replies = [t for t in server.teams.texts(personal_conversation(account)) if "on its way" in t]
    assert replies == ["This week's checklist is on its way to our direct messages."]
