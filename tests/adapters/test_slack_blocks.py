"""Block Kit rendering: escaping of user text and Slack's size limits."""

from __future__ import annotations

import json

from hypothesis import given
from hypothesis import strategies as st

from adapters.slack.blocks import MAX_BLOCKS, MAX_SECTION_TEXT, escape, fallback_text, to_blocks
from nudges.messages import Choice, Context, Header, Image, Message, Section


def test_control_characters_are_escaped_so_nobody_can_ping_or_link() -> None:
    hostile = "<!channel> <https://evil.example|click> & <@U123>"
    blocks = to_blocks(Message(hostile, (Section(hostile), Context(hostile))))
    rendered = json.dumps(blocks) + fallback_text(Message(hostile))
    assert "<" not in rendered and ">" not in rendered
    assert blocks[0]["text"]["text"] == "&lt;!channel&gt; &lt;https://evil.example|click&gt; &amp; &lt;@U123&gt;"


@given(st.text())
def test_escaped_text_never_contains_a_raw_angle_bracket_or_ampersand_entity_break(text: str) -> None:
    escaped = escape(text)
    assert "<" not in escaped and ">" not in escaped
    assert escaped.replace("&amp;", "").replace("&lt;", "").replace("&gt;", "").count("&") == 0


def test_section_text_stays_within_3000_characters_after_escaping() -> None:
    blocks = to_blocks(Message("x", (Section("<" * 2999),)))
    assert len(blocks[0]["text"]["text"]) <= MAX_SECTION_TEXT


def test_a_long_message_is_cut_to_50_blocks_and_says_so() -> None:
    blocks = to_blocks(Message("x", tuple(Section(f"line {i}") for i in range(80))))
    assert len(blocks) == MAX_BLOCKS
    assert "shortened" in blocks[-1]["elements"][0]["text"]


def test_choices_become_buttons_carrying_their_value_and_selection() -> None:
    blocks = to_blocks(
        Message("x", (Header("Week 1"), Section("Q?", (Choice("Yes", "v1", selected=True), Choice("No", "v2")), block_id="q:a")))
    )
    header, section, actions = blocks
    assert header["type"] == "header" and section["type"] == "section"
    assert actions["block_id"] == "q:a"
    assert [(e["text"]["text"], e["value"], e.get("style")) for e in actions["elements"]] == [
        ("✓ Yes", "v1", "primary"),
        ("No", "v2", None),
    ]
    assert len({e["action_id"] for e in actions["elements"]}) == 2


def test_an_image_with_a_url_is_an_image_block() -> None:
    (block,) = to_blocks(Message("x", (Image(alt="chart", url="https://files.example/c.png"),)))
    assert block == {"type": "image", "image_url": "https://files.example/c.png", "alt_text": "chart"}
