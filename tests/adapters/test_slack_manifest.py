"""slack/manifest.yml grants exactly the scopes the code needs: every Web API call the code makes
is in adapters/slack/scopes.py, and the manifest and the OAuth install ask for that table's union."""

from __future__ import annotations

import ast
import inspect
import re
from collections.abc import Iterable
from functools import cache
from pathlib import Path
from urllib.parse import parse_qs, unquote, urlparse

import aiohttp
import yaml
from aiohttp.test_utils import TestServer
from slack_sdk.web.async_client import AsyncWebClient

from adapters.slack.scopes import BOT_SCOPES, EVENTS, FEATURES, WEB_API
from bot.app import build
from bot.settings import Settings
from bot.web import make_web_app
from storage.db import Database

ROOT = Path(__file__).resolve().parents[2]
MANIFEST = ROOT / "slack" / "manifest.yml"
PACKAGES = ("adapters", "bot", "nudges", "storage")  # everything `reinforce` runs (pyproject's packages)


def _manifest() -> dict:
    return yaml.safe_load(MANIFEST.read_text())


@cache
def _client_methods() -> dict[str, frozenset[str]]:
    """slack_sdk client method name -> the Web API methods it calls, read from slack_sdk's own
    source: most call ``api_call("x.y")``; helpers such as files_upload_v2 call other methods."""
    sources = {
        name: inspect.getsource(member)
        for name, member in inspect.getmembers(AsyncWebClient, inspect.iscoroutinefunction)
        if not name.startswith("_")
    }

    def calls(name: str, seen: frozenset[str]) -> frozenset[str]:
        source = sources[name]
        direct = set(re.findall(r'api_call\(\s*"([\w.]+)"', source))
        for other in re.findall(r"self\.(\w+)\(", source):
            if other in sources and other not in seen:
                direct |= calls(other, seen | {other})
        return frozenset(direct)

    methods = {name: calls(name, frozenset({name})) for name in sources}
    return {name: api for name, api in methods.items() if api}


def web_api_calls(source: str) -> set[str]:
    """The Web API methods a module's source calls through a slack_sdk client: a client method
    by name (``client.chat_postMessage``, also passed uncalled to a wrapper), or ``api_call("x.y")``."""
    methods = _client_methods()
    found: set[str] = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Attribute) and node.attr in methods:
            found |= methods[node.attr]
        elif isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "api_call" and node.args:
            first = node.args[0]
            if isinstance(first, ast.Constant) and isinstance(first.value, str):
                found.add(first.value)
    return found


def _modules() -> Iterable[Path]:
    for package in PACKAGES:
        yield from sorted((ROOT / package).rglob("*.py"))


def _events_listened_to() -> set[str]:
    """Event types the code registers a bolt listener for: ``<app>.event("type")``."""
    found: set[str] = set()
    for path in sorted((ROOT / "adapters" / "slack").rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "event" and node.args:
                first = node.args[0]
                if isinstance(first, ast.Constant) and isinstance(first.value, str):
                    found.add(first.value)
    return found


def test_the_scan_finds_direct_calls_helper_calls_and_raw_api_calls() -> None:
    source = """
async def f(client, call):
    await client.chat_postMessage(channel="C1", text="x")
    await call(client.conversations_history, channel="C1")
    await client.files_upload_v2(channel="C1", content=b"")
    await client.api_call("pins.add", json={})
"""
    assert web_api_calls(source) == {
        "chat.postMessage",
        "conversations.history",
        "files.getUploadURLExternal",
        "files.completeUploadExternal",
        "pins.add",
    }


def test_every_web_api_method_the_code_calls_is_in_the_scope_table() -> None:
    called: dict[str, set[str]] = {}
    for path in _modules():
        for method in web_api_calls(path.read_text()):
            called.setdefault(method, set()).add(str(path.relative_to(ROOT)))
    # The scan sees the sends, the retry check and the chart upload (a sanity check on the scan).
    assert {"chat.postMessage", "conversations.history", "files.completeUploadExternal", "users.lookupByEmail"} <= called.keys()
    missing = {method: sorted(where) for method, where in called.items() if method not in WEB_API}
    assert not missing, f"add these Web API methods and their scopes to adapters/slack/scopes.py: {missing}"


def test_the_manifest_grants_exactly_the_scopes_the_table_needs() -> None:
    granted = _manifest()["oauth_config"]["scopes"]["bot"]
    assert len(granted) == len(set(granted)), "a scope is listed twice"
    assert set(granted) == set(BOT_SCOPES), (
        f"missing from the manifest: {sorted(set(BOT_SCOPES) - set(granted))}; "
        f"granted but not needed: {sorted(set(granted) - set(BOT_SCOPES))}"
    )
    # What the retry check after a crash reads: DMs, public and private channels.
    assert {"im:history", "channels:history", "groups:history"} <= set(granted)


def test_the_manifest_subscribes_to_the_tables_events_and_uses_its_features() -> None:
    manifest = _manifest()
    assert set(manifest["settings"]["event_subscriptions"]["bot_events"]) == set(EVENTS)
    assert {name for name in FEATURES if manifest["features"].get(name)} == set(FEATURES)


def test_every_event_the_code_listens_to_is_subscribed_in_the_manifest() -> None:
    subscribed = set(_manifest()["settings"]["event_subscriptions"]["bot_events"])
    listened = _events_listened_to()
    assert {"app_home_opened", "message"} <= listened
    # A bolt listener for "message" is fed by the message.* subscriptions (Reinforce: DMs only).
    missing = {event for event in listened if event not in subscribed and not any(s.startswith(event + ".") for s in subscribed)}
    assert not missing, f"subscribe to these events in slack/manifest.yml: {sorted(missing)}"


async def test_the_oauth_install_asks_for_the_manifests_scopes(db: Database, db_url: str) -> None:
    settings = Settings(database_url=db_url, slack_client_id="cid", slack_client_secret="csecret", slack_signing_secret="s")
    app = build(settings)
    server = TestServer(make_web_app(app), host="127.0.0.1")
    await server.start_server()
    try:
        async with aiohttp.ClientSession() as http, http.get(server.make_url("/slack/install"), allow_redirects=False) as page:
            assert page.status == 200
            html = await page.text()
    finally:
        await server.close()
    authorize = re.search(r'href="([^"]*oauth/v2/authorize[^"]*)"', html)
    assert authorize is not None, html
    query = parse_qs(urlparse(unquote(authorize[1].replace("&amp;", "&"))).query)
    assert set(query["scope"][0].split(",")) == set(_manifest()["oauth_config"]["scopes"]["bot"])
