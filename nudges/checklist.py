"""The weekly three-question checklist: what is asked, how it looks, and what an answer means."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime

from nudges.messages import Choice, Context, Header, Message, Section
from nudges.program import Behavior, Cohort, Program
from nudges.weeks import IsoWeek

# The answers each kind of question offers, as (label, stored value, signal value).
# "partly" counts as half so a cohort's adoption rate is the mean of signal values.
ANSWERS: dict[str, tuple[tuple[str, str, float], ...]] = {
    "yes_partly_no": (("Yes", "yes", 1.0), ("Partly", "partly", 0.5), ("No", "no", 0.0)),
    "scale_1_5": tuple((str(n), str(n), float(n)) for n in range(1, 6)),
    "count": (("0", "0", 0.0), ("1", "1", 1.0), ("2", "2", 2.0), ("3", "3", 3.0), ("4", "4", 4.0), ("5+", "5+", 5.0)),
}

_SEPARATOR = "|"
# What a checklist's buttons can ask for besides an answer.
ACTIONS = ("answer", "note", "snooze", "tomorrow", "skip")
_PART = re.compile(r"[A-Za-z0-9_+-]{1,63}")
# The button that asks for this week's checklist again (bot.inbound runs it as the typed `checkin`).
CHECKIN_AGAIN = "cmd|checkin"
NOTHING_RECORDED = "Nothing was recorded."


class AnswerError(ValueError):
    """An answer that does not fit its question, worded for the manager who sent it."""


@dataclass(frozen=True)
class Question:
    behavior: Behavior
    position: int


@dataclass(frozen=True)
class Checklist:
    """One member's checklist for one week of one cohort."""

    cohort: Cohort
    week: IsoWeek
    questions: tuple[Question, ...]

    @property
    def week_number(self) -> int:
        return self.cohort.week_number(self.week)


@dataclass(frozen=True)
class ChoiceRef:
    """What a checklist button identifies: the action, cohort and week, and for an answer
    the behavior and the chosen value ("-" where an action has none)."""

    cohort: str
    week: IsoWeek
    behavior: str = "-"
    value: str = "-"
    action: str = "answer"

    def encode(self) -> str:
        return _SEPARATOR.join((self.action, self.cohort, str(self.week), self.behavior, self.value))

    @classmethod
    def decode(cls, text: str) -> ChoiceRef:
        """Parse a button value; anything ``encode`` could not have produced is refused."""
        parts = text.split(_SEPARATOR)
        if len(parts) != 5 or parts[0] not in ACTIONS or not all(_PART.fullmatch(p) for p in parts):
            raise AnswerError("That button is not from a Reinforce checklist.")
        try:
            week = IsoWeek.parse(parts[2])
        except ValueError:
            raise AnswerError("That button is not from a Reinforce checklist.") from None
        if str(week) != parts[2] or (parts[0] == "answer") == ("-" in (parts[3], parts[4])):
            raise AnswerError("That button is not from a Reinforce checklist.")
        return cls(parts[1], week, parts[3], parts[4], parts[0])


def build_checklist(program: Program, cohort: Cohort, week: IsoWeek) -> Checklist:
    """The three questions of ``cohort``'s checklist for ``week``, in the file's order."""
    questions = tuple(Question(program.behavior(key), i + 1) for i, key in enumerate(cohort.checklist))
    return Checklist(cohort, week, questions)


def signal_value(behavior: Behavior, value: str) -> float:
    """Map a stored answer value to the number a behavior signal records."""
    for _label, stored, number in ANSWERS[behavior.answer]:
        if stored == value:
            return number
    allowed = ", ".join(stored for _label, stored, _n in ANSWERS[behavior.answer])
    raise AnswerError(f"{value!r} is not an answer to “{behavior.question}” (expected one of {allowed}).")


def week_refusal(cohort: Cohort, week: IsoWeek, now: datetime, local_week: IsoWeek, joined_week: IsoWeek | None = None) -> str | None:
    """Why a member may not answer ``cohort``'s checklist for ``week`` at ``now``, or None while it is open.

    A week is open from the member's own start (the cohort's first week, or the week they
    joined it, ``joined_week``, in their time zone) through the cohort's last week, once it has
    begun where they are (``local_week`` is their week at ``now``) and until it closes
    (``Cohort.closes_at``: ``answer_grace_days`` after it ends). A closed week's figures are
    final, so nothing changes them afterwards. The same rule covers a week's notes and its skip
    or snooze.
    """
    number = cohort.week_number(week)
    if number < 1:
        return f"{cohort.name} had not started that week, so there is nothing to answer for it. {NOTHING_RECORDED}"
    if number > cohort.weeks:
        return f"{cohort.name} has {cohort.weeks} weeks and that week is after its last. {NOTHING_RECORDED}"
    if joined_week is not None and week < joined_week:
        return f"You joined {cohort.name} after that week, so there is nothing to answer for it. {NOTHING_RECORDED}"
    if week > local_week:
        return f"Week {number} of {cohort.weeks} has not started yet. {NOTHING_RECORDED}"
    if cohort.is_closed(week, now):
        closed = cohort.closes_at(week)
        return (
            f"Week {number} of {cohort.weeks} closed for answers on {closed:%a %-d %b} "
            f"({cohort.answer_grace_days} days after it ended), so its figures are final. {NOTHING_RECORDED}"
        )
    return None


def is_complete(checklist: Checklist, answered: Mapping[str, str]) -> bool:
    """Whether every question of the checklist has a stored answer."""
    return all(q.behavior.key in answered for q in checklist.questions)


def checklist_message(
    checklist: Checklist,
    answered: Mapping[str, str] | None = None,
    streak: int | None = None,
    note: str | None = None,
    status: str | None = None,
) -> Message:
    """Render a checklist; ``answered`` maps behavior key -> value to show what was chosen.

    ``note`` is the member's own note, shown back to them only; ``status`` is a short line
    such as "Snoozed until 11:00." or "Skipped this week." Once every question is answered
    only "Add a note" is left: snoozing or skipping a finished week would contradict it.
    """
    answered = answered or {}
    cohort = checklist.cohort
    blocks: list[Header | Section | Context] = [
        Header(f"Week {checklist.week_number} of {cohort.weeks} — your check-in"),
        Context("3 questions, about a minute. Only you see your answers; sponsors see cohort totals."),
    ]
    for question in checklist.questions:
        behavior = question.behavior
        choices = tuple(
            Choice(
                label, ChoiceRef(cohort.key, checklist.week, behavior.key, stored).encode(), selected=answered.get(behavior.key) == stored
            )
            for label, stored, _n in ANSWERS[behavior.answer]
        )
        blocks.append(Section(f"{question.position}. {behavior.question}", choices, block_id=f"q:{behavior.key}"))
    done = sum(1 for q in checklist.questions if q.behavior.key in answered)
    if done == len(checklist.questions):
        thanks = "Thank you, all three answered."
        if streak:
            thanks += f" That is {streak} week{'s' if streak != 1 else ''} in a row."
        blocks.append(Context(thanks))
    elif done:
        blocks.append(Context(f"{done} of {len(checklist.questions)} answered."))
    if note:
        blocks.append(Context(f"Your note (only you see it): {note}"))
    if status:
        blocks.append(Context(status))
    actions: tuple[tuple[str, str], ...] = (("Add a note", "note"),)
    if not is_complete(checklist, answered):
        actions += (("Snooze 2 h", "snooze"), ("Tomorrow", "tomorrow"), ("Skip this week", "skip"))
    refs = [ChoiceRef(cohort.key, checklist.week, action=action).encode() for _label, action in actions]
    blocks.append(Section("", tuple(Choice(label, ref) for (label, _a), ref in zip(actions, refs, strict=True)), block_id="actions"))
    return Message(text=f"Your week {checklist.week_number} check-in: 3 questions, about a minute", blocks=tuple(blocks))


def reminder_message(checklist: Checklist, answered: Mapping[str, str]) -> Message:
    """The mid-week reminder: a short line that points to the week's checklist, not a second copy
    of it (its buttons stay on the checklist), with its own notification text; one button asks
    for the checklist again for a member who cannot find it."""
    total = len(checklist.questions)
    done = sum(1 for q in checklist.questions if q.behavior.key in answered)
    left = "the three questions" if not done else f"the {total - done} still open"
    where = f"Week {checklist.week_number} of {checklist.cohort.weeks}"
    text = f"Reminder: {done} of {total} answered in your week {checklist.week_number} check-in"
    line = f"A reminder for your check-in ({where}): {done} of {total} answered. About a minute for {left}, in this week's checklist above."
    return Message(text, (Section(line, (Choice("Show the checklist again", CHECKIN_AGAIN),), block_id="reminder"),))
