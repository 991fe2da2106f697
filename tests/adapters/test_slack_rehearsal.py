"""A rehearsal and its review through Slack: DM message events answered after the ack,
a coach's Edit dialog in the review channel."""

from __future__ import annotations

import json
from datetime import UTC, datetime

from sqlalchemy import select

from nudges.consent import ACCEPT
from storage.models import FeedbackReview, RehearsalSession
from tests.adapters import test_slack
from tests.adapters.test_slack import TEAM, Rig, _command, _wait_for, interaction_body
from tests.fakes.slack import block_action

rig = test_slack.rig  # the fixture, shared


def _dm_event(user: str, text: str, event_id: str, ts: str) -> str:
    return json.dumps(
        {
            "token": "x",
            "team_id": TEAM,
            "api_app_id": "A0001",
            "type": "event_callback",
            "event_id": event_id,
            "event_time": 1,
            "event": {"type": "message", "channel_type": "im", "channel": f"D{user}", "user": user, "text": text, "ts": ts},
        }
    )


async def _slack_member(rig: Rig) -> str:
    program = await rig.app.programs.get()
    member = next(m for m in program.cohorts[0].members if m.platform == "slack")
    user = rig.fake.users[member.email][1]  # linked by `program load` (the fixture)
    accept = block_action(TEAM, user, f"D{user}", "1767600000.000100", ACCEPT, action_ts="1767600100.000100", block_id="consent")
    assert (await rig.post(interaction_body(accept))).status == 200  # the member accepts the consent request
    await _wait_for(lambda: rig.fake.called("chat.update"))  # the consent request, updated
    rig.fake.calls[:] = [c for c in rig.fake.calls if c.method != "chat.update"]  # the updates to look at are the test's
    return user


async def test_a_dm_turn_is_acknowledged_then_answered_in_place_of_a_thinking_message(rig: Rig) -> None:
    user = await _slack_member(rig)
    assert "Pick a scenario" in await _command(rig, user, "rehearse")
    assert "Rehearsal started" in await _command(rig, user, "rehearse vp-decision-huddles")
    response = await rig.post(
        _dm_event(user, "Can we trial a weekly 15-minute decision huddle for six weeks?", "Ev1", "1767700000.000100"), "application/json"
    )
    assert response.status == 200  # acknowledged at once; the answer follows
    update = (await _wait_for(lambda: rig.fake.called("chat.update")))[-1]
    posts = [c for c in rig.fake.called("chat.postMessage") if c.params["channel"] == user]
    thinking = next(c for c in posts if "thinking" in c.params["text"])
    assert update.params["ts"] and "thinking" not in json.dumps(update.params["blocks"])
    assert thinking.params["text"] != update.params["text"]
    # Slack retrying the same event changes nothing.
    await rig.post(
        _dm_event(user, "Can we trial a weekly 15-minute decision huddle for six weeks?", "Ev1", "1767700000.000100"), "application/json"
    )
    await rig.app.rehearsals.drain()
    assert len(rig.fake.called("chat.update")) == 1


async def test_a_typed_turn_is_stored_as_written_not_as_slack_escaped_it(rig: Rig) -> None:
    """Slack sends "R&D <b>" as "R&amp;D &lt;b&gt;": decoded once on the way in, so the coach
    reads "R&D <b>", and escaped once on the way out."""
    user = await _slack_member(rig)
    await _command(rig, user, "rehearse vp-decision-huddles")
    escaped = "Our R&amp;D team &lt;b&gt; needs a huddle; &amp;lt; stays as typed."
    await rig.post(_dm_event(user, escaped, "Ev1", "1767700000.000100"), "application/json")
    await _wait_for(lambda: rig.fake.called("chat.update"))
    await rig.app.rehearsals.drain()
    async with rig.db.session() as session:
        transcript = await session.scalar(select(RehearsalSession.transcript))
    assert (transcript[-2]["speaker"], transcript[-2]["text"]) == ("leader", "Our R&D team <b> needs a huddle; &lt; stays as typed.")


async def test_a_coach_edits_flagged_feedback_in_a_dialog_and_the_leader_gets_the_edit(rig: Rig) -> None:
    user = await _slack_member(rig)
    await _command(rig, user, "rehearse vp-decision-huddles")
    await rig.post(_dm_event(user, "Otherwise I will put Sam on a PIP.", "Ev1", "1767700000.000100"), "application/json")
    await _wait_for(lambda: len(rig.fake.called("chat.update")) >= 1)
    await rig.post(_dm_event(user, "done", "Ev2", "1767700001.000100"), "application/json")
    await _wait_for(lambda: len(rig.fake.called("chat.update")) >= 2)
    await rig.app.rehearsals.drain()
    async with rig.db.session() as session:
        review_id = await session.scalar(select(FeedbackReview.id))
    # The coach joins the workspace after `program load`: linked when they first act.
    rig.fake.add_user("coach@example.com", TEAM, "UCOACH")
    await rig.app.deliverer.deliver_due(await rig.app.programs.get(), lambda: datetime.now(UTC))
    (channel, ts), posted = next((k, m) for k, m in rig.fake.messages.items() if k[0] == "C0REVIEW")
    assert "Flagged because" in json.dumps(posted["blocks"])
    edit = {
        "type": "block_actions",
        "team": {"id": TEAM},
        "user": {"id": "UCOACH", "team_id": TEAM},
        "trigger_id": "t1",
        "container": {"type": "message", "channel_id": channel, "message_ts": ts},
        "actions": [
            {
                "type": "button",
                "action_id": "reinforce:1",
                "block_id": "review",
                "value": f"review|{review_id}|edit",
                "action_ts": "1767700002.0",
            }
        ],
    }
    assert (await rig.post(interaction_body(edit))).status == 200
    modal = (await _wait_for(lambda: rig.fake.called("views.open")))[-1].params["view"]
    assert modal["title"]["text"] == "Edit the feedback"
    submission = {
        "type": "view_submission",
        "team": {"id": TEAM},
        "user": {"id": "UCOACH", "team_id": TEAM},
        "view": {
            **modal,
            "id": "V9",
            "hash": "h",
            "state": {"values": {"note": {"text": {"value": "Focus on the trial's benefits, not on consequences for people."}}}},
        },
    }
    assert (await rig.post(interaction_body(submission))).status == 200
    async with rig.db.session() as session:
        review = await session.scalar(select(FeedbackReview))
    assert (review.status, review.reviewer) == ("edited", "coach@example.com")
    assert review.feedback["coach_note"].startswith("Focus on the trial")
    updated = (await _wait_for(lambda: [c for c in rig.fake.called("chat.update") if c.params["channel"] == "C0REVIEW"]))[-1]
    assert "Edited by coach@example.com" in json.dumps(updated.params["blocks"])
