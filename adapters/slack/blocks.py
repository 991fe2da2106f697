"""Rendering the neutral message model to Block Kit, escaped and within Slack's limits."""

from __future__ import annotations

import json
from typing import Any

from nudges.messages import Block, Context, Header, Image, Message, Section

MAX_BLOCKS = 50
MAX_SECTION_TEXT = 3000
MAX_HEADER_TEXT = 150
MAX_BUTTON_TEXT = 75
MAX_BUTTONS = 25
MAX_FALLBACK_TEXT = 3000
BUTTON_ACTION_PREFIX = "reinforce:"
NOTE_CALLBACK = "reinforce_note"
NOTE_LIMIT = 2000


def escape(text: str) -> str:
    """Slack's three control characters, so user text cannot ping (<!channel>) or link."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _clip(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _mrkdwn(text: str, limit: int = MAX_SECTION_TEXT) -> dict[str, str]:
    # Clip after escaping: escaping lengthens the text, and the limit is on what Slack gets.
    return {"type": "mrkdwn", "text": _clip(escape(text), limit)}


def _plain(text: str, limit: int) -> dict[str, Any]:
    return {"type": "plain_text", "text": _clip(text, limit) or " ", "emoji": True}


def to_blocks(message: Message) -> list[dict[str, Any]]:
    """Block Kit blocks for a message; never more than Slack's 50."""
    blocks = [rendered for block in message.blocks for rendered in _rendered(block)]
    if len(blocks) > MAX_BLOCKS:
        blocks = [*blocks[: MAX_BLOCKS - 1], {"type": "context", "elements": [_mrkdwn("(shortened: the rest did not fit in one message)")]}]
    return blocks


def _rendered(block: Block) -> list[dict[str, Any]]:
    """The Block Kit blocks of one neutral block (a section with buttons becomes two)."""
    if isinstance(block, Header):
        return [{"type": "header", "text": _plain(block.text, MAX_HEADER_TEXT)}]
    if isinstance(block, Section):
        return _section(block)
    if isinstance(block, Context):
        return [{"type": "context", "elements": [_mrkdwn(block.text)]}]
    if block.url:
        return [{"type": "image", "image_url": block.url, "alt_text": _clip(block.alt, 2000)}]
    return [{"type": "context", "elements": [_mrkdwn(f"(chart: {block.alt})")]}]


def _section(section: Section) -> list[dict[str, Any]]:
    blocks: list[dict[str, Any]] = []
    if section.text:
        blocks.append({"type": "section", "text": _mrkdwn(section.text)})
    if section.choices:
        actions: dict[str, Any] = {
            "type": "actions",
            "elements": [_button(i, c.label, c.value, c.selected) for i, c in enumerate(section.choices[:MAX_BUTTONS])],
        }
        if section.block_id:
            actions["block_id"] = section.block_id
        blocks.append(actions)
    return blocks


def _button(index: int, label: str, value: str, selected: bool) -> dict[str, Any]:
    button: dict[str, Any] = {
        "type": "button",
        "action_id": f"{BUTTON_ACTION_PREFIX}{index}",
        "text": _plain(("✓ " if selected else "") + label, MAX_BUTTON_TEXT),
        "value": value,
    }
    if selected:
        button["style"] = "primary"
    return button


def blocks_json(message: Message) -> str:
    """``to_blocks`` as the JSON text the Web API takes for ``blocks`` (it accepts a string
    wherever it accepts the list; slack_sdk passes a string through without walking it for
    its own block objects)."""
    return json.dumps(to_blocks(message), separators=(",", ":"))


def fallback_text(message: Message) -> str:
    """The notification text; escaped like everything else."""
    return _clip(escape(message.text), MAX_FALLBACK_TEXT)


def uploads(message: Message) -> tuple[Image, ...]:
    """The charts a message carries as PNG bytes, to upload with it (Block Kit shows only
    hosted images)."""
    return tuple(b for b in message.blocks if isinstance(b, Image) and b.data)


def home_view(message: Message) -> dict[str, Any]:
    return {"type": "home", "blocks": to_blocks(message)}


def note_modal(context: str, channel: str | None, ts: str | None) -> dict[str, Any]:
    """A one-field text dialog: the member's "Add a note", or a coach's "Edit" of AI feedback.
    ``private_metadata`` carries what it belongs to and the message to update after."""
    coach = context.startswith("review|")
    return {
        "type": "modal",
        "callback_id": NOTE_CALLBACK,
        "private_metadata": json.dumps({"context": context, "channel": channel, "ts": ts}),
        "title": _plain("Edit the feedback" if coach else "Add a note", 24),
        "submit": _plain("Save", 24),
        "close": _plain("Cancel", 24),
        "blocks": [
            {
                "type": "input",
                "block_id": "note",
                "label": _plain("Your advice to the leader (replaces the AI's)" if coach else "Your note (only you see it)", 2000),
                "element": {"type": "plain_text_input", "action_id": "text", "multiline": True, "max_length": NOTE_LIMIT},
            }
        ],
    }
