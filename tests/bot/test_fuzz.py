"""Hostile and random input at every door: signed Slack requests at /slack/events, Bot
Framework activities at /api/messages (local-development mode, no token), and the program
loader. The server never answers 5xx nor stores part of a record; the loader only ever
raises ProgramError.

Nothing sent here can be a valid click or command that changes state (those are filtered
out), so after every example the database must be exactly as before, audit log aside.
"""

from __future__ import annotations

import copy
import hashlib
import hmac
import json
import time
from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import urlencode

import pytest
import yaml
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from sqlalchemy import select

from adapters.slack.blocks import NOTE_CALLBACK
from bot.files import load_program, read_program
from nudges.checklist import AnswerError, ChoiceRef
from nudges.program import ProgramError, parse_program
from storage.db import Database
from storage.models import Consent, Person
from tests.fakes.bot_connector import card_submit, personal_install, text_message
from tests.rig import BOT, EXAMPLE, SECRET, TEAM, TENANT, Rig, running_rig, slack_user_of

FUZZ = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
# Button values and typed verbs that would legitimately change what is stored.
STATEFUL_PREFIXES = ("consent|", "cmd|", "rehearse|", "review|", "nudge|")
STATEFUL_VERBS = {"pause", "resume", "optout", "rehearse", "checkin", "done"}
HOSTILE = [
    "<!channel>",
    "<@U0001>",
    "<https://evil.example|click>",
    "{{DATE(2026-01-05T09:00:00Z, LONG)}}",
    "\u202eevil\u202c",
    "'; DROP TABLE people; --",
    "%s%s%n",
    "../../etc/passwd",
    "null",
    "\x00",
    "\ufeff",
    "😀" * 50,
    "a|b|c|d|e",
    "answer|pilot-a|2026-W02|decision_huddle|maybe",
    "answer|nope|2026-W99|x|y",
    "digest pilot-a",
    "status",
    "review|1|approve|x",
    "nudge|",
    "__proto__",
    "NaN",
    "-1",
    "9" * 400,
]
# Keys the application reads, so that random dicts often look like the real thing.
KEYS = [
    "type",
    "user",
    "id",
    "team",
    "team_id",
    "actions",
    "value",
    "action_ts",
    "block_id",
    "action_id",
    "container",
    "channel_id",
    "message_ts",
    "view",
    "state",
    "values",
    "private_metadata",
    "event",
    "text",
    "channel",
    "channel_type",
    "trigger_id",
    "from",
    "aadObjectId",
    "conversation",
    "tenantId",
    "reinforce",
    "note",
    "context",
    "q:decision_huddle",
    "serviceUrl",
]


def _stateful(text: str) -> bool:
    if text.startswith(STATEFUL_PREFIXES) or text.strip().split(" ", 1)[0].lower() in STATEFUL_VERBS:
        return True
    try:
        ChoiceRef.decode(text)
    except AnswerError:
        return False
    return True


huge = st.builds(lambda c, n: c * n, st.sampled_from(["a", "<", "&", "\u202e", "é", "\x00", "|"]), st.integers(3000, 120_000))
control = st.text(st.characters(categories=("Cc", "Cf", "Zl", "Zp", "Co")), max_size=30)
text = st.one_of(st.text(max_size=60), st.sampled_from(HOSTILE), control, huge).filter(lambda t: not _stateful(t))
scalars = st.one_of(st.none(), st.booleans(), st.integers(-(2**70), 2**70), st.floats(allow_nan=False), text)
json_values = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.sampled_from(KEYS) | st.text(max_size=8), inner, max_size=4),
    max_leaves=12,
)
# (path to change, new value or None to delete it) applied to a well-formed payload.
mutations = st.lists(
    st.tuples(st.lists(st.sampled_from(KEYS) | st.integers(0, 1), min_size=1, max_size=3), st.none() | json_values), max_size=4
)


def mutate(base: dict[str, Any], changes: list[tuple[list[Any], Any]]) -> Any:
    """``base`` with each change applied where its path exists (or its last step can be added)."""
    result = copy.deepcopy(base)
    for path, value in changes:
        node: Any = result
        for step in path[:-1]:
            node = _child(node, step)
            if node is None:
                break
        last = path[-1]
        if isinstance(node, dict) and isinstance(last, str):
            if value is None:
                node.pop(last, None)
            else:
                node[last] = value
        elif isinstance(node, list) and isinstance(last, int) and last < len(node):
            node[last] = value
    return result


def _child(node: Any, step: Any) -> Any:
    if isinstance(node, dict) and isinstance(step, str):
        return node.get(step)
    if isinstance(node, list) and isinstance(step, int) and step < len(node):
        return node[step]
    return None


def _no_stateful_strings(value: Any) -> bool:
    if isinstance(value, str):
        return not _stateful(value)
    if isinstance(value, dict):
        return all(_no_stateful_strings(v) for v in value.values())
    if isinstance(value, list):
        return all(_no_stateful_strings(v) for v in value)
    return True


def sign_bytes(body: bytes, secret: str = SECRET) -> dict[str, str]:
    """Slack's signature over raw bytes (tests.fakes.slack.sign takes text)."""
    timestamp = str(int(time.time()))
    digest = hmac.new(secret.encode(), b"v0:" + timestamp.encode() + b":" + body, hashlib.sha256).hexdigest()
    return {"X-Slack-Request-Timestamp": timestamp, "X-Slack-Signature": f"v0={digest}"}


class Snapshot:
    """Everything the fuzz must leave as it was: row counts (but the audit log's and the
    conversation references Teams refreshes on every message), pauses and consents."""

    IGNORED = frozenset({"audit_log", "conversation_refs"})

    def __init__(self, rig: Rig) -> None:
        self.rig = rig
        self.before: Any = None

    async def take(self) -> Any:
        counts = {t: n for t, n in (await self.rig.counts()).items() if t not in self.IGNORED}
        async with self.rig.db.session() as session:
            paused = (await session.execute(select(Person.id, Person.paused_at).order_by(Person.id))).all()
            consents = (await session.execute(select(Consent.person_id, Consent.status).order_by(Consent.person_id))).all()
        return counts, paused, consents

    async def unchanged(self) -> None:
        assert await self.take() == self.before


@pytest.fixture
async def rig(db: Database, db_url: str) -> AsyncIterator[tuple[Rig, Snapshot]]:
    async with running_rig(db_url) as rig:
        await rig.consent_all()
        await rig.teams_install("carla@example.com")
        await rig.deliver_checklists()
        snapshot = Snapshot(rig)
        snapshot.before = await snapshot.take()
        yield rig, snapshot


# --- Slack ------------------------------------------------------------------------------------

MEMBERS = ["ana@example.com", "sami@example.com", "nobody@example.com"]


def _block_actions(user: str, value: Any) -> dict[str, Any]:
    return {
        "type": "block_actions",
        "team": {"id": TEAM},
        "user": {"id": user, "team_id": TEAM},
        "api_app_id": "A0001",
        "token": "x",
        "trigger_id": "t1",
        "container": {"type": "message", "message_ts": "1767600001.000100", "channel_id": f"D{user}"},
        "actions": [
            {
                "type": "button",
                "action_id": "reinforce:0",
                "block_id": "q:decision_huddle",
                "value": value,
                "action_ts": "1767610000.000100",
            }
        ],
    }


def _view_submission(user: str, note: Any, metadata: Any) -> dict[str, Any]:
    return {
        "type": "view_submission",
        "team": {"id": TEAM},
        "user": {"id": user, "team_id": TEAM},
        "view": {
            "id": "V1",
            "hash": "h",
            "type": "modal",
            "callback_id": NOTE_CALLBACK,
            "private_metadata": metadata,
            "state": {"values": {"note": {"text": {"type": "plain_text_input", "value": note}}}},
        },
    }


interactions = st.one_of(
    st.builds(_block_actions, st.sampled_from(MEMBERS).map(slack_user_of), text),
    st.builds(
        _view_submission,
        st.sampled_from(MEMBERS).map(slack_user_of),
        text,
        text | st.builds(json.dumps, json_values) | st.just(json.dumps({"context": "answer|pilot-a|2026-W02|-|-"})),
    ),
    st.dictionaries(st.sampled_from(KEYS), json_values, max_size=6),
)


@FUZZ
@given(payload=interactions, changes=mutations)
@example(payload=_view_submission("UANA", "x", "not json"), changes=[])
@example(payload=_view_submission("UANA", "x", "[1]"), changes=[])
@example(payload=_block_actions("UANA", "x"), changes=[(["user"], "UANA")])
@example(payload=_block_actions("UANA", "x"), changes=[(["actions"], {"value": 1})])
async def test_hostile_slack_interactions_never_get_5xx_nor_store_anything(
    rig: tuple[Rig, Snapshot], payload: dict[str, Any], changes: Any
) -> None:
    server, snapshot = rig
    body = mutate(payload, changes) if isinstance(payload, dict) else payload
    if not _no_stateful_strings(body):
        return
    status, _reply = await server.slack_post(urlencode({"payload": json.dumps(body)}))
    assert status < 500, body
    await server.app.rehearsals.drain()
    await snapshot.unchanged()


def _command_form(user: str, words: str) -> dict[str, str]:
    return {
        "command": "/reinforce",
        "text": words,
        "team_id": TEAM,
        "user_id": user,
        "channel_id": f"D{user}",
        "response_url": "http://127.0.0.1:9/unused",
        "trigger_id": "t1",
        "token": "x",
    }


def _message_event(user: str, words: Any) -> dict[str, Any]:
    return {
        "token": "x",
        "team_id": TEAM,
        "api_app_id": "A0001",
        "type": "event_callback",
        "event_id": "Ev1",
        "event_time": 1,
        "event": {"type": "message", "channel_type": "im", "channel": f"D{user}", "user": user, "text": words, "ts": "1767700000.000100"},
    }


form_changes = st.lists(
    st.tuples(st.sampled_from(["command", "text", "team_id", "user_id", "channel_id", "trigger_id", "extra"]), st.none() | text), max_size=3
)
CONTENT_TYPES = [
    "application/x-www-form-urlencoded",
    "application/json",
    "text/plain",
    "multipart/form-data; boundary=x",
    "",
    "application/xml",
    "application/json; charset=latin-1",
    "application/x-www-form-urlencoded; charset=utf-16",
]


@FUZZ
@given(
    kind=st.sampled_from(["command", "event", "raw"]),
    user=st.sampled_from(MEMBERS).map(slack_user_of),
    words=text,
    changes=form_changes,
    event_changes=mutations,
    raw=st.binary(max_size=2000) | text.map(lambda t: t.encode("utf-8", "surrogatepass")),
    content_type=st.sampled_from(CONTENT_TYPES),
    signed=st.booleans(),
)
@example(
    kind="raw", user="UANA", words="", changes=[], event_changes=[], raw=b"\xff\xfe payload=", content_type=CONTENT_TYPES[0], signed=False
)
@example(kind="raw", user="UANA", words="", changes=[], event_changes=[], raw=b"payload=%FF%FE", content_type=CONTENT_TYPES[0], signed=True)
@example(kind="raw", user="UANA", words="", changes=[], event_changes=[], raw=b"\x80", content_type=CONTENT_TYPES[0], signed=True)
@example(
    kind="command",
    user="UANA",
    words="help",
    changes=[("user_id", None)],
    event_changes=[],
    raw=b"",
    content_type=CONTENT_TYPES[0],
    signed=True,
)
@example(
    kind="command",
    user="U" + "X" * 400,
    words="digest " + "p" * 400,
    changes=[],
    event_changes=[],
    raw=b"",
    content_type=CONTENT_TYPES[0],
    signed=True,
)
async def test_hostile_slack_commands_events_and_bodies_never_get_5xx_nor_store_anything(
    rig: tuple[Rig, Snapshot],
    kind: str,
    user: str,
    words: str,
    changes: Any,
    event_changes: Any,
    raw: bytes,
    content_type: str,
    signed: bool,
) -> None:
    server, snapshot = rig
    if kind == "command":
        form = _command_form(user, words)
        for key, value in changes:
            form.pop(key, None) if value is None else form.__setitem__(key, value)
        if _stateful(form.get("text", "")):
            return
        body, content_type = urlencode(form).encode(), "application/x-www-form-urlencoded"
    elif kind == "event":
        event = mutate(_message_event(user, words), event_changes)
        if not _no_stateful_strings(event):
            return
        body, content_type = json.dumps(event).encode(), "application/json"
    else:
        body = raw
    headers = {"Content-Type": content_type, **(sign_bytes(body) if signed else {})}
    async with server.http.post(f"{server.url}/slack/events", data=body, headers=headers) as response:
        await response.read()
        assert response.status < 500, (kind, body[:300])
    await server.app.rehearsals.drain()
    await snapshot.unchanged()


# --- Teams ------------------------------------------------------------------------------------

activity_kinds = st.sampled_from(
    ["message", "message", "conversationUpdate", "installationUpdate", "invoke", "event", "typing", "messageReaction", "", "🙃"]
)


@FUZZ
@given(
    shape=st.sampled_from(["text", "submit", "install"]),
    who=st.sampled_from(["carla@example.com", "umar@example.com"]),
    words=text,
    value=json_values,
    kind=activity_kinds,
    changes=mutations,
)
@example(
    shape="submit",
    who="carla@example.com",
    words="",
    value={"reinforce": "checklist", "q:decision_huddle": "answer|pilot-a|2026-W02|decision_huddle|maybe"},
    kind="message",
    changes=[],
)
@example(
    shape="submit",
    who="carla@example.com",
    words="",
    value={"reinforce": "checklist", "note": "n" * 3000, "context": "x"},
    kind="message",
    changes=[],
)
@example(shape="text", who="carla@example.com", words="x", value=None, kind="message", changes=[(["from"], "carla")])
@example(shape="text", who="carla@example.com", words="x", value=None, kind="message", changes=[(["conversation"], None)])
@example(shape="text", who="carla@example.com", words="status", value=None, kind="message", changes=[(["from", "aadObjectId"], "a" * 400)])
@example(
    shape="text", who="carla@example.com", words="help", value=None, kind="message", changes=[(["conversation", "tenantId"], "t" * 300)]
)
async def test_hostile_teams_activities_never_get_5xx_nor_store_anything(
    rig: tuple[Rig, Snapshot], shape: str, who: str, words: str, value: Any, kind: str, changes: Any
) -> None:
    server, snapshot = rig
    account = server.teams_account(who)
    if shape == "text":
        activity = text_message(server.teams.url, TENANT, BOT, account, words)
    elif shape == "submit":
        activity = card_submit(server.teams.url, TENANT, BOT, account, "1:1", value)
    else:
        activity = personal_install(server.teams.url, TENANT, BOT, account)
    activity["type"] = kind if shape != "install" else activity["type"]
    activity = mutate(activity, changes)
    if not _no_stateful_strings(activity):
        return
    status = await server.teams_post(activity)
    # botbuilder answers an invoke it does not implement with 501, as the Bot Framework expects.
    assert status < 500 or (status == 501 and activity.get("type") == "invoke"), activity
    await server.app.rehearsals.drain()
    await snapshot.unchanged()


@FUZZ
@given(body=st.binary(max_size=500) | json_values.map(lambda v: json.dumps(v).encode()), content_type=st.sampled_from(CONTENT_TYPES))
async def test_teams_bodies_that_are_not_activities_get_4xx(rig: tuple[Rig, Snapshot], body: bytes, content_type: str) -> None:
    server, snapshot = rig
    async with server.http.post(f"{server.url}/api/messages", data=body, headers={"Content-Type": content_type}) as response:
        await response.read()
        assert response.status < 500, body[:300]
    await snapshot.unchanged()


# --- the program loader -------------------------------------------------------------------------

EXAMPLE_DATA = yaml.safe_load(EXAMPLE.read_text())
program_paths = st.lists(
    st.sampled_from(
        [
            "program",
            "admins",
            "behaviors",
            "cohorts",
            "min_group_size",
            0,
            1,
            "key",
            "members",
            "checklist",
            "schedule",
            "plan",
            "nudges",
            "email",
            "timezone",
            "starts",
            "weeks",
            "limits",
            "sponsor_channel",
        ]
    ),
    min_size=1,
    max_size=4,
)


def _one_line_each_naming_the_file(lines: list[str]) -> None:
    for line in lines:
        assert "\n" not in line and line.startswith("p.yaml"), line


@settings(max_examples=100, deadline=None)
@given(changes=st.lists(st.tuples(program_paths, st.none() | json_values), max_size=5))
def test_a_mangled_program_file_only_ever_raises_program_error(changes: Any) -> None:
    data = mutate(EXAMPLE_DATA, changes)
    for attempt in (lambda: parse_program(data, "p.yaml"), lambda: read_program("p.yaml", yaml.safe_dump(data, allow_unicode=True))):
        try:
            loaded = attempt()
        except ProgramError as exc:
            _one_line_each_naming_the_file(exc.problems)
        else:
            _one_line_each_naming_the_file(getattr(loaded, "warnings", []))


yamlish = st.lists(
    st.sampled_from(
        [
            "program:",
            "cohorts:",
            "- ",
            "  ",
            "key: ",
            "&a ",
            "*a",
            "[",
            "]",
            "{",
            "}",
            ": ",
            "\n",
            "!!str ",
            "? ",
            "'",
            '"',
            "#",
            "|",
            ">",
            "---",
            "...",
            "\t",
            "%YAML 1.1",
            "2026-01-05",
            "~",
            "0x1F",
            "1e309",
        ]
    )
    | text,
    max_size=40,
).map("".join)


@settings(max_examples=100, deadline=None)
@given(source=yamlish | st.text(max_size=300))
def test_random_yaml_text_only_ever_raises_program_error(source: str) -> None:
    try:
        loaded = read_program("p.yaml", source)
    except ProgramError as exc:
        _one_line_each_naming_the_file(exc.problems)
    else:
        _one_line_each_naming_the_file(loaded.warnings)


# PyYAML itself raises ValueError for an impossible date and RecursionError for deep nesting;
# bot/files.py reports both as the file's problem.
@pytest.mark.parametrize(
    "source", ["program: x\ncohorts:\n  - starts: 2026-13-45\n", "program: " + "[" * 3000], ids=["impossible-date", "deep-nesting"]
)
def test_yaml_that_pyyaml_itself_cannot_read_is_a_program_error(source: str) -> None:
    with pytest.raises(ProgramError, match="not valid YAML"):
        load_program("p.yaml", source)
