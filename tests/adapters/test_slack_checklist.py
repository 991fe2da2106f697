"""The weekly checklist through the running web app's signed Slack requests: a week closes for
answers, a finished week has nothing left to skip, the reminder points to the checklist, and
App Home names each cohort's week."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import pytest

from bot.checkins import deliver_outbox
from bot.files import load_program
from bot.identity import Identities
from bot.jobs import tick
from bot.programs import store_program
from nudges.checklist import ChoiceRef
from nudges.consent import ACCEPT
from nudges.program import parse_program
from nudges.weeks import IsoWeek
from storage.db import Database
from tests.rig import EXAMPLE, TEAM, WEEK, Rig, running_rig, slack_user_of

ANA = "ana@example.com"  # Pilot A (12 weeks from 2026-W02), Europe/Lisbon: UTC in winter
QUESTIONS = ("decision_huddle", "escalate_24h", "specific_feedback")


def answer(week: IsoWeek, behavior: str = "decision_huddle", value: str = "yes") -> str:
    return ChoiceRef("pilot-a", week, behavior, value).encode()


def stamp(at: datetime) -> str:
    """``at`` as a Slack action_ts."""
    return f"{at.timestamp():.6f}"


def told(rig: Rig, email: str) -> list[str]:
    """The private lines (ephemeral messages) shown to the member."""
    return [c.params["text"] for c in rig.slack.called("chat.postEphemeral") if c.params["user"] == slack_user_of(email)]


def dm_messages(rig: Rig, email: str, containing: str = "check-in: 3 questions") -> list[dict[str, Any]]:
    """The messages in the member's DM (as last updated) whose notification text contains ``containing``."""
    channel = f"D{slack_user_of(email)}"
    return [m for (ch, _ts), m in rig.slack.messages.items() if ch == channel and containing in m.get("text", "")]


def updates(rig: Rig) -> list[dict[str, Any]]:
    return [c.params for c in rig.slack.called("chat.update")]


def row_labels(blocks: list[dict[str, Any]], block_id: str) -> list[str]:
    row = next((b for b in blocks if b.get("block_id") == block_id), None)
    return [e["text"]["text"] for e in row["elements"]] if row else []


async def recorded(rig: Rig) -> tuple[int, int, int]:
    counts = await rig.counts()
    return counts["checkin_answers"], counts["behavior_signals"], counts["member_weeks"]


@pytest.fixture
async def rig(db: Database, db_url: str) -> AsyncIterator[Rig]:
    async with running_rig(db_url) as rig:
        await rig.consent_all()
        await rig.deliver_checklists()
        yield rig


# --- weeks close ------------------------------------------------------------------------------

CLOSED = [
    # (the button's week, when it is pressed, what the member is told)
    (WEEK + -1, datetime(2026, 1, 6, 10, tzinfo=UTC), "Pilot A had not started that week, so there is nothing to answer for it."),
    (WEEK + 12, datetime(2026, 3, 31, 10, tzinfo=UTC), "Pilot A has 12 weeks and that week is after its last."),
    (
        WEEK,
        datetime(2026, 1, 15, 0, 0, tzinfo=UTC),
        "Week 1 of 12 closed for answers on Thu 15 Jan (3 days after it ended), so its figures are final.",
    ),
    (WEEK + 1, datetime(2026, 1, 9, 10, tzinfo=UTC), "Week 2 of 12 has not started yet."),
]


@pytest.mark.parametrize(("week", "at", "refusal"), CLOSED, ids=["before-start", "after-the-end", "past-the-grace-period", "not-yet"])
async def test_a_click_for_a_week_that_is_not_open_is_refused_and_stores_nothing(
    rig: Rig, week: IsoWeek, at: datetime, refusal: str
) -> None:
    before = await recorded(rig)
    assert await rig.slack_click(ANA, answer(week), action_ts=stamp(at)) == 200
    await rig.app.slack.drain()
    assert told(rig, ANA) == [f"{refusal} Nothing was recorded."]
    assert await recorded(rig) == before
    skip = ChoiceRef("pilot-a", week, action="skip").encode()
    assert await rig.slack_click(ANA, skip, action_ts=stamp(at)) == 200  # nor can such a week be skipped
    await rig.app.slack.drain()
    assert told(rig, ANA)[-1] == f"{refusal} Nothing was recorded."
    assert await recorded(rig) == before


async def test_a_week_takes_answers_until_the_instant_it_closes(rig: Rig) -> None:
    last_moment = datetime(2026, 1, 14, 23, 59, 59, tzinfo=UTC)
    assert await rig.slack_click(ANA, answer(WEEK), action_ts=stamp(last_moment)) == 200
    await rig.app.slack.drain()
    assert told(rig, ANA) == []
    assert (await recorded(rig))[:2] == (1, 1)


async def program_load(rig: Rig, data: dict[str, Any], at: datetime) -> None:
    """What `reinforce program load` does with a file: store the program, then link its members."""
    await store_program(rig.db, parse_program(data, "program.yaml"), "program.yaml", at)
    await Identities(rig.db, rig.app.chats).link_program(at)


async def test_a_member_who_joined_later_cannot_answer_the_weeks_before_they_joined(rig: Rig) -> None:
    newcomer = "newcomer@example.com"
    rig.slack.add_user(newcomer, TEAM, slack_user_of(newcomer))
    data = load_program(str(EXAMPLE)).model_dump(mode="json")
    data["cohorts"][0]["members"].append({"email": newcomer, "platform": "slack", "timezone": "UTC"})
    joined = datetime(2026, 1, 26, 9, tzinfo=UTC)  # Pilot A's week 4
    await program_load(rig, data, joined)
    assert await rig.slack_click(newcomer, ACCEPT, action_ts=stamp(joined)) == 200  # the newcomer accepts
    before = await recorded(rig)
    assert await rig.slack_click(newcomer, answer(WEEK + 1), action_ts=stamp(joined)) == 200
    await rig.app.slack.drain()
    assert told(rig, newcomer) == ["You joined Pilot A after that week, so there is nothing to answer for it. Nothing was recorded."]
    assert await recorded(rig) == before
    assert await rig.slack_click(newcomer, answer(WEEK + 3), action_ts=stamp(joined)) == 200  # the week they joined is theirs
    await rig.app.slack.drain()
    assert (await recorded(rig))[:2] == (before[0] + 1, before[1] + 1)


# --- a finished week --------------------------------------------------------------------------


async def answer_all_three(rig: Rig, email: str) -> None:
    for i, behavior in enumerate(QUESTIONS):
        at = stamp(datetime(2026, 1, 6, 10, i, tzinfo=UTC))
        assert await rig.slack_click(email, answer(WEEK, behavior), action_ts=at) == 200
    await rig.app.slack.drain()


async def test_once_all_three_are_answered_only_the_note_button_is_left(rig: Rig) -> None:
    assert row_labels(dm_messages(rig, ANA)[-1]["blocks"], "actions") == ["Add a note", "Snooze 2 h", "Tomorrow", "Skip this week"]
    await answer_all_three(rig, ANA)
    shown = updates(rig)[-1]["blocks"]
    assert row_labels(shown, "actions") == ["Add a note"]
    assert "Thank you, all three answered." in json.dumps(shown)


@pytest.mark.parametrize(("action", "word"), [("skip", "skip"), ("snooze", "snooze"), ("tomorrow", "snooze")])
async def test_a_stale_skip_or_snooze_after_all_three_answers_is_answered_politely_and_changes_nothing(
    rig: Rig, action: str, word: str
) -> None:
    await answer_all_three(rig, ANA)
    before = await recorded(rig)
    stale = ChoiceRef("pilot-a", WEEK, action=action).encode()  # still on an older rendering of the checklist
    assert await rig.slack_click(ANA, stale, action_ts=stamp(datetime(2026, 1, 6, 11, tzinfo=UTC))) == 200
    await rig.app.slack.drain()
    assert told(rig, ANA) == [f"You have answered all three this week; there is nothing to {word}."]
    assert await recorded(rig) == before
    assert row_labels(updates(rig)[-1]["blocks"], "actions") == ["Add a note"]  # the old rendering is brought up to date


# --- the reminder -----------------------------------------------------------------------------

WEDNESDAY = datetime(2026, 1, 7, 14, tzinfo=UTC)  # the reminder's time in Lisbon


async def remind(rig: Rig) -> None:
    program = await rig.app.programs.get()
    await tick(rig.db, program, WEDNESDAY)
    await deliver_outbox(rig.db, program, rig.app.chats, WEDNESDAY)


async def test_the_reminder_is_short_and_points_to_the_weeks_checklist_instead_of_copying_it(rig: Rig) -> None:
    checklist = dm_messages(rig, ANA)[-1]
    assert await rig.slack_click(ANA, answer(WEEK), action_ts=stamp(datetime(2026, 1, 6, 10, tzinfo=UTC))) == 200
    await remind(rig)
    reminder = dm_messages(rig, ANA, "Reminder")[-1]
    assert reminder["text"] == "Reminder: 1 of 3 answered in your week 1 check-in" != checklist["text"]
    shown = json.dumps(reminder["blocks"])
    assert "1 of 3 answered" in shown and "in this week's checklist above" in shown
    assert not any(b.get("block_id", "").startswith("q:") for b in reminder["blocks"])  # no second copy of the questions
    assert row_labels(reminder["blocks"], "reminder") == ["Show the checklist again"]


async def test_the_reminders_button_brings_the_checklist_again(rig: Rig) -> None:
    await remind(rig)
    again = next(
        e["value"] for b in dm_messages(rig, ANA, "Reminder")[-1]["blocks"] if b.get("block_id") == "reminder" for e in b["elements"]
    )
    checklists = len(dm_messages(rig, ANA))
    assert await rig.slack_click(ANA, again, action_ts=stamp(WEDNESDAY)) == 200
    await deliver_outbox(rig.db, await rig.app.programs.get(), rig.app.chats, WEDNESDAY)
    assert len(dm_messages(rig, ANA)) == checklists + 1


async def test_a_member_who_answered_all_three_gets_no_reminder(rig: Rig) -> None:
    await answer_all_three(rig, ANA)
    await remind(rig)
    assert dm_messages(rig, ANA, "Reminder") == []


# --- App Home ---------------------------------------------------------------------------------


async def test_app_home_names_the_cohort_and_its_week(rig: Rig) -> None:
    user = slack_user_of(ANA)
    event = {
        "token": "x",
        "team_id": TEAM,
        "api_app_id": "A0001",
        "type": "event_callback",
        "event_id": "Ev0HOME",
        "event_time": int(datetime(2026, 1, 21, 9, tzinfo=UTC).timestamp()),  # Pilot A's week 3
        "event": {"type": "app_home_opened", "user": user, "channel": f"D{user}", "tab": "home"},
    }
    assert (await rig.slack_post(json.dumps(event), "application/json"))[0] == 200
    await rig.app.slack.drain()
    view = json.dumps(rig.slack.called("views.publish")[-1].params["view"], ensure_ascii=False)
    assert "Pilot A · Week 3 of 12" in view and "Streak: 0 weeks in a row" in view
