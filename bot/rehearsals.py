"""Stakeholder-pitch rehearsals by DM, and the coach review of their feedback.

A leader's turn is answered after the platform request is acknowledged: the adapter gets
an immediate (empty) reply, and a background task shows a "thinking" message, asks the
coach port (an LLM, or the offline rubric), and replaces the message with the answer.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from datetime import datetime
from typing import Any, cast

from adapters.base import ChatPort, DeliveryError, LlmError, Recipient, RehearsalPort, Reply, TextCommand
from bot.delivery import Renderer
from bot.programs import ProgramSource
from nudges.messages import Choice, Context, Header, Message, Section
from nudges.rehearsal import (
    Feedback,
    Rehearsal,
    RehearsalError,
    Turn,
    Usage,
    render_feedback,
    render_intro,
    render_no_feedback,
    render_stakeholder_reply,
    review_flags,
)
from nudges.review import ReviewError, ReviewReason, ReviewStatus, Source, apply_decision, initial_status, review_button_value, review_label
from nudges.scenarios import ScenarioBook, ScenarioError
from storage import audit, checkins, outbox, people, rehearsals
from storage.db import Database
from storage.models import Person
from storage.outbox import Claimed

log = logging.getLogger(__name__)

THINKING = Message("The stakeholder is thinking…", (Context("… the stakeholder is thinking"),))
DECISIONS = ("approve", "edit", "reject")


@dataclass(frozen=True)
class Finished:
    """A finished rehearsal's feedback (None when there is none), its review flags and status."""

    feedback: Feedback | None
    reasons: list[ReviewReason]
    status: str
    message: Message
    usage: Usage


async def take_turn(coach: RehearsalPort, rehearsal: Rehearsal, text: str) -> tuple[Rehearsal, Message, Usage, Finished | None]:
    """One leader message: the stakeholder's answer, or (on ``done`` or the turn limit) feedback."""
    try:
        rehearsal = rehearsal.leader_says(text)
    except RehearsalError as exc:
        return rehearsal, Message(str(exc)), Usage(), None
    if rehearsal.done:
        finished = await finish(coach, rehearsal)
        return rehearsal, finished.message, finished.usage, finished
    try:
        reply, usage = await coach.reply(rehearsal)
    except LlmError as exc:
        log.warning("stakeholder reply failed: %s", exc.detail)
        return rehearsal.undo_unanswered(), Message(exc.learner_message), Usage(), None
    rehearsal = rehearsal.stakeholder_says(reply)
    return rehearsal, render_stakeholder_reply(rehearsal, reply, coach.source), usage, None


async def finish(coach: RehearsalPort, rehearsal: Rehearsal) -> Finished:
    """Feedback on the pitch and its review flags; never a made-up score when there is none."""
    feedback, usage, error = await coach.feedback(rehearsal)
    reasons = review_flags(rehearsal, feedback, error.detail if error else None)
    status = initial_status(reasons)
    if feedback is not None:
        message = render_feedback(feedback, rehearsal.scenario, status)
    else:
        learner = error.learner_message if error else "No feedback could be produced for this rehearsal."
        message = render_no_feedback(rehearsal.scenario, learner, status, coach.source)
    return Finished(feedback, reasons, status, message, usage)


def scenario_menu(book: ScenarioBook) -> Message:
    choices = tuple(Choice(s.title, f"rehearse|{s.key}") for s in book.scenarios)
    return Message(
        "Which conversation do you want to practise?",
        (Header("Rehearse a pitch"), Section("Which conversation do you want to practise?", choices, block_id="rehearse")),
    )


class Rehearsals:
    """The rehearsal and review use cases; one per process."""

    def __init__(self, db: Database, programs: ProgramSource, book: ScenarioBook, coach: RehearsalPort, chats: dict[str, ChatPort]) -> None:
        self.db = db
        self.programs = programs
        self.book = book
        self.coach = coach
        self.chats = chats
        self._locks: dict[int, asyncio.Lock] = {}
        self._tasks: set[asyncio.Task[None]] = set()

    async def start(self, platform: str, user_id: str, key: str | None, now: datetime) -> Reply:
        """Show the scenarios (no key), or start one and send its introduction by DM."""
        if (not_yet := await self._not_treated_yet(platform, user_id, now)) is not None:
            return Reply(text=not_yet)
        if not key:
            return await self._menu(platform, user_id)
        try:
            scenario = self.book.get(key)
        except ScenarioError:
            return Reply(text=f"There is no scenario {key[:40]!r}. Type `rehearse` to see them.")
        async with self.db.session() as session:
            person = await people.by_platform_id(session, platform, user_id)
            if person is None:
                return Reply(text="You are not a member of a Reinforce program.")
            if await people.consent_status(session, person.id) != "accepted":
                return Reply(text="Rehearsals are recorded, so please accept the consent message first (type `resume` to get it).")
            await rehearsals.start_session(session, person.id, scenario.key, now)
        await self._send(platform, user_id, render_intro(scenario, self.coach.source))
        return Reply(update=Message(f"Rehearsal started: {scenario.title}", (Context(f"Rehearsal started: {scenario.title}"),)))

    async def _not_treated_yet(self, platform: str, user_id: str, now: datetime) -> str | None:
        """Why a participant of a comparison cohort cannot rehearse yet (rehearsals are part of
        the treatment it is compared without), or None."""
        async with self.db.session() as session:
            person = await people.by_platform_id(session, platform, user_id)
            cohorts = await people.participations(session, person.id) if person else []
        if not cohorts:
            return None
        program = await self.programs.get()
        if any(program.is_treated(c.key, now.date()) for c in cohorts):
            return None
        starts = program.treatment_starts(cohorts[0].key)
        when = f"from {starts:%-d %B %Y}" if starts else "once your program owner opens them"
        return f"Rehearsals are part of the training your cohort starts later: they open for you {when}."

    async def _menu(self, platform: str, user_id: str) -> Reply:
        await self._send(platform, user_id, scenario_menu(self.book))
        return Reply(text="Pick a scenario in our direct messages.")

    async def say(self, command: TextCommand) -> Reply | None:
        """A leader's message: None when no rehearsal is running; otherwise the answer comes later."""
        async with self.db.session() as session:
            person = await people.by_platform_id(session, command.platform, command.user_id)
            running = await rehearsals.active_session(session, person.id) if person else None
            if person is None or running is None:
                return None
            if command.event_id and not await checkins.claim_event(session, command.platform, command.event_id, command.at):
                return Reply()  # the platform delivered this message again
        task = asyncio.get_running_loop().create_task(self._turn(person.id, command))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return Reply()

    async def drain(self) -> None:
        """Wait for turns still being answered (tests, shutdown)."""
        while self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)

    async def _turn(self, person_id: int, command: TextCommand) -> None:
        lock = self._locks.setdefault(person_id, asyncio.Lock())
        async with lock:  # one turn at a time per leader: the transcript is read, extended, written
            try:
                ref = await self._send(command.platform, command.user_id, THINKING)
                message = await self._answer(person_id, command)
                await self.chats[command.platform].update(ref, message)
            except DeliveryError as exc:
                log.warning("rehearsal reply could not be delivered: %s", exc.reason)
            except Exception:
                log.exception("rehearsal turn failed")

    async def _answer(self, person_id: int, command: TextCommand) -> Message:
        async with self.db.session() as session:
            running = await rehearsals.active_session(session, person_id)
        if running is None:
            return Message("This rehearsal is over. Type `rehearse` to start another.")
        rehearsal = Rehearsal(self.book.get(running.scenario_key), tuple(Turn(t["speaker"], t["text"]) for t in running.transcript))
        rehearsal, message, usage, finished = await take_turn(self.coach, rehearsal, command.text)
        transcript = [{"speaker": t.speaker, "text": t.text} for t in rehearsal.turns]
        async with self.db.session() as session:
            await rehearsals.save_progress(
                session, running.id, transcript, usage.prompt_tokens, usage.completion_tokens, command.at if finished else None
            )
            if finished is not None:
                await self._file_review(session, person_id, running.id, finished, command.at)
        return message

    async def _file_review(self, session: Any, person_id: int, session_id: int, finished: Finished, now: datetime) -> None:
        """Store the feedback as a review item; flagged ones go to the cohort's review channel."""
        feedback = finished.feedback.model_dump(mode="json") if finished.feedback else {"problem": finished.message.blocks[-1].text}  # type: ignore[union-attr]
        reasons = [{"code": r.code, "text": r.text} for r in finished.reasons]
        review_id = await rehearsals.add_review(session, session_id, self.coach.source, feedback, finished.status, reasons, now)
        if finished.status != "awaiting_review":
            return
        program = await self.programs.get()
        cohorts = await people.participations(session, person_id)
        channel = program.cohort(cohorts[0].key).review_channel if cohorts else None
        if channel is None:
            log.warning("review item %d awaits a coach, but the leader's cohort has no review_channel", review_id)
            return
        await outbox.enqueue(
            session,
            key=f"review:{review_id}",
            kind="review",
            period="once",
            due_at=now,
            cohort_id=cohorts[0].id,
            platform=channel.platform,
            target=channel.id,
            payload={"review": review_id},
        )

    async def decide(self, platform: str, user_id: str, review_id: int, decision: str, now: datetime, note: str | None = None) -> Reply:
        """A coach's Approve / Edit / Reject: only coaches of the leader's cohort (or admins)."""
        async with self.db.session() as session:
            found = await rehearsals.review_with_session(session, review_id)
            reviewer = await people.by_platform_id(session, platform, user_id)
            actor = reviewer.email if reviewer else f"{platform}:{user_id}"
            learner_cohorts = await people.participations(session, found[1].person_id) if found else []
            allowed = (
                reviewer is not None
                and found is not None
                and (
                    await people.holds_role(session, reviewer.id, "admin")
                    or any([await people.holds_role(session, reviewer.id, "coach", c.key) for c in learner_cohorts])
                )
            )
            audit.record(session, now, actor, f"review.{decision}", subject=f"review {review_id}", outcome="ok" if allowed else "refused")
            if not allowed:
                return Reply(text="Only the cohort's coaches can review this feedback.")
            review, rehearsal_session = found  # type: ignore[misc]
            try:
                status = apply_decision(review.status, decision)  # type: ignore[arg-type]
            except ReviewError as exc:
                return Reply(text=str(exc))
            if not await rehearsals.decide(session, review_id, status, actor, now, note):
                return Reply(text="Another coach has already decided on this feedback.")
            await outbox.enqueue(
                session,
                key=f"review_outcome:{review_id}",
                kind="review_outcome",
                period="once",
                due_at=now,
                person_id=rehearsal_session.person_id,
                platform=learner.platform if (learner := await session.get(Person, rehearsal_session.person_id)) else None,
                payload={"review": review_id},
            )
        message = await self.render_review(review_id)
        return Reply(update=message)

    async def render_review(self, review_id: int) -> Message:
        """The review channel's message: why it was flagged, the pitch, the feedback, the decision."""
        async with self.db.session() as session:
            found = await rehearsals.review_with_session(session, review_id)
        if found is None:
            return Message("This review item no longer exists.")
        review, rehearsal_session = found
        scenario = self.book.get(rehearsal_session.scenario_key)
        label = review_label(review.source, review.status)  # type: ignore[arg-type]
        blocks: list[Any] = [Header(f"Review: {scenario.title}"), Context(label)]
        blocks.append(Section("Flagged because: " + "; ".join(r["text"] for r in review.flag_reasons)))
        pitch = "\n".join(f"> {t['text']}" for t in rehearsal_session.transcript if t["speaker"] == "leader")
        blocks.append(Section(f"The leader's pitch:\n{pitch or '(nothing)'}"))
        if "criteria" in review.feedback:
            scores = ", ".join(f"{c['criterion'].replace('_', ' ')} {c['score']}/5" for c in review.feedback["criteria"])
            blocks.append(Section(f"Feedback given: {scores}. Next step: {review.feedback.get('next_step', '')}"))
        else:
            blocks.append(Section(f"No feedback could be produced: {review.feedback.get('problem', '')}"))
        if review.status == "awaiting_review":
            choices = tuple(
                Choice(label, review_button_value(review.id, decision))
                for label, decision in (("Approve", "approve"), ("Edit", "edit"), ("Reject", "reject"))
            )
            blocks.append(Section("", choices, block_id="review"))
        else:
            blocks.append(Context(f"{review.status.capitalize()} by {review.reviewer} on {review.decided_at:%Y-%m-%d %H:%M} UTC."))
        return Message(f"{label}: {scenario.title}", tuple(blocks))

    async def render_outcome(self, row: Claimed, now: datetime) -> Message:
        """What the leader is told after a coach's decision."""
        async with self.db.session() as session:
            found = await rehearsals.review_with_session(session, row.payload["review"])
        if found is None:
            raise DeliveryError("the review item was deleted", permanent=True)
        review, rehearsal_session = found
        scenario = self.book.get(rehearsal_session.scenario_key)
        note = review.feedback.get("coach_note")
        if "criteria" in review.feedback:
            feedback = Feedback.model_validate({k: v for k, v in review.feedback.items() if k != "coach_note"})
            return render_feedback(feedback, scenario, cast(ReviewStatus, review.status), note)
        return render_no_feedback(
            scenario, note or "A coach looked at your rehearsal.", cast(ReviewStatus, review.status), cast(Source, review.source)
        )

    def renderers(self) -> dict[str, Renderer]:
        """The outbox kinds this use case renders when the delivery engine sends them."""
        return {
            "review": self.render_review_row,
            "review_outcome": self.render_outcome,
            "review_reminder": self.render_reminder,
            "review_pending": self.render_pending,
        }

    async def render_review_row(self, row: Claimed, now: datetime) -> Message:
        return await self.render_review(row.payload["review"])

    async def render_reminder(self, row: Claimed, now: datetime) -> Message:
        """A flagged item nobody decided, again, for its coaches (review channel) or an admin (DM)."""
        async with self.db.session() as session:
            found = await rehearsals.review_with_session(session, row.payload["review"])
        if found is None or found[0].status != "awaiting_review":
            raise DeliveryError("the feedback was decided before the reminder went out", permanent=True)
        waiting = f"Still waiting for a coach since {found[0].created_at:%a %-d %b}: please approve, edit or reject."
        review = await self.render_review(row.payload["review"])
        return Message(f"Reminder: {review.text}", (Context(waiting), *review.blocks))

    async def render_pending(self, row: Claimed, now: datetime) -> Message:
        """The learner's word that their flagged feedback still waits for a coach."""
        async with self.db.session() as session:
            found = await rehearsals.review_with_session(session, row.payload["review"])
        if found is None or found[0].status != "awaiting_review":
            raise DeliveryError("the feedback was decided before the learner was told it was pending", permanent=True)
        title = self.book.get(found[1].scenario_key).title
        text = (
            f"A coach has not reviewed the feedback on your “{title}” rehearsal yet. It is still pending; I will tell you when they have."
        )
        return Message(text, (Context(text),))

    async def _send(self, platform: str, user_id: str, message: Message) -> dict[str, Any]:
        chat = self.chats.get(platform)
        if chat is None:
            raise DeliveryError(f"{platform} is not configured", permanent=True)
        return await chat.send(Recipient(platform, user_id=user_id), message)
