"""Adaptive Cards from the neutral message model: escaping, the checklist form, size limits,
and reading submits back."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from adapters.teams.cards import MAX_CARD_BYTES, card_bytes, escape, parse_submit, to_card
from bot.files import load_program
from nudges.checklist import ChoiceRef, build_checklist, checklist_message
from nudges.consent import ACCEPT, DECLINE
from nudges.messages import Choice, Context, Header, Image, Message, Section
from nudges.weeks import IsoWeek

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "program.yaml"
WEEK = IsoWeek(2026, 2)
QUESTIONS = {"huddle": "decision_huddle", "escalate": "escalate_24h", "feedback": "specific_feedback"}
HOSTILE = "[click](https://evil.example) **bold** <at>Boss</at> _x_ {{DATE(2026-01-01T00:00:00Z, SHORT)}}"


def _checklist(answered: dict[str, str] | None = None, note: str | None = None) -> Message:
    program = load_program(str(EXAMPLE))
    checklist = build_checklist(program, program.cohort("pilot-a"), WEEK)
    return checklist_message(checklist, {QUESTIONS[k]: v for k, v in (answered or {}).items()}, note=note)


def _texts(card: dict[str, Any]) -> list[str]:
    return [run["text"] for e in card["body"] if e["type"] == "RichTextBlock" for run in e["inlines"]]


def test_text_goes_into_text_runs_where_markdown_links_and_mentions_are_not_read() -> None:
    card = to_card(Message("note", (Header(HOSTILE), Section(HOSTILE), Context(f"Your note (only you see it): {HOSTILE}"))))
    assert {e["type"] for e in card["body"]} == {"RichTextBlock"}  # no TextBlock: nothing is markdown
    shown = escape(HOSTILE)
    assert _texts(card) == [shown, shown, f"Your note (only you see it): {shown}"]  # verbatim, as plain text
    assert "msteams" not in card and "entities" not in json.dumps(card)  # a Teams mention needs an entity


def test_date_functions_cannot_rewrite_member_text() -> None:
    assert "{{DATE(" not in escape(HOSTILE)
    assert escape(HOSTILE).replace("\u2060", "") == HOSTILE  # nothing visible changes


def test_checklist_is_one_expanded_choice_set_per_question_a_note_input_and_submit() -> None:
    card = to_card(_checklist())
    sets = [e for e in card["body"] if e["type"] == "Input.ChoiceSet"]
    assert [s["id"] for s in sets] == ["q:decision_huddle", "q:escalate_24h", "q:specific_feedback"]
    assert all(s["style"] == "expanded" and not s["isMultiSelect"] and "value" not in s for s in sets)
    assert [c["title"] for c in sets[0]["choices"]] == ["Yes", "Partly", "No"]
    assert ChoiceRef.decode(sets[0]["choices"][0]["value"]) == ChoiceRef("pilot-a", WEEK, "decision_huddle", "yes")
    submit = card["actions"][0]
    assert (submit["type"], submit["data"]["reinforce"]) == ("Action.Submit", "checklist")
    assert ChoiceRef.decode(submit["data"]["context"]).action == "note"
    assert [a["title"] for a in card["actions"]] == ["Submit", "Snooze 2 h", "Tomorrow", "Skip this week"]
    assert all(a["associatedInputs"] == "none" for a in card["actions"][1:])


def test_answers_given_are_preselected_and_the_note_shown() -> None:
    card = to_card(_checklist({"huddle": "partly"}, note="Tuesday"))
    sets = {e["id"]: e for e in card["body"] if e["type"] == "Input.ChoiceSet"}
    assert ChoiceRef.decode(sets["q:decision_huddle"]["value"]).value == "partly"
    assert "value" not in sets["q:escalate_24h"]
    assert "Your note (only you see it): Tuesday" in _texts(card)


def test_buttons_outside_a_checklist_submit_their_value() -> None:
    card = to_card(
        Message("consent", (Section("May I?", (Choice("Accept", ACCEPT), Choice("Not now", DECLINE, selected=True)), block_id="consent"),))
    )
    buttons = next(e for e in card["body"] if e["type"] == "ActionSet")["actions"]
    assert [(b["title"], b["data"]["value"]) for b in buttons] == [("Accept", ACCEPT), ("✓ Not now", DECLINE)]
    assert buttons[1]["style"] == "positive" and "actions" not in card


def test_a_hosted_image_keeps_its_url_and_a_small_chart_is_embedded() -> None:
    card = to_card(Message("d", (Image("trend", url="https://charts.example/1.png"), Image("small", data=b"\x89PNG small"))))
    images = [e for e in card["body"] if e["type"] == "Image"]
    assert images[0]["url"] == "https://charts.example/1.png"
    assert images[1]["url"].startswith("data:image/png;base64,") and images[1]["altText"] == "small"


def test_a_chart_too_big_for_a_teams_message_is_replaced_by_its_alt_text() -> None:
    card = to_card(Message("digest", (Header("Digest"), Image("Adoption by week", data=b"\x00" * 40_000))))
    assert card_bytes(card) <= MAX_CARD_BYTES
    assert not [e for e in card["body"] if e["type"] == "Image"]
    assert "(chart: Adoption by week)" in _texts(card)


def test_a_message_too_long_for_teams_is_shortened_but_keeps_its_inputs() -> None:
    long = _checklist()
    padded = Message(long.text, long.blocks[:2] + tuple(Context("x" * 2500) for _ in range(20)) + long.blocks[2:])
    card = to_card(padded)
    assert card_bytes(card) <= MAX_CARD_BYTES
    assert len([e for e in card["body"] if e["type"] == "Input.ChoiceSet"]) == 3
    assert _texts(card)[-1].startswith("(shortened")


def test_a_message_without_blocks_shows_its_text() -> None:
    assert _texts(to_card(Message("Thank you."))) == ["Thank you."]


def test_checklist_submit_is_read_in_a_stable_order_with_its_note_and_context() -> None:
    data = {
        "q:b": "answer|c|2026-W02|b|no",
        "reinforce": "checklist",
        "note": "n",
        "q:a": "answer|c|2026-W02|a|yes",
        "q:c": "",
        "context": "note|c|2026-W02|-|-",
    }
    submit = parse_submit(data)
    assert submit is not None
    assert (submit.kind, submit.values, submit.note, submit.context) == (
        "checklist",
        ("answer|c|2026-W02|a|yes", "answer|c|2026-W02|b|no"),
        "n",
        "note|c|2026-W02|-|-",
    )


def test_a_button_submit_is_a_click_and_anything_else_is_not_ours() -> None:
    assert parse_submit({"reinforce": "click", "value": ACCEPT}).value == ACCEPT  # type: ignore[union-attr]
    assert parse_submit({"value": ACCEPT}).kind == "click"  # type: ignore[union-attr]
    assert parse_submit({"reinforce": "something-else", "value": 1}) is None
    assert parse_submit("text") is None
    assert parse_submit({"note": "hi"}) is None
