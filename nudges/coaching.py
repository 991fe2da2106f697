"""Which coaching nudge a member gets this week, and how it explains itself, so nudges feel earned.

A nudge is aimed at the member's weakest behavior over their last two answered weeks; a
member whose recent answers are all at the top gets one that reinforces the habit
instead. The same nudge never returns within ``REPEAT_WEEKS`` weeks, and "Not for me"
makes a nudge less likely for that member without ever ruling it out. Every nudge says
why it was chosen, from the member's own answers, gives one action for this week and a
one-line reason, and asks "Useful" / "Not for me".
"""

from __future__ import annotations

import random
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Literal

from nudges.checklist import ANSWERS
from nudges.messages import Choice, Context, Header, Message, Section
from nudges.program import Behavior
from nudges.weeks import IsoWeek

Mode = Literal["improve", "reinforce"]
Verdict = Literal["useful", "not_for_me"]
VERDICTS: tuple[Verdict, ...] = ("useful", "not_for_me")
_BUTTONS: tuple[tuple[str, Verdict], ...] = (("Useful", "useful"), ("Not for me", "not_for_me"))

RECENT_WEEKS = 2  # answered weeks that decide which behavior is weakest
REPEAT_WEEKS = 4  # a nudge sent in week W can come back in week W + 4 at the earliest
REJECTED_WEIGHT = 0.25  # each "Not for me" multiplies a nudge's weight by this

# The signal range of each answer kind, to put them on one 0..1 scale.
RANGES: dict[str, tuple[float, float]] = {"yes_partly_no": (0.0, 1.0), "scale_1_5": (1.0, 5.0), "count": (0.0, 5.0)}

_PREFIX = "nudge"
_ID = re.compile(r"([a-z0-9][a-z0-9_-]{0,62}):(0|[1-9][0-9]?)")
_NUMBERS = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten")
_DEFAULT_REASONS: dict[Mode, str] = {
    "improve": "Why it helps: one small, concrete step is easier to start than a whole new habit.",
    "reinforce": "Why it helps: repeating what already works is what makes it stick.",
}


class FeedbackError(ValueError):
    """A nudge button that Reinforce did not make, worded for the manager who clicked it."""


def nudge_id(behavior_key: str, index: int) -> str:
    """The stable id of a behavior's ``index``-th nudge in the program file, e.g. "decision_huddle:0"."""
    return f"{behavior_key}:{index}"


def parse_nudge_id(text: str) -> tuple[str, int]:
    """(behavior key, index) of a nudge id; ValueError for anything ``nudge_id`` could not make."""
    match = _ID.fullmatch(text)
    if not match:
        raise ValueError(f"{text!r} is not a nudge id like decision_huddle:0")
    return match[1], int(match[2])


@dataclass(frozen=True)
class NudgeChoice:
    """The nudge picked for a member, with the answers that explain it (``recent``, oldest first)."""

    behavior: Behavior
    index: int
    mode: Mode
    recent: tuple[float, ...]

    @property
    def nudge_id(self) -> str:
        return nudge_id(self.behavior.key, self.index)

    @property
    def text(self) -> str:
        return self.behavior.nudges[self.index]


@dataclass(frozen=True)
class NudgeFeedback:
    """What a nudge's button identifies: the nudge, the week it was sent for and the verdict."""

    nudge_id: str
    week: IsoWeek
    verdict: Verdict

    def encode(self) -> str:
        return "|".join((_PREFIX, self.nudge_id, str(self.week), self.verdict))

    @classmethod
    def decode(cls, text: str) -> NudgeFeedback:
        """Parse a button value; anything ``encode`` could not have produced is refused."""
        parts = text.split("|")
        try:
            if len(parts) != 4 or parts[0] != _PREFIX or parts[3] not in VERDICTS:
                raise ValueError(text)
            parse_nudge_id(parts[1])
            week = IsoWeek.parse(parts[2])
            if str(week) != parts[2]:
                raise ValueError(text)
        except ValueError:
            raise FeedbackError("That button is not from a Reinforce nudge.") from None
        return cls(parts[1], week, parts[3])


def normalise(behavior: Behavior, value: float) -> float:
    """A signal value on a 0..1 scale, so answers of different kinds can be compared."""
    low, high = RANGES[behavior.answer]
    if not low <= value <= high:
        raise ValueError(f"{value!r} is not a {behavior.answer} signal for {behavior.key} (expected {low:g} to {high:g})")
    return (value - low) / (high - low)


def choose_nudge(
    behaviors: Sequence[Behavior],
    recent: Mapping[str, Sequence[float]],
    week: IsoWeek,
    rng: random.Random,
    *,
    sent: Iterable[tuple[str, IsoWeek]] = (),
    not_for_me: Mapping[str, int] | None = None,
) -> NudgeChoice | None:
    """Pick this week's nudge for one member, or None when there is nothing honest to say.

    ``behaviors`` are the cohort's checklist behaviors; ``recent`` maps a behavior key to
    the member's signal values from their answered weeks, oldest first; ``sent`` is the
    (nudge id, week) history of this member; ``not_for_me`` counts their rejections per
    nudge id. A member with no answers yet gets no nudge (there is no "why" to give), and
    neither does one who has had every eligible nudge within the last ``REPEAT_WEEKS``.
    Behaviors are tried weakest first (ties in random order); the first with a nudge not
    sent recently supplies it, weighted by past rejections.
    """
    rejected = not_for_me or {}
    blocked = {nid for nid, when in sent if week - when < REPEAT_WEEKS}
    answered = [b for b in behaviors if recent.get(b.key)]
    if not answered:
        return None
    scores = {b.key: [normalise(b, v) for v in recent[b.key][-RECENT_WEEKS:]] for b in answered}
    all_top = all(s == 1.0 for values in scores.values() for s in values)
    order = list(answered)
    rng.shuffle(order)  # a random order among equals, since the sort below is stable
    if all_top:
        order.sort(key=lambda b: -_top_run(b, recent[b.key]))
    else:
        order.sort(key=lambda b: sum(scores[b.key]) / len(scores[b.key]))
    for behavior in order:
        open_ = [i for i in range(len(behavior.nudges)) if nudge_id(behavior.key, i) not in blocked]
        if not open_:
            continue
        weights = [REJECTED_WEIGHT ** rejected.get(nudge_id(behavior.key, i), 0) for i in open_]
        index = rng.choices(open_, weights=weights)[0]
        mode: Mode = "reinforce" if all(s == 1.0 for s in scores[behavior.key]) else "improve"
        return NudgeChoice(behavior, index, mode, tuple(recent[behavior.key]))
    return None


def nudge_message(choice: NudgeChoice, week: IsoWeek, *, reason: str | None = None, feedback: Verdict | None = None) -> Message:
    """The nudge as a message: why (from the member's answers), this week's action, why it
    helps, and "Useful" / "Not for me" buttons (``feedback`` marks the one already chosen).

    ``reason`` replaces the generic one-line reason when the program supplies one.
    """
    behavior = choice.behavior
    headline = f"{behavior_label(behavior)}: {answer_pattern(behavior, choice.recent)}"
    if choice.mode == "reinforce":
        headline += " — keep it going"
        why = f"Why this one: your answers to “{behavior.question}” have been at the top, so this builds on what works."
    else:
        span = "check-in" if len(choice.recent) == 1 else f"{_number(min(len(choice.recent), RECENT_WEEKS))} check-ins"
        why = f"Why this one: “{behavior.question}” has had your lowest answers over your last {span}."
    buttons = tuple(
        Choice(label, NudgeFeedback(choice.nudge_id, week, verdict).encode(), selected=feedback == verdict) for label, verdict in _BUTTONS
    )
    blocks = (
        Header(headline),
        Context(why),
        Section(f"For this week: {choice.text}"),
        Context(reason or _DEFAULT_REASONS[choice.mode]),
        Section("Was this nudge useful to you?", buttons, block_id=f"nudge:{choice.nudge_id}"),
        Context("Your answer tunes which nudges you get; program owners see totals per nudge only."),
    )
    return Message(text=f"Your nudge for this week: {choice.text}", blocks=blocks)


def behavior_label(behavior: Behavior) -> str:
    """A short name for a behavior in a headline: its ``label``, or one made from its key
    ("decision_huddle" -> "Decision huddle")."""
    return behavior.label or behavior.key.replace("_", " ").replace("-", " ").capitalize()


def answer_pattern(behavior: Behavior, recent: Sequence[float]) -> str:
    """The member's recent answers in a few words: "“No” in your last two check-ins",
    "“Partly”, then “No”", or "“Yes” in your last check-in"."""
    if not recent:
        raise ValueError("a nudge needs at least one answer to explain itself")
    last = recent[-1]
    run = 1
    while run < len(recent) and recent[-run - 1] == last:
        run += 1
    if run >= 2:
        return f"{_answer(behavior, last)} in your last {_number(run)} check-ins"
    if len(recent) >= 2:
        return f"{_answer(behavior, recent[-2])}, then {_answer(behavior, last)}"
    return f"{_answer(behavior, last)} in your last check-in"


def _top_run(behavior: Behavior, values: Sequence[float]) -> int:
    """How many answers in a row, up to the latest, are at the top of the scale."""
    run = 0
    for value in reversed(values):
        if normalise(behavior, value) != 1.0:
            break
        run += 1
    return run


def _answer(behavior: Behavior, value: float) -> str:
    if behavior.answer == "scale_1_5":
        return f"“{value:g} of 5”"
    for label, _stored, number in ANSWERS[behavior.answer]:
        if number == value:
            return f"“{label}”"
    return f"“{value:g}”"


def _number(n: int) -> str:
    return _NUMBERS[n] if 0 <= n < len(_NUMBERS) else str(n)
