"""The Teams endpoint of the web process: botbuilder's CloudAdapter, authenticating requests its
own way (Bot Framework JWTs, MICROSOFT_APP_*), serving /api/messages in our aiohttp server.

This package is the only place that imports botbuilder, so moving to its successor (the
Microsoft 365 Agents SDK, which keeps conversation references) changes nothing else.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from types import SimpleNamespace
from typing import Any

import requests
from aiohttp import web
from azure.core.exceptions import DeserializationError
from botbuilder.core import BotAdapter, Middleware, TurnContext, serializer_helper
from botbuilder.integration.aiohttp import (
    CloudAdapter,
    ConfigurationBotFrameworkAuthentication,
    ConfigurationServiceClientCredentialFactory,
)
from botbuilder.schema import Activity
from botframework.connector.auth import AppCredentials, ServiceClientCredentialsFactory
from msrest.authentication import Authentication
from urllib3.util.retry import Retry

from adapters.base import Inbound
from adapters.teams.activities import routing_problem
from adapters.teams.bot import ReinforceBot
from adapters.teams.chat import Addresses, TeamsChat

log = logging.getLogger(__name__)

PATH = "/api/messages"
CONNECTOR_TIMEOUT = 10.0  # seconds; msrest waits 100 s by default


class ReusedCredentials(ServiceClientCredentialsFactory):
    """botbuilder makes new credentials for every turn, and with them a new MSAL client whose
    token cache is empty: every message would fetch a token. One set per (app, audience)
    keeps MSAL's cache, so a token is fetched once an hour."""

    def __init__(self, inner: ServiceClientCredentialsFactory) -> None:
        self._inner = inner
        self._made: dict[tuple[Any, ...], Authentication] = {}

    async def is_valid_app_id(self, app_id: str) -> bool:
        return bool(await self._inner.is_valid_app_id(app_id))

    async def is_authentication_disabled(self) -> bool:
        return bool(await self._inner.is_authentication_disabled())

    async def create_credentials(self, app_id: str, oauth_scope: str, login_endpoint: str, validate_authority: bool) -> Authentication:
        key = (app_id, oauth_scope, login_endpoint, validate_authority)
        if key not in self._made:
            self._made[key] = await self._inner.create_credentials(app_id, oauth_scope, login_endpoint, validate_authority)
        return self._made[key]


class ConnectorSetup(Middleware):
    """Every turn's connector client: no retries of its own (the outbox retries, with backoff,
    and a 503 must not hold a delivery worker for seconds), a short timeout, and its token
    fetched in a thread (msrest asks MSAL for it synchronously, which would block the loop)."""

    async def on_turn(self, context: TurnContext, logic: Callable[[], Awaitable[Any]]) -> Any:
        client = context.turn_state.get(BotAdapter.BOT_CONNECTOR_CLIENT_KEY)
        if client is not None:
            client.config.retry_policy.policy = Retry(total=0, raise_on_status=False)
            client.config.connection.timeout = CONNECTOR_TIMEOUT
            credentials = client.config.credentials
            if isinstance(credentials, AppCredentials) and credentials.microsoft_app_id:
                await asyncio.to_thread(credentials.get_access_token)
        return await logic()


class TeamsAdapter:
    """Builds the CloudAdapter, the bot and the chat port for one configuration.

    With no ``app_id`` botbuilder accepts unauthenticated requests and sends without tokens:
    local development only (``start`` says so in the log).
    """

    def __init__(
        self,
        inbound: Inbound,
        addresses: Addresses,
        *,
        app_id: str | None = None,
        app_password: str | None = None,
        tenant_id: str | None = None,
        app_type: str = "MultiTenant",
        credentials_factory: ServiceClientCredentialsFactory | None = None,
    ) -> None:
        self.app_id = app_id or ""
        # The attribute names are botbuilder's configuration keys.
        configuration = SimpleNamespace(
            APP_ID=self.app_id, APP_PASSWORD=app_password or "", APP_TENANTID=tenant_id or "", APP_TYPE=app_type
        )
        credentials = ReusedCredentials(credentials_factory or ConfigurationServiceClientCredentialFactory(configuration))
        self.auth = ConfigurationBotFrameworkAuthentication(configuration, credentials_factory=credentials)
        self.adapter = CloudAdapter(self.auth)
        self.adapter.use(ConnectorSetup())
        self.chat = TeamsChat(self.adapter, self.app_id, addresses)
        self.bot = ReinforceBot(inbound, addresses)

    @property
    def authenticated(self) -> bool:
        return bool(self.app_id)

    async def start(self) -> None:
        if not self.authenticated:
            log.warning(
                "Teams: MICROSOFT_APP_ID is empty, so %s accepts requests WITHOUT authentication and sends without tokens; "
                "for local development only",
                PATH,
            )

    async def stop(self) -> None:
        """Nothing to close: botbuilder opens connections per call."""

    async def handle(self, request: web.Request) -> web.Response:
        """aiohttp handler for POST /api/messages.

        The request is authenticated before the bot runs, rather than inside
        ``CloudAdapter.process``, which turns only some token failures into 401 (a malformed,
        expired or unknown-key token would come out as a 500) and could not tell them from
        the bot's own errors.
        """
        if request.content_type != "application/json":
            return web.Response(status=415, text="application/json only")
        try:
            body = await request.json()
            activity = Activity().deserialize(body) if isinstance(body, dict) else None
        except (ValueError, DeserializationError):
            activity = None
        if activity is None or not activity.type:
            return web.Response(status=400, text="not a Bot Framework activity")
        try:
            authenticated = await self.auth.authenticate_request(activity, request.headers.get("Authorization", ""))
        except requests.RequestException as exc:  # the signing keys could not be fetched
            log.warning("Teams: cannot verify tokens right now (%s)", exc.__class__.__name__)
            return web.Response(status=503, text="cannot verify the token right now")
        except Exception as exc:  # every other failure means the token does not hold
            log.info("Teams: refused a request (%s: %s)", exc.__class__.__name__, str(exc)[:200])
            return web.Response(status=401, text="unauthorized")
        problem = routing_problem(activity)
        if problem is not None:
            log.info("Teams: refused a malformed activity (%s)", problem)
            return web.Response(status=400, text="malformed activity")
        try:
            invoke = await self.adapter.process_activity(authenticated, activity, self.bot.on_turn)
        except Exception:
            log.exception("Teams: handling a %s activity failed", activity.type)
            return web.Response(status=500, text="internal error")
        if invoke is not None:
            return web.json_response(serializer_helper(invoke.body), status=invoke.status)
        return web.Response(status=201)
