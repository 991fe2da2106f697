"""Stakeholder-pitch rehearsals by DM, and the coach review of their feedback.

A leader's line is stored (once per platform event) before the platform request is
acknowledged; the answer follows: a background task shows a "thinking" message, asks the
coach port (an LLM, or the offline rubric), stores the answer and replaces the message with it.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Coroutine
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, cast

from sqlalchemy.ext.asyncio import AsyncSession

from adapters.base import ChatPort, DeliveryError, LlmError, Recipient, RehearsalPort, Reply, TextCommand
from bot.delivery import Renderer
from bot.programs import ProgramSource
from nudges.messages import Choice, Context, Header, Message, Section
from nudges.program import Program
from nudges.rehearsal import (
    Feedback,
    Rehearsal,
    RehearsalError,
    Turn,
    Usage,
    is_done_command,
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
from storage.models import Person, RehearsalSession
from storage.outbox import Claimed

log = logging.getLogger(__name__)

THINKING = Message("The stakeholder is thinking…", (Context("… the stakeholder is thinking"),))
DECISIONS = ("approve", "edit", "reject")
# A stored line still unanswered this long after it was written lost its answer (the process
# stopped meanwhile): the next line replaces it. Longer than a model call with its retries
# (30 s, three tries, by default).
UNANSWERED_FOR = timedelta(minutes=10)


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
    return await respond(coach, rehearsal)


async def respond(coach: RehearsalPort, rehearsal: Rehearsal) -> tuple[Rehearsal, Message, Usage, Finished | None]:
    """The answer to the leader's last line: the stakeholder's reply, or feedback once the
    rehearsal is over. A failed reply drops the unanswered line, so it can be sent again."""
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


def _turns(transcript: list[dict[str, Any]]) -> tuple[Turn, ...]:
    return tuple(Turn(t["speaker"], t["text"]) for t in transcript)


def _stored(before: list[dict[str, Any]], rehearsal: Rehearsal, at: datetime) -> list[dict[str, Any]]:
    """The transcript to store: ``rehearsal``'s turns extend or shorten what was stored, so the
    turns already stored stay as they were and the new ones are stamped with ``at``."""
    kept = before[: len(rehearsal.turns)]
    added = [{"speaker": t.speaker, "text": t.text, "at": at.isoformat()} for t in rehearsal.turns[len(kept) :]]
    return [*kept, *added]


def _unanswered_since(turn: dict[str, Any], now: datetime) -> bool:
    """Whether a stored leader line has waited for its answer longer than any answer takes
    (a line stored before lines were stamped counts as waiting since long ago)."""
    stamp = turn.get("at")
    return stamp is None or now - datetime.fromisoformat(stamp) > UNANSWERED_FOR


async def _not_treated_yet(session: AsyncSession, program: Program, person: Person | None, now: datetime) -> str | None:
    """Why a participant of a comparison cohort cannot rehearse yet (rehearsals are part of
    the treatment it is compared without), or None."""
    cohorts = await people.participations(session, person.id) if person else []
    if not cohorts or any(program.is_treated(c.key, now.date()) for c in cohorts):
        return None
    starts = program.treatment_starts(cohorts[0].key)
    when = f"from {starts:%-d %B %Y}" if starts else "once your program owner opens them"
    return f"Rehearsals are part of the training your cohort starts later: they open for you {when}."


async def _logged(work: Coroutine[Any, Any, object]) -> None:
    try:
        await work
    except DeliveryError as exc:
        log.warning("a rehearsal message could not be delivered: %s", exc.reason)
    except Exception:
        log.exception("rehearsal work after the ack failed")


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

    async def start(self, platform: str, user_id: str, key: str | None, now: datetime, event_id: str | None = None) -> Reply:
        """Show the scenarios (no key), or start one and send its introduction by DM.

        Once per ``event_id`` of a member: the session is stored (and the event claimed)
        before the platform gets its answer; the menu or the introduction is sent after it.
        """
        scenario = None
        if key:
            try:
                scenario = self.book.get(key)
            except ScenarioError:
                return Reply(text=f"There is no scenario {key[:40]!r}. Type `rehearse` to see them.")
        program = await self.programs.get()
        async with self.db.session() as session:
            person = await people.by_platform_id(session, platform, user_id)
            if (not_yet := await _not_treated_yet(session, program, person, now)) is not None:
                return Reply(text=not_yet)
            if scenario is not None:
                if person is None:
                    return Reply(text="You are not a member of a Reinforce program.")
                if await people.consent_status(session, person.id) != "accepted":
                    return Reply(text="Rehearsals are recorded, so please accept the consent message first (type `resume` to get it).")
            if person is not None and event_id and not await checkins.claim_event(session, platform, event_id, now):
                return Reply()  # the platform delivered this command again
            if scenario is not None and person is not None:
                await rehearsals.start_session(session, person.id, scenario.key, now)
        if scenario is None:
            self._after(self._send(platform, user_id, scenario_menu(self.book)))
            return Reply(text="Pick a scenario in our direct messages.")
        self._after(self._send(platform, user_id, render_intro(scenario, self.coach.source)))
        return Reply(update=Message(f"Rehearsal started: {scenario.title}", (Context(f"Rehearsal started: {scenario.title}"),)))

    async def say(self, command: TextCommand) -> Reply | None:
        """A leader's line: None when no rehearsal is running. Otherwise the line is stored (and
        the platform's event claimed, so a retry adds nothing) before the platform gets its
        answer, and the stakeholder's answer follows. A line refused (too long, or while the
        stakeholder still answers) claims its event too, so a retry of a stored line is not
        refused as the next one."""
        async with self.db.session() as session:
            person = await people.by_platform_id(session, command.platform, command.user_id)
            running = await rehearsals.active_session(session, person.id) if person else None
            if person is None or running is None:
                return None
            if command.event_id and not await checkins.claim_event(session, command.platform, command.event_id, command.at):
                return Reply()  # the platform delivered this message again
            transcript = list(running.transcript)
            rehearsal = Rehearsal(self.book.get(running.scenario_key), _turns(transcript))
            if rehearsal.awaiting == "stakeholder" and _unanswered_since(transcript[-1], command.at):
                rehearsal, transcript = rehearsal.undo_unanswered(), transcript[:-1]
            try:
                rehearsal = rehearsal.leader_says(command.text)
            except RehearsalError as exc:
                return Reply(text=str(exc))
            await rehearsals.save_progress(session, running.id, _stored(transcript, rehearsal, command.at), 0, 0)
        self._after(self._turn(person.id, command))
        return Reply()

    async def drain(self) -> None:
        """Wait for work still under way after an ack: turns being answered, messages being sent (tests, shutdown)."""
        while self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)

    def _after(self, work: Coroutine[Any, Any, object]) -> None:
        """Run ``work`` once the platform has its answer: the adapter answers as soon as the use
        case returns. What the member did is stored by then, so a failure is logged, not raised."""
        task = asyncio.get_running_loop().create_task(_logged(work))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _turn(self, person_id: int, command: TextCommand) -> None:
        """Answer the leader's stored line (or finish on ``done``): a thinking message, then the
        answer in its place."""
        lock = self._locks.setdefault(person_id, asyncio.Lock())
        async with lock:  # one answer at a time per leader: the transcript is read, extended, written
            async with self.db.session() as session:
                running = await rehearsals.active_session(session, person_id)
            pending = self._pending(running, command.text)
            if running is None or pending is None:
                return  # the rehearsal ended or moved on meanwhile; nothing is waiting for an answer
            ref = await self._send(command.platform, command.user_id, THINKING)
            rehearsal, message, usage, finished = await respond(self.coach, pending)
            async with self.db.session() as session:
                transcript = _stored(list(running.transcript), rehearsal, command.at)
                ended = command.at if finished else None
                await rehearsals.save_progress(session, running.id, transcript, usage.prompt_tokens, usage.completion_tokens, ended)
                if finished is not None:
                    await self._file_review(session, person_id, running.id, finished, command.at)
            await self.chats[command.platform].update(ref, message)

    def _pending(self, running: RehearsalSession | None, text: str) -> Rehearsal | None:
        """The rehearsal as it waits for an answer: ended by ``done``, or with the leader's
        stored line replayed (which ends it at the turn limit); None when nothing waits."""
        if running is None:
            return None
        turns = _turns(running.transcript)
        rehearsal = Rehearsal(self.book.get(running.scenario_key), turns)
        if is_done_command(text):
            return rehearsal.leader_says(text)
        if rehearsal.awaiting != "stakeholder":
            return None
        return Rehearsal(rehearsal.scenario, turns[:-1]).leader_says(turns[-1].text)

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
