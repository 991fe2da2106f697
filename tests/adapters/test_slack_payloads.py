"""The shape check in front of slack-bolt: what Slack sends passes, anything else is a
MalformedRequest (never another exception), and the reason names a field, not its value."""

from __future__ import annotations

import json
from urllib.parse import urlencode

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from adapters.slack.blocks import note_modal
from adapters.slack.payloads import MalformedRequest, parse_request, shape_problem
from tests.fakes.slack import block_action, interaction_body

FORM = {"Content-Type": "application/x-www-form-urlencoded"}
JSON = {"Content-Type": "application/json"}
CLICK = block_action(
    "T0001", "UANA", "DUANA", "1767600001.000100", "answer|pilot-a|2026-W02|decision_huddle|yes", action_ts="1767610000.000100"
)
NOTE = {
    "type": "view_submission",
    "team": {"id": "T0001"},
    "user": {"id": "UANA", "team_id": "T0001"},
    "view": {
        **note_modal("note|pilot-a|2026-W02|-|-", "DUANA", "1767600001.000100"),
        "id": "V1",
        "hash": "h1",
        "state": {"values": {"note": {"text": {"type": "plain_text_input", "value": "a note"}}}},
    },
}
COMMAND = {
    "command": "/reinforce",
    "text": "digest pilot-a",
    "team_id": "T0001",
    "user_id": "UANA",
    "channel_id": "DUANA",
    "trigger_id": "t1",
}
EVENT = {
    "token": "x",
    "team_id": "T0001",
    "api_app_id": "A0001",
    "type": "event_callback",
    "event_id": "Ev1",
    "event_time": 1,
    "authorizations": [{"team_id": "T0001", "user_id": "UBOT", "is_bot": True}],
    "event": {"type": "message", "channel_type": "im", "channel": "DUANA", "user": "UANA", "text": "hello", "ts": "1767700000.000100"},
}


@pytest.mark.parametrize(
    ("raw", "headers"),
    [
        (interaction_body(CLICK), FORM),
        (interaction_body(NOTE), FORM),
        (urlencode(COMMAND), FORM),
        (json.dumps(EVENT), JSON),
        (json.dumps({"type": "url_verification", "challenge": "c", "token": "t"}), JSON),
    ],
    ids=["click", "note", "command", "event", "url-verification"],
)
def test_what_slack_sends_passes(raw: str, headers: dict[str, str]) -> None:
    assert parse_request(raw.encode(), "", headers).body


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({**CLICK, "actions": {}}, "actions"),
        ({**CLICK, "actions": [{"value": "x"}]}, "actions.action_id"),
        ({**CLICK, "user": "UANA"}, "user"),
        ({**CLICK, "container": {"channel_id": "D1", "message_ts": "soon"}}, "container.message_ts"),
        ({**CLICK, "actions": [{**CLICK["actions"][0], "action_ts": "inf"}]}, "action_ts"),
        ({**NOTE, "view": {**NOTE["view"], "private_metadata": "not json"}}, "private_metadata"),
        ({**NOTE, "view": {**NOTE["view"], "type": None}}, "view.type"),
        ({**NOTE, "view": {**NOTE["view"], "state": {"values": {"note": ["x"]}}}}, "view.note"),
        ({**EVENT, "event": [None]}, "event"),
        ({**EVENT, "event": {"type": "message", "user": {"id": "U1"}}}, "event.user"),
        ({**EVENT, "authorizations": ["x"]}, "authorizations"),
        ({**COMMAND, "user_id": None}, "user_id"),
        ({**COMMAND, "team_id": "\x00"}, "NUL"),
        ({**NOTE, "view": {**NOTE["view"], "state": {"values": {"note": {"text": {"value": "a\x00b"}}}}}}, "NUL"),
        ([1, 2], "JSON object"),
    ],
)
def test_a_field_of_the_wrong_shape_is_named(body: object, field: str) -> None:
    problem = shape_problem(body)
    assert problem is not None and field in problem


@pytest.mark.parametrize(
    ("raw", "headers"),
    [
        (b"\xff\xfe", FORM),
        (b"payload=%FF", FORM),
        (b"payload=[1]", FORM),
        (b"payload=" + b"[" * 5000, FORM),
        (b"{not json", FORM),
        (b'"text"', JSON),
        (b"[1]", JSON),
    ],
)
def test_bodies_bolt_cannot_read_are_malformed(raw: bytes, headers: dict[str, str]) -> None:
    with pytest.raises(MalformedRequest):
        parse_request(raw, "", headers)


@settings(max_examples=200, deadline=None)
@given(
    raw=st.binary(max_size=300) | st.text(max_size=300).map(lambda t: t.encode("utf-8", "surrogatepass")),
    content_type=st.sampled_from(["application/json", "application/x-www-form-urlencoded", "text/plain", ""]),
)
def test_any_body_parses_or_is_malformed_and_nothing_else(raw: bytes, content_type: str) -> None:
    try:
        parse_request(raw, "", {"Content-Type": content_type})
    except MalformedRequest as exc:
        # The reason does not echo the body (a body of a few bytes may spell one of its words: "bod").
        assert raw.decode("utf-8", "replace")[:20] not in str(exc) or len(raw) < 8


@pytest.mark.parametrize(
    "spelled",
    ["%00", "%5Cu0000", "%5cu0000", "\\u0000", "%5C%75%30%30%30%30", "%5c%75%30000", "\\%750000"],
    ids=["form", "escaped", "escaped-lower-case", "raw-escape", "letters-encoded", "lower-case", "raw-backslash-encoded-u"],
)
def test_a_nul_however_it_is_encoded_is_refused_before_the_database(spelled: str) -> None:
    clean = interaction_body({**CLICK, "actions": [{**CLICK["actions"][0], "value": "answerNULHERE"}]})
    with pytest.raises(MalformedRequest, match=r"NUL|cannot read"):  # a raw NUL is not even JSON
        parse_request(clean.replace("NULHERE", spelled).encode(), "", FORM)


def test_a_user_name_like_u00001_is_not_taken_for_a_nul() -> None:
    body = interaction_body({**CLICK, "user": {**CLICK["user"], "username": "u00001"}})
    assert "u00001" in body
    assert parse_request(body.encode(), "", FORM).body["user"]["username"] == "u00001"
