"""Multi-workspace install: OAuth at /slack/install and /slack/oauth_redirect, stored with
slack_sdk's SQLAlchemy stores in Reinforce's own database, then used to send."""

from __future__ import annotations

import json
import re
from http.cookies import SimpleCookie

import aiohttp
from aiohttp.test_utils import TestServer
from slack_sdk.oauth.installation_store.sqlalchemy import SQLAlchemyInstallationStore
from slack_sdk.oauth.state_store.sqlalchemy import SQLAlchemyOAuthStateStore
from sqlalchemy import MetaData, select

from adapters.base import Recipient
from bot.app import build
from bot.settings import Settings
from bot.web import make_web_app
from nudges.messages import Message
from storage.db import Database
from storage.models import oauth_states, workspace_bots, workspace_installations
from tests.fakes.slack import running_fake_slack, sign
from tests.rig import wait_for


async def _install(http: aiohttp.ClientSession, url: str) -> int:
    async with http.get(f"{url}/slack/install", allow_redirects=False) as page:
        assert page.status == 200
        html = await page.text()
        cookie = SimpleCookie(page.headers["Set-Cookie"])
    state = re.search(r"state=([\w-]+)", html)[1]
    assert "client_id=cid" in html
    headers = {"Cookie": "; ".join(f"{k}={v.value}" for k, v in cookie.items())}
    async with http.get(f"{url}/slack/oauth_redirect?code=the-code&state={state}", headers=headers, allow_redirects=False) as done:
        await done.read()
        return done.status


async def test_two_workspaces_install_and_each_is_sent_to_with_its_own_token(db: Database, db_url: str) -> None:
    async with running_fake_slack() as fake:
        fake.oauth_teams = [("TALPHA", "xoxb-alpha"), ("TBETA", "xoxb-beta")]
        fake.add_user("ana@example.com", "TBETA", "UANA")
        settings = Settings(
            database_url=db_url, slack_client_id="cid", slack_client_secret="csecret", slack_signing_secret="s", slack_api_url=fake.url
        )
        app = build(settings)
        server = TestServer(make_web_app(app), host="127.0.0.1")
        await server.start_server()
        try:
            async with aiohttp.ClientSession() as http:
                url = str(server.make_url("")).rstrip("/")
                assert await _install(http, url) == 200
                assert await _install(http, url) == 200
            assert [c.params["code"] for c in fake.called("oauth.v2.access")] == ["the-code", "the-code"]
            async with db.engine.connect() as conn:
                teams = sorted((await conn.execute(select(workspace_bots.c.team_id, workspace_bots.c.bot_token))).all())
            assert teams == [("TALPHA", "xoxb-alpha"), ("TBETA", "xoxb-beta")]
            member = await app.chats["slack"].resolve("ana@example.com")
            assert member == "TBETA:UANA"
            await app.chats["slack"].send(Recipient("slack", user_id=member), Message("hello"))
            assert fake.called("chat.postMessage")[-1].token == "xoxb-beta"
            # A reply to a member's DM goes out through the chat port, with their workspace's token.
            dm = json.dumps(
                {
                    "type": "event_callback",
                    "team_id": "TBETA",
                    "api_app_id": "A0001",
                    "event_id": "Ev1",
                    "event": {"type": "message", "channel_type": "im", "channel": "DUANA", "user": "UANA", "text": "hello", "ts": "1.0"},
                }
            )
            async with (
                aiohttp.ClientSession() as http,
                http.post(f"{url}/slack/events", data=dm, headers={"Content-Type": "application/json", **sign("s", dm)}) as event,
            ):
                assert event.status == 200
            reply = (await wait_for(lambda: [c for c in fake.called("chat.postMessage") if "know" in c.params.get("text", "")]))[-1]
            assert (reply.params["channel"], reply.token) == ("UANA", "xoxb-beta")
        finally:
            await server.close()
            await app.close()


async def test_an_install_with_a_forged_state_is_refused_and_stores_nothing(db: Database, db_url: str) -> None:
    async with running_fake_slack() as fake:
        fake.oauth_teams = [("TALPHA", "xoxb-alpha")]
        settings = Settings(
            database_url=db_url, slack_client_id="cid", slack_client_secret="csecret", slack_signing_secret="s", slack_api_url=fake.url
        )
        app = build(settings)
        server = TestServer(make_web_app(app), host="127.0.0.1")
        await server.start_server()
        try:
            async with (
                aiohttp.ClientSession() as http,
                http.get(f"{str(server.make_url('')).rstrip('/')}/slack/oauth_redirect?code=c&state=forged") as response,
            ):
                assert response.status == 400
            assert fake.called("oauth.v2.access") == []
            async with db.engine.connect() as conn:
                assert (await conn.execute(select(workspace_bots))).all() == []
        finally:
            await server.close()
            await app.close()


def test_our_installation_tables_match_the_sdk_layout() -> None:
    """The migration creates the tables slack_sdk's stores use; an SDK upgrade that changes them fails here."""
    sdk = MetaData()
    expected = {
        "workspace_bots": SQLAlchemyInstallationStore.build_bots_table(sdk, "workspace_bots"),
        "workspace_installations": SQLAlchemyInstallationStore.build_installations_table(sdk, "workspace_installations"),
        "oauth_states": SQLAlchemyOAuthStateStore.build_oauth_states_table(sdk, "oauth_states"),
    }
    for ours in (workspace_bots, workspace_installations, oauth_states):
        theirs = expected[ours.name]
        assert {c.name: (type(c.type), c.nullable) for c in ours.columns} == {c.name: (type(c.type), c.nullable) for c in theirs.columns}
