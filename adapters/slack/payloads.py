"""Slack request bodies checked before slack-bolt reads them: bolt and the listeners index into
payloads as Slack shapes them, so a body shaped otherwise would become a 500.

``parse_request`` builds bolt's request, raising ``MalformedRequest`` for anything Slack would
not send: a body that is not UTF-8, not a JSON object, or whose fields have the wrong type.
Only fields that bolt or adapters.slack.app read are checked; unknown fields pass.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from typing import Any

from slack_bolt.request.async_request import AsyncBoltRequest

from adapters.base import holds_nul

# What bolt raises on a body it cannot make sense of (KeyError and IndexError are LookupErrors).
MALFORMED = (ValueError, TypeError, LookupError, AttributeError, RecursionError)
# Slack's own limits on ids it echoes back; a timestamp is "seconds.micros".
MAX_ID = 255
_TS = re.compile(r"\d{1,12}(\.\d{1,9})?")
# Top-level fields that are objects whenever Slack sends them (null where Slack may send it);
# bolt reads some with .get(key, {}), so those must not even be null.
_OBJECTS = ("user", "team", "channel", "container", "view", "event", "message", "enterprise", "state")
_NEVER_NULL = ("event", "view")


class MalformedRequest(ValueError):
    """A body Slack would not send; the message names the field, never its value."""


def parse_request(raw: bytes, query: str, headers: Mapping[str, str]) -> AsyncBoltRequest:
    """Bolt's request for ``raw``; raises MalformedRequest instead of letting bolt trip on it."""
    try:
        body = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise MalformedRequest("the body is not UTF-8") from None
    try:
        request = AsyncBoltRequest(body=body, query=query, headers=dict(headers))
    except MALFORMED as exc:
        raise MalformedRequest(f"bolt cannot read the body ({exc.__class__.__name__})") from None
    problem = shape_problem(request.body)
    if problem is not None:
        raise MalformedRequest(problem)
    return request


def shape_problem(body: Any) -> str | None:
    """Why ``body`` (as bolt parsed it) is not shaped as Slack sends it, or None."""
    if not isinstance(body, dict):
        return "the body is not a JSON object"
    for key in _OBJECTS:
        if (body.get(key) is not None or (key in _NEVER_NULL and key in body)) and not isinstance(body[key], dict):
            return f"{key} is not an object"
    if holds_nul(body):
        # Slack never sends one, and PostgreSQL refuses it in any text, even a lookup.
        return "a field holds a NUL character"
    kind = body.get("type")
    if kind is not None and not isinstance(kind, str):
        return "type is not text"
    if "command" in body:  # a slash command: a form, every value text
        return None if isinstance(body.get("user_id"), str) else "user_id is missing"
    problem = _common(body)
    if problem is None and kind == "block_actions":
        problem = _block_actions(body)
    elif problem is None and kind in ("view_submission", "view_closed"):
        problem = _view(body)
    elif problem is None and kind == "event_callback":
        problem = _event(body.get("event"))
    return problem


def _common(body: dict[str, Any]) -> str | None:
    authorizations = body.get("authorizations")
    if authorizations is not None and not (isinstance(authorizations, list) and all(isinstance(a, dict) for a in authorizations)):
        return "authorizations is not a list of objects"
    for path in (
        ("user", "id"),
        ("user", "team_id"),
        ("team", "id"),
        ("container", "channel_id"),
        ("channel", "id"),
        ("trigger_id",),
        ("team_id",),
    ):
        if not _text_or_absent(body, path):
            return ".".join(path) + " is not text"
    if not _ts_or_absent(body, ("container", "message_ts")):
        return "container.message_ts is not a Slack timestamp"
    return None


def _block_actions(body: dict[str, Any]) -> str | None:
    actions = body.get("actions")
    if not (isinstance(actions, list) and actions and all(isinstance(a, dict) for a in actions)):
        return "actions is not a list of objects"
    if not isinstance((body.get("user") or {}).get("id"), str):
        return "user.id is missing"
    for action in actions:
        for key in ("action_id", "block_id"):
            value = action.get(key, "")
            if not isinstance(value, str) or len(value) > MAX_ID:
                return f"actions.{key} is not an id"
        if not isinstance(action.get("action_id"), str):
            return "actions.action_id is missing"
        if not _text_or_absent(action, ("value",)) or not _ts_or_absent(action, ("action_ts",)):
            return "actions.value or actions.action_ts is not text"
    return None


def _view(body: dict[str, Any]) -> str | None:
    view = body.get("view")
    if not isinstance(view, dict) or not isinstance(view.get("callback_id"), str) or not isinstance(view.get("type"), str):
        return "view.callback_id or view.type is missing"
    if not isinstance((body.get("user") or {}).get("id"), str):
        return "user.id is missing"
    problem = _metadata(view.get("private_metadata"))
    if problem is not None:
        return problem
    node: Any = view
    for key in ("state", "values", "note", "text"):  # the note dialog's input, read by the listener
        node = node.get(key) if isinstance(node, dict) else None
        if node is not None and not isinstance(node, dict):
            return f"view.{key} is not an object"
    if isinstance(node, dict) and not _text_or_absent(node, ("value",)):
        return "the note is not text"
    for key in ("id", "hash"):
        if not _text_or_absent(view, (key,)):
            return f"view.{key} is not text"
    return None


def _metadata(metadata: Any) -> str | None:
    """The note dialog's private_metadata: absent, or the JSON object Reinforce put there."""
    if metadata is not None and not isinstance(metadata, str):
        return "view.private_metadata is not text"
    if metadata:
        try:
            parsed = json.loads(metadata)
        except ValueError:
            parsed = None
        if not isinstance(parsed, dict):
            return "view.private_metadata is not the JSON object Reinforce put there"
    return None


def _event(event: Any) -> str | None:
    if not isinstance(event, dict) or not isinstance(event.get("type"), str):
        return "event.type is missing"
    if event["type"] == "user_change":  # carries the whole user object
        return _user_change(event)
    for key in ("user", "channel", "channel_type", "subtype", "bot_id", "tab"):
        if not _text_or_absent(event, (key,)):
            return f"event.{key} is not text"
    if event.get("view") is not None and not isinstance(event["view"], dict):
        return "event.view is not an object"
    if not _ts_or_absent(event, ("ts",)):
        return "event.ts is not a Slack timestamp"
    return None


def _user_change(event: dict[str, Any]) -> str | None:
    user = event.get("user")
    if not isinstance(user, dict) or not isinstance(user.get("id"), str):
        return "event.user is not a user object"
    if not _text_or_absent(user, ("team_id",)) or not isinstance(user.get("deleted", False), bool):
        return "event.user.team_id or event.user.deleted is not as Slack sends it"
    return None


def _at(body: dict[str, Any], path: tuple[str, ...]) -> Any:
    node: Any = body
    for key in path:
        node = node.get(key) if isinstance(node, dict) else None
    return node


def _text_or_absent(body: dict[str, Any], path: tuple[str, ...]) -> bool:
    value = _at(body, path)
    return value is None or isinstance(value, str)


def _ts_or_absent(body: dict[str, Any], path: tuple[str, ...]) -> bool:
    value = _at(body, path)
    return value is None or (isinstance(value, str) and _TS.fullmatch(value) is not None)
