"""Tests for bot/inbound.py's ClickBatcher: clicks that arrive together are recorded together,
and each request gets its own click's outcome."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

import pytest

from adapters.base import Click
from bot.checkins import AnswerOutcome
from bot.inbound import ClickBatcher
from nudges.checklist import ChoiceRef
from nudges.weeks import IsoWeek

REF = ChoiceRef("pilot-a", IsoWeek(2026, 2), "decision_huddle", "yes")


def _click(n: int) -> tuple[Click, ChoiceRef]:
    return Click("slack", f"e{n}", f"U{n}", REF.encode(), datetime(2026, 1, 5, 9, n, tzinfo=UTC)), REF


async def test_each_click_gets_its_own_outcome_and_clicks_arriving_meanwhile_share_a_write() -> None:
    writes: list[list[str]] = []

    async def record(answers: list[tuple[Click, ChoiceRef]]) -> list[AnswerOutcome]:
        writes.append([click.event_id for click, _ref in answers])
        return [AnswerOutcome("recorded", reply=click.event_id) for click, _ref in answers]

    batcher = ClickBatcher(record)
    outcomes = await asyncio.gather(*(batcher.record(*_click(n)) for n in range(5)))

    assert [o.reply for o in outcomes] == ["e0", "e1", "e2", "e3", "e4"]
    assert sorted(e for write in writes for e in write) == ["e0", "e1", "e2", "e3", "e4"]
    assert len(writes) < 5


async def test_a_failed_write_fails_each_of_its_clicks_and_later_clicks_are_still_recorded() -> None:
    async def record(answers: list[tuple[Click, ChoiceRef]]) -> list[AnswerOutcome]:
        if any(click.event_id == "e0" for click, _ref in answers):
            raise RuntimeError("database went away")
        return [AnswerOutcome("recorded", reply=click.event_id) for click, _ref in answers]

    batcher = ClickBatcher(record)
    with pytest.raises(RuntimeError, match="database went away"):
        await batcher.record(*_click(0))
    assert (await batcher.record(*_click(1))).reply == "e1"


async def test_an_outcome_missing_from_a_write_fails_its_batch_rather_than_leaving_a_request_waiting() -> None:
    async def record(answers: list[tuple[Click, ChoiceRef]]) -> list[AnswerOutcome]:
        return [AnswerOutcome("recorded")] * (len(answers) - 1)

    with pytest.raises(ValueError, match="zip"):
        # A deadline, not a speed: before outcomes were set inside the try, this request waited forever.
        await asyncio.wait_for(ClickBatcher(record).record(*_click(0)), timeout=10)
