"""Tests for nudges/checklist.py: questions, answer values, button references and the message."""

from __future__ import annotations

import copy
from datetime import UTC, date, datetime, timedelta
from functools import cache
from pathlib import Path

import pytest
import yaml
from hypothesis import given
from hypothesis import strategies as st

from bot.files import load_program
from nudges.checklist import (
    ANSWERS,
    AnswerError,
    ChoiceRef,
    build_checklist,
    checklist_message,
    is_complete,
    reminder_message,
    signal_value,
    week_refusal,
)
from nudges.messages import Context, Header, Message, Section
from nudges.program import Program, parse_program
from nudges.weeks import IsoWeek

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "program.yaml"
FIRST_WEEK = IsoWeek(2026, 2)  # pilot-a starts on Monday 2026-01-05, which is in 2026-W02
MIXED = ["decision_huddle", "one_on_ones", "delegation_confidence"]


@cache
def _example() -> Program:
    return load_program(str(EXAMPLE))


@cache
def _mixed() -> Program:
    """The example with pilot-a asking one question of each answer kind."""
    data = copy.deepcopy(yaml.safe_load(EXAMPLE.read_text(encoding="utf-8")))
    data["cohorts"][0]["checklist"] = list(MIXED)
    return parse_program(data, "mixed.yaml")


@pytest.fixture
def program() -> Program:
    return _example()


@pytest.fixture
def mixed() -> Program:
    return _mixed()


def sections(message: Message) -> list[Section]:
    """The question sections (the row of note / snooze / skip buttons is not a question)."""
    return [b for b in message.blocks if isinstance(b, Section) and (b.block_id or "").startswith("q:")]


def contexts(message: Message) -> list[str]:
    return [b.text for b in message.blocks if isinstance(b, Context)]


# --- build_checklist ----------------------------------------------------------------------


def test_checklist_has_three_questions_in_file_order(program: Program) -> None:
    pilot = program.cohort("pilot-a")

    checklist = build_checklist(program, pilot, FIRST_WEEK)

    assert [q.behavior.key for q in checklist.questions] == ["decision_huddle", "escalate_24h", "specific_feedback"]
    assert [q.position for q in checklist.questions] == [1, 2, 3]
    assert checklist.questions[0].behavior == program.behavior("decision_huddle")


def test_checklist_follows_the_order_the_cohort_lists_its_behaviors(mixed: Program) -> None:
    checklist = build_checklist(mixed, mixed.cohort("pilot-a"), FIRST_WEEK)

    assert [q.behavior.key for q in checklist.questions] == MIXED


def test_checklist_week_number_counts_from_the_cohort_start(program: Program) -> None:
    pilot = program.cohort("pilot-a")

    assert build_checklist(program, pilot, FIRST_WEEK).week_number == 1
    assert build_checklist(program, pilot, IsoWeek(2026, 5)).week_number == 4


# --- signal_value -------------------------------------------------------------------------


@pytest.mark.parametrize(("value", "expected"), [("yes", 1.0), ("partly", 0.5), ("no", 0.0)])
def test_yes_partly_no_answers_map_to_one_half_and_zero(program: Program, value: str, expected: float) -> None:
    assert signal_value(program.behavior("decision_huddle"), value) == expected


@pytest.mark.parametrize("n", [1, 2, 3, 4, 5])
def test_scale_answers_map_to_their_number(program: Program, n: int) -> None:
    assert signal_value(program.behavior("delegation_confidence"), str(n)) == float(n)


@pytest.mark.parametrize(("value", "expected"), [("0", 0.0), ("1", 1.0), ("2", 2.0), ("3", 3.0), ("4", 4.0), ("5+", 5.0)])
def test_count_answers_map_to_their_number_with_five_plus_as_five(program: Program, value: str, expected: float) -> None:
    assert signal_value(program.behavior("one_on_ones"), value) == expected


@pytest.mark.parametrize(
    ("behavior_key", "value"),
    [
        ("decision_huddle", "maybe"),
        ("decision_huddle", "Yes"),
        ("decision_huddle", "1"),
        ("delegation_confidence", "0"),
        ("delegation_confidence", "6"),
        ("delegation_confidence", "yes"),
        ("one_on_ones", "5"),
        ("one_on_ones", "6"),
        ("one_on_ones", "-1"),
        ("one_on_ones", ""),
    ],
)
def test_answer_that_does_not_fit_its_question_is_rejected_naming_the_question(program: Program, behavior_key: str, value: str) -> None:
    behavior = program.behavior(behavior_key)

    with pytest.raises(AnswerError) as caught:
        signal_value(behavior, value)

    message = str(caught.value)
    assert behavior.question in message
    assert repr(value) in message


def test_rejected_answer_lists_the_allowed_values(program: Program) -> None:
    with pytest.raises(AnswerError, match="yes, partly, no"):
        signal_value(program.behavior("escalate_24h"), "sometimes")


# --- ChoiceRef ----------------------------------------------------------------------------

KEYS = st.from_regex(r"[a-z0-9][a-z0-9_-]{0,62}", fullmatch=True)
WEEKS = st.dates(min_value=date(2000, 1, 3), max_value=date(2099, 12, 31)).map(IsoWeek.of)
VALUES = st.sampled_from(sorted({stored for answers in ANSWERS.values() for _label, stored, _n in answers}))


@given(cohort=KEYS, week=WEEKS, behavior=KEYS, value=VALUES)
def test_choice_ref_round_trips_through_its_encoding(cohort: str, week: IsoWeek, behavior: str, value: str) -> None:
    ref = ChoiceRef(cohort, week, behavior, value)

    assert ChoiceRef.decode(ref.encode()) == ref


def test_choice_ref_encoding_is_readable() -> None:
    assert ChoiceRef("pilot-a", IsoWeek(2026, 2), "decision_huddle", "yes").encode() == "answer|pilot-a|2026-W02|decision_huddle|yes"


@pytest.mark.parametrize(
    "garbage",
    [
        "",
        "hello",
        "answer|pilot-a|2026-W02|decision_huddle",
        "answer|pilot-a|2026-W02|decision_huddle|yes|extra",
        "pilot-a|2026-W02|decision_huddle|yes",
        "answer|pilot-a|W02-2026|decision_huddle|yes",
        "answer|pilot-a|2025-W53|decision_huddle|yes",
        "answer|pilot-a|2026-W00|decision_huddle|yes",
        "dance|pilot-a|2026-W02|decision_huddle|yes",
        "answer|pilot-a|2026-W02|-|-",
        "skip|pilot-a|2026-W02|decision_huddle|yes",
        "||||",
    ],
)
def test_garbage_button_value_is_rejected(garbage: str) -> None:
    with pytest.raises(AnswerError, match="not from a Reinforce checklist"):
        ChoiceRef.decode(garbage)


@pytest.mark.parametrize(
    "garbage",
    ["answer||2026-W02|decision_huddle|yes", "answer|pilot-a|2026-W02||yes", "answer|pilot-a|2026-W02|decision_huddle|"],
)
def test_button_value_with_an_empty_part_is_rejected(garbage: str) -> None:
    """encode() never produces an empty cohort, behavior or value, so decode should refuse one."""
    with pytest.raises(AnswerError):
        ChoiceRef.decode(garbage)


# --- checklist_message --------------------------------------------------------------------


def test_message_header_shows_week_n_of_m(program: Program) -> None:
    checklist = build_checklist(program, program.cohort("pilot-a"), IsoWeek(2026, 4))

    message = checklist_message(checklist)

    headers = [b.text for b in message.blocks if isinstance(b, Header)]
    assert len(headers) == 1
    assert "Week 3 of 12" in headers[0]
    assert "week 3" in message.text


def test_message_has_three_sections_with_the_questions_in_order(program: Program) -> None:
    checklist = build_checklist(program, program.cohort("pilot-a"), FIRST_WEEK)

    found = sections(checklist_message(checklist))

    assert len(found) == 3
    for section, question in zip(found, checklist.questions, strict=True):
        assert question.behavior.question in section.text
        assert section.text.startswith(f"{question.position}.")
        assert section.block_id == f"q:{question.behavior.key}"


def test_buttons_offer_the_answers_of_each_question_kind(mixed: Program) -> None:
    checklist = build_checklist(mixed, mixed.cohort("pilot-a"), FIRST_WEEK)

    found = sections(checklist_message(checklist))

    assert [c.label for c in found[0].choices] == ["Yes", "Partly", "No"]
    assert [c.label for c in found[1].choices] == ["0", "1", "2", "3", "4", "5+"]
    assert [c.label for c in found[2].choices] == ["1", "2", "3", "4", "5"]


def test_button_values_decode_to_their_cohort_week_behavior_and_answer(mixed: Program) -> None:
    week = IsoWeek(2026, 7)
    checklist = build_checklist(mixed, mixed.cohort("pilot-a"), week)

    for section, key in zip(sections(checklist_message(checklist)), MIXED, strict=True):
        kind = mixed.behavior(key).answer
        decoded = [ChoiceRef.decode(choice.value) for choice in section.choices]
        assert decoded == [ChoiceRef("pilot-a", week, key, stored) for _label, stored, _n in ANSWERS[kind]]


def test_no_choice_is_selected_before_any_answer(program: Program) -> None:
    checklist = build_checklist(program, program.cohort("pilot-a"), FIRST_WEEK)

    message = checklist_message(checklist)

    assert not any(c.selected for s in sections(message) for c in s.choices)
    assert not any("answered" in text for text in contexts(message))


def test_answered_choices_are_marked_selected(mixed: Program) -> None:
    checklist = build_checklist(mixed, mixed.cohort("pilot-a"), FIRST_WEEK)

    message = checklist_message(checklist, answered={"decision_huddle": "partly", "one_on_ones": "5+"})

    selected = {s.block_id: [c.label for c in s.choices if c.selected] for s in sections(message)}
    assert selected == {"q:decision_huddle": ["Partly"], "q:one_on_ones": ["5+"], "q:delegation_confidence": []}


def test_one_answer_shows_one_of_three_answered(program: Program) -> None:
    checklist = build_checklist(program, program.cohort("pilot-a"), FIRST_WEEK)

    message = checklist_message(checklist, answered={"escalate_24h": "no"})

    assert "1 of 3 answered." in contexts(message)
    assert not any("Thank you" in text for text in contexts(message))


def test_two_answers_show_two_of_three_answered(program: Program) -> None:
    checklist = build_checklist(program, program.cohort("pilot-a"), FIRST_WEEK)

    message = checklist_message(checklist, answered={"escalate_24h": "no", "decision_huddle": "yes"})

    assert "2 of 3 answered." in contexts(message)


def test_answer_for_a_behavior_outside_the_checklist_does_not_count(program: Program) -> None:
    checklist = build_checklist(program, program.cohort("pilot-a"), FIRST_WEEK)

    message = checklist_message(checklist, answered={"one_on_ones": "2", "decision_huddle": "yes"})

    assert "1 of 3 answered." in contexts(message)


ALL_ANSWERED = {"decision_huddle": "yes", "escalate_24h": "partly", "specific_feedback": "no"}


def test_all_three_answered_thanks_with_the_streak(program: Program) -> None:
    checklist = build_checklist(program, program.cohort("pilot-a"), FIRST_WEEK)

    message = checklist_message(checklist, answered=ALL_ANSWERED, streak=4)

    thanks = [text for text in contexts(message) if text.startswith("Thank you")]
    assert thanks == ["Thank you, all three answered. That is 4 weeks in a row."]
    assert not any("of 3 answered" in text for text in contexts(message))


def test_a_one_week_streak_is_singular(program: Program) -> None:
    checklist = build_checklist(program, program.cohort("pilot-a"), FIRST_WEEK)

    message = checklist_message(checklist, answered=ALL_ANSWERED, streak=1)

    assert "Thank you, all three answered. That is 1 week in a row." in contexts(message)


def test_all_three_answered_without_a_streak_just_thanks(program: Program) -> None:
    checklist = build_checklist(program, program.cohort("pilot-a"), FIRST_WEEK)

    message = checklist_message(checklist, answered=ALL_ANSWERED)

    assert "Thank you, all three answered." in contexts(message)


def test_plain_rendering_marks_the_selected_choice(program: Program) -> None:
    checklist = build_checklist(program, program.cohort("pilot-a"), FIRST_WEEK)

    plain = checklist_message(checklist, answered={"decision_huddle": "yes"}).plain()

    assert "[x] Yes  [ ] Partly  [ ] No" in plain
    assert "[ ] Yes  [ ] Partly  [ ] No" in plain


def test_the_checklist_offers_note_snooze_tomorrow_and_skip_for_its_week(program: Program) -> None:
    week = IsoWeek(2026, 3)
    message = checklist_message(build_checklist(program, program.cohort("pilot-a"), week))

    row = next(b for b in message.blocks if isinstance(b, Section) and b.block_id == "actions")

    assert [c.label for c in row.choices] == ["Add a note", "Snooze 2 h", "Tomorrow", "Skip this week"]
    assert [ChoiceRef.decode(c.value) for c in row.choices] == [
        ChoiceRef("pilot-a", week, action=action) for action in ("note", "snooze", "tomorrow", "skip")
    ]


def test_the_members_note_and_status_are_shown_back_to_them(program: Program) -> None:
    message = checklist_message(
        build_checklist(program, program.cohort("pilot-a"), FIRST_WEEK), note="Hard week", status="Skipped this week."
    )

    assert "Your note (only you see it): Hard week" in contexts(message)
    assert "Skipped this week." in contexts(message)


ALL_YES = {"decision_huddle": "yes", "escalate_24h": "no", "specific_feedback": "partly"}


def test_a_finished_checklist_offers_only_the_note(program: Program) -> None:
    checklist = build_checklist(program, program.cohort("pilot-a"), FIRST_WEEK)
    row = next(b for b in checklist_message(checklist, ALL_YES).blocks if isinstance(b, Section) and b.block_id == "actions")

    assert is_complete(checklist, ALL_YES)
    assert [c.label for c in row.choices] == ["Add a note"]


def test_two_answers_of_three_still_offer_snooze_and_skip(program: Program) -> None:
    checklist = build_checklist(program, program.cohort("pilot-a"), FIRST_WEEK)
    two = {"decision_huddle": "yes", "escalate_24h": "no"}
    row = next(b for b in checklist_message(checklist, two).blocks if isinstance(b, Section) and b.block_id == "actions")

    assert not is_complete(checklist, two)
    assert [c.label for c in row.choices] == ["Add a note", "Snooze 2 h", "Tomorrow", "Skip this week"]


def test_the_reminder_points_to_the_checklist_with_its_own_notification_text(program: Program) -> None:
    checklist = build_checklist(program, program.cohort("pilot-a"), FIRST_WEEK + 2)

    reminder = reminder_message(checklist, {"decision_huddle": "yes"})

    assert reminder.text == "Reminder: 1 of 3 answered in your week 3 check-in"
    assert reminder.text != checklist_message(checklist).text
    (section,) = reminder.blocks
    assert isinstance(section, Section)
    assert "Week 3 of 12" in section.text and "the 2 still open" in section.text and "checklist above" in section.text
    assert [(c.label, c.value) for c in section.choices] == [("Show the checklist again", "cmd|checkin")]


def test_a_reminder_before_any_answer_names_all_three_questions(program: Program) -> None:
    reminder = reminder_message(build_checklist(program, program.cohort("pilot-a"), FIRST_WEEK), {})

    assert "0 of 3 answered" in reminder.text and "the three questions" in reminder.plain()


# --- when a week is open for answers -------------------------------------------------------------

MONDAY_W02 = datetime(2026, 1, 5, 9, tzinfo=UTC)
CLOSES = datetime(2026, 1, 15, tzinfo=UTC)  # Monday after 2026-W02, 00:00 UTC, plus 3 grace days


def _refusal(program: Program, week: IsoWeek, now: datetime, joined: IsoWeek | None = None) -> str | None:
    return week_refusal(program.cohort("pilot-a"), week, now, IsoWeek.of(now), joined)


def test_a_running_week_is_open_from_its_start_until_the_instant_it_closes(program: Program) -> None:
    assert _refusal(program, FIRST_WEEK, MONDAY_W02) is None
    assert _refusal(program, FIRST_WEEK, CLOSES - timedelta(microseconds=1)) is None
    assert _refusal(program, FIRST_WEEK, CLOSES) == (
        "Week 1 of 12 closed for answers on Thu 15 Jan (3 days after it ended), so its figures are final. Nothing was recorded."
    )


def test_the_week_a_member_joined_is_open_to_them_and_the_weeks_before_are_not(program: Program) -> None:
    joined = FIRST_WEEK + 3
    at = MONDAY_W02 + timedelta(weeks=3)
    assert _refusal(program, joined, at, joined) is None
    assert _refusal(program, joined + -1, at, joined) == (
        "You joined Pilot A after that week, so there is nothing to answer for it. Nothing was recorded."
    )


@pytest.mark.parametrize(
    ("week", "now", "reason"),
    [
        (FIRST_WEEK + -1, MONDAY_W02, "Pilot A had not started that week"),
        (FIRST_WEEK + 12, MONDAY_W02 + timedelta(weeks=12), "Pilot A has 12 weeks and that week is after its last"),
        (FIRST_WEEK + 1, MONDAY_W02, "Week 2 of 12 has not started yet"),
    ],
    ids=["before-the-start", "after-the-last-week", "not-begun"],
)
def test_weeks_outside_the_cohort_or_still_ahead_are_not_open(program: Program, week: IsoWeek, now: datetime, reason: str) -> None:
    refusal = _refusal(program, week, now)
    assert refusal is not None and refusal.startswith(reason) and refusal.endswith("Nothing was recorded.")


def test_the_grace_period_is_the_cohorts_own(program: Program) -> None:
    data = program.model_dump(mode="json")
    for cohort in data["cohorts"]:
        cohort["answer_grace_days"] = 7
    longer = parse_program(data, "grace.yaml")
    assert _refusal(longer, FIRST_WEEK, CLOSES) is None
    assert _refusal(longer, FIRST_WEEK, CLOSES + timedelta(days=4)) is not None
