"""Rendering the neutral message model to Adaptive Cards for Teams, and reading card submits back.

All text goes into RichTextBlock TextRuns, which Teams never reads as markdown: program and
member text shows exactly as written, and cannot become a link, emphasis, a list or a
mention (a Teams mention also needs an entity in the activity, which Reinforce never adds).
Backslash escapes in TextBlocks would be the alternative, but Teams clients disagree on
them (desktop honours them, the mobile apps show the backslashes).
"""

from __future__ import annotations

import base64
import io
import json
from dataclasses import dataclass
from typing import Any

from PIL import Image as PILImage

from nudges.checklist import AnswerError, ChoiceRef
from nudges.messages import Choice, Context, Header, Image, Message, Section
from nudges.review import is_edit_button

CONTENT_TYPE = "application/vnd.microsoft.card.adaptive"
SCHEMA = "http://adaptivecards.io/schemas/adaptive-card.json"
VERSION = "1.5"
# Teams refuses a message over ~28 KB (older clients count base64 images in it); the
# activity around the card needs a little room too.
MAX_CARD_BYTES = 26_000
MAX_TEXT = 3000
MAX_TITLE = 75
MAX_ACTIONS = 6  # Teams shows at most six buttons in a row
NOTE_LIMIT = 2000
NOTE_INPUT = "note"
QUESTION_PREFIX = "q:"
ACTIONS_ROW = "actions"
# The key in Action.Submit data that says what a submit is: CHECKLIST for a form (inputs, a
# note, and the context they belong to), CLICK for one button's value.
MARKER = "reinforce"
CHECKLIST, CLICK = "checklist", "click"
SHORTENED = "(shortened: the rest did not fit in one Teams message)"


def escape(text: str) -> str:
    """Text safe to place in a TextRun.

    TextRuns take no markdown, so what is left is the Adaptive Card date functions
    (``{{DATE(...)}}``), which would rewrite text: an invisible word joiner splits ``{{``.
    """
    return text.replace("{{", "{\u2060{")


def _clip(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _rich(text: str, **style: Any) -> dict[str, Any]:
    return {"type": "RichTextBlock", "inlines": [{"type": "TextRun", "text": escape(_clip(text, MAX_TEXT)), **style}]}


def _subtle(text: str) -> dict[str, Any]:
    return _rich(text, size="Small", isSubtle=True)


def to_card(message: Message) -> dict[str, Any]:
    """An Adaptive Card for ``message``, under Teams' size limit."""
    checklist = any(_is_question(b) for b in message.blocks)
    body: list[dict[str, Any]] = []
    actions: list[dict[str, Any]] = []
    for block in message.blocks:
        if isinstance(block, Section):
            elements, row = _section(block, checklist)
            body += elements
            actions = row or actions
        else:
            body.append(_element(block))
    if checklist and not actions:  # a checklist always needs its Submit
        body.append(_note_input())
        actions = _checklist_actions(())
    if not body:
        body.append(_rich(message.text))
    card: dict[str, Any] = {
        "type": "AdaptiveCard",
        "$schema": SCHEMA,
        "version": VERSION,
        "fallbackText": _clip(message.text, MAX_TEXT),
        "body": body,
    }
    if actions:
        card["actions"] = actions
    return _within_limit(card)


def _element(block: Header | Context | Image) -> dict[str, Any]:
    if isinstance(block, Header):
        return _rich(block.text, size="Large", weight="Bolder")
    if isinstance(block, Context):
        return _subtle(block.text)
    return _image(block)


def _section(block: Section, checklist: bool) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """A section's card elements, and the card's actions when it is a checklist's action row."""
    if checklist and _is_question(block):
        return [*([_rich(block.text, weight="Bolder")] if block.text else []), _choice_set(block)], []
    if checklist and block.block_id == ACTIONS_ROW:
        return [_note_input()], _checklist_actions(block.choices)
    elements = [_rich(block.text)] if block.text else []
    if block.choices:
        elements.append({"type": "ActionSet", "actions": [_button(c) for c in block.choices[:MAX_ACTIONS]]})
    return elements, []


def _is_question(block: object) -> bool:
    return isinstance(block, Section) and bool(block.choices) and (block.block_id or "").startswith(QUESTION_PREFIX)


def _choice_set(section: Section) -> dict[str, Any]:
    element: dict[str, Any] = {
        "type": "Input.ChoiceSet",
        "id": section.block_id,
        "style": "expanded",
        "isMultiSelect": False,
        "choices": [{"title": _clip(c.label, MAX_TITLE), "value": c.value} for c in section.choices],
    }
    chosen = next((c.value for c in section.choices if c.selected), None)
    if chosen is not None:
        element["value"] = chosen
    return element


def _note_input() -> dict[str, Any]:
    return {
        "type": "Input.Text",
        "id": NOTE_INPUT,
        "isMultiline": True,
        "maxLength": NOTE_LIMIT,
        "placeholder": "Add a note (optional, only you see it)",
    }


def _checklist_actions(choices: tuple[Choice, ...]) -> list[dict[str, Any]]:
    """Submit (answers and note together), then the row's other buttons. The row's "Add a note"
    button is the note input here; its value tells the application which checklist a note is for."""
    note_ref = next((c.value for c in choices if _action_of(c.value) == "note"), None)
    submit: dict[str, Any] = {
        "type": "Action.Submit",
        "title": "Submit",
        "style": "positive",
        "data": {MARKER: CHECKLIST, "context": note_ref},
    }
    others = [_button(c) for c in choices if _action_of(c.value) != "note"]
    return [submit, *others][:MAX_ACTIONS]


def _action_of(value: str) -> str | None:
    try:
        return ChoiceRef.decode(value).action
    except AnswerError:
        return None


def _button(choice: Choice) -> dict[str, Any]:
    if is_edit_button(choice.value):
        return _edit_button(choice)
    button: dict[str, Any] = {
        "type": "Action.Submit",
        "title": _clip(("✓ " if choice.selected else "") + choice.label, MAX_TITLE),
        "data": {MARKER: CLICK, "value": choice.value},
        # A button on a checklist card must not carry the half-filled answers with it.
        "associatedInputs": "none",
    }
    if choice.selected:
        button["style"] = "positive"
    return button


def _edit_button(choice: Choice) -> dict[str, Any]:
    """A coach's Edit opens a text box under the card (Slack opens a dialog instead); what they
    send comes back like a checklist note: the text with the button's value as its context."""
    form = {
        "type": "AdaptiveCard",
        "body": [
            {
                **_note_input(),
                "placeholder": "Your corrected advice for the leader",
                "isRequired": True,
                "errorMessage": "Write the advice to send",
            }
        ],
        "actions": [{"type": "Action.Submit", "title": "Send the edited advice", "data": {MARKER: CHECKLIST, "context": choice.value}}],
    }
    return {"type": "Action.ShowCard", "title": _clip(choice.label, MAX_TITLE), "card": form}


def _image(block: Image) -> dict[str, Any]:
    if block.url:
        url = block.url
    elif block.data:
        url = "data:image/png;base64," + base64.b64encode(compact_png(block.data)).decode("ascii")
    else:
        return _subtle(f"(chart: {block.alt})")
    return {"type": "Image", "url": url, "altText": _clip(block.alt, 1000), "size": "Stretch"}


def compact_png(data: bytes) -> bytes:
    """The image as a 64-colour palette PNG: a chart loses nothing visible and shrinks to about
    a quarter, which is what lets it travel inside a Teams message (embedded as base64)."""
    try:
        with PILImage.open(io.BytesIO(data)) as image:
            out = io.BytesIO()
            image.convert("RGB").quantize(colors=64).save(out, format="PNG", optimize=True)
    except (OSError, ValueError):  # not an image Pillow reads: sent as it is
        return data
    return min(out.getvalue(), data, key=len)


def card_bytes(card: dict[str, Any]) -> int:
    return len(json.dumps(card, ensure_ascii=False, separators=(",", ":")).encode("utf-8"))


def _within_limit(card: dict[str, Any]) -> dict[str, Any]:
    """Embedded images go first (their alt text stays), then trailing text, until the card fits."""
    if card_bytes(card) <= MAX_CARD_BYTES:
        return card
    card["body"] = [
        _subtle(f"(chart: {e.get('altText', '')})") if e.get("type") == "Image" and str(e.get("url", "")).startswith("data:") else e
        for e in card["body"]
    ]
    if card_bytes(card) <= MAX_CARD_BYTES:
        return card
    # Inputs stay: a checklist without its questions could not be answered.
    kept = list(card["body"])
    while card_bytes({**card, "body": [*kept, _subtle(SHORTENED)]}) > MAX_CARD_BYTES:
        droppable = [i for i, e in enumerate(kept) if not str(e.get("type", "")).startswith("Input.")]
        if not droppable:
            break
        del kept[droppable[-1]]
    card["body"] = [*kept, _subtle(SHORTENED)]
    return card


@dataclass(frozen=True)
class CardSubmit:
    """What an Action.Submit sent back: the checklist's answers and note, or one button's value."""

    kind: str
    values: tuple[str, ...] = ()
    note: str | None = None
    context: str | None = None
    value: str | None = None


def parse_submit(data: object) -> CardSubmit | None:
    """Read an activity's ``value``; None when it is not from a Reinforce card."""
    if not isinstance(data, dict):
        return None
    if data.get(MARKER) == CHECKLIST:
        # Sorted by input id: the order decides the per-answer event ids, so a redelivered
        # submit must list its answers in the same order.
        answers = tuple(
            v for k, v in sorted(data.items()) if isinstance(k, str) and k.startswith(QUESTION_PREFIX) and isinstance(v, str) and v
        )
        note = data.get(NOTE_INPUT)
        context = data.get("context")
        return CardSubmit(
            CHECKLIST,
            values=answers,
            note=note if isinstance(note, str) else None,
            context=context if isinstance(context, str) else None,
        )
    value = data.get("value")
    if isinstance(value, str) and data.get(MARKER, CLICK) == CLICK:
        return CardSubmit(CLICK, value=value)
    return None
