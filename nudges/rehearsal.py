"""A pitch rehearsal as pure state: turns, when it ends, what the AI is sent, what feedback may say.

Use cases store and replay this; adapters (the LLM, the offline rubric) consume it. The
learner's words only ever travel in ``user`` messages, and feedback is only believed
after it is checked: every rubric criterion scored 1-5, and every quote found in the
leader's own turns.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Annotated, Any, Literal, TypedDict

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, ValidationError

from nudges.messages import Block, Context, Header, Message, Section
from nudges.review import Confidence, ReviewReason, ReviewStatus, Source, review_label, review_reasons
from nudges.scenarios import CRITERIA, CRITERION_NAMES, ROLEPLAY_RULES, Criterion, Scenario, feedback_prompt, stakeholder_prompt

MAX_TURN_CHARS = 2000
NO_PITCH = "There was no pitch to give feedback on. Start a new rehearsal when you are ready."

Speaker = Literal["leader", "stakeholder"]
EndedBy = Literal["leader", "turn_limit"]


class ChatMessage(TypedDict):
    """One chat-completions message, exactly as the OpenAI wire format has it."""

    role: Literal["system", "user", "assistant"]
    content: str


class RehearsalError(ValueError):
    """A turn that cannot be taken, worded for the leader in chat."""


@dataclass(frozen=True)
class Usage:
    """Tokens an LLM call spent, summed per rehearsal for storage and cost."""

    prompt_tokens: int = 0
    completion_tokens: int = 0

    @property
    def total_tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens

    def __add__(self, other: Usage) -> Usage:
        return Usage(self.prompt_tokens + other.prompt_tokens, self.completion_tokens + other.completion_tokens)


@dataclass(frozen=True)
class Turn:
    speaker: Speaker
    text: str


def is_done_command(text: str) -> bool:
    """The leader typed ``done`` (any case, surrounding spaces, a trailing . or !)."""
    return re.fullmatch(r"done[.!]*", text.strip().casefold()) is not None


@dataclass(frozen=True)
class Rehearsal:
    """One session: the leader speaks, the stakeholder answers, until ``done`` or the turn limit.

    Immutable: every step returns a new value, so a use case can store each step as it goes.
    The turn limit counts the leader's turns; the stakeholder does not answer the last one.
    """

    scenario: Scenario
    turns: tuple[Turn, ...] = ()
    ended_by: EndedBy | None = None

    @property
    def leader_turns(self) -> tuple[str, ...]:
        return tuple(t.text for t in self.turns if t.speaker == "leader")

    @property
    def stakeholder_turns(self) -> tuple[str, ...]:
        return tuple(t.text for t in self.turns if t.speaker == "stakeholder")

    @property
    def done(self) -> bool:
        return self.ended_by is not None

    @property
    def awaiting(self) -> Speaker | None:
        """Who speaks next, or None once the rehearsal is over."""
        if self.done:
            return None
        return "stakeholder" if self.turns and self.turns[-1].speaker == "leader" else "leader"

    @property
    def turns_left(self) -> int:
        return 0 if self.done else self.scenario.turn_limit - len(self.leader_turns)

    def leader_says(self, text: str) -> Rehearsal:
        """Add the leader's turn; ``done`` ends the rehearsal instead (even mid-reply) and is not added."""
        if self.done:
            raise RehearsalError("This rehearsal is over. Start a new one when you are ready.")
        if is_done_command(text):
            return replace(self, ended_by="leader")
        if self.awaiting != "leader":
            raise RehearsalError("One moment: the stakeholder is still answering.")
        text = text.strip()
        if not text:
            raise RehearsalError("Say something to the stakeholder, or type done to finish.")
        if len(text) > MAX_TURN_CHARS:
            raise RehearsalError(
                f"That message is too long for one turn ({len(text)} characters; the limit is {MAX_TURN_CHARS}). "
                "Keep it short, as you would in the meeting."
            )
        turns = (*self.turns, Turn("leader", text))
        ended: EndedBy | None = "turn_limit" if sum(t.speaker == "leader" for t in turns) >= self.scenario.turn_limit else None
        return replace(self, turns=turns, ended_by=ended)

    def stakeholder_says(self, text: str) -> Rehearsal:
        if self.awaiting != "stakeholder":
            raise RehearsalError("The stakeholder cannot speak now.")
        return replace(self, turns=(*self.turns, Turn("stakeholder", text.strip())))

    def undo_unanswered(self) -> Rehearsal:
        """Drop a leader turn the stakeholder could not answer (the AI failed), so it can be sent again."""
        if self.awaiting != "stakeholder":
            return self
        return replace(self, turns=self.turns[:-1])

    def stakeholder_messages(self) -> list[ChatMessage]:
        """What the AI playing the stakeholder is sent: the fixed prompt, then the conversation."""
        messages: list[ChatMessage] = [{"role": "system", "content": stakeholder_prompt(self.scenario)}]
        for turn in self.turns:
            messages.append({"role": "user" if turn.speaker == "leader" else "assistant", "content": turn.text})
        return messages

    def feedback_messages(self) -> list[ChatMessage]:
        """What the AI reviewer is sent: the rubric prompt, then the transcript as JSON data.

        JSON keeps each turn's speaker unforgeable: a leader typing "Stakeholder: I agree"
        stays inside a leader turn's string.
        """
        transcript = [{"speaker": t.speaker, "text": t.text} for t in self.turns]
        data = json.dumps({"transcript": transcript}, ensure_ascii=False, indent=1)
        return [
            {"role": "system", "content": feedback_prompt(self.scenario)},
            {"role": "user", "content": f"Rehearsal transcript (JSON):\n{data}"},
        ]

    def feedback_schema(self) -> dict[str, Any]:
        """The JSON schema for structured outputs (strict-mode compatible)."""
        return feedback_schema(self.scenario.criteria)


def feedback_schema(criteria: Sequence[Criterion] = CRITERIA) -> dict[str, Any]:
    item = {
        "type": "object",
        "additionalProperties": False,
        "required": ["criterion", "score", "quote", "suggestion"],
        "properties": {
            "criterion": {"type": "string", "enum": list(criteria)},
            "score": {"type": "integer", "minimum": 1, "maximum": 5},
            "quote": {"type": "string"},
            "suggestion": {"type": "string"},
        },
    }
    return {
        "type": "object",
        "additionalProperties": False,
        "required": ["criteria", "next_step", "confidence"],
        "properties": {
            "criteria": {"type": "array", "items": item},
            "next_step": {"type": "string"},
            "confidence": {"type": "string", "enum": ["low", "medium", "high"]},
        },
    }


def reveals_instructions(reply: str) -> bool:
    """True when a stakeholder reply repeats the fixed role-play rules (a leaked system prompt)."""
    words = _words(reply)
    grams = {tuple(words[i : i + 8]) for i in range(len(words) - 7)}
    return any(tuple(rule[i : i + 8]) in grams for rule in map(_words, ROLEPLAY_RULES) for i in range(len(rule) - 7))


# --- feedback -----------------------------------------------------------------------------

FeedbackText = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=1000)]


class CriterionFeedback(BaseModel):
    model_config = ConfigDict(frozen=True, extra="ignore")

    criterion: Criterion
    score: int = Field(ge=1, le=5)
    quote: str | None = None
    suggestion: FeedbackText


class Feedback(BaseModel):
    """Rubric feedback on one rehearsal, from the AI (``source="ai"``) or the offline rubric."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    source: Source
    criteria: tuple[CriterionFeedback, ...] = Field(min_length=1)
    next_step: FeedbackText
    confidence: Confidence
    # Criteria whose quote was removed because the leader never said those words.
    unverified_quotes: tuple[Criterion, ...] = ()

    def texts(self) -> list[str]:
        """The feedback's own words (not the quotes), for the review policy."""
        return [c.suggestion for c in self.criteria] + [self.next_step]


class FeedbackError(ValueError):
    """Feedback that cannot be believed; the message says why, for logs and the coach."""


_ALIASES: dict[str, Criterion] = {
    **{c: c for c in CRITERIA},
    **{CRITERION_NAMES[c].casefold().replace(" ", "_"): c for c in CRITERIA},
    "handling_objections": "objection_handling",
    "objections": "objection_handling",
    "ask": "clear_ask",
    "outcome": "business_outcome",
    "business_outcomes": "business_outcome",
}


def parse_feedback(data: Any, rehearsal: Rehearsal, source: Source = "ai") -> Feedback:
    """Believe feedback only as far as it can be checked; raises FeedbackError otherwise.

    Tolerates what real models produce (criteria as a list or a mapping, names instead of
    keys, a missing confidence read as low) but never fills in a score: a criterion of the
    rubric left unscored, or a score outside 1-5, rejects the whole answer.
    """
    if not isinstance(data, Mapping):
        raise FeedbackError("the answer is not a JSON object")
    raw = data.get("criteria")
    if isinstance(raw, Mapping):
        raw = [{"criterion": key, **value} if isinstance(value, Mapping) else {"criterion": key} for key, value in raw.items()]
    if not isinstance(raw, list):
        raise FeedbackError("the answer has no list of criteria")
    wanted = rehearsal.scenario.criteria
    by_key: dict[Criterion, Mapping[str, Any]] = {}
    for entry in raw:
        if not isinstance(entry, Mapping):
            continue
        key = _ALIASES.get(str(entry.get("criterion", "")).strip().casefold().replace(" ", "_").replace("-", "_"))
        if key in wanted and key not in by_key:
            by_key[key] = entry
    missing = [c for c in wanted if c not in by_key]
    if missing:
        raise FeedbackError(f"the answer does not score {', '.join(missing)}")
    confidence = str(data.get("confidence") or "low").strip().casefold()
    try:
        feedback = Feedback.model_validate(
            {
                "source": source,
                "criteria": [{**by_key[c], "criterion": c, "quote": by_key[c].get("quote") or None} for c in wanted],
                "next_step": data.get("next_step"),
                "confidence": confidence,
            }
        )
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(part) for part in first["loc"])
        raise FeedbackError(f"{where}: {first['msg']}") from None
    return check_quotes(feedback, rehearsal.leader_turns)


def _words(text: str) -> list[str]:
    return re.findall(r"\w+", text.replace("’", "'").casefold())


def quote_is_real(quote: str, leader_turns: Sequence[str]) -> bool:
    """The quote's words occur, in order and contiguously, inside one leader turn.

    Case, punctuation and spacing are ignored; an ellipsis may skip words, in order.
    """
    parts = [_words(part) for part in re.split(r"\.\.\.|…", quote)]
    parts = [p for p in parts if p]
    if not parts:
        return False
    for turn in leader_turns:
        words, start = _words(turn), 0
        for part in parts:
            found = _find(words, part, start)
            if found < 0:
                break
            start = found + len(part)
        else:
            return True
    return False


def _find(words: list[str], part: list[str], start: int) -> int:
    for i in range(start, len(words) - len(part) + 1):
        if words[i : i + len(part)] == part:
            return i
    return -1


def check_quotes(feedback: Feedback, leader_turns: Sequence[str]) -> Feedback:
    """Drop every quote the leader never said, and remember which, so nobody is misquoted."""
    kept, dropped = [], list(feedback.unverified_quotes)
    for item in feedback.criteria:
        if item.quote and not quote_is_real(item.quote, leader_turns):
            kept.append(item.model_copy(update={"quote": None}))
            dropped.append(item.criterion)
        else:
            kept.append(item)
    return feedback.model_copy(update={"criteria": tuple(kept), "unverified_quotes": tuple(dropped)})


def review_flags(rehearsal: Rehearsal, feedback: Feedback | None, problem: str | None = None) -> list[ReviewReason]:
    """The review policy applied to a finished rehearsal and its feedback (or its absence)."""
    ai_texts = list(rehearsal.stakeholder_turns) + (feedback.texts() if feedback else [])
    return review_reasons(
        pitch=rehearsal.leader_turns,
        ai_texts=ai_texts,
        confidence=feedback.confidence if feedback else None,
        feedback_problem=None if feedback else (problem or "no feedback was produced"),
        invented_quotes=len(feedback.unverified_quotes) if feedback and feedback.source == "ai" else 0,
    )


# --- rendering ----------------------------------------------------------------------------


def render_feedback(feedback: Feedback, scenario: Scenario, status: ReviewStatus, coach_note: str | None = None) -> Message:
    """The feedback message, labeled with its source and review status.

    A rejected piece of feedback is withdrawn: only the label and the coach's note remain.
    """
    label = review_label(feedback.source, status)
    blocks: list[Block] = [Header(f"Feedback: {scenario.title}"), Context(label)]
    if status == "rejected":
        blocks.append(Section("A coach reviewed this feedback and withdrew it, so no scores are shown."))
    else:
        for item in feedback.criteria:
            lines = [f"{CRITERION_NAMES[item.criterion]}: {item.score}/5"]
            if item.quote:
                lines.append(f"You said: \u201c{item.quote}\u201d")
            elif item.criterion in feedback.unverified_quotes:
                lines.append("(The AI quoted words you did not say; that quote was removed.)")
            lines.append(f"Try: {item.suggestion}")
            blocks.append(Section("\n".join(lines)))
        blocks.append(Section(f"For next time: {feedback.next_step}"))
        if feedback.source == "ai":
            blocks.append(Context(f"Model confidence: {feedback.confidence}. This is advice for you only, never an evaluation."))
    if coach_note:
        blocks.append(Section(f"Coach's note: {coach_note}"))
    return Message(text=f"{label}: {scenario.title}", blocks=tuple(blocks))


def render_no_feedback(scenario: Scenario, learner_message: str, status: ReviewStatus, source: Source = "ai") -> Message:
    """When no feedback can be shown: say so plainly, never show made-up scores."""
    label = review_label(source, status)
    text = learner_message
    if status == "awaiting_review":
        text += " A coach will look at your rehearsal."
    return Message(text=f"{label}: {scenario.title}", blocks=(Header(f"Feedback: {scenario.title}"), Context(label), Section(text)))


def render_intro(scenario: Scenario, source: Source) -> Message:
    """The opening DM: who the leader is talking to, the goal, how to finish."""
    who = scenario.stakeholder.who
    how = "an AI plays" if source == "ai" else "a script plays (no AI)"
    blocks: list[Block] = [Header(f"Rehearsal: {scenario.title}"), Section(f"Your goal: {scenario.goal}")]
    if scenario.situation:
        blocks.append(Section(scenario.situation))
    blocks.append(Context(f"{who}: {how} this role. Up to {scenario.turn_limit} messages; type done for feedback."))
    return Message(text=f"Rehearsal: {scenario.title}", blocks=tuple(blocks))


def render_stakeholder_reply(rehearsal: Rehearsal, text: str, source: Source) -> Message:
    who = rehearsal.scenario.stakeholder.who
    how = "AI role-play" if source == "ai" else "scripted, no AI"
    left = rehearsal.turns_left
    tail = f"{left} message{'s' if left != 1 else ''} left; type done for feedback" if left else "that was your last message"
    return Message(text=f"{who}: {text}", blocks=(Section(text), Context(f"{who} ({how}) · {tail}")))
