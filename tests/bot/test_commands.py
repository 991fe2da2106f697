"""Typed commands through the use case (bot/commands.py): what is claimed once per platform
event, and what is answered again when the platform delivers it again."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy import func, select

from adapters.base import TextCommand
from adapters.console import ConsoleChat
from bot.files import load_program
from bot.inbound import InboundHandler
from bot.programs import ProgramSource
from storage import people
from storage.db import Database
from storage.models import Delivery, InboundEvent
from storage.programs import save_program
from tests.seed import link

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "program.yaml"
AT = datetime(2026, 1, 6, 10, tzinfo=UTC)


def _inbound(db: Database) -> InboundHandler:
    chat = ConsoleChat()
    return InboundHandler(db, ProgramSource(db), {"slack": chat, "teams": chat})


async def _claimed(db: Database) -> int:
    async with db.session() as session:
        return await session.scalar(select(func.count()).select_from(InboundEvent)) or 0


async def _member(db: Database, consent: str = "accepted") -> str:
    """Load the example and link its first member (seeded: this tests the commands, not linking)."""
    async with db.session() as session:
        await save_program(session, load_program(str(EXAMPLE)), "example.yaml", AT)
        person = await link(session, "ana@example.com", "slack", "T1:UANA")
        await people.set_consent(session, person.id, consent, AT)
    return "T1:UANA"


async def test_before_any_program_is_loaded_a_member_is_told_so_rather_than_failing(db: Database) -> None:
    reply = await _inbound(db).message(TextCommand("slack", "T1:UANA", "checkin", AT, event_id="UANA:Ev1"))
    assert reply.text == "Reinforce is not set up yet: your program owner has not loaded the program."


async def test_a_strangers_message_stores_nothing_not_even_its_event_id(db: Database) -> None:
    await _member(db)
    inbound = _inbound(db)
    for text in ("pause", "checkin", "rehearse vp-decision-huddles", "hello"):
        reply = await inbound.message(TextCommand("slack", "T1:USTRANGER", text, AT, event_id=f"USTRANGER:{text}"))
        assert reply.text
    assert await _claimed(db) == 0


async def test_a_refusal_claims_nothing_and_is_answered_again_when_delivered_again(db: Database) -> None:
    user = await _member(db, consent="withdrawn")
    inbound = _inbound(db)
    command = TextCommand("slack", user, "checkin", AT, event_id="UANA:Ev1")
    first, again = await inbound.message(command), await inbound.message(command)
    assert first.text == again.text == "Please accept the consent message first; type `resume` to get it again."
    assert await _claimed(db) == 0


async def test_a_checkin_delivered_again_queues_nothing_more_and_says_nothing_more(db: Database) -> None:
    user = await _member(db)
    inbound = _inbound(db)
    command = TextCommand("slack", user, "checkin", AT, event_id="UANA:Ev1")
    first, again = await inbound.message(command), await inbound.message(command)
    assert first.text == "This week's checklist is on its way to our direct messages." and again.text is None
    async with db.session() as session:
        keys = (await session.scalars(select(Delivery.idempotency_key).where(Delivery.kind == "checklist"))).all()
    assert len(keys) == 1 and ":again:" in keys[0]
    assert await _claimed(db) == 1
