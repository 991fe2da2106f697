"""The web process: one aiohttp server for the platforms' webhooks, health and metrics."""

from __future__ import annotations

import asyncio
import logging

from aiohttp import web
from aiohttp.typedefs import Handler, Middleware
from sqlalchemy import text

from bot.app import App
from bot.metrics import add_metrics
from bot.pages import privacy_page, terms_page

log = logging.getLogger(__name__)
APP_KEY = web.AppKey("reinforce", App)


async def healthz(request: web.Request) -> web.Response:
    """200 when the database answers; 503 otherwise, so a load balancer stops routing here."""
    app = request.app[APP_KEY]
    try:
        async with app.db.session() as session:
            await session.execute(text("SELECT 1"))
    except Exception as exc:  # any failure means "not healthy"; the reason is logged, not shown
        log.warning("health check failed: %s", exc.__class__.__name__)
        return web.json_response({"status": "unavailable", "database": "unreachable"}, status=503)
    return web.json_response({"status": "ok"})


async def privacy(request: web.Request) -> web.Response:
    """The privacy statement the Teams app links to (unless REINFORCE_PRIVACY_URL names another)."""
    settings = request.app[APP_KEY].settings
    return web.Response(text=privacy_page(settings.reinforce_retention_days), content_type="text/html")


async def terms(request: web.Request) -> web.Response:
    """The terms of use the Teams app links to (unless REINFORCE_TERMS_URL names others)."""
    settings = request.app[APP_KEY].settings
    return web.Response(text=terms_page(settings.reinforce_privacy_url or "/privacy"), content_type="text/html")


def body_deadline(seconds: float) -> Middleware:
    """Middleware: a request's body is read, whole, within ``seconds`` before any handler runs
    (aiohttp has no body timeout of its own, and a client trickling a body would hold a
    connection and a handler for as long as it likes). Handlers then read it from memory."""

    @web.middleware
    async def read_body(request: web.Request, handler: Handler) -> web.StreamResponse:
        if request.body_exists:
            try:
                async with asyncio.timeout(seconds):
                    await request.read()
            except TimeoutError:
                log.info("refused %s %s: the body did not arrive within %g s", request.method, request.path, seconds)
                # Closed at once, as aiohttp does with headers that arrive too slowly: a 408
                # would first wait (aiohttp's lingering close) for the rest of the body.
                request.protocol.force_close()
                raise web.HTTPRequestTimeout() from None
            except ConnectionResetError:  # aiohttp would log this as an error with its traceback
                log.debug("%s %s: the client went away while sending the body", request.method, request.path)
                raise web.HTTPBadRequest() from None
        return await handler(request)

    return read_body


def make_web_app(app: App, *, metrics: bool = True) -> web.Application:
    """The web process's routes; ``metrics=False`` when /metrics is served on a port of its own."""
    web_app = web.Application(middlewares=[body_deadline(app.settings.reinforce_body_timeout)])
    web_app[APP_KEY] = app
    web_app.router.add_get("/healthz", healthz)
    web_app.router.add_get("/privacy", privacy)
    web_app.router.add_get("/terms", terms)
    if metrics:
        add_metrics(web_app, app.db, _token(app))
    if app.slack is not None and app.slack.signing_secret:
        web_app.router.add_post("/slack/events", app.slack.handle)
        if app.slack.app.oauth_flow is not None:
            web_app.router.add_get("/slack/install", app.slack.handle)
            web_app.router.add_get("/slack/oauth_redirect", app.slack.handle)
    if app.teams is not None:
        web_app.router.add_post("/api/messages", app.teams.handle)

    async def start(_web_app: web.Application) -> None:
        await app.start()

    async def close(_web_app: web.Application) -> None:
        await app.close()

    web_app.on_startup.append(start)
    web_app.on_cleanup.append(close)
    return web_app


def _token(app: App) -> str | None:
    token = app.settings.reinforce_metrics_token
    return token.get_secret_value() if token else None


def make_runner(app: App, *, metrics: bool = True) -> web.AppRunner:
    """The server `reinforce serve` runs. aiohttp's keep-alive timeout also runs from the moment
    a connection opens until its request's headers are in, so it is the header deadline
    (REINFORCE_HEADER_TIMEOUT); idle connections close after it too. No per-request access
    log: /metrics counts requests, and the log line costs more than a click's own work."""
    return web.AppRunner(make_web_app(app, metrics=metrics), access_log=None, keepalive_timeout=app.settings.reinforce_header_timeout)
