"""Posting in a Slack channel the bot is not in: it joins a public one and posts; a private one fails
with the invitation to make, which the program's admins are sent once per channel and `program show`
lists. Through the real app and slack_sdk against the fake Slack Web API."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import timedelta

import pytest

from bot.digests import queue_digest
from bot.doctor import diagnose
from bot.programs import describe_program
from bot.settings import Settings
from nudges.weeks import IsoWeek
from storage.db import Database
from tests.rig import MONDAY, SECRET, Rig, running_rig, slack_user_of

AT = MONDAY + timedelta(days=11)  # the Friday of the cohorts' second week
OWNER_DM = f"D{slack_user_of('owner@example.com')}"


@pytest.fixture
async def rig(db: Database, db_url: str) -> AsyncIterator[Rig]:
    async with running_rig(db_url) as rig:
        yield rig


async def _post_digest(rig: Rig, week: IsoWeek) -> None:
    """What the scheduler does on digest day: the pilot-a digest queued for C0SPONSOR, then sent."""
    program = await rig.app.programs.get()
    await queue_digest(rig.db, program, "pilot-a", week, AT)
    await rig.app.deliverer.deliver_due(program, lambda: AT)


async def test_a_public_channel_the_bot_is_not_in_is_joined_and_the_post_goes_through(rig: Rig) -> None:
    # An installation that predates chat:write.public: Slack answers not_in_channel.
    rig.slack.scopes.discard("chat:write.public")
    rig.slack.add_channel("C0SPONSOR", "pilot-a-sponsors")

    await _post_digest(rig, IsoWeek.of(MONDAY))

    assert [c.params["channel"] for c in rig.slack.called("conversations.join")] == ["C0SPONSOR"]
    assert rig.slack.channels["C0SPONSOR"].bot_member
    assert rig.slack.delivered().get("C0SPONSOR") == 1
    assert "cannot post" not in await describe_program(rig.db, AT)
    assert OWNER_DM not in rig.slack.delivered()


async def test_a_private_channel_fails_with_the_invitation_and_the_admins_are_told_once(rig: Rig) -> None:
    rig.slack.add_channel("C0SPONSOR", "pilot-a-sponsors", private=True)

    await _post_digest(rig, IsoWeek.of(MONDAY))
    await _post_digest(rig, IsoWeek.of(MONDAY + timedelta(days=7)))  # the next week's digest fails too

    assert "C0SPONSOR" not in rig.slack.delivered()
    told = [m for (channel, _ts), m in rig.slack.messages.items() if channel == OWNER_DM]
    assert len(told) == 1, told
    assert "invite @Reinforce to the private channel C0SPONSOR" in told[0]["text"]
    shown = await describe_program(rig.db, AT)
    assert "channels the bot cannot post in" in shown
    assert "slack C0SPONSOR (digest): invite @Reinforce to the private channel C0SPONSOR" in shown
    assert "failed deliveries in the last 7 days: 2\n  2 digest: invite @Reinforce" in shown
    settings = Settings(database_url=rig.db.url, slack_bot_token="xoxb-rig", slack_signing_secret=SECRET, slack_api_url=rig.slack.url)
    failed = next(c for c in await diagnose(settings, AT) if c.name == "deliveries.slack.C0SPONSOR")
    assert failed.status == "problem" and failed.fix.startswith("invite @Reinforce to the private channel C0SPONSOR")

    # Once someone invites the bot, the next digest goes through and the channel is no longer listed.
    rig.slack.invite("C0SPONSOR")
    await _post_digest(rig, IsoWeek.of(MONDAY + timedelta(days=14)))
    assert rig.slack.delivered().get("C0SPONSOR") == 1
    assert "cannot post" not in await describe_program(rig.db, AT)


async def test_a_channel_slack_does_not_know_fails_saying_to_check_the_id(rig: Rig) -> None:
    rig.slack.add_channel("C0SPONSOR", "gone", private=True)
    rig.slack.fail("conversations.join", error="channel_not_found")

    await _post_digest(rig, IsoWeek.of(MONDAY))

    shown = await describe_program(rig.db, AT)
    assert "Slack shows @Reinforce no channel C0SPONSOR" in shown
    assert "correct the channel id in the program file" in shown
