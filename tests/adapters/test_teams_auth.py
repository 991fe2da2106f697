"""Teams with MICROSOFT_APP_ID set: botbuilder verifies every request's Bot Framework JWT
against the signing keys of an OpenID configuration (served here on 127.0.0.1 with a key of
our own), and outbound calls carry a token from botbuilder's credentials."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp.test_utils import TestServer
from botframework.connector.auth import ChannelValidation, MicrosoftAppCredentials, PasswordServiceClientCredentialFactory
from sqlalchemy import func, select

from adapters.base import Recipient
from adapters.teams.app import TeamsAdapter
from bot.app import App, build
from bot.files import load_program
from bot.settings import Settings
from bot.web import make_web_app
from nudges.messages import Message
from storage.addresses import AddressBook
from storage.db import Database
from storage.models import Account, AuditEntry, ConversationRef, Person
from storage.programs import save_program
from tests.fakes.bot_connector import FakeBotConnector, SigningKey, openid_metadata, personal_install, running_fake_connector

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "program.yaml"
APP_ID = "00000000-0000-0000-0000-00000000b0t1"
TENANT = "tenant-0001"
BOT = f"28:{APP_ID}"
OUTBOUND_TOKEN = "token-from-the-fake-identity-platform"


class FixedTokenCredentials(PasswordServiceClientCredentialFactory):
    """botbuilder's own credentials factory, except that the token comes from here: Azure AD's
    token endpoint must be HTTPS on a real host (MSAL refuses anything else), so this is the
    one seam without a protocol to fake."""

    async def create_credentials(self, app_id: str, oauth_scope: str, login_endpoint: str, validate_authority: bool) -> Any:
        if not await self.is_valid_app_id(app_id):
            raise PermissionError("Invalid app_id")
        return _FixedToken(app_id, self.password, self.tenant_id, oauth_scope)


class _FixedToken(MicrosoftAppCredentials):
    def get_access_token(self, force_refresh: bool = False) -> str:
        return OUTBOUND_TOKEN


@dataclass
class Rig:
    app: App
    fake: FakeBotConnector
    url: str
    http: aiohttp.ClientSession
    db: Database
    key: SigningKey

    async def post(self, activity: dict[str, Any], authorization: str | None) -> int:
        headers = {"Authorization": authorization} if authorization is not None else {}
        async with self.http.post(f"{self.url}/api/messages", json=activity, headers=headers) as response:
            await response.read()
            return response.status

    async def count(self, model: type) -> int:
        async with self.db.session() as session:
            return await session.scalar(select(func.count()).select_from(model)) or 0

    def install(self) -> dict[str, Any]:
        account = next(iter(self.fake.members.values()))
        return personal_install(self.fake.url, TENANT, BOT, account)


# Published next to the rig's key, but endorsed for another channel than Teams.
FOREIGN_CHANNEL_KEY = SigningKey(endorsements=("slack",))


@pytest.fixture
def signing_key(monkeypatch: pytest.MonkeyPatch) -> Iterator[SigningKey]:
    key = SigningKey()
    with openid_metadata(key, FOREIGN_CHANNEL_KEY) as url:
        # botbuilder's own seam for where the channel's signing keys are published.
        monkeypatch.setattr(ChannelValidation, "open_id_metadata_endpoint", url)
        yield key


async def _rig(db: Database, db_url: str, key: SigningKey, *, outbound: bool) -> AsyncIterator[Rig]:
    program = load_program(str(EXAMPLE))
    async with running_fake_connector() as fake:
        fake.add_member(TENANT, "carla@example.com", "Carla")
        app = build(Settings(database_url=db_url, microsoft_app_id=APP_ID, microsoft_app_password="app-password"))
        if outbound:
            app.teams = TeamsAdapter(
                app.inbound,
                AddressBook(app.db, "teams"),
                app_id=APP_ID,
                app_password="app-password",
                credentials_factory=FixedTokenCredentials(APP_ID, "app-password"),
            )
            app.chats["teams"] = app.teams.chat
        async with db.session() as session:
            await save_program(session, program, "examples/program.yaml", datetime(2026, 1, 5, tzinfo=UTC))
        server = TestServer(make_web_app(app), host="127.0.0.1")
        await server.start_server()
        async with aiohttp.ClientSession() as http:
            yield Rig(app, fake, str(server.make_url("")).rstrip("/"), http, db, key)
        await server.close()


@pytest.fixture
async def rig(db: Database, db_url: str, signing_key: SigningKey) -> AsyncIterator[Rig]:
    async for built in _rig(db, db_url, signing_key, outbound=False):
        yield built


@pytest.fixture
async def outbound_rig(db: Database, db_url: str, signing_key: SigningKey) -> AsyncIterator[Rig]:
    async for built in _rig(db, db_url, signing_key, outbound=True):
        yield built


async def test_requests_without_a_valid_token_get_401_and_store_nothing(rig: Rig) -> None:
    assert rig.app.teams is not None and rig.app.teams.authenticated  # built by bot/app.py from MICROSOFT_APP_ID
    activity = rig.install()
    stranger = SigningKey()
    forged = {
        "no header": None,
        "empty header": "",
        "garbage": "Bearer not-a-jwt",
        "wrong scheme": "Basic " + rig.key.token(APP_ID, rig.fake.url),
        "unknown signing key": "Bearer " + stranger.token(APP_ID, rig.fake.url),
        "key id of ours, signed by another key": "Bearer " + SigningKey(kid=rig.key.kid).token(APP_ID, rig.fake.url),
        "another bot's token": "Bearer " + rig.key.token("some-other-app", rig.fake.url),
        "another serviceUrl": "Bearer " + rig.key.token(APP_ID, "https://smba.evil.example/"),
        "expired": "Bearer " + rig.key.token(APP_ID, rig.fake.url, expires_in=-3600),
        "another issuer": "Bearer " + rig.key.token(APP_ID, rig.fake.url, issuer="https://evil.example"),
        "a key endorsed for another channel": "Bearer " + FOREIGN_CHANNEL_KEY.token(APP_ID, rig.fake.url),
    }
    statuses = {name: await rig.post(activity, header) for name, header in forged.items()}
    assert statuses == dict.fromkeys(forged, 401)
    assert (await rig.count(ConversationRef), await rig.count(AuditEntry)) == (0, 0)
    assert rig.fake.calls == []  # nothing reached the connector either


async def test_a_signed_install_is_stored_and_outbound_calls_carry_a_token(outbound_rig: Rig) -> None:
    rig = outbound_rig
    assert await rig.post(rig.install(), "Bearer " + rig.key.token(APP_ID, rig.fake.url)) == 201
    assert await rig.count(ConversationRef) == 1
    async with rig.db.session() as session:
        member = await session.scalar(
            select(Account.user_id).join(Person, Person.id == Account.person_id).where(Person.email == "carla@example.com")
        )
    assert [c.authorization for c in rig.fake.called("member")] == [f"Bearer {OUTBOUND_TOKEN}"]
    await rig.app.chats["teams"].send(Recipient("teams", user_id=member), Message("hello"))
    assert rig.fake.called("send")[-1].authorization == f"Bearer {OUTBOUND_TOKEN}"
